//! cnet's embedded DNS service: Docker 20.10's resolver at 127.0.0.11:53 for containers
//! on user-defined networks (see `proto/cnet/dns/v1/dns.proto` and DOCKER_SEMANTICS.md
//! DNS-1 … DNS-7), one process for every container.
//!
//! - [`domain`]: the rules in plain Rust: validated registrations, name matching, the
//!   record tables with Docker's scoping, the answers built from them.
//! - `listener`: the UDP and TCP sockets bound inside each container's namespace by a
//!   short-lived thread, served on this runtime: TCP by hickory, UDP by `udp`.
//! - `udp`: one task per UDP socket that answers local names inline and spawns only the
//!   queries it forwards.
//! - `handler`: the answers, from the current tables (swapped atomically) or forwarded;
//!   shared by both transports (hickory's `RequestHandler` for TCP).
//! - `metrics`: queries by source (local or upstream) and response code.
//! - `forward`: the upstream client (failover, TCP fallback), its cache and the host's
//!   resolv.conf.
//! - `store`: registrations in the service's sled store, flushed before every reply.
//! - `registry`: registrations, listeners and tables behind one lock.
//! - `grpc`: the `cnet.dns.v1.Dns` service; the only place that sees prost types and maps
//!   errors to status codes.
//!
//! [`run`] serves it until a shutdown future resolves; `main.rs` only wires config,
//! logging, store and sockets.

pub mod domain;
mod forward;
mod grpc;
mod handler;
mod listener;
mod metrics;
mod registry;
mod store;
mod udp;

use std::{future::Future, io, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use cnet_common::{
    config::{ServerConfig, ServiceConfig},
    server::{Listeners, Starting},
    store::{Store, StoreError},
};
use cnet_proto::dns::v1::dns_server::DnsServer;
use serde::{Deserialize, Serialize};

use crate::{
    forward::Forwarder,
    grpc::DnsService,
    handler::{Handler, Resolver},
    listener::HostListener,
    registry::Registry,
};

/// The service name: socket `dns.sock`, store dir `<state_dir>/dns`, env `CNET_DNS__*`.
pub const SERVICE: &str = "dns";

pub use listener::RESOLVER_ADDRESS;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    /// The resolv.conf whose `nameserver`s serve containers registered without
    /// upstreams; read at start and whenever it changes.
    pub resolv_conf: PathBuf,
    /// How long one upstream server may take before the next one is asked.
    pub upstream_timeout_ms: u64,
    /// Upstream answers kept for their TTL; 0 turns the cache off.
    pub cache_size: usize,
    /// An extra address to answer on, in the service's own namespace, with every
    /// network's names (a debugging aid). Off by default: the resolver must not become
    /// an open resolver on the host.
    pub listen: Option<SocketAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            resolv_conf: "/etc/resolv.conf".into(),
            upstream_timeout_ms: 1500,
            cache_size: 4096,
            listen: None,
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
    /// Settings serde cannot check on its own.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=30_000).contains(&self.upstream_timeout_ms) {
            return Err(format!(
                "upstream_timeout_ms must be 1 to 30000, not {}",
                self.upstream_timeout_ms
            ));
        }
        if !self.resolv_conf.is_absolute() {
            return Err(format!("resolv_conf must be absolute: {}", self.resolv_conf.display()));
        }
        Ok(())
    }

    pub fn upstream_timeout(&self) -> Duration {
        Duration::from_millis(self.upstream_timeout_ms)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] domain::Error),
    #[error("container {container} is not registered")]
    NotRegistered { container: String },
    #[error("listen on 127.0.0.11:53 in namespace {path:?}: {source}")]
    Listen { path: PathBuf, source: io::Error },
    #[error("listen on {address}: {source}")]
    Bind { address: SocketAddr, source: io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("store: record {key:?} is inconsistent: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("serve gRPC: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Loads the registrations from `store`, listens again in every container's namespace,
/// and serves the DNS service on `listeners` until `shutdown` resolves. Health turns
/// SERVING only once every listener is back. At shutdown every listener is closed; the
/// registrations stay stored for the next start.
pub async fn run(
    config: &Config,
    store: Store,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.validate().map_err(Error::Config)?;
    let forwarder =
        Forwarder::new(config.resolv_conf.clone(), config.upstream_timeout(), config.cache_size);
    let mut starting = Starting::serve(listeners, &config.server, shutdown).await;
    let resolver = Arc::new(Resolver::new(forwarder));
    let registry = Arc::new(Registry::open(store, resolver.clone()).await?);
    let host = match config.listen {
        Some(address) => {
            let host = HostListener::open(address, Handler::for_host(resolver.clone())).await?;
            tracing::warn!(%address, "also answering on a host address");
            Some(host)
        }
        None => None,
    };
    starting.add_service(DnsServer::new(DnsService::new(registry.clone())));
    let served = starting.ready().await;
    registry.close_all().await;
    if let Some(host) = host {
        host.close().await;
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}
