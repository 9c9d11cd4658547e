//! The exact rules cnet wants, as data: for each table the full content of every chain it
//! owns, and the jump rules it needs in built-in chains. Lines are written exactly as
//! `iptables-save` prints them (`-d C/32`, `-p tcp -m tcp`), so that comparing them with
//! what the kernel holds is a plain string comparison.
//!
//! The layout is Docker's (ISO-3, INT-1, PUB-3) moved into cnet's own chains: FORWARD
//! jumps to CNET-USER (the operator's) then CNET-FORWARD (conntrack, bridge accepts, the
//! jump to the per-port ACCEPTs in CNET, and first of all the two-stage isolation); nat
//! PREROUTING/OUTPUT jump to CNET for local destinations (DNATs), POSTROUTING to
//! CNET-POSTROUTING (MASQUERADE and hairpin). [`Ruleset::nft`] carries the same rules
//! for the nftables backend ([`super::nft`]), built from the same calls.

use std::net::Ipv4Addr;

use super::{Binding, Network, nft};

pub const USER: &str = "CNET-USER";
pub const FORWARD: &str = "CNET-FORWARD";
/// Filter chain with one ACCEPT per published port, and nat chain with the DNATs.
pub const PORTS: &str = "CNET";
pub const ISOLATION_1: &str = "CNET-ISOLATION-1";
pub const ISOLATION_2: &str = "CNET-ISOLATION-2";
pub const POSTROUTING: &str = "CNET-POSTROUTING";

/// Every chain name cnet owns starts with this.
pub const CHAIN_PREFIX: &str = "CNET";

