//! From what `iptables-save` shows to the [`Ruleset`] in one `iptables-restore
//! --noflush` batch.
//!
//! Each owned chain whose content differs is declared in the batch, which makes
//! iptables-restore flush it, and then refilled: a chain is always rewritten whole, so a
//! partial or duplicated chain cannot survive, and the kernel commits each table
//! atomically, so no packet sees a half-written chain. Chains that already match are not
//! mentioned, so a repeated call changes nothing and a check that finds nothing wrong
//! runs no iptables-restore at all. Jump rules in built-in chains are only touched when
//! they are missing, duplicated or out of order; then every copy is deleted and the set
//! is inserted again at the top. Nothing else in a built-in chain is ever touched.

use std::collections::BTreeMap;

use super::rules::{Ruleset, TableRules};

/// One table of an `iptables-save` dump: every chain declared, with its rule specs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SavedTable {
    pub chains: BTreeMap<String, Vec<String>>,
}

/// A parsed `iptables-save` dump, by table name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Saved {
    pub tables: BTreeMap<String, SavedTable>,
}

impl Saved {
    /// Parses the dump format: `*table`, `:chain policy [counters]`, `-A chain spec`,
    /// `COMMIT`, and `#` comments.
    pub fn parse(text: &str) -> Saved {
        let mut saved = Saved::default();
        let mut current: Option<&mut SavedTable> = None;
        for line in text.lines() {
            let line = line.trim_end();
            if let Some(table) = line.strip_prefix('*') {
                current = Some(saved.tables.entry(table.to_owned()).or_default());
            } else if let Some(declaration) = line.strip_prefix(':') {
                let name = declaration.split_whitespace().next().unwrap_or_default();
                if let Some(table) = current.as_deref_mut() {
                    table.chains.entry(name.to_owned()).or_default();
                }
            } else if let Some(rule) = line.strip_prefix("-A ") {
                let (chain, spec) = rule.split_once(' ').unwrap_or((rule, ""));
                if let Some(table) = current.as_deref_mut() {
                    table.chains.entry(chain.to_owned()).or_default().push(spec.to_owned());
                }
            } else if line == "COMMIT" {
                current = None;
            }
        }
        saved
    }

    pub fn chain(&self, table: &str, chain: &str) -> Option<&[String]> {
        self.tables.get(table)?.chains.get(chain).map(Vec::as_slice)
    }
}

/// What a sync has to do: the restore script and, for the logs, what it repairs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Input for `iptables-restore --noflush`; empty when nothing differs.
    pub script: String,
    /// "table/chain" of every chain rewritten or created, and of every built-in chain
    /// whose jumps are put back.
    pub changed: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.script.is_empty()
    }
}

/// The batch that turns `saved` into `desired`.
pub fn plan(desired: &Ruleset, saved: &Saved) -> Plan {
    let mut plan = Plan::default();
    for table in [&desired.filter, &desired.nat] {
        plan_table(table, saved.tables.get(table.table), &mut plan);
    }
    plan
}

