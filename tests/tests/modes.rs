//! Network modes (host, none, container:) and multi-network containers (connect and
//! disconnect), seen from inside the containers and from the "host" (steps 3 to 5 of the
//! seed lab; HOST-1, NONE-1, CNS-1, CNS-2, MULTI-1).

use cnet_tests::{Cluster, eventually};

fn in_container(cluster: &Cluster, name: &str, command: &str) -> String {
    cluster.cnet(&["exec", name, "--", "sh", "-c", command]).ok()
}

fn veth_count(cluster: &Cluster) -> usize {
    cluster.sh("ip -o link show type veth").ok().lines().count()
}

#[test]
fn host_mode_sees_the_hosts_interfaces_and_files() {
    let cluster = Cluster::start();
    cluster.cnet(&["run", "-d", "--name", "centos3", "--network", "host"]).ok();
    let host_links = cluster.sh("ip -o link show | cut -d: -f2 | sort").ok();
    assert_eq!(
        in_container(&cluster, "centos3", "ip -o link show | cut -d: -f2 | sort"),
        host_links
    );
    assert_eq!(veth_count(&cluster), 0, "nothing on any bridge");
    let host_hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(in_container(&cluster, "centos3", "hostname").trim(), host_hostname.trim());
    let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap();
    assert_eq!(in_container(&cluster, "centos3", "cat /etc/hosts"), host_hosts);
    // Its own UTS namespace: --hostname changes only the container's view.
    cluster.cnet(&["run", "-d", "--name", "named", "--network", "host", "--hostname", "foo"]).ok();
    assert_eq!(in_container(&cluster, "named", "hostname").trim(), "foo");
    let error = cluster.cnet(&["network", "connect", "bridge", "centos3"]).err();
    assert!(error.contains("cannot be connected to any other network"), "{error}");
}

#[test]
fn none_mode_has_only_loopback() {
    let cluster = Cluster::start();
    cluster.cnet(&["run", "-d", "--name", "alone", "--network", "none"]).ok();
    let links = in_container(&cluster, "alone", "ip -o link show | cut -d: -f2 | tr -d ' '");
    assert_eq!(links.trim(), "lo");
    let addrs = in_container(&cluster, "alone", "ip -o -4 addr show | awk '{print $4}'");
    assert_eq!(addrs.trim(), "127.0.0.1/8");
    assert_eq!(in_container(&cluster, "alone", "ip route").trim(), "");
    let hosts = in_container(&cluster, "alone", "cat /etc/hosts");
    assert_eq!(hosts.lines().count(), 6, "no line for its own hostname (NONE-1): {hosts}");
    assert_eq!(veth_count(&cluster), 0);
    let error = cluster.cnet(&["network", "connect", "bridge", "alone"]).err();
    assert!(error.contains("private (none) mode"), "{error}");
}

#[test]
fn container_mode_shares_the_targets_namespace() {
    let cluster = Cluster::start();
    cluster.cnet(&["run", "-d", "--name", "centos1", "--hostname", "centos1"]).ok();
    cluster.cnet(&["run", "-d", "--name", "centos4", "--network", "container:centos1"]).ok();
    let view = "ip -o -4 addr show eth0 | awk '{print $4}'; ip -o link show eth0 | grep -o 'link/ether [^ ]*'; hostname; cat /etc/hosts";
    assert_eq!(in_container(&cluster, "centos4", view), in_container(&cluster, "centos1", view));
    assert_eq!(veth_count(&cluster), 1, "nothing new on the bridge");
    let api = cluster.api();
    let joined = api.container("centos4");
    assert_eq!(joined.network_mode, format!("container:{}", api.container("centos1").id));
    assert!(joined.networks.is_empty());

    // Conflicting options are refused up front (CNS-3).
    let error =
        cluster.cnet(&["run", "-d", "--network", "container:centos1", "--hostname", "x"]).err();
    assert!(error.contains("conflicting options: hostname and the network mode"), "{error}");
    let error = cluster.cnet(&["run", "-d", "--network", "container:nosuchctr"]).err();
    assert!(error.contains("No such container: nosuchctr"), "{error}");

    // The target stops: the joined container keeps running with only lo (CNS-2).
    cluster.cnet(&["stop", "centos1"]).ok();
    assert_eq!(
        api.container("centos4").state,
        cnet_proto::gateway::v1::ContainerState::Running as i32
    );
    let links = in_container(&cluster, "centos4", "ip -o link show | cut -d: -f2 | tr -d ' '");
    assert_eq!(links.trim(), "lo");
    cluster.cnet(&["stop", "centos4"]).ok();
    let error = cluster.cnet(&["start", "centos4"]).err();
    assert!(error.contains("cannot join network of a non running container"), "{error}");
    cluster.cnet(&["start", "centos1"]).ok();
    cluster.cnet(&["start", "centos4"]).ok();
    assert_eq!(in_container(&cluster, "centos4", view), in_container(&cluster, "centos1", view));
}

