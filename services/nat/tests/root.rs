//! Root tests with the real thing: iptables-save/iptables-restore (nf_tables), sysctls,
//! bridges, veths and sockets, each test in its own throwaway network namespaces (see
//! `support/netns.rs`), the real gRPC server in-process driven by the generated client.
//! Traffic only flows between namespaces the test made. Without root they fail; they
//! never skip.

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

use crate::{harness::*, netns::*, topology::*};

const NET: &str = "n1";
const QUICK: Duration = Duration::from_secs(2);
/// How long a dropped connection attempt is given before it counts as dropped.
const DROPPED: Duration = Duration::from_millis(700);

/// iptables-save's cnet lines right after EnsureNetwork(br-a, 10.10.1.0/24).
const NETWORK_RULES: &[&str] = &[
    "*filter",
    ":CNET",
    ":CNET-FORWARD",
    ":CNET-ISOLATION-1",
    ":CNET-ISOLATION-2",
    ":CNET-USER",
    "-A FORWARD -j CNET-USER",
    "-A FORWARD -j CNET-FORWARD",
    "-A CNET-FORWARD -j CNET-ISOLATION-1",
    "-A CNET-FORWARD -o br-a -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    "-A CNET-FORWARD -o br-a -j CNET",
    "-A CNET-FORWARD -i br-a ! -o br-a -j ACCEPT",
    "-A CNET-FORWARD -i br-a -o br-a -j ACCEPT",
    "-A CNET-ISOLATION-1 -i br-a ! -o br-a -j CNET-ISOLATION-2",
    "-A CNET-ISOLATION-1 -j RETURN",
    "-A CNET-ISOLATION-2 -o br-a -j DROP",
    "-A CNET-ISOLATION-2 -j RETURN",
    "-A CNET-USER -j RETURN",
    "*nat",
    ":CNET",
    ":CNET-POSTROUTING",
    "-A PREROUTING -m addrtype --dst-type LOCAL -j CNET",
    "-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j CNET",
    "-A POSTROUTING -j CNET-POSTROUTING",
    "-A CNET -i br-a -j RETURN",
    "-A CNET-POSTROUTING -s 10.10.1.0/24 ! -o br-a -j MASQUERADE",
];

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