/// The desired content of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRules {
    pub table: &'static str,
    /// Chains cnet rewrites as a whole, in declaration order, with their rule specs
    /// (what follows `-A <chain> `).
    pub chains: Vec<(&'static str, Vec<String>)>,
    /// Chains created with this content when missing and otherwise left alone: they
    /// belong to the operator.
    pub user_chains: Vec<(&'static str, Vec<String>)>,
    /// Built-in chain → cnet's jump rules in it, in order, at its top.
    pub jumps: Vec<(&'static str, Vec<String>)>,
}

impl TableRules {
    fn push(&mut self, chain: &str, spec: String) {
        let (_, rules) = self
            .chains
            .iter_mut()
            .find(|(name, _)| *name == chain)
            .expect("rules are only pushed to chains the table declares");
        rules.push(spec);
    }

    pub fn chain(&self, chain: &str) -> &[String] {
        self.chains.iter().find(|(name, _)| *name == chain).map_or(&[], |(_, rules)| rules)
    }
}

/// Everything cnet wants in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub filter: TableRules,
    pub nat: TableRules,
    /// The same rules for the nftables backend, built alongside.
    pub nft: nft::Table,
}

impl Ruleset {
    /// The rules with no network: only cnet's chains and the jumps into them.
    pub fn empty() -> Self {
        let chains =
            |names: &[&'static str]| names.iter().map(|name| (*name, Vec::new())).collect();
        let jump = |chain: &'static str| format!("-j {chain}");
        let mut ruleset = Ruleset {
            filter: TableRules {
                table: "filter",
                chains: chains(&[FORWARD, PORTS, ISOLATION_1, ISOLATION_2]),
                user_chains: vec![(USER, vec!["-j RETURN".into()])],
                jumps: vec![("FORWARD", vec![jump(USER), jump(FORWARD)])],
            },
            nat: TableRules {
                table: "nat",
                chains: chains(&[PORTS, POSTROUTING]),
                user_chains: vec![],
                jumps: vec![
                    ("PREROUTING", vec![format!("-m addrtype --dst-type LOCAL -j {PORTS}")]),
                    (
                        "OUTPUT",
                        vec![format!("! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j {PORTS}")],
                    ),
                    ("POSTROUTING", vec![jump(POSTROUTING)]),
                ],
            },
            nft: nft::Table::empty(),
        };
        ruleset.filter.push(FORWARD, jump(ISOLATION_1));
        ruleset
    }

    /// The full ruleset for `networks` and the published `bindings` (each with its
    /// network and container address), in the order given.
    pub fn build<'a>(
        networks: impl IntoIterator<Item = &'a Network>,
        bindings: impl IntoIterator<Item = (&'a Network, Ipv4Addr, &'a Binding)>,
    ) -> Self {
        let mut ruleset = Ruleset::empty();
        for network in networks {
            ruleset.add_network(network);
        }
        for (network, container_ip, binding) in bindings {
            ruleset.add_binding(network, container_ip, binding);
        }
        ruleset.filter.push(ISOLATION_1, "-j RETURN".into());
        ruleset.filter.push(ISOLATION_2, "-j RETURN".into());
        ruleset
    }

    fn add_network(&mut self, network: &Network) {
        self.nft.add_network(network);
        let bridge = network.bridge.as_str();
        let subnet = network.subnet;
        let filter = &mut self.filter;
        if network.internal {
            // INT-1: forwarding within the bridge only; everything else is dropped.
            filter.push(FORWARD, format!("-i {bridge} -o {bridge} -j ACCEPT"));
            filter.push(ISOLATION_1, format!("! -s {subnet} -o {bridge} -j DROP"));
            filter.push(ISOLATION_1, format!("! -d {subnet} -i {bridge} -j DROP"));
            return;
        }
        // ISO-3.
        filter.push(
            FORWARD,
            format!("-o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        );
        filter.push(FORWARD, format!("-o {bridge} -j {PORTS}"));
        filter.push(FORWARD, format!("-i {bridge} ! -o {bridge} -j ACCEPT"));
        filter.push(FORWARD, format!("-i {bridge} -o {bridge} -j ACCEPT"));
        filter.push(ISOLATION_1, format!("-i {bridge} ! -o {bridge} -j {ISOLATION_2}"));
        filter.push(ISOLATION_2, format!("-o {bridge} -j DROP"));
        // Traffic from the bridge to a published port goes through the proxy (PUB-4).
        self.nat.push(PORTS, format!("-i {bridge} -j RETURN"));
        self.nat.push(POSTROUTING, format!("-s {subnet} ! -o {bridge} -j MASQUERADE"));
    }

    fn add_binding(&mut self, network: &Network, container_ip: Ipv4Addr, binding: &Binding) {
        self.nft.add_binding(network, container_ip, binding);
        let bridge = network.bridge.as_str();
        let protocol = binding.protocol.as_str();
        let port = binding.container_port;
        let host_port = binding.host_port;
        let matches = format!("-p {protocol} -m {protocol}");
        // PUB-3.
        self.filter.push(
            PORTS,
            format!(
                "-d {container_ip}/32 ! -i {bridge} -o {bridge} {matches} --dport {port} -j ACCEPT"
            ),
        );
        let destination = match binding.host_ip {
            ip if ip.is_unspecified() => String::new(),
            ip => format!("-d {ip}/32 "),
        };
        self.nat.push(
            PORTS,
            format!(
                "{destination}! -i {bridge} {matches} --dport {host_port} -j DNAT --to-destination {container_ip}:{port}"
            ),
        );
        self.nat.push(
            POSTROUTING,
            format!(
                "-s {container_ip}/32 -d {container_ip}/32 {matches} --dport {port} -j MASQUERADE"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Protocol;

    fn network(bridge: &str, subnet: &str, internal: bool) -> Network {
        Network::parse(&format!("id-{bridge}"), bridge, subnet, internal).unwrap()
    }

    fn lines(rules: &TableRules, chain: &str) -> Vec<String> {
        rules.chain(chain).iter().map(|spec| format!("-A {chain} {spec}")).collect()
    }

    #[test]
    fn no_network_only_chains_and_jumps() {
        let ruleset = Ruleset::build([], []);
        assert_eq!(lines(&ruleset.filter, FORWARD), ["-A CNET-FORWARD -j CNET-ISOLATION-1"]);
        assert_eq!(lines(&ruleset.filter, ISOLATION_1), ["-A CNET-ISOLATION-1 -j RETURN"]);
        assert_eq!(lines(&ruleset.filter, ISOLATION_2), ["-A CNET-ISOLATION-2 -j RETURN"]);
        assert!(ruleset.nat.chain(PORTS).is_empty() && ruleset.nat.chain(POSTROUTING).is_empty());
        assert_eq!(
            ruleset.filter.jumps,
            [("FORWARD", vec!["-j CNET-USER".into(), "-j CNET-FORWARD".into()])]
        );
        assert_eq!(ruleset.filter.user_chains, [(USER, vec!["-j RETURN".to_string()])]);
        let nat_jumps: Vec<_> = ruleset
            .nat
            .jumps
            .iter()
            .map(|(chain, rules)| format!("{chain} {}", rules[0]))
            .collect();
        assert_eq!(
            nat_jumps,
            [
                "PREROUTING -m addrtype --dst-type LOCAL -j CNET",
                "OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j CNET",
                "POSTROUTING -j CNET-POSTROUTING",
            ]
        );
    }

    #[test]
    fn bridge_network() {
        let ruleset = Ruleset::build([&network("br-a", "172.16.0.0/16", false)], []);
        assert_eq!(
            lines(&ruleset.filter, FORWARD),
            [
                "-A CNET-FORWARD -j CNET-ISOLATION-1",
                "-A CNET-FORWARD -o br-a -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                "-A CNET-FORWARD -o br-a -j CNET",
                "-A CNET-FORWARD -i br-a ! -o br-a -j ACCEPT",
                "-A CNET-FORWARD -i br-a -o br-a -j ACCEPT",
            ]
        );
        assert_eq!(
            lines(&ruleset.filter, ISOLATION_1),
            [
                "-A CNET-ISOLATION-1 -i br-a ! -o br-a -j CNET-ISOLATION-2",
                "-A CNET-ISOLATION-1 -j RETURN"
            ]
        );
        assert_eq!(
            lines(&ruleset.filter, ISOLATION_2),
            ["-A CNET-ISOLATION-2 -o br-a -j DROP", "-A CNET-ISOLATION-2 -j RETURN"]
        );
        assert_eq!(lines(&ruleset.nat, PORTS), ["-A CNET -i br-a -j RETURN"]);
        assert_eq!(
            lines(&ruleset.nat, POSTROUTING),
            ["-A CNET-POSTROUTING -s 172.16.0.0/16 ! -o br-a -j MASQUERADE"]
        );
        assert!(ruleset.filter.chain(PORTS).is_empty());
    }

    #[test]
    fn internal_network() {
        let ruleset = Ruleset::build([&network("br-i", "10.123.50.0/24", true)], []);
        assert_eq!(
            lines(&ruleset.filter, FORWARD),
            ["-A CNET-FORWARD -j CNET-ISOLATION-1", "-A CNET-FORWARD -i br-i -o br-i -j ACCEPT"]
        );
        assert_eq!(
            lines(&ruleset.filter, ISOLATION_1),
            [
                "-A CNET-ISOLATION-1 ! -s 10.123.50.0/24 -o br-i -j DROP",
                "-A CNET-ISOLATION-1 ! -d 10.123.50.0/24 -i br-i -j DROP",
                "-A CNET-ISOLATION-1 -j RETURN",
            ]
        );
        assert_eq!(lines(&ruleset.filter, ISOLATION_2), ["-A CNET-ISOLATION-2 -j RETURN"]);
        assert!(ruleset.nat.chain(PORTS).is_empty());
        assert!(ruleset.nat.chain(POSTROUTING).is_empty(), "no MASQUERADE on internal networks");
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
        let ruleset = Ruleset::build([&net], [(&net, container, &tcp), (&net, container, &udp)]);
        assert_eq!(
            lines(&ruleset.filter, PORTS),
            [
                "-A CNET -d 172.16.1.2/32 ! -i br-a -o br-a -p tcp -m tcp --dport 80 -j ACCEPT",
                "-A CNET -d 172.16.1.2/32 ! -i br-a -o br-a -p udp -m udp --dport 53 -j ACCEPT",
            ]
        );
        assert_eq!(
            lines(&ruleset.nat, PORTS),
            [
                "-A CNET -i br-a -j RETURN",
                "-A CNET ! -i br-a -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.16.1.2:80",
                "-A CNET -d 127.0.0.1/32 ! -i br-a -p udp -m udp --dport 5300 -j DNAT --to-destination 172.16.1.2:53",
            ]
        );
        assert_eq!(
            lines(&ruleset.nat, POSTROUTING),
            [
                "-A CNET-POSTROUTING -s 172.16.0.0/16 ! -o br-a -j MASQUERADE",
                "-A CNET-POSTROUTING -s 172.16.1.2/32 -d 172.16.1.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE",
                "-A CNET-POSTROUTING -s 172.16.1.2/32 -d 172.16.1.2/32 -p udp -m udp --dport 53 -j MASQUERADE",
            ]
        );
    }

    #[test]
    fn two_networks_isolate_each_other() {
        let a = network("br-a", "172.16.0.0/16", false);
        let b = network("br-b", "172.17.0.0/16", false);
        let ruleset = Ruleset::build([&a, &b], []);
        assert_eq!(
            lines(&ruleset.filter, ISOLATION_1),
            [
                "-A CNET-ISOLATION-1 -i br-a ! -o br-a -j CNET-ISOLATION-2",
                "-A CNET-ISOLATION-1 -i br-b ! -o br-b -j CNET-ISOLATION-2",
                "-A CNET-ISOLATION-1 -j RETURN",
            ]
        );
        assert_eq!(
            lines(&ruleset.filter, ISOLATION_2),
            [
                "-A CNET-ISOLATION-2 -o br-a -j DROP",
                "-A CNET-ISOLATION-2 -o br-b -j DROP",
                "-A CNET-ISOLATION-2 -j RETURN"
            ]
        );
    }
}
