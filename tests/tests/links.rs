//! Legacy links and the files the hosts service keeps: step 7 of the seed lab (LINK-1 to
//! LINK-4, DNS-7) and the three resolv.conf flavours with the --dns flags (FILE-1 to
//! FILE-3).

use cnet_tests::{Cluster, HOST_RESOLV_CONF};

fn file(cluster: &Cluster, container: &str, path: &str) -> String {
    cluster.cnet(&["exec", container, "--", "cat", path]).ok()
}

#[test]
fn a_link_follows_the_target_across_restarts() {
    let cluster = Cluster::start();
    let api = cluster.api();
    cluster.cnet(&["run", "-d", "--name", "centos1", "--hostname", "centos1"]).ok();
    cluster
        .cnet(&["run", "-d", "--name", "centos3", "--hostname", "centos3", "--link", "centos1"])
        .ok();
    let old = api.ip("centos1", "bridge");
    let hosts = file(&cluster, "centos3", "/etc/hosts");
    let lines: Vec<&str> = hosts.lines().collect();
    // `<ip>\t<alias> <target hostname>`; the name is left out when it equals the alias.
    assert_eq!(lines[6], format!("{old}\tcentos1 centos1"), "LINK-1: {hosts}");
    assert_eq!(lines[7], format!("{}\tcentos3", api.ip("centos3", "bridge")), "own line last");
    assert!(!file(&cluster, "centos1", "/etc/hosts").contains("centos3"), "links are one-way");
    let centos3 = api.container("centos3");
    assert_eq!(centos3.links, ["/centos1:/centos3/centos1"]);
    assert!(centos3.env.contains(&"CENTOS1_NAME=/centos3/centos1".to_owned()), "{:?}", centos3.env);

    // centos1 stops, another container takes its address, centos1 comes back elsewhere.
    cluster.cnet(&["stop", "centos1"]).ok();
    cluster.cnet(&["run", "-d", "--name", "centos6"]).ok();
    assert_eq!(api.ip("centos6", "bridge"), old);
    cluster.cnet(&["start", "centos1"]).ok();
    let new = api.ip("centos1", "bridge");
    assert_ne!(new, old);
    let hosts = file(&cluster, "centos3", "/etc/hosts");
    assert!(hosts.contains(&format!("{new}\tcentos1 centos1\n")), "rewritten in place: {hosts}");
    let ping = cluster.cnet(&["exec", "centos3", "--", "ping", "-c1", "-W2", "centos1"]).ok();
    assert!(ping.contains(&new), "{ping}");

    // A removed target's line goes.
    cluster.cnet(&["rm", "-f", "centos1"]).ok();
    assert!(!file(&cluster, "centos3", "/etc/hosts").contains("centos1"));
}

#[test]
fn an_alias_link_names_alias_hostname_and_name_and_passes_variables() {
    let cluster = Cluster::start();
    let api = cluster.api();
    cluster.cnet(&["run", "-d", "--name", "centos4", "--hostname", "dbhost", "-e", "FOO=bar"]).ok();
    cluster
        .cnet(&[
            "run",
            "-d",
            "--name",
            "centos5",
            "--link",
            "centos4:db",
            "--",
            "sh",
            "-c",
            "env; sleep infinity",
        ])
        .ok();
    let hosts = file(&cluster, "centos5", "/etc/hosts");
    assert!(
        hosts.contains(&format!("{}\tdb dbhost centos4\n", api.ip("centos4", "bridge"))),
        "{hosts}"
    );
    let logs = cluster.cnet(&["logs", "centos5"]).ok();
    for variable in ["DB_NAME=/centos5/db", "DB_ENV_FOO=bar"] {
        assert!(logs.lines().any(|l| l == variable), "{variable} in the process env: {logs}");
    }
    // `exec` runs with the container's environment, as `docker exec` does.
    let env = cluster.cnet(&["exec", "-e", "EXTRA=1", "centos5", "--", "env"]).ok();
    for variable in ["DB_NAME=/centos5/db", "HOME=/root", "EXTRA=1"] {
        assert!(env.lines().any(|l| l == variable), "{variable} in exec's env: {env}");
    }
    assert!(!env.contains("CNET_RUNTIME_DIR"), "not the CLI's environment: {env}");
}

