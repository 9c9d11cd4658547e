//! `cnet system check`: drift between the gateway's records and the other services is
//! shown, and removed with `--repair`, without touching anything that is wanted.

use cnet_proto::{
    bridge::v1 as bridge, dns::v1 as dns, hosts::v1 as hosts, ipam::v1 as ipam, nat::v1 as nat,
};
use cnet_tests::Cluster;

#[test]
fn check_finds_leftovers_and_repair_removes_only_them() {
    let cluster = Cluster::start();
    let api = cluster.api();
    cluster.lab();
    assert_eq!(
        cluster.cnet(&["system", "check"]).ok().trim(),
        "no drift: every service agrees with the gateway's records"
    );

    // Leftovers a crash half-way through an operation would leave: an address held by a
    // container that does not exist and a network namespace nobody uses.
    let pool_id = api.network("vswitch01").id;
    let ipam_channel = {
        let _entered = api.enter();
        cnet_common::client::channel(&cluster.service_target("ipam")).unwrap()
    };
    let bridge_channel = {
        let _entered = api.enter();
        cnet_common::client::channel(&cluster.service_target("bridge")).unwrap()
    };
    let mut ipam = ipam::ipam_client::IpamClient::new(ipam_channel);
    let mut bridge = bridge::bridge_agent_client::BridgeAgentClient::new(bridge_channel);
    let ghost = ipam::AllocateRequest { pool_id, owner: "ghost".into(), address: String::new() };
    let held = api.block(ipam.allocate(ghost)).unwrap().into_inner().address;
    let sandbox = bridge::EnsureSandboxRequest { id: "ghost-ns".into(), netns_path: String::new() };
    api.block(bridge.ensure_sandbox(sandbox)).unwrap();

    let check = cluster.cnet(&["system", "check"]);
    assert_eq!(check.code, 1, "{check:#?}");
    assert!(
        check.stdout.contains(&format!("address {held}")) && check.stdout.contains("held by ghost"),
        "{}",
        check.stdout
    );
    assert!(check.stdout.contains("network namespace ghost-ns"), "{}", check.stdout);

    let repair = cluster.cnet(&["system", "check", "--repair"]);
    assert_eq!(repair.code, 0, "{repair:#?}");
    assert_eq!(repair.stdout.matches("repaired").count(), 2, "{}", repair.stdout);
    cluster.cnet(&["system", "check"]).ok();

    // What is wanted is untouched: the lab's containers still talk, and the address
    // the ghost held is handed out again.
    cluster.cnet(&["exec", "centos1", "--", "ping", "-c1", "-W2", "centos2"]).ok();
    cluster.cnet(&["run", "-d", "--name", "centos3", "--network", "vswitch01"]).ok();
    assert_eq!(api.ip("centos3", "vswitch01"), held);
}

