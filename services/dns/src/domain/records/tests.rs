//! Scoping and name matching, table-driven: which names a container resolves, on which
//! network, and what is forwarded instead (DOCKER_SEMANTICS.md DNS-2 … DNS-7).

use std::{collections::HashSet, net::Ipv4Addr};

use super::*;
use crate::domain::registration::{EndpointRequest, RegistrationRequest};

fn id(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn container_id(n: u8) -> ContainerId {
    ContainerId::parse(&id(n)).unwrap()
}

/// `endpoints`: (network, address, aliases); the network id is "id-<network>".
fn registration(
    n: u8,
    name: &str,
    hostname: &str,
    endpoints: &[(&str, &str, &[&str])],
) -> RegistrationRequest {
    RegistrationRequest {
        container_id: id(n),
        name: name.into(),
        hostname: hostname.into(),
        netns_path: format!("/run/test/{n}"),
        endpoints: endpoints
            .iter()
            .map(|(network, address, aliases)| EndpointRequest {
                network_id: format!("id-{network}"),
                network_name: (*network).into(),
                address: (*address).into(),
                aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
                internal: false,
            })
            .collect(),
        ..RegistrationRequest::default()
    }
}

fn build(requests: &[RegistrationRequest]) -> Records {
    let registrations: Vec<Registration> =
        requests.iter().map(|r| Registration::parse(r).unwrap()).collect();
    Records::build(&registrations)
}

/// Containers 1 (centos1, on front), 2 (centos2, on front and back, hostname host2),
/// 3 (centos3, on back) and 4 (centos4, on front, sharing alias "web" with centos1).
fn cluster() -> Records {
    let mut linker = registration(5, "linker", "", &[("front", "172.16.1.5", &[])]);
    linker.link_aliases = vec![("db".into(), id(3)), ("DB2".into(), id(2))];
    build(&[
        registration(1, "centos1", "", &[("front", "172.16.1.1", &["web"])]),
        registration(
            2,
            "centos2",
            "host2",
            &[("front", "172.16.1.2", &[]), ("back", "10.9.0.2", &["api"])],
        ),
        registration(3, "centos3", "", &[("back", "10.9.0.3", &[])]),
        registration(4, "centos4", "", &[("front", "172.16.1.4", &["web"])]),
        linker,
    ])
}

fn a(records: &Records, asker: u8, name: &str) -> Option<Vec<Ipv4Addr>> {
    let asker = container_id(asker);
    match records.lookup(Asker::Container(&asker), name, QueryKind::A, &mut rand::rng()) {
        Outcome::Addresses { mut addresses, .. } => {
            addresses.sort();
            Some(addresses)
        }
        Outcome::Forward => None,
        other => panic!("A {name}: unexpected {other:?}"),
    }
}

fn ip(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}

#[test]
fn names_resolve_only_on_shared_networks() {
    let records = cluster();
    // (asker, name, expected)
    let cases: &[(u8, &str, Option<&[&str]>)] = &[
        (1, "centos1", Some(&["172.16.1.1"])),
        (1, "centos2", Some(&["172.16.1.2"])),
        (1, "centos3", None),
        (3, "centos1", None),
        (3, "centos2", Some(&["10.9.0.2"])),
        (3, "api", Some(&["10.9.0.2"])),
        (1, "api", None),
        // Multi-network: centos2 sees both networks; front comes first in its order.
        (2, "centos1", Some(&["172.16.1.1"])),
        (2, "centos3", Some(&["10.9.0.3"])),
        (2, "centos2", Some(&["172.16.1.2"])),
        (1, "nosuchname", None),
    ];
    for (asker, name, expected) in cases {
        let expected = expected.map(|list| list.iter().map(|s| ip(s)).collect::<Vec<_>>());
        assert_eq!(a(&records, *asker, name), expected, "{asker} asks {name}");
    }
}

#[test]
fn names_ignore_case_and_accept_network_suffix_short_id_and_hostname() {
    let records = cluster();
    let front_2 = Some(vec![ip("172.16.1.2")]);
    for name in [
        "CENTOS2",
        "CentOS2.",
        "centos2.front",
        "centos2.FRONT.",
        "host2",
        "HOST2.front",
        &id(2)[..12],
    ] {
        assert_eq!(a(&records, 1, name), front_2, "{name}");
    }
    assert_eq!(a(&records, 3, "centos2.back"), Some(vec![ip("10.9.0.2")]));
    // A network the asker is not on, or a name not on the named network, is forwarded.
    assert_eq!(a(&records, 1, "centos2.back"), None);
    assert_eq!(a(&records, 1, "centos3.back"), None);
    assert_eq!(a(&records, 2, "centos3.front"), None);
    // The full 64-hex id is not a name.
    assert_eq!(a(&records, 1, &id(2)), None);
}

#[test]
fn a_shared_alias_returns_every_member_in_varying_order() {
    let records = cluster();
    assert_eq!(a(&records, 2, "web"), Some(vec![ip("172.16.1.1"), ip("172.16.1.4")]));
    let asker = container_id(2);
    let mut orders = HashSet::new();
    for _ in 0..64 {
        match records.lookup(Asker::Container(&asker), "web", QueryKind::A, &mut rand::rng()) {
            Outcome::Addresses { addresses, .. } => orders.insert(addresses),
            other => panic!("unexpected {other:?}"),
        };
    }
    assert_eq!(orders.len(), 2, "both orders should appear in 64 queries: {orders:?}");
}

#[test]
fn other_types_of_known_names_are_empty_and_unknown_ones_forwarded() {
    let records = cluster();
    let asker = container_id(1);
    let lookup =
        |name, kind| records.lookup(Asker::Container(&asker), name, kind, &mut rand::rng());
    assert_eq!(lookup("centos2", QueryKind::Other), Outcome::NoData);
    assert_eq!(lookup("web.front", QueryKind::Other), Outcome::NoData);
    assert_eq!(lookup("centos3", QueryKind::Other), Outcome::Forward);
    assert_eq!(lookup("example.org", QueryKind::Other), Outcome::Forward);
}

#[test]
fn pointers_name_the_container_not_the_alias() {
    let records = cluster();
    let ptr = |asker: u8, name: &str| {
        let asker = container_id(asker);
        records.lookup(Asker::Container(&asker), name, QueryKind::Ptr, &mut rand::rng())
    };
    let front = NetworkId::parse("id-front").unwrap();
    assert_eq!(
        ptr(1, "4.1.16.172.in-addr.arpa."),
        Outcome::Pointer { network: front.clone(), target: "centos4.front.".into() }
    );
    assert_eq!(
        ptr(2, "3.0.9.10.IN-ADDR.ARPA"),
        Outcome::Pointer {
            network: NetworkId::parse("id-back").unwrap(),
            target: "centos3.back.".into()
        }
    );
    // Another network's container, the gateway, IPv6 reverse names: forwarded.
    assert_eq!(ptr(1, "3.0.9.10.in-addr.arpa"), Outcome::Forward);
    assert_eq!(ptr(1, "254.1.16.172.in-addr.arpa"), Outcome::Forward);
    assert_eq!(ptr(1, "1.0.0.0.ip6.arpa"), Outcome::Forward);
}

#[test]
fn link_aliases_are_seen_only_by_the_linking_container() {
    let records = cluster();
    // centos3 is only on "back" and the linker only on "front": no shared network.
    assert_eq!(a(&records, 5, "db"), None);
    assert_eq!(a(&records, 5, "db2"), Some(vec![ip("172.16.1.2")]));
    assert_eq!(a(&records, 5, "DB2.front"), Some(vec![ip("172.16.1.2")]));
    assert_eq!(a(&records, 1, "db2"), None);
    assert_eq!(a(&records, 2, "db2"), None);
}

#[test]
fn unregistered_askers_and_the_host_view() {
    let records = cluster();
    let stranger = container_id(9);
    assert!(!records.is_registered(&stranger));
    let outcome =
        records.lookup(Asker::Container(&stranger), "centos1", QueryKind::A, &mut rand::rng());
    assert_eq!(outcome, Outcome::Forward);
    // The host sees every network, ordered by name: "back" before "front".
    match records.lookup(Asker::Host, "centos2", QueryKind::A, &mut rand::rng()) {
        Outcome::Addresses { addresses, .. } => assert_eq!(addresses, [ip("10.9.0.2")]),
        other => panic!("unexpected {other:?}"),
    }
    assert!(records.upstreams(Asker::Host).is_empty());
}

#[test]
fn upstreams_are_per_container() {
    let mut request = registration(1, "centos1", "", &[("front", "172.16.1.1", &[])]);
    request.upstreams = vec!["127.0.0.1:5300".into()];
    let records = build(&[request]);
    let asker = container_id(1);
    let upstreams: Vec<String> =
        records.upstreams(Asker::Container(&asker)).iter().map(ToString::to_string).collect();
    assert_eq!(upstreams, ["127.0.0.1:5300"]);
}

#[test]
fn listing_covers_names_and_pointers_per_network() {
    let records = cluster();
    let back = NetworkId::parse("id-back").unwrap();
    let rows: Vec<(&str, String, String)> =
        records.list(Some(&back)).into_iter().map(|row| (row.kind, row.name, row.value)).collect();
    let short2 = id(2)[..12].to_owned();
    let short3 = id(3)[..12].to_owned();
    let mut expected = vec![
        ("A", short2, "10.9.0.2".to_owned()),
        ("A", short3, "10.9.0.3".to_owned()),
        ("A", "api".to_owned(), "10.9.0.2".to_owned()),
        ("A", "centos2".to_owned(), "10.9.0.2".to_owned()),
        ("A", "centos3".to_owned(), "10.9.0.3".to_owned()),
        ("A", "host2".to_owned(), "10.9.0.2".to_owned()),
        ("PTR", "2.0.9.10.in-addr.arpa".to_owned(), "centos2.back.".to_owned()),
        ("PTR", "3.0.9.10.in-addr.arpa".to_owned(), "centos3.back.".to_owned()),
    ];
    expected.sort();
    assert_eq!(rows, expected);
    assert!(records.list(None).len() > rows.len());
}
