//! Every service can be killed with SIGKILL and restarted without losing or duplicating
//! anything: the stores are the truth and the kernel is reconciled to them.

use cnet_proto::hosts::v1::{GetContainerRequest, hosts_client::HostsClient};
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

fn signal(pid: u32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0);
}

/// Starts `cnet ARGS` with the hosts service frozen, so that the operation stops at its
/// last step before the process (its address, veth and names are taken by then); kills
/// the gateway there and brings the cluster back.
fn crash_the_gateway_during(cluster: &Cluster, args: &[&str]) {
    let hosts = cluster.pids_of("cnet-hosts");
    assert_eq!(hosts.len(), 1);
    signal(hosts[0], libc::SIGSTOP);
    let cnet = cnet_tests::bin_dir().join("cnet").display().to_string();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    cluster.spawn_background(&cnet, &args);
    eventually("the operation to reach the hosts step", 20, || {
        let veths = cluster.sh("ip -o link show type veth").ok();
        (!veths.trim().is_empty()).then_some(())
    });
    // The supervisor, the client and the gateway.
    assert_eq!(cluster.kill9_all(&["cnet", "cnet-gateway"]), 3);
    eventually("the gateway to die", 10, || {
        cluster.pids_of("cnet-gateway").is_empty().then_some(())
    });
    signal(hosts[0], libc::SIGCONT);
    cluster.up();
}

fn assert_no_drift(cluster: &Cluster) {
    assert_eq!(
        cluster.cnet(&["system", "check"]).ok().trim(),
        "no drift: every service agrees with the gateway's records"
    );
    assert_eq!(cluster.sh("ip -o link show type veth").ok().trim(), "", "no veth left");
}

#[test]
fn a_run_cut_short_by_a_gateway_crash_leaves_nothing() {
    let cluster = Cluster::start();
    crash_the_gateway_during(&cluster, &["run", "-d", "--name", "half"]);
    let containers = cluster.cnet(&["ps", "-a", "--format", "json"]).ok();
    assert!(!containers.contains("\"half\""), "the run was undone: {containers}");
    assert_no_drift(&cluster);
    // Its address is free again.
    cluster.cnet(&["run", "-d", "--name", "whole"]).ok();
    assert_eq!(cluster.api().ip("whole", "bridge"), "172.17.0.2");
}

#[test]
fn a_start_cut_short_by_a_gateway_crash_is_undone() {
    let cluster = Cluster::start();
    cluster.cnet(&["create", "--name", "half"]).ok();
    crash_the_gateway_during(&cluster, &["start", "half"]);
    let half = cluster.api().container("half");
    assert_eq!(half.state, cnet_proto::gateway::v1::ContainerState::Created as i32, "{half:?}");
    assert_no_drift(&cluster);
    // The hosts service may have been told it runs: not any more.
    let api = cluster.api();
    let mut hosts = {
        let _entered = api.enter();
        HostsClient::new(cnet_common::client::channel(&cluster.service_target("hosts")).unwrap())
    };
    let request = GetContainerRequest { container_id: half.id.clone() };
    if let Ok(kept) = api.block(hosts.get_container(request)) {
        assert!(!kept.into_inner().spec.unwrap().running, "the hosts service sees it running");
    }
    cluster.cnet(&["start", "half"]).ok();
    assert_eq!(cluster.api().ip("half", "bridge"), "172.17.0.2");
}
