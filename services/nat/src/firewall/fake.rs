//! An in-memory packet filter for tests: it keeps the filter and nat tables as chains of
//! rule specs, understands the subset of the iptables-restore format cnet writes
//! (declare = create or flush, `-A`, `-I n`, `-D`), prints them like `iptables-save`,
//! and records every batch so tests can assert on what was sent. Like the real tool, a
//! batch that fails changes nothing. [`Fake::nftables`] plays `nft` instead: it keeps
//! cnet's table as the text of the last whole-table batch, which is what the real nft
//! lists after loading cnet's rendering.

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard},
};

use super::{Dialect, FirewallError, PacketFilter, Result};

type Tables = BTreeMap<String, BTreeMap<String, Vec<String>>>;

const BUILTIN: &[(&str, &[&str])] = &[
    ("filter", &["INPUT", "FORWARD", "OUTPUT"]),
    ("nat", &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]),
];

#[derive(Default)]
pub struct Fake {
    inner: Mutex<Inner>,
    nftables: bool,
}

#[derive(Default)]
struct Inner {
    tables: Tables,
    scripts: Vec<String>,
    ip_forward: bool,
    fail_restores: usize,
    /// The nft dialect's `ip cnet` table, "" when absent.
    nft_table: String,
}

/// How cnet's nft batches start: the rest is the table as nft lists it.
const NFT_PREFIX: &str = "add table ip cnet\ndelete table ip cnet\n";

impl Fake {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A fake `nft` holding no table yet.
    pub fn nftables() -> Self {
        Self { nftables: true, ..Self::default() }
    }

    /// What `nft flush ruleset` does to cnet's table.
    pub fn flush_ruleset(&self) {
        self.lock().nft_table.clear();
    }

    /// Every batch applied (or attempted), in order.
    pub fn scripts(&self) -> Vec<String> {
        self.lock().scripts.clone()
    }

    pub fn ip_forward_enabled(&self) -> bool {
        self.lock().ip_forward
    }

    /// Makes the next `count` restores fail, as iptables-restore does on a bad batch.
    pub fn fail_restores(&self, count: usize) {
        self.lock().fail_restores = count;
    }

    /// What `iptables -t TABLE -F CHAIN` does.
    pub fn flush(&self, table: &str, chain: &str) {
        if let Some(rules) = self.lock().tables.entry(table.into()).or_default().get_mut(chain) {
            rules.clear();
        }
    }

    /// What `iptables -t TABLE -D CHAIN SPEC` does, without the error when absent.
    pub fn delete_rule(&self, table: &str, chain: &str, spec: &str) {
        let mut inner = self.lock();
        if let Some(rules) = inner.tables.entry(table.into()).or_default().get_mut(chain) {
            rules.retain(|rule| rule != spec);
        }
    }

    /// What `iptables -t TABLE -A CHAIN SPEC` does (the chain must exist).
    pub fn append_rule(&self, table: &str, chain: &str, spec: &str) {
        let mut inner = self.lock();
        let table = inner.tables.entry(table.into()).or_default();
        table.entry(chain.into()).or_default().push(spec.into());
    }
}

fn builtin(table: &str) -> &'static [&'static str] {
    BUILTIN.iter().find(|(name, _)| *name == table).map_or(&[], |(_, chains)| chains)
}

