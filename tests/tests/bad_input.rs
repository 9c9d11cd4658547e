//! Every bad input is refused with a clear message and leaves no trace: no network, no
//! container, no address, no kernel object (NET-9 to NET-13).

use cnet_tests::Cluster;

/// Everything a failed call could have left behind.
fn snapshot(cluster: &Cluster) -> String {
    let networks = cluster.cnet(&["network", "ls", "--format", "json"]).ok();
    let containers = cluster.cnet(&["ps", "-a", "--format", "json"]).ok();
    let links = cluster.sh("ip -o link show | awk -F': ' '{print $2}' | sort").ok();
    let netns =
        cluster.sh(&format!("ls {}/netns 2>/dev/null; true", cluster.runtime_dir().display())).ok();
    format!("{networks}\n{containers}\n{links}\n{netns}")
}

#[track_caller]
fn refused(cluster: &Cluster, args: &[&str], message: &str) {
    let before = snapshot(cluster);
    let error = cluster.cnet(args).err();
    assert!(
        error.contains(message),
        "`cnet {}` said {error:?}, expected {message:?}",
        args.join(" ")
    );
    assert_eq!(snapshot(cluster), before, "`cnet {}` left something behind", args.join(" "));
}

#[test]
fn network_create_refuses_bad_input() {
    let cluster = Cluster::start();
    cluster.cnet(&["network", "create", "--subnet", "10.123.0.0/16", "taken"]).ok();
    fn create<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["network", "create"];
        args.extend_from_slice(extra);
        args
    }
    let cases: &[(&[&str], &str)] = &[
        (&["--subnet", "10.123.1.0/24", "n1"], "overlaps with other one on this address space"),
        (&["--subnet", "10.0.0.0/8", "n1"], "overlaps with other one on this address space"),
        (
            &["--subnet", "10.124.1.0/24", "--gateway", "10.124.2.1", "n1"],
            "no matching subnet for gateway 10.124.2.1",
        ),
        (
            &["--subnet", "10.124.1.0/24", "--ip-range", "10.124.2.0/24", "n1"],
            "no matching subnet for range 10.124.2.0/24",
        ),
        (
            &["--subnet", "10.124.1.0/24", "--ip-range", "10.124.0.0/16", "n1"],
            "no matching subnet for range 10.124.0.0/16",
        ),
        (
            &["--gateway", "10.124.1.1", "n1"],
            "every ip-range or gateway must have a corresponding subnet",
        ),
        (
            &["--ip-range", "10.124.1.0/24", "n1"],
            "every ip-range or gateway must have a corresponding subnet",
        ),
        (&["--subnet", "10.124.1.0/33", "n1"], "invalid CIDR address: 10.124.1.0/33"),
        (&["--subnet", "10.300.1.0/24", "n1"], "invalid CIDR address: 10.300.1.0/24"),
        (&["--subnet", "foo", "n1"], "invalid CIDR address: foo"),
        (&["--subnet", "10.124.1.0", "n1"], "invalid CIDR address: 10.124.1.0"),
        (
            &["--subnet", "10.124.1.0/24", "--gateway", "10.124.1.0", "n1"],
            "failed to allocate gateway (10.124.1.0): Address already in use",
        ),
        (
            &["--subnet", "10.124.1.0/24", "--gateway", "10.124.1.255", "n1"],
            "failed to allocate gateway (10.124.1.255): Address already in use",
        ),
        (&["--subnet", "10.125.0.0/16", "taken"], "network with name taken already exists"),
        (&["bad/name"], "invalid network name"),
        (&["--driver", "overlay", "n1"], "only the \"bridge\" driver is supported"),
        (&["-o", "com.docker.network.driver.mtu=12", "n1"], "invalid mtu"),
    ];
    for (extra, message) in cases {
        refused(&cluster, &create(extra), message);
    }
}

#[test]
fn network_remove_refuses_what_docker_refuses() {
    let cluster = Cluster::start();
    cluster.cnet(&["network", "create", "--subnet", "10.123.9.0/24", "busy"]).ok();
    cluster.cnet(&["run", "-d", "--name", "c1", "--network", "busy"]).ok();
    refused(&cluster, &["network", "rm", "busy"], "has active endpoints");
    refused(
        &cluster,
        &["network", "rm", "bridge"],
        "bridge is a pre-defined network and cannot be removed",
    );
    refused(&cluster, &["network", "rm", "nosuchnet"], "network nosuchnet not found");
    // With only stopped containers the network can go (NET-11); they cannot start then.
    cluster.cnet(&["stop", "c1"]).ok();
    cluster.cnet(&["network", "rm", "busy"]).ok();
    let error = cluster.cnet(&["start", "c1"]).err();
    assert!(error.contains("not found"), "{error}");
    let links = cluster.sh("ip -o link show type bridge").ok();
    assert!(!links.contains("br-"), "the bridge went with the network: {links}");
}

#[test]
fn run_refuses_bad_input_and_leaves_nothing() {
    let cluster = Cluster::start();
    cluster.cnet(&["network", "create", "--subnet", "10.123.9.0/29", "small"]).ok();
    cluster.cnet(&["network", "create", "autonet"]).ok();
    cluster.cnet(&["run", "-d", "--name", "first", "--network", "small"]).ok();
    let first_id = cluster.api().container("first").id;
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "-d", "--name", "first"],
            &format!("The container name \"/first\" is already in use by container \"{first_id}\""),
        ),
        (&["run", "-d", "--network", "nosuchnet"], "network nosuchnet not found"),
        (&["run", "-d", "--name", "x"], "Invalid container name (x)"),
        (&["run", "-d", "--hostname", "bad_host", "--name", "c2"], "invalid hostname"),
        (
            &["run", "-d", "--network", "small", "--ip", "300.1.1.1"],
            "invalid IPv4 address: 300.1.1.1",
        ),
        (&["run", "-d", "--network", "small", "--ip", "10.123.9.2"], "Address already in use"),
        (&["run", "-d", "--network", "small", "--ip", "10.123.9.1"], "Address already in use"),
        (
            &["run", "-d", "--network", "small", "--ip", "10.9.9.9"],
            "Invalid address 10.9.9.9: It does not belong to any of this network's subnets",
        ),
        (
            &["run", "-d", "--network", "autonet", "--ip", "172.18.0.9"],
            "user specified IP address is supported only when connecting to networks with user configured subnets",
        ),
        (
            &["run", "-d", "--ip", "172.17.0.9"],
            "user specified IP address is supported on user defined networks only",
        ),
        (
            &["run", "-d", "--name", "nocmd", "--", "/nonexistent/program"],
            "executable file not found",
        ),
    ];
    for (args, message) in cases {
        refused(&cluster, args, message);
    }

    // A /29 holds exactly five containers (.2 to .6, NET-3); the sixth is refused.
    for name in ["s2", "s3", "s4", "s5"] {
        cluster.cnet(&["run", "-d", "--name", name, "--network", "small"]).ok();
    }
    refused(
        &cluster,
        &["run", "-d", "--name", "s6", "--network", "small"],
        "no available IPv4 addresses on this network's address pools: small",
    );
    // Once one stops, its address is free again.
    cluster.cnet(&["stop", "s3"]).ok();
    cluster.cnet(&["run", "-d", "--name", "s6", "--network", "small"]).ok();
    assert_eq!(cluster.api().ip("s6", "small"), "10.123.9.4");
}
