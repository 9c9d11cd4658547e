//! Adapter and service tests as root: each test runs the real agent (rtnetlink, real
//! namespaces, sled, gRPC on a Unix socket) inside its own throwaway network and mount
//! namespaces, entered by a dedicated thread before it builds the tokio runtime, so every
//! thread the test starts inherits them. The runtime and state dirs are a tmpfs that
//! only this mount namespace sees. Checks use `ip -j`, run with `nsenter --net` for views
//! inside a sandbox. Without root, the tests fail; they never skip.

#[path = "kernel/support.rs"]
mod support;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use cnet_proto::bridge::v1 as pb;
use tonic::Code;

use crate::support::*;

fn bridge_request() -> pb::EnsureBridgeRequest {
    pb::EnsureBridgeRequest {
        network_id: NETWORK.into(),
        name: BRIDGE.into(),
        gateway_cidr: "172.16.1.1/16".into(),
        mtu: 0,
    }
}

fn endpoint_request(container: &str, address: &str) -> pb::EnsureEndpointRequest {
    pb::EnsureEndpointRequest {
        id: format!("{container}/{NETWORK}"),
        network_id: NETWORK.into(),
        sandbox_id: container.into(),
        address_cidr: address.into(),
        gateway: "172.16.1.1".into(),
        default_route: true,
        ..Default::default()
    }
}

fn sandbox_request(id: &str) -> pb::EnsureSandboxRequest {
    pb::EnsureSandboxRequest { id: id.into(), netns_path: String::new() }
}

