//! Embedded DNS: containers on user-defined networks find each other by name through
//! 127.0.0.11 inside their own namespace; everything else is forwarded upstream
//! (DNS-1 to DNS-7, FILE-2, BR0-2).

use cnet_tests::{Cluster, eventually};

fn dig(cluster: &Cluster, container: &str, query: &[&str]) -> String {
    let mut args =
        vec!["exec", container, "--", "dig", "@127.0.0.11", "+short", "+tries=1", "+time=3"];
    args.extend_from_slice(query);
    cluster.cnet(&args).ok()
}

fn status(cluster: &Cluster, container: &str, name: &str) -> String {
    let out = cluster
        .cnet(&["exec", container, "--", "dig", "@127.0.0.11", "+tries=1", "+time=3", name])
        .ok();
    let status = out.split("status: ").nth(1).and_then(|s| s.split(',').next());
    status.unwrap_or("none").to_owned()
}

#[test]
fn containers_on_a_user_network_reach_each_other_by_name() {
    let cluster = Cluster::start();
    cluster.lab();
    cluster.cnet(&["exec", "centos2", "--", "ping", "-c1", "-W2", "centos1"]).ok();
    let hosts = cluster.cnet(&["exec", "centos1", "--", "getent", "hosts", "centos2"]).ok();
    assert!(hosts.starts_with("172.16.1.2"), "{hosts}");
    let resolv = cluster.cnet(&["exec", "centos2", "--", "cat", "/etc/resolv.conf"]).ok();
    assert_eq!(resolv, "search lab.test\nnameserver 127.0.0.11\noptions ndots:0\n", "FILE-2");
    let etc_hosts = cluster.cnet(&["exec", "centos2", "--", "cat", "/etc/hosts"]).ok();
    assert!(!etc_hosts.contains("centos1"), "nobody edited a hosts file: {etc_hosts}");

    // Case-insensitive, name.network, short id, PTR (DNS-2, DNS-4); TCP too (DNS-1).
    assert_eq!(dig(&cluster, "centos2", &["CENTOS1"]).trim(), "172.16.1.0");
    assert_eq!(dig(&cluster, "centos2", &["centos1.vswitch01"]).trim(), "172.16.1.0");
    let short_id = &cluster.api().container("centos1").id[..12];
    assert_eq!(dig(&cluster, "centos2", &[short_id]).trim(), "172.16.1.0");
    assert_eq!(dig(&cluster, "centos2", &["-x", "172.16.1.0"]).trim(), "centos1.vswitch01.");
    assert_eq!(dig(&cluster, "centos2", &["+tcp", "centos1"]).trim(), "172.16.1.0");
    assert_eq!(
        dig(&cluster, "centos2", &["AAAA", "centos1"]).trim(),
        "",
        "known name, no AAAA: empty NOERROR"
    );
}

#[test]
fn names_are_scoped_to_the_networks_a_container_shares() {
    let cluster = Cluster::start();
    let upstream = cluster.upstream_dns(&["upstream.test=10.9.9.9"]);
    cluster.lab();
    cluster.cnet(&["network", "create", "--subnet", "10.88.0.0/24", "other"]).ok();
    cluster.cnet(&["run", "-d", "--name", "centos9", "--network", "other"]).ok();

    assert_eq!(status(&cluster, "centos9", "centos1"), "NXDOMAIN");
    assert_eq!(status(&cluster, "centos1", "centos9"), "NXDOMAIN");
    let forwarded = std::fs::read_to_string(&upstream).unwrap();
    assert!(forwarded.contains("centos1 1"), "unknown names go upstream (DNS-6): {forwarded}");

    // A container on both networks resolves both; a disconnect takes the name away.
    cluster.cnet(&["network", "connect", "other", "centos2"]).ok();
    assert_eq!(dig(&cluster, "centos2", &["centos9"]).trim(), "10.88.0.2");
    assert_eq!(
        dig(&cluster, "centos9", &["centos2"]).trim(),
        "10.88.0.3",
        "its address on the shared network"
    );
    cluster.cnet(&["network", "disconnect", "other", "centos2"]).ok();
    assert_eq!(status(&cluster, "centos9", "centos2"), "NXDOMAIN");

    // A stopped container's name is gone (DNS-2).
    cluster.cnet(&["stop", "centos1"]).ok();
    assert_eq!(status(&cluster, "centos2", "centos1"), "NXDOMAIN");
}

