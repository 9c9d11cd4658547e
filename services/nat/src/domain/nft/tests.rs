//! The nft rendering, text for text, and the plan from a listing to a batch.

use std::net::Ipv4Addr;

use super::*;
use crate::domain::{Protocol, rules::Ruleset};

fn network(bridge: &str, subnet: &str, internal: bool) -> Network {
    Network::parse(&format!("id-{bridge}"), bridge, subnet, internal).unwrap()
}

/// What `nft list table ip cnet` printed (nft 1.0.6) after loading this very text.
const BRIDGE: &str = "table ip cnet {
\tchain user {
\t}

\tchain forward {
\t\ttype filter hook forward priority filter - 1; policy accept;
\t\tjump user
\t\tjump isolation-1
\t\toifname \"br-a\" ct state established,related accept
\t\toifname \"br-a\" jump ports
\t\tiifname \"br-a\" oifname != \"br-a\" accept
\t\tiifname \"br-a\" oifname \"br-a\" accept
\t}

\tchain ports {
\t}

\tchain isolation-1 {
\t\tiifname \"br-a\" oifname != \"br-a\" jump isolation-2
\t}

\tchain isolation-2 {
\t\toifname \"br-a\" drop
\t}

\tchain prerouting {
\t\ttype nat hook prerouting priority dstnat - 1; policy accept;
\t\tfib daddr type local jump port-dnat
\t}

\tchain output {
\t\ttype nat hook output priority -101; policy accept;
\t\tip daddr != 127.0.0.0/8 fib daddr type local jump port-dnat
\t}

\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat - 1; policy accept;
\t\tip saddr 172.16.0.0/16 oifname != \"br-a\" masquerade
\t}

\tchain port-dnat {
\t\tiifname \"br-a\" return
\t}
}
";

fn bridge_table() -> Table {
    Ruleset::build([&network("br-a", "172.16.0.0/16", false)], []).nft
}

#[test]
fn bridge_network_renders_as_nft_lists_it() {
    assert_eq!(bridge_table().render(&[]), BRIDGE);
}

#[test]
fn internal_network() {
    let table = Ruleset::build([&network("br-i", "10.123.50.0/24", true)], []).nft;
    assert_eq!(
        table.chain(FORWARD),
        ["jump user", "jump isolation-1", "iifname \"br-i\" oifname \"br-i\" accept"]
    );
    assert_eq!(
        table.chain(ISOLATION_1),
        [
            "ip saddr != 10.123.50.0/24 oifname \"br-i\" drop",
            "ip daddr != 10.123.50.0/24 iifname \"br-i\" drop",
        ]
    );
    assert!(table.chain(ISOLATION_2).is_empty());
    assert!(table.chain(DNAT).is_empty());
    assert!(table.chain(POSTROUTING).is_empty(), "no masquerade on internal networks");
}

#[test]
fn published_ports() {
    let net = network("br-a", "172.16.0.0/16", false);
    let container = Ipv4Addr::new(172, 16, 1, 2);
    let tcp = Binding {
        host_ip: Ipv4Addr::UNSPECIFIED,
        host_port: 8080,
        container_port: 80,
        protocol: Protocol::Tcp,
    };
    let udp = Binding {
        host_ip: Ipv4Addr::new(127, 0, 0, 1),
        host_port: 5300,
        container_port: 53,
        protocol: Protocol::Udp,
    };
    let table = Ruleset::build([&net], [(&net, container, &tcp), (&net, container, &udp)]).nft;
    assert_eq!(
        table.chain(PORTS),
        [
            "ip daddr 172.16.1.2 iifname != \"br-a\" oifname \"br-a\" tcp dport 80 accept",
            "ip daddr 172.16.1.2 iifname != \"br-a\" oifname \"br-a\" udp dport 53 accept",
        ]
    );
    assert_eq!(
        table.chain(DNAT),
        [
            "iifname \"br-a\" return",
            "iifname != \"br-a\" tcp dport 8080 dnat to 172.16.1.2:80",
            "ip daddr 127.0.0.1 iifname != \"br-a\" udp dport 5300 dnat to 172.16.1.2:53",
        ]
    );
    assert_eq!(
        table.chain(POSTROUTING),
        [
            "ip saddr 172.16.0.0/16 oifname != \"br-a\" masquerade",
            "ip saddr 172.16.1.2 ip daddr 172.16.1.2 tcp dport 80 masquerade",
            "ip saddr 172.16.1.2 ip daddr 172.16.1.2 udp dport 53 masquerade",
        ]
    );
}

#[test]
fn two_networks_isolate_each_other() {
    let (a, b) = (network("br-a", "172.16.0.0/16", false), network("br-b", "172.17.0.0/16", false));
    let table = Ruleset::build([&a, &b], []).nft;
    assert_eq!(
        table.chain(ISOLATION_1),
        [
            "iifname \"br-a\" oifname != \"br-a\" jump isolation-2",
            "iifname \"br-b\" oifname != \"br-b\" jump isolation-2",
        ]
    );
    assert_eq!(table.chain(ISOLATION_2), ["oifname \"br-a\" drop", "oifname \"br-b\" drop"]);
}

#[test]
fn missing_table_is_created_in_one_atomic_batch() {
    let plan = plan(&bridge_table(), "");
    assert_eq!(plan.script, format!("add table ip cnet\ndelete table ip cnet\n{BRIDGE}"));
    assert_eq!(plan.changed.len(), 9, "{:?}", plan.changed);
}

#[test]
fn nothing_to_do_when_in_place() {
    assert_eq!(plan(&bridge_table(), BRIDGE), Plan::default());
}

#[test]
fn changed_chain_rewrites_the_table_and_keeps_the_user_rules() {
    let user_rule = "ip saddr 10.9.9.9 drop";
    let with_user = BRIDGE.replace("chain user {\n", &format!("chain user {{\n\t\t{user_rule}\n"));
    assert_eq!(plan(&bridge_table(), &with_user), Plan::default());

    let damaged = with_user.replace("\t\tiifname \"br-a\" return\n", "");
    let plan = plan(&bridge_table(), &damaged);
    assert_eq!(plan.changed, ["cnet/port-dnat"]);
    assert_eq!(plan.script, format!("add table ip cnet\ndelete table ip cnet\n{with_user}"));
}

#[test]
fn foreign_chains_in_the_table_go() {
    let foreign = BRIDGE.replace("}\n}\n", "}\n\n\tchain mine {\n\t\taccept\n\t}\n}\n");
    let plan = plan(&bridge_table(), &foreign);
    assert_eq!(plan.changed, ["cnet/mine"]);
    assert!(!plan.script.contains("mine"));
}

#[test]
fn parse_reads_chains() {
    let listing = parse(BRIDGE);
    assert_eq!(listing.len(), 9);
    assert_eq!(listing["user"], Vec::<String>::new());
    assert_eq!(listing["port-dnat"], ["iifname \"br-a\" return"]);
    assert!(parse("").is_empty());
}
