//! Every service can be killed with SIGKILL and restarted without losing or duplicating
//! anything: the stores are the truth and the kernel is reconciled to them.

use cnet_tests::{Cluster, eventually};

const SERVICES: &[&str] = &["cnet-ipam", "cnet-bridge", "cnet-gateway"];

fn kernel_view(cluster: &Cluster) -> String {
    let links = cluster.sh("ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort").ok();
    let addrs = cluster.sh("ip -o -4 addr show | awk '{print $2, $4}' | sort").ok();
    format!("{links}\n{addrs}")
}

#[test]
fn kill_9_of_every_service_loses_nothing() {
    let cluster = Cluster::start();
    let api = cluster.api();
    cluster.lab();
    cluster.cnet(&["run", "-d", "--name", "stopped", "--network", "vswitch01"]).ok();
    cluster.cnet(&["stop", "stopped"]).ok();
    let networks_before = cluster.cnet(&["network", "ls"]).ok();
    let containers_before = cluster.cnet(&["ps", "-a", "--format", "json"]).ok();
    let kernel_before = kernel_view(&cluster);
    let pid1 = api.container("centos1").pid;

    // All at once, so that the supervisor restarts nothing behind our back.
    for service in SERVICES {
        assert_eq!(cluster.pids_of(service).len(), 1, "{service} is running");
    }
    let names: Vec<&str> = SERVICES.iter().copied().chain(["cnet"]).collect();
    assert_eq!(cluster.kill9_all(&names), SERVICES.len() + 1);
    eventually("services to die", 10, || {
        SERVICES.iter().all(|s| cluster.pids_of(s).is_empty()).then_some(())
    });
    cluster.up();
    let api = cluster.api(); // the old connection died with the old gateway

    assert_eq!(cluster.cnet(&["network", "ls"]).ok(), networks_before);
    assert_eq!(cluster.cnet(&["ps", "-a", "--format", "json"]).ok(), containers_before);
    assert_eq!(kernel_view(&cluster), kernel_before);
    assert_eq!(api.container("centos1").pid, pid1, "containers keep running across restarts");
    cluster.cnet(&["exec", "centos1", "--", "ping", "-c1", "-W2", "172.16.1.2"]).ok();

    // Allocations survived: the next container gets a fresh address, not a held one.
    cluster.cnet(&["run", "-d", "--name", "centos3", "--network", "vswitch01"]).ok();
    assert_eq!(api.ip("centos3", "vswitch01"), "172.16.1.3");
    cluster.cnet(&["start", "stopped"]).ok();
    assert_eq!(api.ip("stopped", "vswitch01"), "172.16.1.4");
}

#[test]
fn the_supervisor_restarts_a_killed_service() {
    let cluster = Cluster::start();
    let api = cluster.api();
    cluster.cnet(&["run", "-d", "--name", "one"]).ok();
    let before = cluster.pids_of("cnet-ipam");
    assert_eq!(cluster.kill9("cnet-ipam"), 1);
    eventually("ipam to come back", 20, || {
        let now = cluster.pids_of("cnet-ipam");
        (now.len() == 1 && now != before).then_some(())
    });
    cluster.cnet(&["run", "-d", "--name", "two"]).ok();
    let (one, two) = (api.ip("one", "bridge"), api.ip("two", "bridge"));
    assert_ne!(one, two, "no address is handed out twice");
}

#[test]
fn a_container_that_died_while_the_gateway_was_down_is_cleaned_up() {
    let cluster = Cluster::start();
    let api = cluster.api();
    cluster.cnet(&["run", "-d", "--name", "victim"]).ok();
    let pid = api.container("victim").pid;
    assert_eq!(cluster.kill9_all(&["cnet", "cnet-gateway"]), 2);
    eventually("the gateway to die", 10, || {
        cluster.pids_of("cnet-gateway").is_empty().then_some(())
    });
    cluster.sh(&format!("kill -9 {pid}")).ok();
    cluster.up();
    let api = cluster.api();
    let victim = api.container("victim");
    assert_eq!(victim.state, cnet_proto::gateway::v1::ContainerState::Exited as i32);
    assert_eq!(victim.networks["bridge"].ip_address, "");
    let veths = cluster.sh("ip -o link show type veth").ok();
    assert!(veths.trim().is_empty(), "{veths}");
}
