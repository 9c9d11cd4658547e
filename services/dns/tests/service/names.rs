//! Names the resolver answers itself, per asking container (DNS-2 … DNS-5, DNS-7), and
//! the debugging views of them (Lookup, ListRecords, the optional host address).

use std::{collections::HashSet, net::Ipv4Addr};

use cnet_proto::dns::v1::{self as pb, lookup_response::Outcome};
use hickory_proto::{
    op::ResponseCode,
    rr::{RData, RecordType, rdata::PTR},
};
use tonic::Code;

use crate::{TAG_1, client::*, ip, support::*};

#[test]
fn containers_resolve_each_other_by_name_within_their_networks() {
    isolated(|root| async move {
        let upstream = FakeUpstream::start(TAG_1).await;
        write_resolv_conf(&root, &[upstream.address]);
        let service = Service::start(config(&root)).await;
        let mut client = service.client.clone();
        let (a, b, c) = (sandbox(&root, "a"), sandbox(&root, "b"), sandbox(&root, "c"));

        let mut web1 = registration(1, "web1", &a, vec![endpoint("front", "172.16.1.2", &["web"])]);
        web1.link_aliases =
            vec![pb::LinkAlias { alias: "db".into(), target_container_id: container_id(2) }];
        let mut web2 = registration(
            2,
            "web2",
            &b,
            vec![endpoint("front", "172.16.1.3", &["web"]), endpoint("back", "10.9.0.3", &[])],
        );
        web2.hostname = "host2".into();
        let backend = registration(3, "backend", &c, vec![endpoint("back", "10.9.0.4", &[])]);
        for request in [web1, web2, backend] {
            let container = client.register_container(request).await.unwrap().into_inner();
            assert!(container.listening, "{container:?}");
        }

        // Name → A over UDP: TTL 600, flags qr rd ra, AA not set (DNS-2).
        let answer = ask(&a, "web2", RecordType::A, Transport::Udp).await.unwrap();
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert_eq!(addresses(&answer), [ip("172.16.1.3")]);
        assert_eq!(answer.answers[0].ttl, 600);
        let flags = answer.metadata;
        assert!(flags.recursion_desired && flags.recursion_available && !flags.authoritative);
        // The same over TCP, and every other form of the name.
        let answer = ask(&a, "web2", RecordType::A, Transport::Tcp).await.unwrap();
        assert_eq!(addresses(&answer), [ip("172.16.1.3")]);
        let short_id = &container_id(2)[..12];
        for name in ["WEB2", "web2.front", "Web2.FRONT", "host2", short_id] {
            let answer = ask(&a, name, RecordType::A, Transport::Udp).await.unwrap();
            assert_eq!(addresses(&answer), [ip("172.16.1.3")], "{name}");
        }
        // Multi-network: web2 sees both networks, backend only its own.
        let answer = ask(&b, "backend", RecordType::A, Transport::Udp).await.unwrap();
        assert_eq!(addresses(&answer), [ip("10.9.0.4")]);
        let answer = ask(&c, "web2", RecordType::A, Transport::Udp).await.unwrap();
        assert_eq!(addresses(&answer), [ip("10.9.0.3")]);
        assert_eq!(upstream.total(), 0, "nothing so far was forwarded");

        // A shared alias: both members, in an order that varies (DNS-5).
        let mut orders = HashSet::new();
        for _ in 0..24 {
            let answer = ask(&a, "web", RecordType::A, Transport::Udp).await.unwrap();
            orders.insert(addresses(&answer));
        }
        let expected: HashSet<Vec<Ipv4Addr>> =
            [vec![ip("172.16.1.2"), ip("172.16.1.3")], vec![ip("172.16.1.3"), ip("172.16.1.2")]]
                .into();
        assert_eq!(orders, expected);

        // Another type for a known name: empty NOERROR, not forwarded (DNS-3).
        let answer = ask(&a, "web2", RecordType::AAAA, Transport::Udp).await.unwrap();
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert!(answer.answers.is_empty());
        assert_eq!(upstream.total(), 0);

        // Another network's container and `name.othernetwork` are forwarded (DNS-6).
        let answer = ask(&a, "backend", RecordType::A, Transport::Udp).await.unwrap();
        assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(upstream.asked("backend"), [Transport::Udp]);
        let answer = ask(&a, "web2.back", RecordType::A, Transport::Udp).await.unwrap();
        assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(upstream.asked("web2.back"), [Transport::Udp]);

        // PTR of a container address names the container on its network (DNS-4); any
        // other address is forwarded.
        let answer = ask(&a, "3.1.16.172.in-addr.arpa", RecordType::PTR, Transport::Udp).await;
        let answer = answer.unwrap();
        let target = hickory_proto::rr::Name::from_ascii("web2.front.").unwrap();
        assert_eq!(answer.answers[0].data, RData::PTR(PTR(target)));
        assert_eq!(answer.answers[0].ttl, 600);
        let answer = ask(&a, "1.1.16.172.in-addr.arpa", RecordType::PTR, Transport::Udp).await;
        assert_eq!(answer.unwrap().metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(upstream.asked("1.1.16.172.in-addr.arpa"), [Transport::Udp]);

        // A link alias only the linking container sees (DNS-7).
        let answer = ask(&a, "db", RecordType::A, Transport::Udp).await.unwrap();
        assert_eq!(addresses(&answer), [ip("172.16.1.3")]);
        let answer = ask(&b, "db", RecordType::A, Transport::Udp).await.unwrap();
        assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);

        service.stop().await;
    });
}