#[test]
fn network_rules_publishing_and_conflicts() {
    isolated(|dir| async move {
        let outside = host("DROP");
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
        let service = Service::start(&dir, None, 0).await;
        let mut client = service.client.clone();
        client.ensure_network(network(NET, "br-a", "10.10.1.0/24", false)).await.unwrap();
        assert_eq!(cnet_rules(), NETWORK_RULES);
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
        let rules = cnet_rules();
        for line in [
            "-A CNET -d 10.10.1.2/32 ! -i br-a -o br-a -p tcp -m tcp --dport 80 -j ACCEPT",
            "-A CNET -d 10.10.1.2/32 ! -i br-a -o br-a -p udp -m udp --dport 53 -j ACCEPT",
            "-A CNET ! -i br-a -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.10.1.2:80",
            "-A CNET ! -i br-a -p udp -m udp --dport 5300 -j DNAT --to-destination 10.10.1.2:53",
            "-A CNET-POSTROUTING -s 10.10.1.2/32 -d 10.10.1.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE",
            "-A CNET-POSTROUTING -s 10.10.1.2/32 -d 10.10.1.2/32 -p udp -m udp --dport 53 -j MASQUERADE",
        ] {
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
        let before = sh("iptables-save | grep -v '^#'");
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
        assert_eq!(sh("iptables-save | grep -v '^#'"), before);
        assert!(port_free(8096));
        assert!(mappings(&mut client, "c3").await.is_empty());

        // Unpublish: rules and listeners gone, the port free again.
        client.unpublish(unpublish("c1")).await.unwrap();
        let rules = cnet_rules();
        assert!(!rules.iter().any(|rule| rule.contains("10.10.1.2")), "{rules:#?}");
        assert!(port_free(8080));
        assert!(std::net::UdpSocket::bind("0.0.0.0:5300").is_ok());
        assert!(ask_tcp(None, "127.0.0.1", 8080, QUICK).is_err());
        client.unpublish(unpublish("c2")).await.unwrap();
        assert_eq!(cnet_rules(), NETWORK_RULES);

        client
            .delete_network(cnet_proto::nat::v1::DeleteNetworkRequest {
                network_id: NET.into(),
                force: false,
            })
            .await
            .unwrap();
        assert!(!cnet_rules().iter().any(|rule| rule.contains("br-a")));
        service.stop().await;
    });
}

#[test]
fn restart_rebuilds_identical_rules_and_reopens_proxies() {
    isolated(|dir| async move {
        let _outside = host("DROP");
        bridge("br-a", "10.10.1.1/24");
        let c1 = container("c1", "br-a", "10.10.1.2/24", "10.10.1.1");
        let _server = servers::tcp(Some(&c1.path), addr("0.0.0.0", 80), "c1");
        let service = Service::start(&dir, None, 0).await;
        let mut client = service.client.clone();
        client.ensure_network(network(NET, "br-a", "10.10.1.0/24", false)).await.unwrap();
        let ports = vec![port("", 8080, 80, "tcp"), port("127.0.0.1", 0, 80, "tcp")];
        let request = publish("c1", NET, "10.10.1.2", ports);
        let bindings = client.publish(request.clone()).await.unwrap().into_inner().bindings;
        let full = sh("iptables-save | grep -v '^#'");
        service.stop().await;
        assert_eq!(
            sh("iptables-save | grep -v '^#'"),
            full,
            "rules stay while the service is down"
        );
        assert!(port_free(8080), "listeners close with the service");

        // Start twice on the same store: no duplicate, nothing changed.
        let service = Service::start(&dir, None, 0).await;
        assert_eq!(sh("iptables-save | grep -v '^#'"), full);
        let mut client = service.client.clone();
        assert_eq!(client.publish(request).await.unwrap().into_inner().bindings, bindings);
        assert_eq!(ask_tcp(None, "127.0.0.1", 8080, QUICK).unwrap(), "c1 saw 10.10.1.1: GET /");
        let random = bindings[1].host_port as u16;
        assert_eq!(ask_tcp(None, "127.0.0.1", random, QUICK).unwrap(), "c1 saw 10.10.1.1: GET /");
        service.stop().await;

        // Stale and missing rules while the service is down are fixed at start.
        sh("iptables -t nat -A CNET -i br-stale -j RETURN");
        sh("iptables -t nat -D CNET-POSTROUTING -s 10.10.1.0/24 ! -o br-a -j MASQUERADE");
        let service = Service::start(&dir, None, 0).await;
        assert_eq!(sh("iptables-save | grep -v '^#'"), full);
        service.stop().await;
    });
}

#[test]
fn rules_wiped_by_hand_come_back_within_seconds() {
    isolated(|dir| async move {
        let outside = host("DROP");
        bridge("br-a", "10.10.1.1/24");
        let c1 = container("c1", "br-a", "10.10.1.2/24", "10.10.1.1");
        let _server = servers::tcp(Some(&c1.path), addr("0.0.0.0", 80), "c1");
        let service = Service::start(&dir, None, 1).await;
        let mut client = service.client.clone();
        client.ensure_network(network(NET, "br-a", "10.10.1.0/24", false)).await.unwrap();
        client
            .publish(publish("c1", NET, "10.10.1.2", vec![port("", 8080, 80, "")]))
            .await
            .unwrap();
        let rules = cnet_rules();
        // The operator's own rule in CNET-USER is theirs and survives everything.
        sh("iptables -A CNET-USER -s 10.10.9.9/32 -j DROP");
        let with_user_rule = cnet_rules();

        sh(
            "iptables -t nat -F CNET && iptables -F CNET-FORWARD && iptables -D FORWARD -j CNET-USER",
        );
        sh("iptables -t nat -D POSTROUTING -j CNET-POSTROUTING");
        assert_ne!(cnet_rules(), with_user_rule);
        let deadline = Instant::now() + Duration::from_secs(6);
        while cnet_rules() != with_user_rule {
            assert!(Instant::now() < deadline, "rules not restored: {:#?}", cnet_rules());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(with_user_rule.iter().any(|rule| rule == "-A CNET-USER -s 10.10.9.9/32 -j DROP"));
        assert_eq!(rules.len() + 1, with_user_rule.len());
        let reply = ask_tcp(Some(&outside), HOST, 8080, QUICK).unwrap();
        assert_eq!(reply, format!("c1 saw {OUTSIDE}: GET /"));
        service.stop().await;
    });
}

#[test]
fn networks_are_isolated_and_internal_ones_closed() {
    isolated(|dir| async move {
        let outside = host("ACCEPT");
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
        let service = Service::start(&dir, None, 0).await;
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
        let rules = cnet_rules();
        assert!(
            !rules.iter().any(|rule| rule.contains("10.10.3.0/24") && rule.contains("MASQUERADE"))
        );
        for line in [
            "-A CNET-FORWARD -i br-i -o br-i -j ACCEPT",
            "-A CNET-ISOLATION-1 ! -s 10.10.3.0/24 -o br-i -j DROP",
            "-A CNET-ISOLATION-1 ! -d 10.10.3.0/24 -i br-i -j DROP",
        ] {
            assert!(rules.iter().any(|rule| rule == line), "missing {line} in {rules:#?}");
        }
        service.stop().await;
    });
}
