//! Everything the resolver does not know goes upstream (DNS-6): rcodes unchanged, the
//! cache, TCP fallback, failover past a dead server, resolv.conf changes.

use std::time::{Duration, Instant};

use hickory_proto::{op::ResponseCode, rr::RecordType};

use crate::{TAG_1, TAG_2, client::*, support::*};

#[test]
fn unknown_names_are_forwarded_with_rcodes_cache_tcp_and_failover() {
    isolated(|root| async move {
        let good = FakeUpstream::start(TAG_1).await;
        let other = FakeUpstream::start(TAG_2).await;
        let dead = black_hole();
        write_resolv_conf(&root, &[good.address]);
        let service = Service::start(config(&root)).await;
        let mut client = service.client.clone();
        let (a, b) = (sandbox(&root, "a"), sandbox(&root, "b"));
        // "a" uses the host's resolv.conf; "b" has its own upstreams, the first one dead.
        client
            .register_container(registration(
                1,
                "one",
                &a,
                vec![endpoint("net", "172.16.1.2", &[])],
            ))
            .await
            .unwrap();
        let mut own = registration(2, "two", &b, vec![endpoint("net", "172.16.1.3", &[])]);
        own.upstreams = vec![dead.local_addr().unwrap().to_string(), other.address.to_string()];
        client.register_container(own).await.unwrap();

        // The upstream's rcodes come back unchanged.
        let answer = ask(&a, "nosuchname", RecordType::A, Transport::Udp).await.unwrap();
        assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
        let answer = ask(&a, "fail.example", RecordType::A, Transport::Udp).await.unwrap();
        assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(good.asked("fail.example"), [Transport::Udp]);

        // An answer comes back, and the second query is served from the cache.
        let answer = ask(&a, "www.example", RecordType::A, Transport::Udp).await.unwrap();
        assert_eq!(addresses(&answer), [TAG_1]);
        assert!(!answer.metadata.authoritative && answer.metadata.recursion_available);
        let answer = ask(&a, "WWW.example", RecordType::A, Transport::Udp).await.unwrap();
        assert_eq!(addresses(&answer), [TAG_1]);
        assert!(answer.answers[0].ttl <= 300);
        assert_eq!(good.asked("www.example"), [Transport::Udp], "one upstream query");

        // Truncated over UDP: the forwarder asks again over TCP. A TCP query goes out
        // over TCP.
        let answer = ask(&a, "big.example", RecordType::A, Transport::Udp).await.unwrap();
        assert_eq!(addresses(&answer), [TAG_1]);
        assert_eq!(good.asked("big.example"), [Transport::Udp, Transport::Tcp]);
        let answer = ask(&a, "www.tcp.example", RecordType::A, Transport::Tcp).await.unwrap();
        assert_eq!(addresses(&answer), [TAG_1]);
        assert_eq!(good.asked("www.tcp.example"), [Transport::Tcp]);

        // A dead first upstream costs one short timeout, well within a client's 5 s.
        let started = Instant::now();
        let answer = ask(&b, "www.failover.example", RecordType::A, Transport::Udp).await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(addresses(&answer), [TAG_2]);
        assert!(elapsed < Duration::from_secs(2), "failover took {elapsed:?}");
        assert!(elapsed >= Duration::from_millis(1400), "the dead upstream was not asked");
        assert!(good.asked("www.failover.example").is_empty());

        // resolv.conf is read again when it changes.
        write_resolv_conf(&root, &[other.address]);
        let answer = ask(&a, "www.later.example", RecordType::A, Transport::Udp).await.unwrap();
        assert_eq!(addresses(&answer), [TAG_2]);

        // Nobody answers at all: SERVFAIL rather than silence.
        write_resolv_conf(&root, &[dead.local_addr().unwrap()]);
        let answer = ask(&a, "www.nowhere.example", RecordType::A, Transport::Udp).await.unwrap();
        assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
        service.stop().await;
    });
}
