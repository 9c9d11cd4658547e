//! NAT and port publishing through the nat service: a server in a container reached via
//! published ports (proxy, DNAT, hairpin), UDP, random ports, conflicts, isolation
//! between networks, `--internal`, and rules that follow the state (PUB-1 to PUB-9,
//! ISO-1 to ISO-3, INT-1), each with the iptables and the nftables backend.

use cnet_tests::{Cluster, eventually};

/// A fetch with python's standard library, so no extra package is needed.
const FETCH: &str = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip())";

/// Starts a container serving `body` over HTTP on port 80, publishing `ports`.
fn web(cluster: &Cluster, name: &str, body: &str, extra: &[&str]) {
    let dir = cluster.dir.path().join(format!("www-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), body).unwrap();
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    let dir = dir.display().to_string();
    args.extend_from_slice(&["--", "python3", "-m", "http.server", "80", "--directory", &dir]);
    cluster.cnet(&args).ok();
    eventually("the web server to listen", 10, || {
        let listening = cluster.cnet(&["exec", name, "--", "sh", "-c", "ss -ltn | grep -q ':80 '"]);
        (listening.code == 0).then_some(())
    });
}

fn fetch_from_host(cluster: &Cluster, url: &str) -> String {
    cluster.sh(&format!("python3 -c '{FETCH}' {url}")).ok().trim().to_owned()
}

fn fetch_from(cluster: &Cluster, container: &str, url: &str) -> String {
    cluster.cnet(&["exec", container, "--", "python3", "-c", FETCH, url]).ok().trim().to_owned()
}

/// The nat service's two firewall backends; every test here runs with both.
#[derive(Clone, Copy)]
enum Backend {
    Iptables,
    Nftables,
}

impl Backend {
    fn cluster(self) -> Cluster {
        let name = match self {
            Self::Iptables => "iptables",
            Self::Nftables => "nftables",
        };
        Cluster::start_with_env(&[("CNET_NAT__FIREWALL", name)])
    }

    /// cnet's rules as the kernel lists them, without counters.
    fn rules(self, cluster: &Cluster) -> String {
        let command = match self {
            Self::Iptables => "iptables-save | grep -v '^#' | sed 's/\\[[0-9:]*\\]//'",
            Self::Nftables => "nft list table ip cnet",
        };
        cluster.sh(command).ok()
    }

    fn dnat_to(self, address: &str) -> String {
        match self {
            Self::Iptables => format!("--to-destination {address}"),
            Self::Nftables => format!("dnat to {address}"),
        }
    }

    /// Whether some rule masquerades traffic from `subnet`.
    fn masquerades(self, rules: &str, subnet: &str) -> bool {
        rules.lines().any(|l| l.contains(subnet) && l.to_lowercase().contains("masquerade"))
    }

    /// What someone else's "cleanup" might do to cnet's rules.
    fn wipe(self) -> &'static str {
        match self {
            Self::Iptables => "iptables -t nat -F CNET && iptables -F CNET-FORWARD",
            Self::Nftables => "nft flush table ip cnet",
        }
    }
}

/// One `#[test]` per backend for each scenario.
macro_rules! with_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod iptables {
            $(#[test] fn $scenario() { super::$scenario(super::Backend::Iptables) })*
        }
        mod nftables {
            $(#[test] fn $scenario() { super::$scenario(super::Backend::Nftables) })*
        }
    };
}

with_both_backends!(
    a_published_port_is_reached_from_the_host_and_from_peers,
    udp_random_and_loopback_only_ports,
    a_port_in_use_is_refused_and_nothing_is_left,
    networks_are_isolated_and_internal_ones_have_no_way_out,
    rules_survive_kill_9_of_the_nat_service_and_come_back_after_a_flush,
);

fn a_published_port_is_reached_from_the_host_and_from_peers(backend: Backend) {
    let cluster = backend.cluster();
    // A non-loopback address of the "host".
    cluster.sh("ip link add hostnic type bridge && ip addr add 10.200.0.1/24 dev hostnic && ip link set hostnic up").ok();
    web(&cluster, "web", "hello-F1", &["-p", "8080:80"]);
    let gateway = cluster.api().network("bridge").gateway;

    assert_eq!(fetch_from_host(&cluster, "http://127.0.0.1:8080/"), "hello-F1");
    assert_eq!(fetch_from_host(&cluster, "http://10.200.0.1:8080/"), "hello-F1");
    assert_eq!(fetch_from_host(&cluster, &format!("http://{gateway}:8080/")), "hello-F1");
    cluster.cnet(&["run", "-d", "--name", "peer"]).ok();
    assert_eq!(fetch_from(&cluster, "peer", &format!("http://{gateway}:8080/")), "hello-F1");
    assert_eq!(fetch_from(&cluster, "peer", "http://10.200.0.1:8080/"), "hello-F1");
    assert_eq!(
        fetch_from(&cluster, "web", &format!("http://{gateway}:8080/")),
        "hello-F1",
        "hairpin"
    );
    assert_eq!(cluster.cnet(&["port", "web"]).ok(), "80/tcp -> 0.0.0.0:8080\n");

    let ip = cluster.api().ip("web", "bridge");
    assert!(
        backend.rules(&cluster).contains(&backend.dnat_to(&format!("{ip}:80"))),
        "DNAT (PUB-3)"
    );
    cluster.cnet(&["rm", "-f", "web"]).ok();
    assert!(
        !backend.rules(&cluster).contains(&ip),
        "no rule left after rm: {}",
        backend.rules(&cluster)
    );
    let refused = cluster
        .sh("python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 8080), 2)'");
    assert_ne!(refused.code, 0, "the proxy is gone with the container");
}

fn udp_random_and_loopback_only_ports(backend: Backend) {
    let cluster = backend.cluster();
    let echo = "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 53))\nwhile True:\n    data, peer = s.recvfrom(512); s.sendto(data, peer)";
    cluster
        .cnet(&["run", "-d", "--name", "echo", "-p", "5300:53/udp", "--", "python3", "-c", echo])
        .ok();
    let ask = "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3); s.sendto(b'ping', ('127.0.0.1', 5300)); print(s.recvfrom(512)[0].decode())";
    let answer = eventually("the UDP echo through the proxy", 10, || {
        let run = cluster.sh(&format!("python3 -c \"{ask}\""));
        (run.code == 0).then_some(run.stdout)
    });
    assert_eq!(answer.trim(), "ping");
    assert_eq!(cluster.cnet(&["port", "echo"]).ok(), "53/udp -> 0.0.0.0:5300\n");

    web(&cluster, "random", "hello-random", &["-p", "80"]);
    let port = cluster.cnet(&["port", "random"]).ok();
    let host_port: u32 = port.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert!((32768..=60999).contains(&host_port), "ephemeral range (PUB-6): {port}");
    assert_eq!(
        fetch_from_host(&cluster, &format!("http://127.0.0.1:{host_port}/")),
        "hello-random"
    );

    web(&cluster, "local", "hello-local", &["-p", "127.0.0.1:8081:80"]);
    assert_eq!(fetch_from_host(&cluster, "http://127.0.0.1:8081/"), "hello-local");
    let gateway = cluster.api().network("bridge").gateway;
    let elsewhere = cluster.sh(&format!("python3 -c '{FETCH}' http://{gateway}:8081/"));
    assert_ne!(elsewhere.code, 0, "bound to 127.0.0.1 only (PUB-5)");
}

fn a_port_in_use_is_refused_and_nothing_is_left(backend: Backend) {
    let cluster = backend.cluster();
    web(&cluster, "first", "first", &["-p", "8080:80"]);
    let before = (backend.rules(&cluster), cluster.cnet(&["ps", "-a", "-q", "--no-trunc"]).ok());
    let error = cluster.cnet(&["run", "-d", "--name", "second", "-p", "8080:80"]).err();
    assert!(error.contains("Bind for 0.0.0.0:8080 failed: port is already allocated"), "{error}");
    assert!(
        error.contains("driver failed programming external connectivity on endpoint second"),
        "{error}"
    );
    assert_eq!(
        (backend.rules(&cluster), cluster.cnet(&["ps", "-a", "-q", "--no-trunc"]).ok()),
        before
    );

    // A port some other program holds.
    let holder = "import socket, time; s = socket.socket(); s.bind(('0.0.0.0', 8095)); s.listen(); time.sleep(600)";
    cluster.spawn_background("python3", &["-c".into(), holder.into()]);
    eventually("the other program to listen", 10, || {
        (cluster.sh("ss -ltn | grep -q ':8095 '").code == 0).then_some(())
    });
    let error = cluster.cnet(&["run", "-d", "--name", "third", "-p", "8095:80"]).err();
    assert!(error.contains("address already in use"), "{error}");
    assert_eq!(
        (backend.rules(&cluster), cluster.cnet(&["ps", "-a", "-q", "--no-trunc"]).ok()),
        before
    );
    let error = cluster.cnet(&["run", "-d", "-p", "8085-8087:80-81"]).err();
    assert!(error.contains("invalid ranges specified for container and host Ports"), "{error}");
}

fn networks_are_isolated_and_internal_ones_have_no_way_out(backend: Backend) {
    let cluster = backend.cluster();
    let api = cluster.api();
    cluster.cnet(&["network", "create", "--subnet", "10.81.0.0/24", "neta"]).ok();
    cluster.cnet(&["network", "create", "--subnet", "10.82.0.0/24", "netb"]).ok();
    cluster.cnet(&["network", "create", "--subnet", "10.83.0.0/24", "--internal", "closed"]).ok();
    for (name, network) in
        [("a1", "neta"), ("a2", "neta"), ("b1", "netb"), ("i1", "closed"), ("i2", "closed")]
    {
        cluster.cnet(&["run", "-d", "--name", name, "--network", network]).ok();
    }
    let ping = |from: &str, to: &str| {
        cluster
            .cnet(&[
                "exec",
                from,
                "--",
                "ping",
                "-c1",
                "-W1",
                &api.ip(to, &api.container(to).network_mode),
            ])
            .code
    };
    assert_eq!(cluster.sh("cat /proc/sys/net/ipv4/ip_forward").ok().trim(), "1");
    assert_eq!(ping("a1", "a2"), 0, "same network");
    assert_ne!(ping("a1", "b1"), 0, "ISO-1");
    assert_ne!(ping("b1", "a1"), 0, "ISO-1");
    assert_eq!(ping("i1", "i2"), 0, "internal networks still talk inside");
    assert_ne!(ping("i1", "a1"), 0, "INT-1");
    assert_ne!(ping("a1", "i1"), 0, "INT-1");
    let current = backend.rules(&cluster);
    assert!(backend.masquerades(&current, "10.81.0.0/24"), "{current}");
    assert!(
        !backend.masquerades(&current, "10.83.0.0/24"),
        "no masquerade for an internal network: {current}"
    );

    cluster.cnet(&["rm", "-f", "b1"]).ok();
    cluster.cnet(&["network", "rm", "netb"]).ok();
    assert!(!backend.rules(&cluster).contains("10.82.0.0/24"), "rules go with the network");
}

fn rules_survive_kill_9_of_the_nat_service_and_come_back_after_a_flush(backend: Backend) {
    let cluster = backend.cluster();
    cluster.cnet(&["network", "create", "--subnet", "10.84.0.0/24", "netc"]).ok();
    web(&cluster, "web", "hello-again", &["--network", "netc", "-p", "8080:80"]);
    let before = backend.rules(&cluster);
    let pids = cluster.pids_of("cnet-nat");
    assert_eq!(cluster.kill9("cnet-nat"), 1);
    eventually("nat to come back", 20, || {
        let now = cluster.pids_of("cnet-nat");
        (now.len() == 1 && now != pids).then_some(())
    });
    eventually("the proxy to listen again", 20, || {
        let run = cluster.sh(&format!("python3 -c '{FETCH}' http://127.0.0.1:8080/"));
        (run.code == 0).then_some(())
    });
    assert_eq!(backend.rules(&cluster), before, "a restart adds and drops nothing");

    cluster.sh(backend.wipe()).ok();
    eventually("the rules to be restored", 30, || {
        (backend.rules(&cluster) == before).then_some(())
    });
}