#[test]
fn everything_else_is_forwarded_with_the_upstreams_answer() {
    let cluster = Cluster::start();
    let upstream = cluster.upstream_dns(&["upstream.test=10.9.9.9"]);
    cluster.lab();
    assert_eq!(dig(&cluster, "centos1", &["upstream.test"]).trim(), "10.9.9.9");
    let hosts = cluster.cnet(&["exec", "centos1", "--", "getent", "hosts", "upstream.test"]).ok();
    assert!(hosts.starts_with("10.9.9.9"), "{hosts}");
    assert_eq!(status(&cluster, "centos1", "nosuchname.test"), "NXDOMAIN");
    assert_eq!(status(&cluster, "centos1", "servfail.test"), "SERVFAIL");
    let log = std::fs::read_to_string(&upstream).unwrap();
    assert!(log.contains("nosuchname.test 1") && log.contains("servfail.test 1"), "{log}");
}

#[test]
fn a_shared_alias_answers_every_member() {
    let cluster = Cluster::start();
    cluster.lab();
    for name in ["web1", "web2"] {
        cluster
            .cnet(&[
                "run",
                "-d",
                "--name",
                name,
                "--network",
                "vswitch01",
                "--network-alias",
                "web",
            ])
            .ok();
    }
    let mut answers: Vec<String> =
        dig(&cluster, "centos1", &["web"]).lines().map(str::to_owned).collect();
    answers.sort();
    assert_eq!(answers, ["172.16.1.3", "172.16.1.4"]);
    let orders: std::collections::HashSet<String> =
        (0..12).map(|_| dig(&cluster, "centos1", &["web"])).collect();
    assert!(orders.len() > 1, "the order is shuffled between queries (DNS-5): {orders:?}");
    let error = cluster.cnet(&["run", "-d", "--network-alias", "web"]).err();
    assert!(error.contains("only supported for user-defined networks"), "{error}");
}

#[test]
fn the_default_bridge_has_no_embedded_dns() {
    let cluster = Cluster::start();
    cluster.cnet(&["run", "-d", "--name", "plain"]).ok();
    let resolv = cluster.cnet(&["exec", "plain", "--", "cat", "/etc/resolv.conf"]).ok();
    assert_eq!(resolv, cnet_tests::HOST_RESOLV_CONF, "the host's file (FILE-3)");
    let out = cluster.cnet(&[
        "exec",
        "plain",
        "--",
        "dig",
        "@127.0.0.11",
        "+tries=1",
        "+time=1",
        "plain",
    ]);
    assert!(!out.stdout.contains("status: NOERROR"), "nothing answers on 127.0.0.11: {out:?}");
}

#[test]
fn kill_9_of_the_dns_service_loses_no_name() {
    let cluster = Cluster::start();
    cluster.lab();
    assert_eq!(dig(&cluster, "centos2", &["centos1"]).trim(), "172.16.1.0");
    let before = cluster.pids_of("cnet-dns");
    assert_eq!(cluster.kill9("cnet-dns"), 1);
    eventually("dns to come back", 20, || {
        let now = cluster.pids_of("cnet-dns");
        (now.len() == 1 && now != before).then_some(())
    });
    eventually("centos1 to resolve again", 20, || {
        let out = cluster.cnet(&[
            "exec",
            "centos2",
            "--",
            "dig",
            "@127.0.0.11",
            "+short",
            "+tries=1",
            "+time=1",
            "centos1",
        ]);
        (out.stdout.trim() == "172.16.1.0").then_some(())
    });
}

#[test]
fn containers_only_on_internal_networks_get_no_forwarding() {
    let cluster = Cluster::start();
    let upstream = cluster.upstream_dns(&["upstream.test=10.9.9.9"]);
    cluster.cnet(&["network", "create", "--internal", "--subnet", "10.89.0.0/24", "sealed"]).ok();
    cluster.cnet(&["run", "-d", "--name", "inside", "--network", "sealed"]).ok();
    cluster.cnet(&["run", "-d", "--name", "peer", "--network", "sealed"]).ok();

    // Names of the network still resolve; everything else stays inside.
    assert_eq!(dig(&cluster, "inside", &["peer"]).trim(), "10.89.0.3");
    assert_eq!(status(&cluster, "inside", "upstream.test"), "NXDOMAIN");
    let log = std::fs::read_to_string(&upstream).unwrap();
    assert!(!log.contains("upstream.test"), "nothing is forwarded for a sealed container: {log}");

    // A container with a way out (another, non-internal network) is forwarded as usual.
    cluster.cnet(&["network", "create", "--subnet", "10.90.0.0/24", "open"]).ok();
    cluster.cnet(&["network", "connect", "open", "peer"]).ok();
    assert_eq!(dig(&cluster, "peer", &["upstream.test"]).trim(), "10.9.9.9");
}
