//! Root tests with the real thing: iptables-save/iptables-restore (nf_tables) or nft,
//! sysctls, bridges, veths and sockets, each test in its own throwaway network namespaces
//! (see `support/netns.rs`), the real gRPC server in-process driven by the generated
//! client. Traffic only flows between namespaces the test made. Every test runs once per
//! backend (`<test>::iptables`, `<test>::nftables`); what differs is in
//! `support/backend.rs`. Without root they fail; they never skip.

#[path = "support/backend.rs"]
mod backend;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/servers.rs"]
mod servers;
#[path = "support/topology.rs"]
mod topology;

use std::time::{Duration, Instant};

use tonic::Code;

use crate::{backend::Backend, harness::*, netns::*, topology::*};

const NET: &str = "n1";
const QUICK: Duration = Duration::from_secs(2);
/// How long a dropped connection attempt is given before it counts as dropped.
const DROPPED: Duration = Duration::from_millis(700);

/// One `#[test]` per backend for each shared test body `name(backend)`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::Backend;

            #[test]
            fn iptables() {
                super::$name(Backend::Iptables)
            }

            #[test]
            fn nftables() {
                super::$name(Backend::Nftables)
            }
        }
    )*};
}

on_both_backends!(
    network_rules_publishing_and_conflicts,
    restart_rebuilds_identical_rules_and_reopens_proxies,
    rules_wiped_by_hand_come_back_within_seconds,
    networks_are_isolated_and_internal_ones_closed,
);

fn ask_tcp(
    netns: Option<&Netns>,
    ip: &str,
    port: u16,
    timeout: Duration,
) -> std::io::Result<String> {
    let address = addr(ip, port);
    let work = move || tcp_exchange(address, "GET /", timeout);
    match netns {
        Some(netns) => netns.run(work),
        None => in_netns(None, work),
    }
}

fn ask_udp(netns: Option<&Netns>, ip: &str, port: u16) -> std::io::Result<String> {
    let address = addr(ip, port);
    let work = move || udp_ask(address, "ping", QUICK);
    match netns {
        Some(netns) => netns.run(work),
        None => in_netns(None, work),
    }
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
}

fn ip_forward() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap().trim().to_owned()
}

