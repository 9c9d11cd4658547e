//! The packet filter behind a small trait: [`iptables::Iptables`] drives
//! `iptables-save` / `iptables-restore`, [`nftables::Nftables`] drives `nft` on a table
//! of cnet's own, [`fake::Fake`] simulates either in memory and records every batch for
//! tests. [`Firewall`] brings the kernel to a [`Ruleset`]: it reads the rules once, plans
//! the difference in the filter's [`Dialect`] ([`crate::domain::plan`] or
//! [`crate::domain::nft::plan`]) and applies it as one batch, so a change costs two
//! processes however many rules it touches, and a check that finds everything in place
//! costs one.

pub mod fake;
pub mod iptables;
pub mod nftables;

use std::sync::Arc;

use crate::domain::{
    nft,
    plan::{Saved, plan},
    rules::Ruleset,
};

/// The language a [`PacketFilter`] reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `iptables-save` dumps of the filter and nat tables, `iptables-restore --noflush`
    /// batches.
    Iptables,
    /// `nft list table ip cnet` listings, `nft -f` batches.
    Nftables,
}

/// A packet-filter operation that failed: what was attempted and why.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {reason}")]
pub struct FirewallError {
    pub op: String,
    pub reason: String,
}

impl FirewallError {
    pub fn new(op: impl Into<String>, reason: impl ToString) -> Self {
        Self { op: op.into(), reason: reason.to_string() }
    }
}

pub type Result<T, E = FirewallError> = std::result::Result<T, E>;

/// The kernel side, in the service's network namespace.
#[tonic::async_trait]
pub trait PacketFilter: Send + Sync + 'static {
    /// What `save` returns and `restore` takes.
    fn dialect(&self) -> Dialect {
        Dialect::Iptables
    }
    /// The rules: the filter and nat tables in `iptables-save` format, or cnet's
    /// nftables table as `nft list` prints it ("" when there is none).
    async fn save(&self) -> Result<String>;
    /// Applies `script` (`iptables-restore --noflush` or `nft -f`): all of it or none.
    async fn restore(&self, script: &str) -> Result<()>;
    /// Whether `net.ipv4.ip_forward` is 1.
    async fn ip_forward(&self) -> Result<bool>;
    /// Sets `net.ipv4.ip_forward` to 1.
    async fn enable_ip_forward(&self) -> Result<()>;
}

/// Keeps the kernel at the rules the state asks for.
#[derive(Clone)]
pub struct Firewall {
    /// None: rules are not managed at all (config `firewall = "none"`); the proxies
    /// still serve every published port.
    filter: Option<Arc<dyn PacketFilter>>,
    manage_ip_forward: bool,
}

impl Firewall {
    pub fn new(filter: Arc<dyn PacketFilter>, manage_ip_forward: bool) -> Self {
        Self { filter: Some(filter), manage_ip_forward }
    }

    pub fn disabled() -> Self {
        Self { filter: None, manage_ip_forward: false }
    }

