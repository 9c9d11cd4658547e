//! cnet's bridge agent: it owns the kernel objects of bridge networks, i.e. Linux
//! bridges, the veth pairs that connect containers to them, and the network namespaces
//! ("sandboxes") it creates for containers.
//!
//! Requests arrive over gRPC ([`grpc`]), are validated into domain values ([`domain`])
//! and carried out by the [`agent::Agent`] against a small kernel trait ([`kernel`]),
//! real (rtnetlink) or fake. The sled records ([`store`]) are the truth: each is written
//! before the kernel object it describes is made, and [`reconcile`] brings the kernel
//! back to them at start. Interfaces are marked as ours with an alias
//! ("cnet:bridge:<network id>", "cnet:endpoint:<endpoint id>"); nothing without the
//! mark is ever changed or deleted.

pub mod agent;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod kernel;
pub mod reconcile;
pub mod store;

use std::{future::Future, path::PathBuf, sync::Arc};

use cnet_common::{
    config::{ServerConfig, ServiceConfig},
    server::{Listeners, Starting},
    store::Store,
};
use cnet_proto::bridge::v1::bridge_agent_server::BridgeAgentServer;
use serde::{Deserialize, Serialize};

pub use crate::error::Error;
use crate::{agent::Agent, grpc::BridgeService, kernel::Kernel, store::Records};

/// The name of this service: its socket, store and config sections use it.
pub const SERVICE: &str = "bridge";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    /// Where namespaces of sandboxes are mounted; default `<runtime_dir>/netns`.
    pub netns_dir: Option<PathBuf>,
}

impl Config {
    pub fn netns_dir(&self) -> PathBuf {
        self.netns_dir.clone().unwrap_or_else(|| self.server.runtime_dir.join("netns"))
    }
}

impl ServiceConfig for Config {
    fn server(&self) -> &ServerConfig {
        &self.server
    }
}

/// Runs the agent on the kernel of the calling thread's network namespace: reconciles,
/// reports SERVING, and serves on `listeners` until `shutdown` resolves.
pub async fn run(
    config: &Config,
    store: Store,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let kernel = kernel::netlink::Netlink::connect()?;
    run_with(kernel, config, store, listeners, shutdown).await
}

/// [`run`] on any kernel, e.g. the fake one in tests.
pub async fn run_with<K: Kernel>(
    kernel: K,
    config: &Config,
    store: Store,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let mut starting = Starting::serve(listeners, &config.server, shutdown).await;
    let agent = Arc::new(Agent::new(kernel, Records::open(store)?, config.netns_dir()));
    let summary = reconcile::reconcile(&agent).await?;
    tracing::info!(
        orphans_removed = summary.orphans_removed,
        recreated = summary.recreated,
        failed = summary.failed,
        "reconciled"
    );
    starting.add_service(BridgeAgentServer::new(BridgeService::new(agent)));
    starting.ready().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use cnet_common::config::{CommonArgs, load};

    use super::*;

    #[test]
    fn config_defaults_and_netns_dir() {
        let args = CommonArgs {
            config: None,
            runtime_dir: Some("/tmp/cnet-x".into()),
            state_dir: None,
            listen_tcp: None,
        };
        let config: Config = load(SERVICE, &args).unwrap();
        assert_eq!(config.netns_dir(), Path::new("/tmp/cnet-x/netns"));
        let explicit = Config { netns_dir: Some("/var/run/netns".into()), ..config };
        assert_eq!(explicit.netns_dir(), Path::new("/var/run/netns"));
    }
}