fn network_rules_publishing_and_conflicts(backend: Backend) {
    isolated(move |dir| async move {
        let outside = backend.host("DROP");
        bridge("br-a", "10.10.1.1/24");
        let c1 = container("c1", "br-a", "10.10.1.2/24", "10.10.1.1");
        let c2 = container("c2", "br-a", "10.10.1.3/24", "10.10.1.1");
        let _servers = [
            servers::tcp(Some(&c1.path), addr("0.0.0.0", 80), "c1"),
            servers::udp(Some(&c1.path), addr("0.0.0.0", 53), "c1"),
            servers::tcp(Some(&c2.path), addr("0.0.0.0", 80), "c2"),
            servers::tcp(Some(&outside.path), addr(OUTSIDE, 7000), "outside"),
        ];
        assert_eq!(ip_forward(), "0");
        let service = Service::start_real(&dir, backend.driver(), 0).await;
        let mut client = service.client.clone();
        client.ensure_network(network(NET, "br-a", "10.10.1.0/24", false)).await.unwrap();
        assert_eq!(backend.rules(), backend.network_rules());
        assert_eq!(ip_forward(), "1");

        // MASQUERADE: the outside sees the host's address, not the container's.
        let reply = ask_tcp(Some(&c1), OUTSIDE, 7000, QUICK).unwrap();
        assert_eq!(reply, format!("outside saw {HOST}: GET /"));
        // Same network: direct.
        assert_eq!(ask_tcp(Some(&c1), "10.10.1.3", 80, QUICK).unwrap(), "c2 saw 10.10.1.2: GET /");

        let ports = vec![port("", 8080, 80, "tcp"), port("", 5300, 53, "udp")];
        let request = publish("c1", NET, "10.10.1.2", ports);
        let bindings = client.publish(request).await.unwrap().into_inner().bindings;
        assert_eq!(
            describe(&bindings),
            ["0.0.0.0:8080->10.10.1.2:80/tcp", "0.0.0.0:5300->10.10.1.2:53/udp"]
        );
        let rules = backend.rules();
        for line in backend.published_rules() {
            assert!(rules.iter().any(|rule| rule == line), "missing {line} in {rules:#?}");
        }

        // PUB-4: 127.0.0.1 goes through the proxy (the container sees the gateway), a
        // host address through the OUTPUT DNAT (the container sees that address), the
        // outside through the PREROUTING DNAT and the filter ACCEPT (it sees the client),
        // and the container itself, via the gateway, through the proxy again (hairpin).
        assert_eq!(ask_tcp(None, "127.0.0.1", 8080, QUICK).unwrap(), "c1 saw 10.10.1.1: GET /");
        assert_eq!(ask_tcp(None, HOST, 8080, QUICK).unwrap(), format!("c1 saw {HOST}: GET /"));
        let reply = ask_tcp(Some(&outside), HOST, 8080, QUICK).unwrap();
        assert_eq!(reply, format!("c1 saw {OUTSIDE}: GET /"));
        let reply = ask_tcp(Some(&c1), "10.10.1.1", 8080, QUICK).unwrap();
        assert_eq!(reply, "c1 saw 10.10.1.1: GET /");
        assert_eq!(ask_tcp(Some(&c2), HOST, 8080, QUICK).unwrap(), "c1 saw 10.10.1.1: GET /");
        assert_eq!(ask_udp(None, "127.0.0.1", 5300).unwrap(), "c1 saw 10.10.1.1: ping");
        assert_eq!(ask_udp(Some(&outside), HOST, 5300).unwrap(), format!("c1 saw {OUTSIDE}: ping"));

        // PUB-6: a random port from the namespace's ephemeral range.
        let random = client
            .publish(publish("c2", NET, "10.10.1.3", vec![port("", 0, 80, "tcp")]))
            .await
            .unwrap()
            .into_inner()
            .bindings;
        let random = random[0].host_port as u16;
        assert!((32768..=60999).contains(&random), "{random}");
        assert_eq!(ask_tcp(None, "127.0.0.1", random, QUICK).unwrap(), "c2 saw 10.10.1.1: GET /");

        // PUB-9, and nothing is left behind by either refusal.
        let before = backend.snapshot();
        let status = client
            .publish(publish(
                "c3",
                NET,
                "10.10.1.4",
                vec![port("", 8096, 80, ""), port("", 8080, 80, "")],
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists);
        assert_eq!(status.message(), "Bind for 0.0.0.0:8080 failed: port is already allocated");
        let foreign = std::net::TcpListener::bind("0.0.0.0:8095").unwrap();
        let status = client
            .publish(publish(
                "c3",
                NET,
                "10.10.1.4",
                vec![port("", 8096, 80, ""), port("", 8095, 80, "")],
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists);
        assert_eq!(
            status.message(),
            "Error starting userland proxy: listen tcp4 0.0.0.0:8095: bind: address already in use"
        );
        drop(foreign);
        assert_eq!(backend.snapshot(), before);
        assert!(port_free(8096));
        assert!(mappings(&mut client, "c3").await.is_empty());

        // Unpublish: rules and listeners gone, the port free again.
        client.unpublish(unpublish("c1")).await.unwrap();
        let rules = backend.rules();
        assert!(!rules.iter().any(|rule| rule.contains("10.10.1.2")), "{rules:#?}");
        assert!(port_free(8080));
        assert!(std::net::UdpSocket::bind("0.0.0.0:5300").is_ok());
        assert!(ask_tcp(None, "127.0.0.1", 8080, QUICK).is_err());
        client.unpublish(unpublish("c2")).await.unwrap();
        assert_eq!(backend.rules(), backend.network_rules());

        client
            .delete_network(cnet_proto::nat::v1::DeleteNetworkRequest {
                network_id: NET.into(),
                force: false,
            })
            .await
            .unwrap();
        assert!(!backend.rules().iter().any(|rule| rule.contains("br-a")));
        service.stop().await;
    });
}

fn restart_rebuilds_identical_rules_and_reopens_proxies(backend: Backend) {
    isolated(move |dir| async move {
        let _outside = backend.host("DROP");
        bridge("br-a", "10.10.1.1/24");
        let c1 = container("c1", "br-a", "10.10.1.2/24", "10.10.1.1");
        let _server = servers::tcp(Some(&c1.path), addr("0.0.0.0", 80), "c1");
        let service = Service::start_real(&dir, backend.driver(), 0).await;
        let mut client = service.client.clone();
        client.ensure_network(network(NET, "br-a", "10.10.1.0/24", false)).await.unwrap();
        let ports = vec![port("", 8080, 80, "tcp"), port("127.0.0.1", 0, 80, "tcp")];
        let request = publish("c1", NET, "10.10.1.2", ports);
        let bindings = client.publish(request.clone()).await.unwrap().into_inner().bindings;
        let full = backend.snapshot();
        service.stop().await;
        assert_eq!(backend.snapshot(), full, "rules stay while the service is down");
        assert!(port_free(8080), "listeners close with the service");

        // Start twice on the same store: no duplicate, nothing changed (with nftables not
        // even rewritten: the rule handles are the same).
        let service = Service::start_real(&dir, backend.driver(), 0).await;
        assert_eq!(backend.snapshot(), full);
        let mut client = service.client.clone();
        assert_eq!(client.publish(request).await.unwrap().into_inner().bindings, bindings);
        assert_eq!(ask_tcp(None, "127.0.0.1", 8080, QUICK).unwrap(), "c1 saw 10.10.1.1: GET /");
        let random = bindings[1].host_port as u16;
        assert_eq!(ask_tcp(None, "127.0.0.1", random, QUICK).unwrap(), "c1 saw 10.10.1.1: GET /");
        service.stop().await;

        // Stale and missing rules while the service is down are fixed at start.
        let content = backend.dump();
        backend.corrupt();
        assert_ne!(backend.dump(), content);
        let service = Service::start_real(&dir, backend.driver(), 0).await;
        assert_eq!(backend.dump(), content);
        service.stop().await;
    });
}

fn rules_wiped_by_hand_come_back_within_seconds(backend: Backend) {
    isolated(move |dir| async move {
        let outside = backend.host("DROP");
        bridge("br-a", "10.10.1.1/24");
        let c1 = container("c1", "br-a", "10.10.1.2/24", "10.10.1.1");
        let _server = servers::tcp(Some(&c1.path), addr("0.0.0.0", 80), "c1");
        let service = Service::start_real(&dir, backend.driver(), 1).await;
        let mut client = service.client.clone();
        client.ensure_network(network(NET, "br-a", "10.10.1.0/24", false)).await.unwrap();
        client
            .publish(publish("c1", NET, "10.10.1.2", vec![port("", 8080, 80, "")]))
            .await
            .unwrap();
        let rules = backend.rules();
        // The operator's own rule in the user chain is theirs and survives repairs.
        let user_rule = backend.add_user_rule();
        let with_user_rule = backend.rules();
        assert!(with_user_rule.iter().any(|rule| rule == user_rule), "{with_user_rule:#?}");
        assert_eq!(rules.len() + 1, with_user_rule.len());

        backend.damage();
        assert_ne!(backend.rules(), with_user_rule);
        wait_for(backend, &with_user_rule).await;
        // Everything gone (`nft flush ruleset`, `iptables -F -X`): cnet's rules come back,
        // the user chain empty again.
        backend.wipe();
        assert_ne!(backend.rules(), rules);
        wait_for(backend, &rules).await;
        let reply = ask_tcp(Some(&outside), HOST, 8080, QUICK).unwrap();
        assert_eq!(reply, format!("c1 saw {OUTSIDE}: GET /"));
        service.stop().await;
    });
}

/// Waits until the check has brought cnet's rules back to `wanted`.
async fn wait_for(backend: Backend, wanted: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(6);
    while backend.rules() != wanted {
        assert!(Instant::now() < deadline, "rules not restored: {:#?}", backend.rules());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn networks_are_isolated_and_internal_ones_closed(backend: Backend) {
    isolated(move |dir| async move {
        let outside = backend.host("ACCEPT");
        bridge("br-a", "10.10.1.1/24");
        bridge("br-b", "10.10.2.1/24");
        bridge("br-i", "10.10.3.1/24");
        let a = container("a", "br-a", "10.10.1.2/24", "10.10.1.1");
        let b = container("b", "br-b", "10.10.2.2/24", "10.10.2.1");
        let i1 = container("i1", "br-i", "10.10.3.2/24", "10.10.3.1");
        let i2 = container("i2", "br-i", "10.10.3.3/24", "10.10.3.1");
        let _servers = [
            servers::tcp(Some(&a.path), addr("0.0.0.0", 80), "a"),
            servers::tcp(Some(&b.path), addr("0.0.0.0", 80), "b"),
            servers::tcp(Some(&i2.path), addr("0.0.0.0", 80), "i2"),
            servers::tcp(Some(&outside.path), addr(OUTSIDE, 7000), "outside"),
            servers::tcp(None, addr("0.0.0.0", 9000), "host"),
        ];
        let service = Service::start_real(&dir, backend.driver(), 0).await;
        let mut client = service.client.clone();
        client.ensure_network(network("na", "br-a", "10.10.1.0/24", false)).await.unwrap();
        client.ensure_network(network("nb", "br-b", "10.10.2.0/24", false)).await.unwrap();
        client.ensure_network(network("ni", "br-i", "10.10.3.0/24", true)).await.unwrap();

        // ISO-1: no reply across networks, in either direction; a drop, not a refusal.
        for (from, to) in
            [(&a, "10.10.2.2"), (&b, "10.10.1.2"), (&a, "10.10.3.3"), (&i1, "10.10.1.2")]
        {
            let error = ask_tcp(Some(from), to, 80, DROPPED).unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::TimedOut, "{to}: {error}");
        }
        // ISO-2: host addresses, other networks' gateways included, are reachable.
        assert_eq!(
            ask_tcp(Some(&a), "10.10.2.1", 9000, QUICK).unwrap(),
            "host saw 10.10.1.2: GET /"
        );
        assert_eq!(
            ask_tcp(Some(&i1), "10.10.3.1", 9000, QUICK).unwrap(),
            "host saw 10.10.3.2: GET /"
        );
        // INT-1: inside the internal network fine, out of it nothing, and no MASQUERADE.
        assert_eq!(ask_tcp(Some(&i1), "10.10.3.3", 80, QUICK).unwrap(), "i2 saw 10.10.3.2: GET /");
        let error = ask_tcp(Some(&i1), OUTSIDE, 7000, DROPPED).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut, "{error}");
        assert_eq!(
            ask_tcp(Some(&b), OUTSIDE, 7000, QUICK).unwrap(),
            format!("outside saw {HOST}: GET /")
        );
        let rules = backend.rules();
        assert!(!rules.iter().any(|rule| {
            rule.contains("10.10.3.0/24") && rule.to_lowercase().contains("masquerade")
        }));
        for line in backend.internal_rules() {
            assert!(rules.iter().any(|rule| rule == line), "missing {line} in {rules:#?}");
        }
        service.stop().await;
    });
}