    /// Brings the tables to `ruleset` and, when `forwarding` (a network that routes to
    /// the outside exists), turns on IPv4 forwarding. Returns what had to be repaired:
    /// "table/chain" names and "net.ipv4.ip_forward"; empty when all was in place.
    pub async fn sync(&self, ruleset: &Ruleset, forwarding: bool) -> Result<Vec<String>> {
        let Some(filter) = &self.filter else { return Ok(Vec::new()) };
        let saved = filter.save().await?;
        let (script, mut changed) = match filter.dialect() {
            Dialect::Iptables => {
                let plan = plan(ruleset, &Saved::parse(&saved));
                (plan.script, plan.changed)
            }
            Dialect::Nftables => {
                let plan = nft::plan(&ruleset.nft, &saved);
                (plan.script, plan.changed)
            }
        };
        if !script.is_empty() {
            tracing::debug!(%script, dialect = ?filter.dialect(), "applying one batch");
            filter.restore(&script).await?;
        }
        if forwarding && self.manage_ip_forward && !filter.ip_forward().await? {
            filter.enable_ip_forward().await?;
            changed.push("net.ipv4.ip_forward".into());
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Network;

    fn ruleset(bridges: &[&str]) -> Ruleset {
        let networks: Vec<_> = bridges
            .iter()
            .enumerate()
            .map(|(index, bridge)| {
                let subnet = format!("10.{index}.0.0/16");
                Network::parse(&format!("n{index}"), bridge, &subnet, false).unwrap()
            })
            .collect();
        Ruleset::build(&networks, [])
    }

    #[tokio::test]
    async fn sync_is_one_batch_then_nothing() {
        let fake = Arc::new(fake::Fake::default());
        let firewall = Firewall::new(fake.clone(), true);
        let changed = firewall.sync(&ruleset(&["br-a"]), true).await.unwrap();
        assert!(changed.contains(&"net.ipv4.ip_forward".to_string()), "{changed:?}");
        assert_eq!(fake.scripts().len(), 1);
        assert!(fake.ip_forward_enabled());
        assert!(firewall.sync(&ruleset(&["br-a"]), true).await.unwrap().is_empty());
        assert_eq!(fake.scripts().len(), 1, "nothing to do, no iptables-restore");

        fake.flush("nat", "CNET-POSTROUTING");
        let changed = firewall.sync(&ruleset(&["br-a"]), true).await.unwrap();
        assert_eq!(changed, ["nat/CNET-POSTROUTING"]);
        let dump = fake.save().await.unwrap();
        assert!(dump.contains("-A CNET-POSTROUTING -s 10.0.0.0/16 ! -o br-a -j MASQUERADE"));

        firewall.sync(&ruleset(&["br-a", "br-b"]), true).await.unwrap();
        let dump = fake.save().await.unwrap();
        assert!(dump.contains("-A CNET-ISOLATION-2 -o br-b -j DROP"), "{dump}");
        firewall.sync(&ruleset(&[]), false).await.unwrap();
        let dump = fake.save().await.unwrap();
        assert!(!dump.contains("br-"), "{dump}");
    }

    #[tokio::test]
    async fn nftables_sync_is_one_batch_then_nothing_and_repairs() {
        let fake = Arc::new(fake::Fake::nftables());
        let firewall = Firewall::new(fake.clone(), true);
        let changed = firewall.sync(&ruleset(&["br-a"]), true).await.unwrap();
        assert!(changed.contains(&"cnet/forward".to_string()), "{changed:?}");
        assert!(fake.ip_forward_enabled());
        assert!(fake.scripts()[0].starts_with("add table ip cnet\ndelete table ip cnet\n"));
        assert!(firewall.sync(&ruleset(&["br-a"]), true).await.unwrap().is_empty());
        assert_eq!(fake.scripts().len(), 1, "nothing to do, no nft -f");

        fake.flush_ruleset();
        let changed = firewall.sync(&ruleset(&["br-a"]), false).await.unwrap();
        assert_eq!(changed.len(), 9, "{changed:?}");
        let listing = fake.save().await.unwrap();
        assert!(listing.contains("ip saddr 10.0.0.0/16 oifname != \"br-a\" masquerade"));

        firewall.sync(&ruleset(&["br-a", "br-b"]), true).await.unwrap();
        assert!(fake.save().await.unwrap().contains("oifname \"br-b\" drop"));
        firewall.sync(&ruleset(&[]), false).await.unwrap();
        assert!(!fake.save().await.unwrap().contains("br-"));
    }

    #[tokio::test]
    async fn forwarding_is_left_alone_when_not_managed_or_not_needed() {
        let fake = Arc::new(fake::Fake::default());
        Firewall::new(fake.clone(), false).sync(&ruleset(&["br-a"]), true).await.unwrap();
        assert!(!fake.ip_forward_enabled());
        Firewall::new(fake.clone(), true).sync(&ruleset(&[]), false).await.unwrap();
        assert!(!fake.ip_forward_enabled());
    }

    #[tokio::test]
    async fn disabled_does_nothing() {
        let changed = Firewall::disabled().sync(&ruleset(&["br-a"]), true).await.unwrap();
        assert!(changed.is_empty());
    }
}
