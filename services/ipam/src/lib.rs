//! cnet's IP address management (IPAM) service: it owns the address pools (one per
//! network) and the allocations made from them, with Docker 20.10's semantics (see
//! `proto/cnet/ipam/v1/ipam.proto` and DOCKER_SEMANTICS.md NET-1 … NET-12).
//!
//! - [`domain`]: the rules in plain Rust (subnets, reserved addresses, lowest-free
//!   allocation, default pools), without gRPC or storage.
//! - `store`: pools and allocations in the service's sled store, one key per allocation.
//! - `registry`: the in-memory state behind one lock, persisted and flushed before every
//!   reply to a mutation.
//! - `metrics`: used and free addresses per pool, for the metrics endpoint.
//! - `grpc`: the `cnet.ipam.v1.Ipam` service; the only place that sees prost types and
//!   maps errors to status codes.
//!
//! [`run`] serves it until a shutdown future resolves; `main.rs` only wires config,
//! logging, store and sockets.

pub mod domain;
mod grpc;
mod metrics;
mod registry;
mod store;

use std::future::Future;

use cnet_common::{
    config::{ServerConfig, ServiceConfig},
    server::{Listeners, Starting},
    store::{Store, StoreError},
};
use cnet_proto::ipam::v1::ipam_server::IpamServer;
use serde::{Deserialize, Serialize};

use crate::{grpc::IpamService, registry::Registry};

/// The service name: socket `ipam.sock`, store dir `<state_dir>/ipam`, env `CNET_IPAM__*`.
pub const SERVICE: &str = "ipam";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
}

impl ServiceConfig for Config {
    fn server(&self) -> &ServerConfig {
        &self.server
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Ipam(#[from] domain::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("store: record {key:?} is inconsistent: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("serve gRPC: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Loads the state from `store` and serves the IPAM service on `listeners` until
/// `shutdown` resolves. Health turns SERVING only once the state is loaded.
pub async fn run(
    config: &Config,
    store: Store,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let mut starting = Starting::serve(listeners, &config.server, shutdown).await;
    let registry = Registry::open(store).await?;
    starting.add_service(IpamServer::new(IpamService::new(registry)));
    starting.ready().await?;
    tracing::info!("stopped");
    Ok(())
}