#[test]
fn check_finds_every_kind_of_leftover_and_repair_removes_them() {
    let cluster = Cluster::start();
    let api = cluster.api();
    cluster.lab();
    let clean = "no drift: every service agrees with the gateway's records";
    assert_eq!(cluster.cnet(&["system", "check"]).ok().trim(), clean);

    let lab = api.network("vswitch01");
    let channel = |service: &str| {
        let _entered = api.enter();
        cnet_common::client::channel(&cluster.service_target(service)).unwrap()
    };
    let mut bridge = bridge::bridge_agent_client::BridgeAgentClient::new(channel("bridge"));
    let mut dns = dns::dns_client::DnsClient::new(channel("dns"));
    let mut hosts = hosts::hosts_client::HostsClient::new(channel("hosts"));
    let mut nat = nat::nat_client::NatClient::new(channel("nat"));

    // A bridge for a network the gateway does not know, and a sandbox with a veth pair on
    // it, for a container that does not exist.
    let ghost_bridge = bridge::EnsureBridgeRequest {
        network_id: "ghostnet".into(),
        name: "br-ghost".into(),
        gateway_cidr: "10.66.0.1/24".into(),
        mtu: 0,
    };
    api.block(bridge.ensure_bridge(ghost_bridge)).unwrap();
    let sandbox = bridge::EnsureSandboxRequest { id: "ghost-ns".into(), netns_path: String::new() };
    let netns_path = api.block(bridge.ensure_sandbox(sandbox)).unwrap().into_inner().netns_path;
    let endpoint = bridge::EnsureEndpointRequest {
        id: "ghost/ghostnet".into(),
        network_id: "ghostnet".into(),
        sandbox_id: "ghost-ns".into(),
        address_cidr: "10.66.0.5/24".into(),
        gateway: "10.66.0.1".into(),
        default_route: true,
        ..Default::default()
    };
    api.block(bridge.ensure_endpoint(endpoint)).unwrap();

    // DNS names for a container nobody runs, listening in the ghost sandbox.
    let dns_ghost = "d".repeat(64);
    let registration = dns::RegisterContainerRequest {
        container_id: dns_ghost.clone(),
        name: "dnsghost".into(),
        netns_path,
        endpoints: vec![dns::Endpoint {
            network_id: lab.id.clone(),
            network_name: "vswitch01".into(),
            address: "172.16.1.201".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    api.block(dns.register_container(registration)).unwrap();

    // Hosts files for a container that does not exist.
    let hosts_ghost = "e".repeat(64);
    let spec = hosts::ContainerSpec {
        container_id: hosts_ghost.clone(),
        name: "hostsghost".into(),
        hostname: "hostsghost".into(),
        mode: hosts::NetworkMode::Bridge.into(),
        endpoints: vec![hosts::Endpoint {
            network: "vswitch01".into(),
            address: "172.16.1.202".into(),
            default_bridge: false,
        }],
        ..Default::default()
    };
    api.block(hosts.put_container(hosts::PutContainerRequest { spec: Some(spec) })).unwrap();

    // A port published (on loopback) for a container nobody runs, and firewall rules for
    // the network that does not exist.
    let publish = nat::PublishRequest {
        container_id: "ghost-ports".into(),
        network_id: lab.id.clone(),
        container_ip: "172.16.1.203".into(),
        ports: vec![nat::PortMapping {
            host_ip: "127.0.0.1".into(),
            host_port: 18081,
            container_port: 80,
            protocol: "tcp".into(),
            ..Default::default()
        }],
    };
    api.block(nat.publish(publish)).unwrap();
    let firewall = nat::EnsureNetworkRequest {
        network_id: "ghostnet".into(),
        bridge_name: "br-ghost".into(),
        subnet: "10.66.0.0/24".into(),
        internal: false,
    };
    api.block(nat.ensure_network(firewall)).unwrap();

    // Really there in the kernel and listening, so that "gone" below means something.
    assert_eq!(cluster.sh("ip link show br-ghost").code, 0);
    assert_eq!(cluster.sh("ss -ltn | grep -q '127.0.0.1:18081 '").code, 0);

    let check = cluster.cnet(&["system", "check"]);
    assert_eq!(check.code, 1, "{check:#?}");
    let expected = [
        "network namespace ghost-ns is used by no running container".to_owned(),
        "veth pair ghost/ghostnet belongs to no running container's network".to_owned(),
        "bridge br-ghost belongs to ghostnet, which is no network".to_owned(),
        format!("DNS names are registered for {dns_ghost}, which is not running"),
        format!("hosts files are kept for {hosts_ghost}, which does not exist"),
        "ports are published for ghost-ports, which is not running".to_owned(),
        "firewall rules exist for ghostnet, which is no network".to_owned(),
    ];
    for description in &expected {
        assert!(
            check.stdout.lines().any(|line| line.contains(description.as_str())),
            "missing {description:?} in:\n{}",
            check.stdout
        );
    }
    assert_eq!(check.stdout.lines().count(), expected.len() + 1, "{}", check.stdout);

    let repair = cluster.cnet(&["system", "check", "--repair"]);
    assert_eq!(repair.code, 0, "{repair:#?}");
    assert_eq!(repair.stdout.matches("repaired").count(), expected.len(), "{}", repair.stdout);
    assert_eq!(cluster.cnet(&["system", "check"]).ok().trim(), clean);

    // Gone for real, not just unlisted.
    assert_ne!(cluster.sh("ip link show br-ghost").code, 0);
    assert_ne!(cluster.sh("ss -ltn | grep -q '127.0.0.1:18081 '").code, 0);

    // What is wanted is untouched.
    cluster.cnet(&["exec", "centos1", "--", "ping", "-c1", "-W2", "centos2"]).ok();
    cluster.cnet(&["exec", "centos2", "--", "ping", "-c1", "-W2", "centos1"]).ok();
}
