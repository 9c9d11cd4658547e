//! The same rules as [`super::rules`], for the nftables backend: one table, `ip cnet`,
//! that holds every chain cnet needs, written exactly as `nft list table ip cnet` prints
//! it, so that the check is a comparison of text and the rendering doubles as the input
//! of `nft -f` (nft reads back what it lists). [`plan`] turns a listing into the batch.
//!
//! Layout, mirroring the iptables one chain for chain (Docker's ISO-3, INT-1, PUB-3):
//! `forward` (hook forward, priority filter - 1) jumps to `user` (the operator's) and
//! then `isolation-1`, and holds the bridge accepts and the jump to `ports` (one accept
//! per published port); `prerouting`/`output` (hook, priority dstnat - 1) jump to
//! `port-dnat` for local destinations; `postrouting` (priority srcnat - 1) holds the
//! MASQUERADEs. Chains are named after nothing nft reserves (`dnat` is a keyword).
//!
//! Coexistence: a packet crosses every base chain on its hook, whatever table it is in,
//! and a drop anywhere is final while an accept only ends the chain it is in. So cnet's
//! drops (isolation, internal networks) hold against any other table, but its accepts
//! cannot override another table's drop (an iptables FORWARD policy DROP, firewalld):
//! the operator lets cnet's bridges through there. An accept in `user` ends cnet's
//! forward chain before isolation, as `-j ACCEPT` in CNET-USER does.
//!
//! Unlike iptables-restore, nft replaces a whole table atomically: `add table` (so the
//! delete cannot fail on a missing table), `delete table`, then the full definition, in
//! one file, is one kernel transaction. So a change rewrites the whole table and a
//! partial table never exists; a check that finds everything in place runs nothing. The
//! operator's rules in `user` are read from the listing and written back unchanged; if
//! the table is gone they are gone too, as CNET-USER's are after `iptables -X`.

use std::{collections::BTreeMap, net::Ipv4Addr};

use ipnet::Ipv4Net;

use super::{Binding, Network};

pub const TABLE: &str = "cnet";
/// The operator's chain: its rules are carried over every rewrite of the table.
pub const USER: &str = "user";
pub const FORWARD: &str = "forward";
/// One accept per published port (iptables' filter CNET).
pub const PORTS: &str = "ports";
pub const ISOLATION_1: &str = "isolation-1";
pub const ISOLATION_2: &str = "isolation-2";
pub const PREROUTING: &str = "prerouting";
pub const OUTPUT: &str = "output";
pub const POSTROUTING: &str = "postrouting";
/// The DNATs of published ports (iptables' nat CNET).
pub const DNAT: &str = "port-dnat";

/// One chain: its base-chain declaration, if any, and its rules, as nft lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: &'static str,
    pub hook: Option<&'static str>,
    pub rules: Vec<String>,
}

/// The whole `ip cnet` table but the operator's rules in `user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub chains: Vec<Chain>,
}

/// Just under iptables-nft's chains (filter 0, dstnat -100, srcnat 100), so cnet's run
/// first: the isolation drops come before any accept elsewhere, and cnet's DNAT before
/// another table's. `output` has no symbolic priority in nft for nat, hence -101.
const HOOKS: &[(&str, &str)] = &[
    (FORWARD, "type filter hook forward priority filter - 1; policy accept;"),
    (PREROUTING, "type nat hook prerouting priority dstnat - 1; policy accept;"),
    (OUTPUT, "type nat hook output priority -101; policy accept;"),
    (POSTROUTING, "type nat hook postrouting priority srcnat - 1; policy accept;"),
];

/// nft prints a /32 as the bare address.
fn net(subnet: Ipv4Net) -> String {
    if subnet.prefix_len() == 32 { subnet.addr().to_string() } else { subnet.to_string() }
}

impl Table {
    /// The table with no network: the chains and the jumps between them.
    pub fn empty() -> Self {
        let order =
            [USER, FORWARD, PORTS, ISOLATION_1, ISOLATION_2, PREROUTING, OUTPUT, POSTROUTING, DNAT];
        let chains = order
            .into_iter()
            .map(|name| Chain {
                name,
                hook: HOOKS.iter().find(|(chain, _)| *chain == name).map(|(_, hook)| *hook),
                rules: Vec::new(),
            })
            .collect();
        let mut table = Table { chains };
        table.push(FORWARD, format!("jump {USER}"));
        table.push(FORWARD, format!("jump {ISOLATION_1}"));
        table.push(PREROUTING, format!("fib daddr type local jump {DNAT}"));
        table.push(OUTPUT, format!("ip daddr != 127.0.0.0/8 fib daddr type local jump {DNAT}"));
        table
    }

    fn push(&mut self, chain: &str, rule: String) {
        let chain = self
            .chains
            .iter_mut()
            .find(|candidate| candidate.name == chain)
            .expect("rules are only pushed to chains the table declares");
        chain.rules.push(rule);
    }