#[test]
fn links_are_refused_as_docker_refuses_them() {
    let cluster = Cluster::start();
    cluster.cnet(&["network", "create", "--subnet", "10.90.0.0/24", "userdef"]).ok();
    cluster.cnet(&["run", "-d", "--name", "centosUD", "--network", "userdef"]).ok();
    cluster.cnet(&["run", "-d", "--name", "centos6"]).ok();
    cluster.cnet(&["stop", "centos6"]).ok();
    let cases = [
        ("nosuchctr", "could not get container for nosuchctr: No such container: nosuchctr"),
        ("centos6", "Cannot link to a non running container: /centos6 AS /linker/centos6"),
        ("centosUD", "Cannot link to /centosUD, as it does not belong to the default network"),
    ];
    for (target, message) in cases {
        let error = cluster.cnet(&["run", "-d", "--name", "linker", "--link", target]).err();
        assert!(error.contains(message), "{error}");
    }
    let all = cluster.cnet(&["ps", "-a"]).ok();
    assert!(!all.contains("linker"), "nothing left behind: {all}");
}

#[test]
fn on_a_user_network_a_link_is_a_name_only_the_linker_resolves() {
    let cluster = Cluster::start();
    cluster.upstream_dns(&[]);
    cluster.cnet(&["network", "create", "--subnet", "10.91.0.0/24", "userdef"]).ok();
    cluster.cnet(&["run", "-d", "--name", "target", "--network", "userdef"]).ok();
    cluster
        .cnet(&["run", "-d", "--name", "linker", "--network", "userdef", "--link", "target:db"])
        .ok();
    cluster.cnet(&["run", "-d", "--name", "other", "--network", "userdef"]).ok();
    let dig = |container: &str| {
        cluster
            .cnet(&[
                "exec",
                container,
                "--",
                "dig",
                "@127.0.0.11",
                "+short",
                "+tries=1",
                "+time=2",
                "db",
            ])
            .ok()
    };
    assert_eq!(dig("linker").trim(), "10.91.0.2");
    assert_eq!(dig("other").trim(), "", "DNS-7");
    // A word, not a substring: the container's hostname is 12 hex digits of its id.
    let hosts = file(&cluster, "linker", "/etc/hosts");
    assert!(
        !hosts.split_whitespace().any(|word| word == "db"),
        "no hosts line on user networks: {hosts}"
    );
}

#[test]
fn add_host_and_dns_flags_shape_the_files() {
    let cluster = Cluster::start();
    cluster.cnet(&["network", "create", "--subnet", "10.92.0.0/24", "userdef"]).ok();
    cluster
        .cnet(&[
            "run",
            "-d",
            "--name",
            "flags",
            "--add-host",
            "db.example:10.1.2.3",
            "--dns",
            "10.0.0.1",
            "--dns-search",
            "corp.example",
            "--dns-option",
            "ndots:2",
        ])
        .ok();
    let hosts = file(&cluster, "flags", "/etc/hosts");
    assert!(hosts.contains("10.1.2.3\tdb.example\n"), "{hosts}");
    assert_eq!(
        file(&cluster, "flags", "/etc/resolv.conf"),
        "search corp.example\nnameserver 10.0.0.1\noptions ndots:2\n"
    );
    // The three flavours: user network (embedded DNS), default bridge and none (host's file).
    cluster
        .cnet(&["run", "-d", "--name", "onuser", "--network", "userdef", "--dns", "10.0.0.1"])
        .ok();
    assert_eq!(
        file(&cluster, "onuser", "/etc/resolv.conf"),
        "search lab.test\nnameserver 127.0.0.11\noptions ndots:0\n",
        "--dns only sets the embedded DNS's upstream (FILE-2)"
    );
    cluster.cnet(&["run", "-d", "--name", "plain"]).ok();
    assert_eq!(file(&cluster, "plain", "/etc/resolv.conf"), HOST_RESOLV_CONF);
    cluster.cnet(&["run", "-d", "--name", "isolated", "--network", "none"]).ok();
    assert_eq!(file(&cluster, "isolated", "/etc/resolv.conf"), HOST_RESOLV_CONF);
    let error = cluster.cnet(&["run", "-d", "--add-host", "x:300.1.1.1"]).err();
    assert!(error.contains("invalid IP address in add-host"), "{error}");
    let error = cluster.cnet(&["run", "-d", "--dns-option", "ndots:1\nnameserver 6.6.6.6"]).err();
    assert!(error.contains("invalid --dns-option"), "{error}");
}

