//! Step 2 of the seed lab, end to end through the CLI: a user-defined bridge network
//! with subnet, ip-range and gateway, two containers on it, checked from inside the
//! containers and from the "host".

use cnet_tests::Cluster;

#[test]
fn user_defined_bridge_network_as_in_the_lab() {
    let cluster = Cluster::start();
    let api = cluster.api();
    cluster
        .cnet(&[
            "network",
            "create",
            "--driver",
            "bridge",
            "--subnet",
            "172.16.1.0/16",
            "--ip-range",
            "172.16.1.0/24",
            "--gateway",
            "172.16.1.1",
            "vswitch01",
        ])
        .ok();
    for name in ["centos1", "centos2"] {
        cluster
            .cnet(&["run", "-d", "--name", name, "--hostname", name, "--network", "vswitch01"])
            .ok();
    }

    // Addresses: .0 is a valid host address of the /16 (NET-3), .1 is the gateway.
    let eth0 = |name: &str| {
        cluster.cnet(&["exec", name, "--", "ip", "-o", "-4", "addr", "show", "eth0"]).ok()
    };
    assert!(eth0("centos1").contains("inet 172.16.1.0/16"), "{}", eth0("centos1"));
    assert!(eth0("centos2").contains("inet 172.16.1.2/16"), "{}", eth0("centos2"));
    let link = cluster.cnet(&["exec", "centos1", "--", "ip", "-o", "link", "show", "eth0"]).ok();
    assert!(link.contains("02:42:ac:10:01:00"), "MAC derives from the IP (NET-8): {link}");
    let routes = cluster.cnet(&["exec", "centos1", "--", "ip", "route"]).ok();
    assert!(routes.contains("default via 172.16.1.1 dev eth0"), "{routes}");
    assert!(routes.contains("172.16.0.0/16 dev eth0"), "{routes}");

    // The bridge holds the gateway and both veths.
    let bridge = api.network("vswitch01").bridge_name;
    assert!(bridge.starts_with("br-") && bridge.len() == 15, "{bridge}");
    let bridge_addr = cluster.sh(&format!("ip -o -4 addr show dev {bridge}")).ok();
    assert!(bridge_addr.contains("172.16.1.1/16"), "{bridge_addr}");
    let ports = cluster.sh(&format!("ip -o link show master {bridge}")).ok();
    let veths: Vec<_> = ports.lines().filter(|l| l.contains(": veth")).collect();
    assert_eq!(veths.len(), 2, "{ports}");

    // They reach each other by address; hostnames and files are as Docker makes them.
    cluster.cnet(&["exec", "centos1", "--", "ping", "-c1", "-W2", "172.16.1.2"]).ok();
    cluster.cnet(&["exec", "centos2", "--", "ping", "-c1", "-W2", "172.16.1.0"]).ok();
    assert_eq!(cluster.cnet(&["exec", "centos1", "--", "hostname"]).ok().trim(), "centos1");
    let hosts = cluster.cnet(&["exec", "centos2", "--", "cat", "/etc/hosts"]).ok();
    assert_eq!(hosts.lines().next(), Some("127.0.0.1\tlocalhost"));
    assert_eq!(hosts.lines().last(), Some("172.16.1.2\tcentos2"));
    assert!(!hosts.contains("centos1"), "peers are never listed (FILE-1): {hosts}");

    let networks = cluster.cnet(&["network", "ls"]).ok();
    for name in ["bridge", "vswitch01"] {
        assert!(networks.lines().any(|l| l.split_whitespace().any(|w| w == name)), "{networks}");
    }
    let ps = cluster.cnet(&["ps"]).ok();
    assert!(ps.contains("centos1") && ps.contains("centos2"), "{ps}");
}

#[test]
fn default_bridge_network_avoids_prefixes_the_host_uses() {
    let cluster = Cluster::bare();
    // A host that runs Docker has docker0 on 172.17.0.0/16.
    cluster.sh("ip link add docker0 type bridge && ip addr add 172.17.0.1/16 dev docker0 && ip link set docker0 up").ok();
    cluster.up();
    let api = cluster.api();
    let bridge = api.network("bridge");
    assert_eq!(bridge.bridge_name, "cnet0");
    assert_eq!(bridge.ipam.as_ref().unwrap().subnet, "172.18.0.0/16");
    assert_eq!(bridge.gateway, "172.18.0.1");
    assert!(bridge.predefined);

    cluster.cnet(&["run", "-d", "--name", "web"]).ok();
    assert_eq!(api.ip("web", "bridge"), "172.18.0.2");
    let hostname = cluster.cnet(&["exec", "web", "--", "hostname"]).ok();
    assert_eq!(
        hostname.trim(),
        &api.container("web").id[..12],
        "default hostname is the short id (FILE-4)"
    );
    // A network without --subnet takes the next free default pool.
    cluster.cnet(&["network", "create", "auto1"]).ok();
    assert_eq!(api.network("auto1").ipam.unwrap().subnet, "172.19.0.0/16");
}
