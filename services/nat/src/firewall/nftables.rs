//! The nftables packet filter: `nft list table ip cnet` to read, `nft -f -` to write the
//! whole table in one transaction (see [`crate::domain::nft`]), and the same
//! `/proc/sys/net/ipv4/ip_forward` as the iptables backend. nft works on the ruleset of
//! the network namespace of the thread that spawns it, i.e. the service's, and never
//! touches a table other than `ip cnet`.

use std::path::{Path, PathBuf};

use super::{
    Dialect, PacketFilter, Result,
    iptables::{enable_ip_forward, ip_forward, run},
};
use crate::domain::nft::TABLE;

pub struct Nftables {
    nft: PathBuf,
}

impl Nftables {
    pub fn new(nft: &Path) -> Self {
        Self { nft: nft.to_owned() }
    }
}

#[tonic::async_trait]
impl PacketFilter for Nftables {
    fn dialect(&self) -> Dialect {
        Dialect::Nftables
    }

    /// The listing of `ip cnet`, or "" when the table does not exist (a fresh namespace,
    /// or someone ran `nft flush ruleset`).
    async fn save(&self) -> Result<String> {
        match run(&self.nft, &["list", "table", "ip", TABLE], None).await {
            Err(error) if error.reason.contains("No such file or directory") => Ok(String::new()),
            other => other,
        }
    }

    async fn restore(&self, script: &str) -> Result<()> {
        run(&self.nft, &["-f", "-"], Some(script)).await.map(drop)
    }

    async fn ip_forward(&self) -> Result<bool> {
        ip_forward()
    }

    async fn enable_ip_forward(&self) -> Result<()> {
        enable_ip_forward()
    }
}
