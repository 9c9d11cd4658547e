//! Container lifecycle and what it does to addresses and kernel objects (NET-4, NET-5):
//! stop releases, start takes the lowest free address, a process that ends by itself is
//! cleaned up like a stop, and removal leaves nothing behind.

use cnet_tests::{Cluster, eventually};

#[test]
fn stop_releases_the_address_and_start_takes_the_lowest_free_one() {
    let cluster = Cluster::start();
    let api = cluster.api();
    cluster.lab_network();
    for name in ["c1", "c2", "c3"] {
        cluster.cnet(&["run", "-d", "--name", name, "--network", "vswitch01"]).ok();
    }
    assert_eq!(api.ip("c2", "vswitch01"), "172.16.1.2");

    // Stop then start at once: the same (lowest free) address comes back.
    cluster.cnet(&["stop", "-t", "1", "c2"]).ok();
    assert_eq!(api.ip("c2", "vswitch01"), "", "a stopped container holds no address");
    cluster.cnet(&["start", "c2"]).ok();
    assert_eq!(api.ip("c2", "vswitch01"), "172.16.1.2");

    // Stopped, its address taken by another: start gives the next free one.
    cluster.cnet(&["stop", "c2"]).ok();
    cluster.cnet(&["run", "-d", "--name", "c4", "--network", "vswitch01"]).ok();
    assert_eq!(api.ip("c4", "vswitch01"), "172.16.1.2");
    cluster.cnet(&["start", "c2"]).ok();
    assert_eq!(api.ip("c2", "vswitch01"), "172.16.1.4");
    cluster.cnet(&["exec", "c2", "--", "ping", "-c1", "-W2", "172.16.1.2"]).ok();

    // A removed container's address is handed out again at once.
    cluster.cnet(&["rm", "-f", "c1"]).ok();
    cluster.cnet(&["run", "-d", "--name", "c5", "--network", "vswitch01"]).ok();
    assert_eq!(api.ip("c5", "vswitch01"), "172.16.1.0");
}

#[test]
fn static_ip_outside_the_range_is_kept_across_restarts() {
    let cluster = Cluster::start();
    let api = cluster.api();
    cluster.lab_network();
    cluster
        .cnet(&["run", "-d", "--name", "fixed", "--network", "vswitch01", "--ip", "172.16.2.7"])
        .ok();
    assert_eq!(api.ip("fixed", "vswitch01"), "172.16.2.7");
    cluster.cnet(&["stop", "fixed"]).ok();
    cluster.cnet(&["start", "fixed"]).ok();
    assert_eq!(api.ip("fixed", "vswitch01"), "172.16.2.7");
    let addr =
        cluster.cnet(&["exec", "fixed", "--", "ip", "-o", "-4", "addr", "show", "eth0"]).ok();
    assert!(addr.contains("172.16.2.7/16"), "{addr}");
}

#[test]
fn a_process_that_ends_by_itself_is_cleaned_up_like_a_stop() {
    let cluster = Cluster::start();
    let api = cluster.api();
    cluster.cnet(&["run", "-d", "--name", "brief", "--", "sh", "-c", "sleep 0.5; exit 3"]).ok();
    let container = eventually("the container to exit", 20, || {
        let container = api.container("brief");
        (container.state == cnet_proto::gateway::v1::ContainerState::Exited as i32)
            .then_some(container)
    });
    assert_eq!(container.exit_code, 3);
    assert_eq!(container.networks["bridge"].ip_address, "");
    let veths = cluster.sh("ip -o link show type veth").ok();
    assert!(veths.trim().is_empty(), "its veth is gone: {veths}");
}

#[test]
fn foreground_run_prints_output_and_returns_the_exit_code() {
    let cluster = Cluster::start();
    let run = cluster.cnet(&[
        "run",
        "--name",
        "hello",
        "--",
        "sh",
        "-c",
        "echo hello from $(hostname); exit 7",
    ]);
    assert_eq!(run.code, 7, "{run:#?}");
    assert!(run.stdout.contains("hello from "), "{run:#?}");
    let logs = cluster.cnet(&["logs", "hello"]).ok();
    assert!(logs.contains("hello from"), "{logs}");
}

#[test]
fn remove_refuses_a_running_container_and_force_leaves_nothing() {
    let cluster = Cluster::start();
    cluster.cnet(&["run", "-d", "--name", "busy"]).ok();
    let error = cluster.cnet(&["rm", "busy"]).err();
    assert!(error.contains("cannot remove a running container"), "{error}");
    cluster.cnet(&["rm", "-f", "busy"]).ok();
    let all = cluster.cnet(&["ps", "-a"]).ok();
    assert!(!all.contains("busy"), "{all}");
    let veths = cluster.sh("ip -o link show type veth").ok();
    assert!(veths.trim().is_empty(), "{veths}");
    let netns = cluster
        .sh(&format!("ls {}/netns 2>/dev/null || true", cluster.runtime_dir().display()))
        .ok();
    assert!(netns.trim().is_empty(), "no namespace file is left: {netns}");
    let error = cluster.cnet(&["rm", "busy"]).err();
    assert!(error.contains("No such container: busy"), "{error}");
}

#[test]
fn a_connect_that_fails_part_way_takes_back_the_names_and_files_it_gave() {
    // dns and hosts learn of a new network while its veth pair is being made: when that
    // fails (here the network's bridge is gone from under the bridge agent), they must
    // forget it again, and the container keeps the networks it had.
    let cluster = Cluster::start();
    cluster.lab_network();
    cluster
        .cnet(&[
            "network",
            "create",
            "--subnet",
            "10.88.0.0/24",
            "-o",
            "bridge_name=br-gone",
            "gone",
        ])
        .ok();
    cluster.cnet(&["run", "-d", "--name", "web", "--network", "vswitch01"]).ok();
    cluster.cnet(&["run", "-d", "--name", "peer", "--network", "gone"]).ok();
    let hosts_before = cluster.cnet(&["exec", "web", "--", "cat", "/etc/hosts"]).ok();
    cluster.sh("ip link del br-gone").ok();

    let refused = cluster.cnet(&["network", "connect", "gone", "web"]).err();
    assert!(refused.contains("br-gone") || refused.contains("bridge"), "{refused}");

    let hosts_after = cluster.cnet(&["exec", "web", "--", "cat", "/etc/hosts"]).ok();
    assert_eq!(hosts_after, hosts_before, "the hosts file shows the failed network");
    assert!(!hosts_after.contains("10.88.0."), "{hosts_after}");
    let resolved = cluster.cnet(&["exec", "peer", "--", "getent", "hosts", "web"]);
    assert_ne!(resolved.code, 0, "peer still resolves web: {resolved:?}");
    let web = cluster.api().container("web");
    assert_eq!(web.networks.keys().collect::<Vec<_>>(), ["vswitch01"]);
    let links = cluster.cnet(&["exec", "web", "--", "ip", "-o", "link"]).ok();
    assert!(!links.contains("eth1"), "{links}");
}
