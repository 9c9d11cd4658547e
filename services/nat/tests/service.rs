//! Service tests over the fake packet filter: the real gRPC server, store and proxies,
//! with rules kept in memory, each test in its own network namespace (so its listeners
//! never meet the host's). The "container" is a server on loopback: the network is
//! 127.0.0.0/8. What is checked here is the API's contract: validation, idempotency,
//! conflicts that leave nothing behind, restart, forced deletes and the periodic check.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/servers.rs"]
mod servers;

use std::{sync::Arc, time::Duration};

use cnet_nat::firewall::{Firewall, PacketFilter, fake::Fake};
use cnet_proto::nat::v1 as pb;
use tonic::Code;

use crate::{harness::*, netns::*};

const NET: &str = "n1";
const LOOP: &str = "127.0.0.0/8";
/// The "container" address and its server's port.
const CONTAINER: &str = "127.0.0.1";
const UPSTREAM: u32 = 9080;

fn fake_firewall(fake: &Arc<Fake>) -> Option<Firewall> {
    Some(Firewall::new(fake.clone(), true))
}

fn ask(port: u32) -> std::io::Result<String> {
    let address = format!("127.0.0.1:{port}").parse().unwrap();
    tcp_exchange(address, "GET /", Duration::from_secs(2))
}

fn port_free(port: u32) -> bool {
    std::net::TcpListener::bind(("0.0.0.0", port as u16)).is_ok()
}

async fn dump(fake: &Fake) -> String {
    fake.save().await.unwrap()
}

#[test]
fn invalid_requests_are_refused_before_anything_happens() {
    isolated(|dir| async move {
        let fake = Arc::new(Fake::default());
        let service = Service::start(&dir, fake_firewall(&fake), 0).await;
        let mut client = service.client.clone();
        let scripts = fake.scripts().len();
        let cases = [
            (network(NET, "eth+", LOOP, false), "invalid bridge_name \"eth+\""),
            (network(NET, "br-a -j DROP", LOOP, false), "invalid bridge_name"),
            (network(NET, "br-a", "10.0.0.1/8", false), "host bits are set (use 10.0.0.0/8)"),
            (network(NET, "br-a", "fd00::/64", false), "IPv6 is not supported"),
            (network("", "br-a", LOOP, false), "invalid network_id \"\""),
        ];
        for (request, expected) in cases {
            let status = client.ensure_network(request).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert!(status.message().contains(expected), "{} / {expected}", status.message());
        }
        client.ensure_network(network(NET, "br-a", LOOP, false)).await.unwrap();
        let after_network = fake.scripts().len();
        assert_eq!(after_network, scripts + 1);

        let cases = [
            (
                publish("c1", NET, CONTAINER, vec![port("", 70000, 80, "tcp")]),
                "invalid host_port \"70000\": must be 0-65535",
            ),
            (
                publish("c1", NET, CONTAINER, vec![port("", 8080, 0, "tcp")]),
                "invalid container_port",
            ),
            (
                publish("c1", NET, CONTAINER, vec![port("", 8080, 80, "sctp")]),
                "invalid protocol \"sctp\": use tcp or udp",
            ),
            (
                publish("c1", NET, CONTAINER, vec![port("::", 8080, 80, "tcp")]),
                "IPv6 is not supported",
            ),
            (
                publish("c1", NET, "10.0.0.2", vec![port("", 8080, 80, "tcp")]),
                "outside subnet 127.0.0.0/8",
            ),
            (publish("c 1", NET, CONTAINER, vec![]), "invalid container_id"),
        ];
        for (request, expected) in cases {
            let status = client.publish(request).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert!(status.message().contains(expected), "{} / {expected}", status.message());
        }
        let status = client.publish(publish("c1", "nope", CONTAINER, vec![])).await.unwrap_err();
        assert_eq!((status.code(), status.message()), (Code::NotFound, "network nope not found"));
        assert_eq!(fake.scripts().len(), after_network, "no rule written for a refused request");
        assert!(mappings(&mut client, "").await.is_empty());
        service.stop().await;
    });
}