/// Reads /etc/hosts in a loop until it holds the `done.invalid` entry, checking each
/// read: the six standard lines, then the extra hosts of one version `k` only
/// (`10.<i>.0.1\tv<k>-<i>-end` for i in 0..k%5+1), then the container's own line, each
/// whole and newline-terminated. Prints `reads=… bad=… versions=…` at the end.
const TORN_READ_DETECTOR: &str = r#"
import re
extra = re.compile(r'10\.(\d+)\.0\.1\tv(\d+)-(\d+)-end$')
def whole(text, first):
    if not text.endswith('\n'):
        return False
    lines = text[:-1].split('\n')
    if lines[:6] != first[:6] or lines[-1] != first[-1]:
        return False
    found = [extra.match(line) for line in lines[6:-1]]
    if not all(found):
        return False
    if not found:
        return True
    k = int(found[0].group(2))
    return len(found) == k % 5 + 1 and all(
        int(m.group(1)) == i and int(m.group(2)) == k and int(m.group(3)) == i
        for i, m in enumerate(found))
first = open('/etc/hosts').read()[:-1].split('\n')
reads = bad = 0
versions = set()
print('ready', flush=True)
while True:
    with open('/etc/hosts') as f:
        text = f.read()
    if 'done.invalid' in text:
        break
    reads += 1
    versions.add(text)
    if not whole(text, first):
        bad += 1
        if bad <= 3:
            print('BAD', repr(text), flush=True)
print(f'reads={reads} bad={bad} versions={len(versions)}', flush=True)
"#;

#[test]
fn a_reader_inside_the_container_never_sees_a_partial_hosts_file() {
    use cnet_proto::hosts::v1::{self as hosts, hosts_client::HostsClient};
    let cluster = Cluster::start();
    let api = cluster.api();
    cluster
        .cnet(&["run", "-d", "--name", "reader", "--", "python3", "-c", TORN_READ_DETECTOR])
        .ok();
    cnet_tests::eventually("the reader to start", 10, || {
        cluster.cnet(&["logs", "reader"]).ok().contains("ready").then_some(())
    });
    let id = api.container("reader").id;
    let mut client = {
        let _entered = api.enter();
        HostsClient::new(cnet_common::client::channel(&cluster.service_target("hosts")).unwrap())
    };
    let request = hosts::GetContainerRequest { container_id: id };
    let mut spec = api.block(client.get_container(request)).unwrap().into_inner().spec.unwrap();
    assert!(spec.process.is_some(), "the gateway told the hosts service the process");

    let extra =
        |i: usize, hostname: String| hosts::ExtraHost { hostname, address: format!("10.{i}.0.1") };
    for k in 0..1_000 {
        spec.extra_hosts = (0..k % 5 + 1).map(|i| extra(i, format!("v{k}-{i}-end"))).collect();
        let request = hosts::PutContainerRequest { spec: Some(spec.clone()) };
        api.block(client.put_container(request)).expect("rewrite");
    }
    spec.extra_hosts = vec![extra(0, "done.invalid".into())];
    api.block(client.put_container(hosts::PutContainerRequest { spec: Some(spec) })).unwrap();

    let summary = cnet_tests::eventually("the reader's summary", 20, || {
        let logs = cluster.cnet(&["logs", "reader"]).ok();
        logs.lines().find(|line| line.starts_with("reads=")).map(str::to_owned)
    });
    let logs = cluster.cnet(&["logs", "reader"]).ok();
    let count = |key: &str| -> usize {
        let field = summary.split(' ').find_map(|f| f.strip_prefix(key)).unwrap();
        field.parse().unwrap()
    };
    assert_eq!(count("bad="), 0, "partial reads: {logs}");
    // The reads overlapped the rewrites: the reader saw many versions, not one or two.
    assert!(count("versions=") >= 20, "{summary}");
}