#[test]
fn connect_adds_an_interface_and_disconnect_takes_it_away() {
    let cluster = Cluster::start();
    let api = cluster.api();
    cluster.cnet(&["network", "create", "--subnet", "10.50.0.0/24", "neta"]).ok();
    cluster.cnet(&["network", "create", "--subnet", "10.60.0.0/24", "netb"]).ok();
    cluster.cnet(&["run", "-d", "--name", "multi", "--network", "neta"]).ok();
    cluster.cnet(&["run", "-d", "--name", "peerb", "--network", "netb"]).ok();
    let unreachable = cluster.cnet(&["exec", "multi", "--", "ping", "-c1", "-W1", "10.60.0.3"]);
    assert_ne!(unreachable.code, 0, "not on netb yet");

    cluster
        .cnet(&["network", "connect", "--ip", "10.60.0.200", "--alias", "m2", "netb", "multi"])
        .ok();
    let eth1 = in_container(&cluster, "multi", "ip -o -4 addr show eth1 | awk '{print $4}'");
    assert_eq!(eth1.trim(), "10.60.0.200/24");
    let routes = in_container(&cluster, "multi", "ip route show default");
    assert!(routes.contains("via 10.50.0.1 dev eth0"), "default route stays on eth0: {routes}");
    cluster.cnet(&["exec", "multi", "--", "ping", "-c1", "-W2", &api.ip("peerb", "netb")]).ok();
    let hosts = in_container(&cluster, "multi", "tail -n 2 /etc/hosts");
    assert!(hosts.contains("10.50.0.2\t") && hosts.contains("10.60.0.200\t"), "{hosts}");
    let inspect = api.container("multi");
    assert_eq!(inspect.networks["netb"].aliases, vec!["m2".to_owned()]);
    let network = api.network("netb");
    assert!(
        network.containers.iter().any(|c| c.name == "multi" && c.ipv4_address == "10.60.0.200/24")
    );

    let error = cluster.cnet(&["network", "connect", "netb", "multi"]).err();
    assert!(error.contains("endpoint with name multi already exists in network netb"), "{error}");
    let error = cluster.cnet(&["network", "connect", "host", "multi"]).err();
    assert!(error.contains("connected to host network"), "{error}");

    cluster.cnet(&["network", "disconnect", "netb", "multi"]).ok();
    let links =
        in_container(&cluster, "multi", "ip -o link show | cut -d: -f2 | cut -d@ -f1 | tr -d ' '");
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), ["lo", "eth0"]);
    let gone =
        cluster.cnet(&["exec", "multi", "--", "ping", "-c1", "-W1", &api.ip("peerb", "netb")]);
    assert_ne!(gone.code, 0, "netb is out of reach again");
    assert_eq!(veth_count(&cluster), 2);

    // A stopped container can be connected; the interface appears when it starts.
    cluster.cnet(&["stop", "peerb"]).ok();
    cluster.cnet(&["network", "connect", "neta", "peerb"]).ok();
    cluster.cnet(&["start", "peerb"]).ok();
    let ifaces = in_container(
        &cluster,
        "peerb",
        "ip -o -4 addr show | awk '{print $2}' | sort | tr '\\n' ' '",
    );
    assert_eq!(ifaces.trim(), "eth0 eth1 lo");
}