#[test]
fn publish_is_idempotent_and_conflicts_leave_nothing_behind() {
    isolated(|dir| async move {
        let upstream = format!("{CONTAINER}:{UPSTREAM}").parse().unwrap();
        let _server = servers::tcp(None, upstream, "web");
        let fake = Arc::new(Fake::default());
        let service = Service::start(&dir, fake_firewall(&fake), 0).await;
        let mut client = service.client.clone();
        client.ensure_network(network(NET, "br-a", LOOP, false)).await.unwrap();

        let request = publish("c1", NET, CONTAINER, vec![port("", 8080, UPSTREAM, "")]);
        let bindings = client.publish(request.clone()).await.unwrap().into_inner().bindings;
        assert_eq!(describe(&bindings), ["0.0.0.0:8080->127.0.0.1:9080/tcp"]);
        assert_eq!(ask(8080).unwrap(), "web saw 127.0.0.1: GET /");
        let scripts = fake.scripts().len();
        let again = client.publish(request).await.unwrap().into_inner().bindings;
        assert_eq!(again, bindings, "same request, same answer");
        assert_eq!(fake.scripts().len(), scripts, "a repeat changes no rule");

        let other = publish("c1", NET, CONTAINER, vec![port("", 8081, UPSTREAM, "")]);
        let status = client.publish(other).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");

        // A port cnet already publishes, then one held by another process: refused, and
        // the other ports of the same request are neither bound nor ruled nor recorded.
        let before = dump(&fake).await;
        let taken = publish(
            "c2",
            NET,
            CONTAINER,
            vec![port("", 8090, UPSTREAM, ""), port("127.0.0.1", 8080, UPSTREAM, "")],
        );
        let status = client.publish(taken).await.unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists);
        assert_eq!(status.message(), "Bind for 127.0.0.1:8080 failed: port is already allocated");
        let foreign = std::net::TcpListener::bind("0.0.0.0:8095").unwrap();
        let held = publish(
            "c2",
            NET,
            CONTAINER,
            vec![port("", 8090, UPSTREAM, ""), port("", 8095, UPSTREAM, "")],
        );
        let status = client.publish(held).await.unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists);
        assert_eq!(
            status.message(),
            "Error starting userland proxy: listen tcp4 0.0.0.0:8095: bind: address already in use"
        );
        drop(foreign);
        assert!(port_free(8090), "the first port of the failed request is still bound");
        assert_eq!(dump(&fake).await, before, "a failed publish left rules behind");
        assert!(mappings(&mut client, "c2").await.is_empty());

        let removed = client.unpublish(unpublish("c1")).await.unwrap().into_inner().removed;
        assert_eq!(removed, bindings);
        assert!(port_free(8080), "listener still open after unpublish");
        assert!(ask(8080).is_err());
        assert!(!dump(&fake).await.contains("8080"));
        let removed = client.unpublish(unpublish("c1")).await.unwrap().into_inner().removed;
        assert!(removed.is_empty(), "unpublish is idempotent");
        service.stop().await;
    });
}

#[test]
fn restart_gives_the_same_ports_and_changes_no_rule() {
    isolated(|dir| async move {
        let upstream = format!("{CONTAINER}:{UPSTREAM}").parse().unwrap();
        let _server = servers::tcp(None, upstream, "web");
        let fake = Arc::new(Fake::default());
        let service = Service::start(&dir, fake_firewall(&fake), 0).await;
        let mut client = service.client.clone();
        client.ensure_network(network(NET, "br-a", LOOP, false)).await.unwrap();
        let ports = vec![
            port("", 0, UPSTREAM, "tcp"),
            port("127.0.0.1", 0, 53, "udp"),
            pb::PortMapping { host_port_end: 8092, ..port("", 8090, UPSTREAM, "tcp") },
        ];
        let request = publish("c1", NET, CONTAINER, ports);
        let bindings = client.publish(request.clone()).await.unwrap().into_inner().bindings;
        let random = bindings[0].host_port;
        assert!((32768..=60999).contains(&random), "{random}");
        assert_eq!(bindings[1].host_port, random + 1, "going up from the last port");
        assert_eq!(bindings[2].host_port, 8090);
        let rules = dump(&fake).await;
        let scripts = fake.scripts().len();
        service.stop().await;
        assert!(ask(random).is_err(), "listeners close with the service");

        let service = Service::start(&dir, fake_firewall(&fake), 0).await;
        let mut client = service.client.clone();
        assert_eq!(fake.scripts().len(), scripts, "a restart with the rules in place writes none");
        assert_eq!(dump(&fake).await, rules);
        assert_eq!(mappings(&mut client, "c1").await, bindings);
        assert_eq!(client.publish(request).await.unwrap().into_inner().bindings, bindings);
        assert_eq!(ask(random).unwrap(), "web saw 127.0.0.1: GET /");
        assert_eq!(ask(8090).unwrap(), "web saw 127.0.0.1: GET /");
        service.stop().await;
    });
}