fn plan_table(desired: &TableRules, saved: Option<&SavedTable>, plan: &mut Plan) {
    let existing = |chain: &str| saved.and_then(|table| table.chains.get(chain));
    let mut declarations = Vec::new();
    let mut rules = Vec::new();
    for (chain, specs) in &desired.user_chains {
        if existing(chain).is_none() {
            declarations.push(*chain);
            rules.extend(specs.iter().map(|spec| format!("-A {chain} {spec}")));
        }
    }
    for (chain, specs) in &desired.chains {
        if existing(chain) != Some(specs) {
            declarations.push(*chain);
            rules.extend(specs.iter().map(|spec| format!("-A {chain} {spec}")));
        }
    }
    let mut repaired_jumps = Vec::new();
    for (builtin, jumps) in &desired.jumps {
        let present = existing(builtin).map_or(&[][..], Vec::as_slice);
        let ours: Vec<&String> = present.iter().filter(|spec| jumps.contains(spec)).collect();
        if ours.iter().copied().eq(jumps.iter()) {
            continue;
        }
        repaired_jumps.push(*builtin);
        rules.extend(ours.iter().map(|spec| format!("-D {builtin} {spec}")));
        // Inserting at position 1 in reverse order leaves them at the top, in order.
        rules.extend(jumps.iter().rev().map(|spec| format!("-I {builtin} 1 {spec}")));
    }
    if declarations.is_empty() && rules.is_empty() {
        return;
    }
    let script = &mut plan.script;
    script.push_str(&format!("*{}\n", desired.table));
    for chain in &declarations {
        script.push_str(&format!(":{chain} - [0:0]\n"));
    }
    for rule in rules {
        script.push_str(&rule);
        script.push('\n');
    }
    script.push_str("COMMIT\n");
    let table = desired.table;
    plan.changed.extend(declarations.iter().map(|chain| format!("{table}/{chain}")));
    plan.changed.extend(repaired_jumps.iter().map(|chain| format!("{table}/{chain}")));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Network;

    const FRESH: &str = "";

    fn ruleset() -> Ruleset {
        let network = Network::parse("n1", "br-a", "10.1.0.0/24", false).unwrap();
        Ruleset::build([&network], [])
    }

    /// What iptables-save prints once `script` is applied on a fresh namespace, written
    /// out by hand.
    fn applied() -> String {
        "# Generated by iptables-save v1.8.9 (nf_tables)
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [12:720]
:OUTPUT ACCEPT [0:0]
:CNET - [0:0]
:CNET-FORWARD - [0:0]
:CNET-ISOLATION-1 - [0:0]
:CNET-ISOLATION-2 - [0:0]
:CNET-USER - [0:0]
-A FORWARD -j CNET-USER
-A FORWARD -j CNET-FORWARD
-A FORWARD -i eth0 -j ACCEPT
-A CNET-FORWARD -j CNET-ISOLATION-1
-A CNET-FORWARD -o br-a -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNET-FORWARD -o br-a -j CNET
-A CNET-FORWARD -i br-a ! -o br-a -j ACCEPT
-A CNET-FORWARD -i br-a -o br-a -j ACCEPT
-A CNET-ISOLATION-1 -i br-a ! -o br-a -j CNET-ISOLATION-2
-A CNET-ISOLATION-1 -j RETURN
-A CNET-ISOLATION-2 -o br-a -j DROP
-A CNET-ISOLATION-2 -j RETURN
-A CNET-USER -s 10.9.9.9/32 -j DROP
COMMIT
# Completed
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNET - [0:0]
:CNET-POSTROUTING - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNET
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j CNET
-A POSTROUTING -j CNET-POSTROUTING
-A CNET -i br-a -j RETURN
-A CNET-POSTROUTING -s 10.1.0.0/24 ! -o br-a -j MASQUERADE
COMMIT
"
        .to_owned()
    }

    #[test]
    fn parses_dumps() {
        let saved = Saved::parse(&applied());
        assert_eq!(saved.tables.keys().collect::<Vec<_>>(), ["filter", "nat"]);
        assert_eq!(
            saved.chain("filter", "FORWARD").unwrap(),
            ["-j CNET-USER", "-j CNET-FORWARD", "-i eth0 -j ACCEPT"]
        );
        assert_eq!(saved.chain("filter", "INPUT"), Some(&[][..]));
        assert_eq!(saved.chain("nat", "CNET").unwrap(), ["-i br-a -j RETURN"]);
        assert_eq!(saved.chain("nat", "CNET-FORWARD"), None);
    }

    #[test]
    fn fresh_namespace_gets_everything_in_one_batch() {
        let plan = plan(&ruleset(), &Saved::parse(FRESH));
        let expected = "*filter
:CNET-USER - [0:0]
:CNET-FORWARD - [0:0]
:CNET - [0:0]
:CNET-ISOLATION-1 - [0:0]
:CNET-ISOLATION-2 - [0:0]
-A CNET-USER -j RETURN
-A CNET-FORWARD -j CNET-ISOLATION-1
-A CNET-FORWARD -o br-a -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNET-FORWARD -o br-a -j CNET
-A CNET-FORWARD -i br-a ! -o br-a -j ACCEPT
-A CNET-FORWARD -i br-a -o br-a -j ACCEPT
-A CNET-ISOLATION-1 -i br-a ! -o br-a -j CNET-ISOLATION-2
-A CNET-ISOLATION-1 -j RETURN
-A CNET-ISOLATION-2 -o br-a -j DROP
-A CNET-ISOLATION-2 -j RETURN
-I FORWARD 1 -j CNET-FORWARD
-I FORWARD 1 -j CNET-USER
COMMIT
*nat
:CNET - [0:0]
:CNET-POSTROUTING - [0:0]
-A CNET -i br-a -j RETURN
-A CNET-POSTROUTING -s 10.1.0.0/24 ! -o br-a -j MASQUERADE
-I PREROUTING 1 -m addrtype --dst-type LOCAL -j CNET
-I OUTPUT 1 ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j CNET
-I POSTROUTING 1 -j CNET-POSTROUTING
COMMIT
";
        assert_eq!(plan.script, expected);
        assert_eq!(plan.changed.len(), 11, "{:?}", plan.changed);
    }

    #[test]
    fn nothing_to_do_when_in_place_and_user_chain_is_kept() {
        // The operator's rule in CNET-USER and a foreign FORWARD rule are left alone.
        let plan = plan(&ruleset(), &Saved::parse(&applied()));
        assert!(plan.is_empty(), "{}", plan.script);
    }

    #[test]
    fn flushed_chain_is_rewritten_alone() {
        let flushed = applied().replace("-A CNET -i br-a -j RETURN\n", "");
        let plan = plan(&ruleset(), &Saved::parse(&flushed));
        assert_eq!(plan.script, "*nat\n:CNET - [0:0]\n-A CNET -i br-a -j RETURN\nCOMMIT\n");
        assert_eq!(plan.changed, ["nat/CNET"]);
    }

    #[test]
    fn stale_rules_go() {
        let extra = "-A CNET -i br-a -j RETURN\n";
        let stale = applied().replace(extra, &format!("{extra}-A CNET -i br-old -j RETURN\n"));
        let plan = plan(&ruleset(), &Saved::parse(&stale));
        assert_eq!(plan.script, "*nat\n:CNET - [0:0]\n-A CNET -i br-a -j RETURN\nCOMMIT\n");
    }

    #[test]
    fn jumps_are_put_back_at_the_top_in_order() {
        let swapped = applied().replace(
            "-A FORWARD -j CNET-USER\n-A FORWARD -j CNET-FORWARD\n",
            "-A FORWARD -j CNET-FORWARD\n-A FORWARD -j CNET-USER\n-A FORWARD -j CNET-USER\n",
        );
        let plan = plan(&ruleset(), &Saved::parse(&swapped));
        let expected = "*filter
-D FORWARD -j CNET-FORWARD
-D FORWARD -j CNET-USER
-D FORWARD -j CNET-USER
-I FORWARD 1 -j CNET-FORWARD
-I FORWARD 1 -j CNET-USER
COMMIT
";
        assert_eq!(plan.script, expected);
        assert_eq!(plan.changed, ["filter/FORWARD"]);

        let missing = applied().replace("-A POSTROUTING -j CNET-POSTROUTING\n", "");
        let plan = super::plan(&ruleset(), &Saved::parse(&missing));
        assert_eq!(plan.script, "*nat\n-I POSTROUTING 1 -j CNET-POSTROUTING\nCOMMIT\n");
    }
}