#[test]
fn prune_removes_networks_without_running_containers() {
    let cluster = Cluster::start();
    cluster.cnet(&["network", "create", "unused"]).ok();
    cluster.cnet(&["network", "create", "used"]).ok();
    cluster.cnet(&["run", "-d", "--network", "used"]).ok();
    let out = cluster.cnet(&["network", "prune", "-f"]).ok();
    assert!(out.contains("unused") && !out.contains("\nused"), "{out}");
    let networks = cluster.cnet(&["network", "ls"]).ok();
    for kept in ["bridge", "host", "none", "used"] {
        assert!(networks.lines().any(|l| l.split_whitespace().any(|w| w == kept)), "{networks}");
    }
    assert!(!networks.contains("unused"), "{networks}");
}

#[test]
fn every_mode_survives_a_restart_of_every_service() {
    let cluster = Cluster::start();
    cluster.cnet(&["network", "create", "--subnet", "10.70.0.0/24", "m1"]).ok();
    cluster.cnet(&["network", "create", "--subnet", "10.71.0.0/24", "m2"]).ok();
    cluster.cnet(&["run", "-d", "--name", "bb", "--network", "m1"]).ok();
    cluster.cnet(&["network", "connect", "m2", "bb"]).ok();
    cluster.cnet(&["run", "-d", "--name", "hh", "--network", "host"]).ok();
    cluster.cnet(&["run", "-d", "--name", "nn", "--network", "none"]).ok();
    cluster.cnet(&["run", "-d", "--name", "cc", "--network", "container:bb"]).ok();
    let view =
        |name: &str| in_container(&cluster, name, "ip -o -4 addr show | awk '{print $2, $4}'");
    let before: Vec<String> = ["bb", "hh", "nn", "cc"].iter().map(|n| view(n)).collect();
    let ps_before = cluster.cnet(&["ps", "--format", "json"]).ok();

    let names = ["cnet", "cnet-ipam", "cnet-bridge", "cnet-gateway"];
    assert_eq!(cluster.kill9_all(&names), 4);
    eventually("services to die", 10, || {
        names.iter().all(|s| cluster.pids_of(s).is_empty()).then_some(())
    });
    cluster.up();

    let after: Vec<String> = ["bb", "hh", "nn", "cc"].iter().map(|n| view(n)).collect();
    assert_eq!(after, before);
    assert_eq!(cluster.cnet(&["ps", "--format", "json"]).ok(), ps_before);
    assert_eq!(veth_count(&cluster), 2);
}

#[test]
fn bridge_options_set_the_device_name_and_mtu() {
    let cluster = Cluster::start();
    cluster
        .cnet(&[
            "network",
            "create",
            "-o",
            "com.docker.network.bridge.name=lab0",
            "-o",
            "com.docker.network.driver.mtu=1400",
            "--label",
            "team=net",
            "--internal",
            "labnet",
        ])
        .ok();
    let link = cluster.sh("ip -o link show lab0").ok();
    assert!(link.contains("mtu 1400"), "{link}");
    cluster.cnet(&["run", "-d", "--name", "small", "--network", "labnet"]).ok();
    let eth0 = in_container(&cluster, "small", "ip -o link show eth0");
    assert!(eth0.contains("mtu 1400"), "{eth0}");
    let network = cluster.api().network("labnet");
    assert!(network.internal);
    assert_eq!(network.labels["team"], "net");
    let error = cluster
        .cnet(&["network", "create", "-o", "com.docker.network.bridge.name=lab0", "other"])
        .err();
    assert!(error.contains("bridge name lab0 is already used by network labnet"), "{error}");
}
