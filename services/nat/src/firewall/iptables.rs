//! The real packet filter: `iptables-save` to read, `iptables-restore --noflush` to write
//! one batch per change (the `iptables` crate would spawn one process per rule), and
//! `/proc/sys/net/ipv4/ip_forward`. Both work on whichever backend the binaries are
//! (nf_tables on Debian 12, legacy elsewhere), in the network namespace of the thread
//! that spawns them, i.e. the service's. The process runner and the sysctl are shared
//! with [`super::nftables`].

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::{io::AsyncWriteExt, process::Command};

use super::{FirewallError, PacketFilter, Result};

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
/// A hung iptables (xtables lock held by someone else) or nft must not hold the state
/// lock forever.
const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Iptables {
    save: PathBuf,
    restore: PathBuf,
}

impl Iptables {
    pub fn new(save: &Path, restore: &Path) -> Self {
        Self { save: save.to_owned(), restore: restore.to_owned() }
    }
}

/// Runs `program` with `input` on stdin; its stdout, or an error with its stderr.
pub(super) async fn run(program: &Path, args: &[&str], input: Option<&str>) -> Result<String> {
    let op = program.display().to_string();
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| FirewallError::new(&op, format!("cannot run it: {error}")))?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(input.as_bytes()).await.map_err(|e| FirewallError::new(&op, e))?;
    }
    let output = tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| FirewallError::new(&op, format!("no answer within {TIMEOUT:?}")))?
        .map_err(|error| FirewallError::new(&op, error))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = format!("{}: {}", output.status, stderr.trim());
        return Err(FirewallError::new(op, reason));
    }
    String::from_utf8(output.stdout).map_err(|error| FirewallError::new(op, error))
}

/// Whether `net.ipv4.ip_forward` is 1, read directly on the calling thread: sysctls
/// under /proc/sys/net belong to the namespace of the thread that opens them, and a
/// blocking-pool thread is not worth the doubt for a two-byte file.
pub(super) fn ip_forward() -> Result<bool> {
    let value = std::fs::read_to_string(IP_FORWARD)
        .map_err(|error| FirewallError::new(format!("read {IP_FORWARD}"), error))?;
    Ok(value.trim() == "1")
}

pub(super) fn enable_ip_forward() -> Result<()> {
    std::fs::write(IP_FORWARD, "1\n")
        .map_err(|error| FirewallError::new(format!("write {IP_FORWARD}"), error))
}

#[tonic::async_trait]
impl PacketFilter for Iptables {
    async fn save(&self) -> Result<String> {
        run(&self.save, &[], None).await
    }

    async fn restore(&self, script: &str) -> Result<()> {
        // -w waits for the xtables lock of the legacy backend; nf_tables ignores it.
        run(&self.restore, &["--noflush", "-w", "5"], Some(script)).await.map(drop)
    }

    async fn ip_forward(&self) -> Result<bool> {
        ip_forward()
    }

    async fn enable_ip_forward(&self) -> Result<()> {
        enable_ip_forward()
    }
}