fn apply(tables: &mut Tables, script: &str) -> Result<()> {
    let error = |line: &str, reason: &str| {
        FirewallError::new("iptables-restore", format!("{reason}: {line}"))
    };
    let mut table: Option<String> = None;
    for line in script.lines() {
        if let Some(name) = line.strip_prefix('*') {
            let chains = tables.entry(name.into()).or_default();
            for chain in builtin(name) {
                chains.entry((*chain).into()).or_default();
            }
            table = Some(name.into());
            continue;
        }
        if line == "COMMIT" {
            table = None;
            continue;
        }
        let chains = tables
            .get_mut(table.as_deref().ok_or_else(|| error(line, "outside a table"))?)
            .expect("entered above");
        if let Some(declaration) = line.strip_prefix(':') {
            let name = declaration.split_whitespace().next().unwrap_or_default();
            chains.insert(name.into(), Vec::new());
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let (chain, spec) = rule.split_once(' ').ok_or_else(|| error(line, "no rule"))?;
            let rules = chains.get_mut(chain).ok_or_else(|| error(line, "no such chain"))?;
            rules.push(spec.into());
        } else if let Some(rule) = line.strip_prefix("-I ") {
            let mut parts = rule.splitn(3, ' ');
            let (Some(chain), Some(position), Some(spec)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(error(line, "bad insert"));
            };
            let position: usize = position.parse().map_err(|_| error(line, "bad position"))?;
            let rules = chains.get_mut(chain).ok_or_else(|| error(line, "no such chain"))?;
            if position == 0 || position > rules.len() + 1 {
                return Err(error(line, "index of insertion too big"));
            }
            rules.insert(position - 1, spec.into());
        } else if let Some(rule) = line.strip_prefix("-D ") {
            let (chain, spec) = rule.split_once(' ').ok_or_else(|| error(line, "no rule"))?;
            let rules = chains.get_mut(chain).ok_or_else(|| error(line, "no such chain"))?;
            let index = rules.iter().position(|rule| rule == spec);
            rules.remove(
                index.ok_or_else(|| error(line, "bad rule (does a matching rule exist?)"))?,
            );
        } else if !line.is_empty() && !line.starts_with('#') {
            return Err(error(line, "unknown line"));
        }
    }
    Ok(())
}

#[tonic::async_trait]
impl PacketFilter for Fake {
    fn dialect(&self) -> Dialect {
        if self.nftables { Dialect::Nftables } else { Dialect::Iptables }
    }

    async fn save(&self) -> Result<String> {
        let inner = self.lock();
        if self.nftables {
            return Ok(inner.nft_table.clone());
        }
        let mut out = String::from("# Generated by the fake\n");
        for (table, chains) in &inner.tables {
            out.push_str(&format!("*{table}\n"));
            let builtins = builtin(table);
            for chain in builtins {
                out.push_str(&format!(":{chain} ACCEPT [0:0]\n"));
            }
            for chain in chains.keys().filter(|chain| !builtins.contains(&chain.as_str())) {
                out.push_str(&format!(":{chain} - [0:0]\n"));
            }
            let ordered = builtins
                .iter()
                .map(|chain| chain.to_string())
                .chain(chains.keys().filter(|chain| !builtins.contains(&chain.as_str())).cloned());
            for chain in ordered {
                for spec in chains.get(&chain).into_iter().flatten() {
                    out.push_str(&format!("-A {chain} {spec}\n"));
                }
            }
            out.push_str("COMMIT\n");
        }
        Ok(out)
    }

    async fn restore(&self, script: &str) -> Result<()> {
        let mut inner = self.lock();
        inner.scripts.push(script.to_owned());
        if inner.fail_restores > 0 {
            inner.fail_restores -= 1;
            return Err(FirewallError::new("iptables-restore", "exit status 1 (fake failure)"));
        }
        if self.nftables {
            let table = script.strip_prefix(NFT_PREFIX).ok_or_else(|| {
                FirewallError::new("nft", "the fake only takes whole-table batches")
            })?;
            inner.nft_table = table.to_owned();
            return Ok(());
        }
        let mut tables = inner.tables.clone();
        apply(&mut tables, script)?;
        inner.tables = tables;
        Ok(())
    }

    async fn ip_forward(&self) -> Result<bool> {
        Ok(self.lock().ip_forward)
    }

    async fn enable_ip_forward(&self) -> Result<()> {
        self.lock().ip_forward = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn applies_batches_atomically() {
        let fake = Fake::default();
        fake.restore("*filter\n:CNET - [0:0]\n-A CNET -j RETURN\n-I FORWARD 1 -j CNET\nCOMMIT\n")
            .await
            .unwrap();
        let bad = "*filter\n:CNET - [0:0]\n-A CNET -j DROP\n-D FORWARD -j NOPE\nCOMMIT\n";
        assert!(fake.restore(bad).await.is_err());
        let dump = fake.save().await.unwrap();
        assert!(dump.contains("-A FORWARD -j CNET\n-A CNET -j RETURN\n"), "{dump}");
        assert_eq!(fake.scripts().len(), 2);
    }
}