#[test]
fn networks_conflict_delete_and_force() {
    isolated(|dir| async move {
        let fake = Arc::new(Fake::default());
        let service = Service::start(&dir, fake_firewall(&fake), 0).await;
        let mut client = service.client.clone();
        let first = client.ensure_network(network(NET, "br-a", LOOP, false)).await.unwrap();
        assert_eq!(first.get_ref().subnet, LOOP);
        client.ensure_network(network(NET, "br-a", LOOP, false)).await.unwrap();
        let status = client.ensure_network(network(NET, "br-a", LOOP, true)).await.unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists);
        let status =
            client.ensure_network(network("n2", "br-a", "10.0.0.0/8", false)).await.unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (Code::AlreadyExists, "bridge br-a is already used by network n1")
        );
        client.ensure_network(network("n2", "br-i", "10.0.0.0/8", true)).await.unwrap();
        let listed = client.list_networks(pb::ListNetworksRequest {}).await.unwrap().into_inner();
        let ids: Vec<_> =
            listed.networks.iter().map(|n| (n.network_id.as_str(), n.internal)).collect();
        assert_eq!(ids, [("n1", false), ("n2", true)]);

        // Docker publishes nothing on an internal network.
        let internal = publish("c9", "n2", "10.0.0.2", vec![port("", 8085, 80, "tcp")]);
        assert!(client.publish(internal).await.unwrap().into_inner().bindings.is_empty());
        assert!(port_free(8085));

        client.publish(publish("c1", NET, CONTAINER, vec![port("", 8080, 80, "")])).await.unwrap();
        let delete = pb::DeleteNetworkRequest { network_id: NET.into(), force: false };
        let status = client.delete_network(delete.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        let force = pb::DeleteNetworkRequest { force: true, ..delete.clone() };
        client.delete_network(force).await.unwrap();
        assert!(port_free(8080));
        assert!(mappings(&mut client, "").await.is_empty());
        let rules = dump(&fake).await;
        assert!(!rules.contains("br-a") && rules.contains("br-i"), "{rules}");
        client.delete_network(delete).await.unwrap();
        service.stop().await;
    });
}

#[test]
fn a_failed_batch_leaves_nothing_and_the_check_restores_wiped_rules() {
    isolated(|dir| async move {
        let fake = Arc::new(Fake::default());
        let service = Service::start(&dir, fake_firewall(&fake), 1).await;
        let mut client = service.client.clone();
        client.ensure_network(network(NET, "br-a", LOOP, false)).await.unwrap();
        let rules = dump(&fake).await;

        fake.fail_restores(1);
        let request = publish("c1", NET, CONTAINER, vec![port("", 8080, 80, "")]);
        let status = client.publish(request.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::Internal, "{status:?}");
        assert!(port_free(8080));
        assert!(mappings(&mut client, "c1").await.is_empty());
        assert_eq!(dump(&fake).await, rules);
        client.publish(request).await.unwrap();
        let rules = dump(&fake).await;

        fake.flush("nat", "CNET");
        fake.delete_rule("filter", "FORWARD", "-j CNET-USER");
        fake.append_rule("filter", "CNET-FORWARD", "-j ACCEPT");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while dump(&fake).await != rules {
            assert!(
                tokio::time::Instant::now() < deadline,
                "rules not restored:\n{}",
                dump(&fake).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        service.stop().await;
    });
}