    pub fn chain(&self, name: &str) -> &[String] {
        self.chains.iter().find(|chain| chain.name == name).map_or(&[], |chain| &chain.rules)
    }

    pub fn add_network(&mut self, network: &Network) {
        let bridge = network.bridge.as_str();
        let subnet = net(network.subnet);
        if network.internal {
            // INT-1.
            self.push(FORWARD, format!("iifname \"{bridge}\" oifname \"{bridge}\" accept"));
            self.push(ISOLATION_1, format!("ip saddr != {subnet} oifname \"{bridge}\" drop"));
            self.push(ISOLATION_1, format!("ip daddr != {subnet} iifname \"{bridge}\" drop"));
            return;
        }
        // ISO-3.
        self.push(FORWARD, format!("oifname \"{bridge}\" ct state established,related accept"));
        self.push(FORWARD, format!("oifname \"{bridge}\" jump {PORTS}"));
        self.push(FORWARD, format!("iifname \"{bridge}\" oifname != \"{bridge}\" accept"));
        self.push(FORWARD, format!("iifname \"{bridge}\" oifname \"{bridge}\" accept"));
        self.push(
            ISOLATION_1,
            format!("iifname \"{bridge}\" oifname != \"{bridge}\" jump {ISOLATION_2}"),
        );
        self.push(ISOLATION_2, format!("oifname \"{bridge}\" drop"));
        // Traffic from the bridge to a published port goes through the proxy (PUB-4).
        self.push(DNAT, format!("iifname \"{bridge}\" return"));
        self.push(POSTROUTING, format!("ip saddr {subnet} oifname != \"{bridge}\" masquerade"));
    }

    pub fn add_binding(&mut self, network: &Network, container_ip: Ipv4Addr, binding: &Binding) {
        let bridge = network.bridge.as_str();
        let protocol = binding.protocol.as_str();
        let port = binding.container_port;
        let host_port = binding.host_port;
        // PUB-3.
        self.push(
            PORTS,
            format!(
                "ip daddr {container_ip} iifname != \"{bridge}\" oifname \"{bridge}\" {protocol} dport {port} accept"
            ),
        );
        let destination = match binding.host_ip {
            ip if ip.is_unspecified() => String::new(),
            ip => format!("ip daddr {ip} "),
        };
        self.push(
            DNAT,
            format!(
                "{destination}iifname != \"{bridge}\" {protocol} dport {host_port} dnat to {container_ip}:{port}"
            ),
        );
        self.push(
            POSTROUTING,
            format!(
                "ip saddr {container_ip} ip daddr {container_ip} {protocol} dport {port} masquerade"
            ),
        );
    }

    /// The table as `nft list table ip cnet` prints it, with `user_rules` in `user`.
    pub fn render(&self, user_rules: &[String]) -> String {
        let mut out = format!("table ip {TABLE} {{\n");
        for (index, chain) in self.chains.iter().enumerate() {
            if index > 0 {
                out.push('\n');
            }
            out.push_str(&format!("\tchain {} {{\n", chain.name));
            let rules = if chain.name == USER { user_rules } else { &chain.rules };
            for line in chain.hook.iter().copied().chain(rules.iter().map(String::as_str)) {
                out.push_str(&format!("\t\t{line}\n"));
            }
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
        out
    }
}

/// A listing by chain name: the chain's lines, trimmed, blank ones left out.
pub type Listing = BTreeMap<String, Vec<String>>;

/// What a sync has to do: the `nft -f` input and, for the logs, what it repairs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Empty when the table is as wanted.
    pub script: String,
    /// "cnet/<chain>" of every chain that differs, is missing or is foreign.
    pub changed: Vec<String>,
}

/// Parses `nft list table` output (or a [`Table::render`]) into its chains.
pub fn parse(text: &str) -> Listing {
    let mut listing = Listing::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        if let Some(name) = line.strip_prefix("chain ").and_then(|rest| rest.strip_suffix(" {")) {
            listing.entry(name.to_owned()).or_default();
            current = Some(name.to_owned());
        } else if line == "}" {
            current = None;
        } else if let Some(chain) = &current {
            listing.entry(chain.clone()).or_default().push(line.to_owned());
        }
    }
    listing
}

/// The batch that turns the table `listed` (empty when there is none) into `wanted`.
pub fn plan(wanted: &Table, listed: &str) -> Plan {
    let current = parse(listed);
    let user = current.get(USER).cloned().unwrap_or_default();
    let text = wanted.render(&user);
    let desired = parse(&text);
    if desired == current {
        return Plan::default();
    }
    let mut changed: Vec<String> = desired
        .iter()
        .filter(|(name, lines)| current.get(*name) != Some(lines))
        .map(|(name, _)| format!("{TABLE}/{name}"))
        .collect();
    changed.extend(
        current.keys().filter(|name| !desired.contains_key(*name)).map(|n| format!("{TABLE}/{n}")),
    );
    Plan { script: format!("add table ip {TABLE}\ndelete table ip {TABLE}\n{text}"), changed }
}

#[cfg(test)]
mod tests;
