//! Scoping and name matching, table-driven: which names a container resolves, on which
//! network, and what is forwarded instead (DOCKER_SEMANTICS.md DNS-2 … DNS-7).

use std::{
    collections::{BTreeMap, HashSet},
    net::Ipv4Addr,
};

use rand::{SeedableRng, rngs::StdRng, seq::IndexedRandom};

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

/// Registrations that disagree, as stale ones may: the greatest container id wins, as
/// when the tables were rebuilt from every registration in id order; when it leaves, the
/// next one does.
#[test]
fn the_greatest_container_wins_a_shared_address_and_the_network_name() {
    let request = |n, name, network_name, address| {
        let mut request = registration(n, name, "", &[(network_name, address, &[])]);
        request.endpoints[0].network_id = "id-front".into();
        Registration::parse(&request).unwrap()
    };
    let newest = request(3, "newest", "front2", "172.16.1.9");
    let mut records = Records::build(&[
        newest.clone(),
        request(1, "oldest", "front", "172.16.1.9"),
        request(2, "other", "front", "172.16.1.2"),
    ]);
    let ptr = |records: &Records| {
        let asker = container_id(2);
        let name = "9.1.16.172.in-addr.arpa";
        match records.lookup(Asker::Container(&asker), name, QueryKind::Ptr, &mut rand::rng()) {
            Outcome::Pointer { target, .. } => target,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(ptr(&records), "newest.front2.");
    assert_eq!(a(&records, 1, "other.front2"), Some(vec![ip("172.16.1.2")]));
    assert_eq!(a(&records, 1, "other.front"), None);
    records.remove(&newest);
    assert_eq!(ptr(&records), "oldest.front.");
    assert_eq!(a(&records, 1, "other.front"), Some(vec![ip("172.16.1.2")]));
    assert!(records.list(None).iter().all(|row| row.network_name == "front"));
}

/// The pools of the random registrations: few, so that names, addresses and networks
/// collide.
const CONTAINERS: u8 = 6;
const NAMES: [&str; 4] = ["alpha", "beta", "Web", "db"];
const NETWORK_NAMES: [&str; 4] = ["front", "back", "FRONT", "x.y"];

fn random_registration(rng: &mut StdRng, n: u8) -> Registration {
    let pick = |rng: &mut StdRng, pool: &[&str]| (*pool.choose(rng).unwrap()).to_owned();
    let some = |rng: &mut StdRng, max| rng.random_range(0..=max);
    let mut request = RegistrationRequest {
        container_id: id(n),
        name: pick(rng, &NAMES),
        hostname: if rng.random_bool(0.5) { pick(rng, &NAMES) } else { String::new() },
        netns_path: format!("/run/test/{n}"),
        ..RegistrationRequest::default()
    };
    for upstream in ["10.0.0.53", "10.0.0.54:5353"] {
        if rng.random_bool(0.3) {
            request.upstreams.push(upstream.to_owned());
        }
    }
    for _ in 0..some(rng, 2) {
        let target = id(rng.random_range(1..=CONTAINERS + 1));
        request.link_aliases.push((pick(rng, &NAMES), target));
    }
    for network in ["n0", "n1", "n2"] {
        if rng.random_bool(0.4) {
            continue;
        }
        let aliases = (0..some(rng, 2)).map(|_| pick(rng, &NAMES)).collect();
        request.endpoints.push(EndpointRequest {
            network_id: format!("id-{network}"),
            network_name: pick(rng, &NETWORK_NAMES),
            address: format!("10.0.0.{}", rng.random_range(1..=4)),
            aliases,
            internal: rng.random_bool(0.2),
        });
    }
    // The endpoint order is the container's search order.
    request.endpoints.shuffle(rng);
    Registration::parse(&request).unwrap()
}

/// Every name of the pools, bare and on each network, the short ids, a few reverse
/// names, and strangers.
fn query_names() -> Vec<String> {
    let mut queries = vec!["nosuch".to_owned(), "example.org.".to_owned()];
    for name in NAMES {
        queries.push(name.to_owned());
        queries.extend(["front", "back", "x.y"].map(|network| format!("{name}.{network}")));
    }
    queries.extend((1..=CONTAINERS).map(|n| id(n)[..12].to_owned()));
    queries.extend((1..=4).map(|host| format!("{host}.0.0.10.in-addr.arpa")));
    queries
}

/// The kinds worth asking: PTR of a name that is not a reverse one takes the path of
/// `Other`, and the pools give no container anything like a reverse name.
fn kinds(query: &str) -> &'static [QueryKind] {
    if query.ends_with(".arpa") { &[QueryKind::Ptr] } else { &[QueryKind::A, QueryKind::Other] }
}

/// What one asker sees: whether it is registered, forwards and to where, then the
/// outcome of each query of each kind (shuffled addresses sorted).
#[derive(Debug, PartialEq)]
struct View {
    registered: bool,
    forwards: bool,
    upstreams: Vec<Upstream>,
    outcomes: Vec<(usize, QueryKind, Outcome)>,
}

/// Everything a query can observe: the listing, then each asker's view.
fn observe(records: &Records, queries: &[String]) -> (Vec<RecordRow>, Vec<View>) {
    let ids: Vec<ContainerId> = (1..=CONTAINERS).map(container_id).collect();
    let askers = ids.iter().map(Asker::Container).chain([Asker::Host]);
    let view = |asker| {
        let mut outcomes = Vec::new();
        for (index, query) in queries.iter().enumerate() {
            for &kind in kinds(query) {
                let mut outcome = records.lookup(asker, query, kind, &mut rand::rng());
                if let Outcome::Addresses { addresses, .. } = &mut outcome {
                    addresses.sort();
                }
                outcomes.push((index, kind, outcome));
            }
        }
        View {
            registered: matches!(asker, Asker::Container(id) if records.is_registered(id)),
            forwards: records.forwards(asker),
            upstreams: records.upstreams(asker).to_vec(),
            outcomes,
        }
    };
    (records.list(None), askers.map(view).collect())
}

/// Random registrations, re-registrations with other names, aliases, addresses,
/// networks and links, and deregistrations: the tables kept up to date change by change
/// answer exactly like tables built from the registrations of the moment, in any order.
#[test]
fn changes_applied_one_by_one_answer_like_a_fresh_build() {
    let mut rng = StdRng::seed_from_u64(20);
    let queries = query_names();
    let mut current: BTreeMap<ContainerId, Registration> = BTreeMap::new();
    let mut records = Records::default();
    for step in 0..2000 {
        let n = rng.random_range(1..=CONTAINERS);
        let old = current.remove(&container_id(n));
        if let Some(old) = &old {
            records.remove(old);
        }
        if old.is_none() || rng.random_bool(0.7) {
            let registration = random_registration(&mut rng, n);
            records.insert(&registration);
            current.insert(registration.container_id.clone(), registration);
        }
        let built = Records::build(current.values());
        // Not seen by queries: no table outlives its last member.
        assert_eq!(records.all_networks, built.all_networks, "step {step}");
        let (rows, views) = observe(&built, &queries);
        let (got_rows, got_views) = observe(&records, &queries);
        assert_eq!(got_rows, rows, "step {step}: {current:#?}");
        for (asker, (got, expected)) in got_views.iter().zip(&views).enumerate() {
            assert_eq!(got, expected, "step {step}, asker {asker}: {current:#?}");
        }
        if step % 16 == 0 {
            let reversed = observe(&Records::build(current.values().rev()), &queries);
            assert_eq!(reversed, (rows, views), "step {step}: the order of registration shows");
        }
    }
}