/// The veth's master, by name.
fn master_of(host_ifname: &str) -> String {
    let link = ip(&["link", "show", host_ifname]);
    link[0]["master"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn bridge_sandboxes_and_endpoints_connect_and_tear_down() {
    isolated(|root| async move {
        let agent = Agent::start(&root).await;
        let mut client = agent.client.clone();

        let bridge = client.ensure_bridge(bridge_request()).await.unwrap().into_inner();
        assert_eq!((bridge.name.as_str(), bridge.mtu), (BRIDGE, 1500));
        let details = ip(&["-d", "addr", "show", BRIDGE]);
        assert_eq!(addresses(&details), ["172.16.1.1/16"]);
        assert_eq!(details[0]["ifindex"], bridge.ifindex);
        assert_eq!(details[0]["linkinfo"]["info_kind"], "bridge");
        assert_eq!(details[0]["linkinfo"]["info_data"]["stp_state"], 0);
        assert_eq!(details[0]["ifalias"], format!("cnet:bridge:{NETWORK}"));
        assert!(details[0]["flags"].as_array().unwrap().contains(&"UP".into()));

        let one = client.ensure_sandbox(sandbox_request("c1")).await.unwrap().into_inner();
        let two = client.ensure_sandbox(sandbox_request("c2")).await.unwrap().into_inner();
        assert!(one.owned);
        assert_eq!(PathBuf::from(&one.netns_path), root.join("run/netns/c1"));
        let lo = ip_in(&one.netns_path, &["link", "show", "lo"]);
        assert!(lo[0]["flags"].as_array().unwrap().contains(&"UP".into()), "{lo}");

        let first = endpoint_request("c1", "172.16.1.0/16");
        let e1 = client.ensure_endpoint(first.clone()).await.unwrap().into_inner();
        let e2 = client.ensure_endpoint(endpoint_request("c2", "172.16.1.2/16")).await.unwrap();
        let e2 = e2.into_inner();
        assert_eq!(e1.mac, "02:42:ac:10:01:00");
        assert_eq!((e1.ifname.as_str(), e1.mtu), ("eth0", 1500));
        assert!(e1.host_ifname.starts_with("veth") && e1.host_ifname.len() == 11);

        let eth0 = ip_in(&one.netns_path, &["addr", "show", "eth0"]);
        assert_eq!(addresses(&eth0), ["172.16.1.0/16"]);
        assert_eq!(eth0[0]["address"], "02:42:ac:10:01:00");
        assert_eq!(eth0[0]["mtu"], 1500);
        assert_eq!(link_names(&ip_in(&one.netns_path, &["link"])), ["eth0", "lo"]);
        let routes = ip_in(&one.netns_path, &["route", "show", "default"]);
        assert_eq!(routes[0]["gateway"], "172.16.1.1");
        assert_eq!(routes[0]["dev"], "eth0");
        assert_eq!(master_of(&e1.host_ifname), BRIDGE);
        assert_eq!(master_of(&e2.host_ifname), BRIDGE);

        // Container to container over the bridge, and out through the default route to
        // an address of the "host" (the test's namespace) outside the subnet.
        let peer: SocketAddr = "172.16.1.2:8080".parse().unwrap();
        let server = serve_once(Some(&two.netns_path), peer);
        assert_eq!(fetch_from(&one.netns_path, peer), "hello");
        server.join().unwrap();
        sh("ip addr add 10.200.0.1/32 dev lo && ip link set lo up");
        let outside: SocketAddr = "10.200.0.1:8081".parse().unwrap();
        let server = serve_once(None, outside);
        assert_eq!(fetch_from(&one.netns_path, outside), "hello");
        server.join().unwrap();
        sh("ip addr del 10.200.0.1/32 dev lo");

        // Ensure is idempotent: same answers, nothing doubled.
        let links_before = link_names(&ip(&["link"]));
        assert_eq!(client.ensure_bridge(bridge_request()).await.unwrap().into_inner(), bridge);
        assert_eq!(client.ensure_sandbox(sandbox_request("c1")).await.unwrap().into_inner(), one);
        assert_eq!(client.ensure_endpoint(first.clone()).await.unwrap().into_inner(), e1);
        assert_eq!(link_names(&ip(&["link"])), links_before);
        assert_eq!(addresses(&ip(&["addr", "show", BRIDGE])), ["172.16.1.1/16"]);
        assert_eq!(
            addresses(&ip_in(&one.netns_path, &["addr", "show", "eth0"])),
            ["172.16.1.0/16"]
        );
        assert_eq!(
            ip_in(&one.netns_path, &["route", "show", "default"]).as_array().unwrap().len(),
            1
        );
        let listed = client.list_endpoints(pb::ListEndpointsRequest {}).await.unwrap().into_inner();
        assert_eq!(listed.endpoints, [e1.clone(), e2.clone()]);
        let listed = client.list_bridges(pb::ListBridgesRequest {}).await.unwrap().into_inner();
        assert_eq!(listed.bridges, std::slice::from_ref(&bridge));

        // The bridge cannot go while endpoints use it.
        let refused = client
            .delete_bridge(pb::DeleteBridgeRequest { network_id: NETWORK.into() })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

        client.delete_endpoint(pb::DeleteEndpointRequest { id: e1.id.clone() }).await.unwrap();
        client.delete_endpoint(pb::DeleteEndpointRequest { id: e1.id.clone() }).await.unwrap();
        assert_eq!(link_names(&ip_in(&one.netns_path, &["link"])), ["lo"]);
        // Deleting the sandbox takes its endpoints along.
        for id in ["c1", "c2", "c2"] {
            client.delete_sandbox(pb::DeleteSandboxRequest { id: id.into() }).await.unwrap();
        }
        for id in [NETWORK, NETWORK] {
            let request = pb::DeleteBridgeRequest { network_id: id.into() };
            client.delete_bridge(request).await.unwrap();
        }
        assert_eq!(link_names(&ip(&["link"])), ["lo"]);
        assert!(!Path::new(&one.netns_path).exists() && !Path::new(&two.netns_path).exists());
        assert_eq!(nsfs_mounts(&root), Vec::<String>::new());
        let listed = client.list_sandboxes(pb::ListSandboxesRequest {}).await.unwrap().into_inner();
        assert!(listed.sandboxes.is_empty());
        agent.stop().await;
    });
}

#[test]
fn restart_reconciles_with_the_records() {
    isolated(|root| async move {
        let agent = Agent::start(&root).await;
        let mut client = agent.client.clone();
        client.ensure_bridge(bridge_request()).await.unwrap();
        let one = client.ensure_sandbox(sandbox_request("c1")).await.unwrap().into_inner();
        let two = client.ensure_sandbox(sandbox_request("c2")).await.unwrap().into_inner();
        let e1 = client.ensure_endpoint(endpoint_request("c1", "172.16.1.0/16")).await.unwrap();
        let e2 = client.ensure_endpoint(endpoint_request("c2", "172.16.1.2/16")).await.unwrap();
        let (e1, e2) = (e1.into_inner(), e2.into_inner());
        agent.stop().await;

        // Behind the agent's back: one veth and the bridge deleted, one namespace gone
        // as after a reboot, an orphan of ours and some interfaces that are not ours.
        sh(&format!("ip link del {}", e1.host_ifname));
        sh(&format!("ip link del {BRIDGE}"));
        sh(&format!("umount {0} && rm {0}", two.netns_path));
        sh(
            "ip link add orphan0 type veth peer name orphan1 && ip link set orphan0 alias cnet:endpoint:gone",
        );
        sh("ip link add br-orphan type bridge && ip link set br-orphan alias cnet:bridge:gone");
        sh("ip link add foreign0 type bridge && ip link add foreign1 type veth peer name foreign2");
        sh("ip link add nat0 type bridge && ip link set nat0 alias cnet:nat:other-service");

        let agent = Agent::start(&root).await;
        let mut client = agent.client.clone();
        let listed = client.list_endpoints(pb::ListEndpointsRequest {}).await.unwrap().into_inner();
        assert_eq!(listed.endpoints.len(), 2);
        let mut expected = vec![
            BRIDGE.to_owned(),
            e1.host_ifname.clone(),
            e2.host_ifname.clone(),
            "foreign0".into(),
            "foreign1".into(),
            "foreign2".into(),
            "lo".into(),
            "nat0".into(),
        ];
        expected.sort();
        assert_eq!(link_names(&ip(&["link"])), expected);
        assert_eq!(addresses(&ip(&["addr", "show", BRIDGE])), ["172.16.1.1/16"]);
        assert_eq!(master_of(&e1.host_ifname), BRIDGE);
        assert_eq!(master_of(&e2.host_ifname), BRIDGE);
        assert_eq!(ip(&["link", "show", "nat0"])[0]["ifalias"], "cnet:nat:other-service");
        for (sandbox, address) in [(&one, "172.16.1.0/16"), (&two, "172.16.1.2/16")] {
            let eth0 = ip_in(&sandbox.netns_path, &["addr", "show", "eth0"]);
            assert_eq!(addresses(&eth0), [address]);
            let routes = ip_in(&sandbox.netns_path, &["route", "show", "default"]);
            assert_eq!(routes[0]["gateway"], "172.16.1.1");
        }
        let peer: SocketAddr = "172.16.1.2:8080".parse().unwrap();
        let server = serve_once(Some(&two.netns_path), peer);
        assert_eq!(fetch_from(&one.netns_path, peer), "hello");
        server.join().unwrap();

        for id in ["c1", "c2"] {
            client.delete_sandbox(pb::DeleteSandboxRequest { id: id.into() }).await.unwrap();
        }
        client.delete_bridge(pb::DeleteBridgeRequest { network_id: NETWORK.into() }).await.unwrap();
        let left = ["foreign0", "foreign1", "foreign2", "lo", "nat0"];
        assert_eq!(link_names(&ip(&["link"])), left);
        agent.stop().await;
    });
}

#[test]
fn invalid_input_is_refused_and_creates_nothing() {
    isolated(|root| async move {
        let agent = Agent::start(&root).await;
        let mut client = agent.client.clone();
        let bridge = |change: fn(&mut pb::EnsureBridgeRequest)| {
            let mut request = bridge_request();
            change(&mut request);
            request
        };
        let bridges = [
            (bridge(|r| r.network_id.clear()), "network_id: must not be empty"),
            (bridge(|r| r.network_id = "a b".into()), "network_id: ' ' is not allowed"),
            (
                bridge(|r| r.name = "br-0123456789abc".into()),
                "name: \"br-0123456789abc\" is longer",
            ),
            (bridge(|r| r.name = "br/x".into()), "name: '/' is not allowed"),
            (
                bridge(|r| r.gateway_cidr = "172.16.1.1".into()),
                "gateway_cidr: \"172.16.1.1\" has no prefix",
            ),
            (
                bridge(|r| r.gateway_cidr = "fd00::1/64".into()),
                "gateway_cidr: fd00::1/64: only IPv4",
            ),
            (bridge(|r| r.mtu = 20), "mtu: 20 is outside"),
        ];
        for (request, message) in bridges {
            let status = client.ensure_bridge(request).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert!(status.message().starts_with(message), "{message}: {status:?}");
        }

        let sandboxes = [
            ("../x", "", "id: must not contain '/'"),
            ("c1", "relative/ns", "netns_path: \"relative/ns\" is not absolute"),
            ("c1", "/nonexistent/ns", "netns_path: /nonexistent/ns does not exist"),
            ("c1", "/etc/hostname", "netns_path: /etc/hostname is not a network namespace"),
        ];
        for (id, netns_path, message) in sandboxes {
            let request = pb::EnsureSandboxRequest { id: id.into(), netns_path: netns_path.into() };
            let status = client.ensure_sandbox(request).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert!(status.message().starts_with(message), "{message}: {status:?}");
        }

        let endpoint = |change: fn(&mut pb::EnsureEndpointRequest)| {
            let mut request = endpoint_request("c1", "172.16.1.0/16");
            change(&mut request);
            request
        };
        let endpoints = [
            (endpoint(|r| r.id.clear()), "id: must not be empty"),
            (endpoint(|r| r.sandbox_id = "a/b".into()), "sandbox_id: must not contain '/'"),
            (endpoint(|r| r.ifname = "eth 0".into()), "ifname: ' ' is not allowed"),
            (endpoint(|r| r.address_cidr = "x".into()), "address_cidr: \"x\" has no prefix"),
            (endpoint(|r| r.gateway = "::1".into()), "gateway: ::1: only IPv4"),
            (
                endpoint(|r| r.gateway = "10.0.0.1".into()),
                "gateway: 10.0.0.1 is outside 172.16.0.0/16",
            ),
            (endpoint(|r| r.gateway.clear()), "gateway: required when default_route is set"),
            (
                endpoint(|r| r.mac = "01:00:5e:00:00:01".into()),
                "mac: 01:00:5e:00:00:01 is a multicast",
            ),
            (endpoint(|r| r.mtu = 70000), "mtu: 70000 is outside"),
        ];
        for (request, message) in endpoints {
            let status = client.ensure_endpoint(request).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert!(status.message().starts_with(message), "{message}: {status:?}");
        }
        let status = client.delete_endpoint(pb::DeleteEndpointRequest { id: String::new() }).await;
        assert_eq!(status.unwrap_err().code(), Code::InvalidArgument);
        let status = client.delete_sandbox(pb::DeleteSandboxRequest { id: "..".into() }).await;
        assert_eq!(status.unwrap_err().code(), Code::InvalidArgument);

        assert_eq!(link_names(&ip(&["link"])), ["lo"]);
        assert!(!root.join("run/netns").exists());
        let listed = client.list_bridges(pb::ListBridgesRequest {}).await.unwrap().into_inner();
        assert!(listed.bridges.is_empty());
        let listed = client.list_sandboxes(pb::ListSandboxesRequest {}).await.unwrap().into_inner();
        assert!(listed.sandboxes.is_empty());
        agent.stop().await;
    });
}

/// Nothing of the agent's keeps a deleted sandbox's namespace alive (it works inside
/// sandboxes over a kept connection), and a sandbox made again under the same id is a new
/// namespace that its endpoint goes into.
#[test]
fn a_deleted_sandbox_lets_its_namespace_go_and_a_new_one_takes_its_place() {
    isolated(|root| async move {
        let agent = Agent::start(&root).await;
        let mut client = agent.client.clone();
        client.ensure_bridge(bridge_request()).await.unwrap();
        let first = client.ensure_sandbox(sandbox_request("c1")).await.unwrap().into_inner();
        client.ensure_endpoint(endpoint_request("c1", "172.16.1.2/16")).await.unwrap();
        // A veth pair of the test's own with one end in the sandbox: the kernel deletes
        // the pair when the namespace goes, and only then.
        sh(&format!("ip link add probe0 type veth peer name probe1 netns {}", first.netns_path));

        client.delete_sandbox(pb::DeleteSandboxRequest { id: "c1".into() }).await.unwrap();
        let mut waited = 0;
        while link_names(&ip(&["link"])).contains(&"probe0".to_owned()) {
            assert!(waited < 100, "the deleted sandbox's namespace is still alive after 5 s");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            waited += 1;
        }

        let again = client.ensure_sandbox(sandbox_request("c1")).await.unwrap().into_inner();
        assert_eq!(again.netns_path, first.netns_path);
        client.ensure_endpoint(endpoint_request("c1", "172.16.1.3/16")).await.unwrap();
        let eth0 = ip_in(&again.netns_path, &["addr", "show", "eth0"]);
        assert_eq!(addresses(&eth0), ["172.16.1.3/16"]);
        agent.stop().await;
    });
}

#[test]
fn foreign_names_are_refused_and_failures_leave_nothing() {
    isolated(|root| async move {
        let agent = Agent::start(&root).await;
        let mut client = agent.client.clone();

        sh("ip link add br-taken type bridge");
        let mut taken = bridge_request();
        taken.name = "br-taken".into();
        let status = client.ensure_bridge(taken).await.unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
        let untouched = ip(&["addr", "show", "br-taken"]);
        assert!(untouched[0]["ifalias"].is_null() && addresses(&untouched).is_empty());

        client.ensure_bridge(bridge_request()).await.unwrap();
        let mut other_gateway = bridge_request();
        other_gateway.gateway_cidr = "172.16.1.254/16".into();
        let status = client.ensure_bridge(other_gateway).await.unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
        let mut same_name = bridge_request();
        same_name.network_id = "other-network".into();
        let status = client.ensure_bridge(same_name).await.unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
        let status = client.ensure_endpoint(endpoint_request("nope", "172.16.1.5/16")).await;
        assert_eq!(status.unwrap_err().code(), Code::NotFound);

        // A namespace made by someone else: used, never deleted.
        let external = root.join("external-ns");
        sh(&format!("touch {0} && unshare --net={0} true", external.display()));
        let external = external.display().to_string();
        let request = pb::EnsureSandboxRequest { id: "ext".into(), netns_path: external.clone() };
        let sandbox = client.ensure_sandbox(request).await.unwrap().into_inner();
        assert!(!sandbox.owned);

        // The sandbox has a default route already, so the endpoint's own fails half-way:
        // the veth pair must not be left behind.
        let first = endpoint_request("ext", "172.16.1.7/16");
        let inside = |command: &str| sh(&format!("nsenter --net={external} {command}"));
        inside("ip link set lo up");
        inside("ip route add default dev lo");
        let status = client.ensure_endpoint(first.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
        assert!(status.message().contains("add default route"), "{status:?}");
        assert_eq!(link_names(&ip(&["link"])), [BRIDGE, "br-taken", "lo"]);
        assert_eq!(link_names(&ip_in(&external, &["link"])), ["lo"]);
        let listed = client.list_endpoints(pb::ListEndpointsRequest {}).await.unwrap().into_inner();
        assert!(listed.endpoints.is_empty());
        inside("ip route del default dev lo");

        // A foreign interface with the wanted name inside the sandbox is refused before
        // anything is made.
        inside("ip link add eth0 type bridge");
        let status = client.ensure_endpoint(first.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
        assert!(status.message().contains("\"eth0\" in sandbox \"ext\""), "{status:?}");
        assert_eq!(link_names(&ip(&["link"])), [BRIDGE, "br-taken", "lo"]);

        let mut second = first.clone();
        second.ifname = "eth1".into();
        let endpoint = client.ensure_endpoint(second).await.unwrap().into_inner();
        assert_eq!(addresses(&ip_in(&external, &["addr", "show", "eth1"])), ["172.16.1.7/16"]);
        client.delete_sandbox(pb::DeleteSandboxRequest { id: "ext".into() }).await.unwrap();
        assert!(
            ip(&["link"]).as_array().unwrap().iter().all(|l| l["ifname"] != endpoint.host_ifname)
        );
        assert_eq!(link_names(&ip_in(&external, &["link"])), ["eth0", "lo"]);

        client.delete_bridge(pb::DeleteBridgeRequest { network_id: NETWORK.into() }).await.unwrap();
        assert_eq!(link_names(&ip(&["link"])), ["br-taken", "lo"]);
        sh(&format!("umount {external}"));
        agent.stop().await;
    });
}

#[test]
fn host_prefixes_leave_out_cnet_bridges() {
    isolated(|root| async move {
        let agent = Agent::start(&root).await;
        let mut client = agent.client.clone();
        client.ensure_bridge(bridge_request()).await.unwrap();
        sh("ip link set lo up && ip link add lan0 type bridge && ip link set lan0 up \
            && ip addr add 192.168.77.5/24 dev lan0 && ip route add 10.99.0.0/16 dev lan0 \
            && ip route add default via 192.168.77.1");
        let reply = client.host_prefixes(pb::HostPrefixesRequest {}).await.unwrap().into_inner();
        assert_eq!(reply.prefixes, ["10.99.0.0/16", "127.0.0.0/8", "192.168.77.0/24"]);
        client.delete_bridge(pb::DeleteBridgeRequest { network_id: NETWORK.into() }).await.unwrap();
        agent.stop().await;
    });
}