#[test]
fn record_changes_never_touch_open_listeners() {
    isolated(|root| async move {
        write_resolv_conf(&root, &[]);
        let service = Service::start(config(&root)).await;
        let mut client = service.client.clone();
        let (a, b) = (sandbox(&root, "a"), sandbox(&root, "b"));
        let first = registration(1, "one", &a, vec![endpoint("front", "172.16.1.2", &[])]);
        client.register_container(first.clone()).await.unwrap();

        let connection = connect_tcp(&a).await;
        let answer = ask_on(&connection, "one", RecordType::A).await;
        assert_eq!(addresses(&answer), [ip("172.16.1.2")]);

        // Another container arrives, then this one is re-registered with a new alias and
        // the other leaves: the same TCP connection sees every change.
        client
            .register_container(registration(
                2,
                "two",
                &b,
                vec![endpoint("front", "172.16.1.3", &[])],
            ))
            .await
            .unwrap();
        assert_eq!(addresses(&ask_on(&connection, "two", RecordType::A).await), [ip("172.16.1.3")]);
        let mut again = first.clone();
        again.endpoints[0].aliases = vec!["uno".into()];
        let container = client.register_container(again).await.unwrap().into_inner();
        assert!(container.listening);
        assert_eq!(addresses(&ask_on(&connection, "uno", RecordType::A).await), [ip("172.16.1.2")]);
        client
            .deregister_container(pb::DeregisterContainerRequest { container_id: container_id(2) })
            .await
            .unwrap();
        let answer = ask_on(&connection, "two", RecordType::A).await;
        assert_eq!(answer.metadata.response_code, ResponseCode::ServFail, "no upstream");
        assert!(answer.answers.is_empty());
        drop(connection);
        service.stop().await;
    });
}

#[test]
fn lookup_and_list_records_show_what_the_resolver_answers() {
    isolated(|root| async move {
        let upstream = FakeUpstream::start(TAG_1).await;
        write_resolv_conf(&root, &[upstream.address]);
        let service = Service::start(config(&root)).await;
        let mut client = service.client.clone();
        let (a, b) = (sandbox(&root, "a"), sandbox(&root, "b"));
        let mut one = registration(1, "one", &a, vec![endpoint("front", "172.16.1.2", &["api"])]);
        one.upstreams = vec!["127.0.0.1:5300".into()];
        client.register_container(one).await.unwrap();
        client
            .register_container(registration(2, "two", &b, vec![endpoint("back", "10.9.0.2", &[])]))
            .await
            .unwrap();

        let lookup = |name: &str, kind: &str| pb::LookupRequest {
            container_id: container_id(1),
            name: name.into(),
            r#type: kind.into(),
        };
        let answer = client.lookup(lookup("API.front.", "")).await.unwrap().into_inner();
        assert_eq!(answer.outcome(), Outcome::Answer);
        assert_eq!(
            (answer.answers, answer.network_id),
            (vec!["172.16.1.2".into()], "front-id".into())
        );
        let answer = client.lookup(lookup("one", "aaaa")).await.unwrap().into_inner();
        assert_eq!(answer.outcome(), Outcome::NoData);
        let answer = client.lookup(lookup("2.1.16.172.in-addr.arpa", "PTR")).await.unwrap();
        assert_eq!(answer.into_inner().answers, ["one.front."]);
        let answer = client.lookup(lookup("two", "A")).await.unwrap().into_inner();
        assert_eq!(answer.outcome(), Outcome::Forward);
        assert_eq!(answer.upstreams, ["127.0.0.1:5300"]);
        assert_eq!(upstream.total(), 0, "Lookup sends nothing");
        let status = client.lookup(lookup("one", "NOPE")).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        let status = client
            .lookup(pb::LookupRequest { container_id: container_id(9), ..lookup("one", "A") })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);

        let records = client
            .list_records(pb::ListRecordsRequest { network_id: "front-id".into() })
            .await
            .unwrap()
            .into_inner()
            .records;
        let rows: Vec<(String, String, String)> =
            records.into_iter().map(|r| (r.r#type, r.name, r.value)).collect();
        let short = container_id(1)[..12].to_owned();
        assert_eq!(
            rows,
            [
                ("A".into(), short, "172.16.1.2".into()),
                ("A".into(), "api".into(), "172.16.1.2".into()),
                ("A".into(), "one".into(), "172.16.1.2".into()),
                ("PTR".into(), "2.1.16.172.in-addr.arpa".into(), "one.front.".into()),
            ]
        );
        service.stop().await;
    });
}

#[test]
fn an_optional_host_address_answers_every_network() {
    isolated(|root| async move {
        write_resolv_conf(&root, &[]);
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = probe.local_addr().unwrap();
        drop(probe);
        let service =
            Service::start(cnet_dns::Config { listen: Some(address), ..config(&root) }).await;
        let mut client = service.client.clone();
        let a = sandbox(&root, "a");
        client
            .register_container(registration(
                1,
                "one",
                &a,
                vec![endpoint("net", "172.16.1.2", &[])],
            ))
            .await
            .unwrap();
        let answer = ask_host(address, "one").await;
        assert_eq!(addresses(&answer), [ip("172.16.1.2")]);
        service.stop().await;
    });
}
