//! cnet's NAT and port-publishing service: the packet-filter rules of bridge networks
//! (MASQUERADE, forwarding, two-stage isolation, `--internal`) and the published ports of
//! containers (DNAT, filter ACCEPT, hairpin MASQUERADE and an in-process userland proxy),
//! with Docker 20.10's semantics (see `proto/cnet/nat/v1/nat.proto` and
//! DOCKER_SEMANTICS.md ISO-1..3, INT-1, PUB-1..9). IPv4 only.
//!
//! - [`domain`]: the rules in plain Rust: validated values, the exact rule lines, the
//!   plan from `iptables-save` to one `iptables-restore` batch, the port allocator and
//!   the state; no gRPC, sockets, processes or storage.
//! - [`firewall`]: the `PacketFilter` trait, iptables or nftables for real and a
//!   recording fake.
//! - [`proxy`]: one tokio task per binding, TCP and UDP.
//! - `store`: networks and publications in the service's sled store.
//! - `registry`: state, store, rules and proxies kept in step behind one lock.
//! - `grpc`: the `cnet.nat.v1.Nat` service; the only place that sees prost types and
//!   maps errors to status codes.
//!
//! [`run`] serves it until a shutdown future resolves, re-checking the rules every
//! `check_interval_secs`; `main.rs` only wires config, logging, store and sockets.

pub mod domain;
mod error;
pub mod firewall;
mod grpc;
pub mod proxy;
mod registry;
mod store;

use std::{future::Future, path::PathBuf, sync::Arc, time::Duration};

use cnet_common::{
    config::{ServerConfig, ServiceConfig},
    server::{Listeners, Starting},
    store::Store,
};
use cnet_proto::nat::v1::nat_server::NatServer;
use serde::{Deserialize, Serialize};

pub use crate::error::Error;
use crate::{
    firewall::{Firewall, iptables::Iptables, nftables::Nftables},
    grpc::NatService,
    registry::Registry,
    store::Records,
};

/// The service name: socket `nat.sock`, store dir `<state_dir>/nat`, env `CNET_NAT__*`.
pub const SERVICE: &str = "nat";

/// Which packet filter carries the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FirewallDriver {
    /// `iptables-save` / `iptables-restore` (either backend).
    #[default]
    Iptables,
    /// `nft`, with every rule in a table of cnet's own, `ip cnet`, rewritten whole in
    /// one transaction (see `domain/nft.rs` for how it coexists with other tables).
    Nftables,
    /// No rules at all: only the proxies serve published ports (no MASQUERADE, no
    /// isolation). For hosts whose firewall is managed by something else.
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub firewall: FirewallDriver,
    pub iptables_save: PathBuf,
    pub iptables_restore: PathBuf,
    /// The `nft` binary of `firewall = "nftables"`.
    pub nft: PathBuf,
    /// Set `net.ipv4.ip_forward=1` (in the service's namespace) once a network that
    /// routes to the outside exists, as dockerd does.
    pub manage_ip_forward: bool,
    /// A UDP flow of a published port is closed after this many idle seconds.
    pub udp_idle_timeout_secs: u64,
    /// How often the rules are compared with the kernel and restored; 0 turns it off.
    pub check_interval_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            firewall: FirewallDriver::Iptables,
            iptables_save: "/usr/sbin/iptables-save".into(),
            iptables_restore: "/usr/sbin/iptables-restore".into(),
            nft: "/usr/sbin/nft".into(),
            manage_ip_forward: true,
            udp_idle_timeout_secs: 30,
            check_interval_secs: 5,
        }
    }
}

impl ServiceConfig for Config {
    fn server(&self) -> &ServerConfig {
        &self.server
    }

    fn validate(&self) -> Result<(), String> {
        Config::validate(self)
    }
}

impl Config {
    /// Settings the service cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        if self.udp_idle_timeout_secs == 0 {
            return Err("udp_idle_timeout_secs must be at least 1".into());
        }
        if self.firewall == FirewallDriver::Iptables {
            for path in [&self.iptables_save, &self.iptables_restore] {
                if path.as_os_str().is_empty() {
                    return Err("iptables_save and iptables_restore must be set".into());
                }
            }
        }
        if self.firewall == FirewallDriver::Nftables && self.nft.as_os_str().is_empty() {
            return Err("nft must be set".into());
        }
        Ok(())
    }

    fn firewall(&self) -> Firewall {
        match self.firewall {
            FirewallDriver::Iptables => Firewall::new(
                Arc::new(Iptables::new(&self.iptables_save, &self.iptables_restore)),
                self.manage_ip_forward,
            ),
            FirewallDriver::Nftables => {
                Firewall::new(Arc::new(Nftables::new(&self.nft)), self.manage_ip_forward)
            }
            FirewallDriver::None => Firewall::disabled(),
        }
    }
}

/// Loads the state from `store`, puts the rules and proxies in place and serves the NAT
/// service on `listeners` until `shutdown` resolves. Health turns SERVING only then.
pub async fn run(
    config: &Config,
    store: Store,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    run_with(config, config.firewall(), store, listeners, shutdown).await
}

/// [`run`] with a given firewall (e.g. over [`firewall::fake::Fake`]); `config.firewall`
/// and the iptables and nft paths are ignored.
pub async fn run_with(
    config: &Config,
    firewall: Firewall,
    store: Store,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let settings =
        proxy::Settings { udp_idle_timeout: Duration::from_secs(config.udp_idle_timeout_secs) };
    let mut starting = Starting::serve(listeners, &config.server, shutdown).await;
    let registry = Arc::new(Registry::open(Records::open(store)?, firewall, settings).await?);
    let checker = (config.check_interval_secs > 0).then(|| {
        let registry = registry.clone();
        let period = Duration::from_secs(config.check_interval_secs);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                registry.check().await;
            }
        })
    });
    starting.add_service(NatServer::new(NatService::new(registry.clone())));
    let served = starting.ready().await;
    if let Some(checker) = checker {
        checker.abort();
        let _ = checker.await;
    }
    // The rules stay (published ports keep working through DNAT, as with Docker's
    // live-restore); the listeners close now rather than whenever the runtime ends.
    registry.close().await;
    served?;
    tracing::info!("stopped");
    Ok(())
}
