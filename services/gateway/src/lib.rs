//! The cnet gateway: the one public API. It owns the records of networks and containers
//! and carries out each call across the ipam service (addresses) and the bridge agent
//! (bridges, namespaces, veths), and runs the containers' processes itself.
//!
//! Layout: `grpc` (the API surface) → `ops` (operations, locking, undo, reconcile) →
//! `domain` (records and rules), with `backends` (clients), `store` (sled) and `sandbox`
//! (process launch) at the edges.

mod backends;
mod domain;
mod error;
mod grpc;
mod health;
mod ops;
mod sandbox;
mod store;

use std::future::Future;

use cnet_common::{
    config::{ServerConfig, ServiceConfig, socket_path},
    server::{Listeners, Starting},
    store::Store,
};
use cnet_proto::gateway::v1::{
    container_service_server::ContainerServiceServer, network_service_server::NetworkServiceServer,
    system_service_server::SystemServiceServer,
};
use serde::{Deserialize, Serialize};

pub const SERVICE: &str = "gateway";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    /// Address of the ipam service; default `<runtime_dir>/ipam.sock`.
    pub ipam: Option<String>,
    /// Address of the bridge agent; default `<runtime_dir>/bridge.sock`.
    pub bridge: Option<String>,
    /// Address of the dns service; default `<runtime_dir>/dns.sock`.
    pub dns: Option<String>,
    /// Address of the hosts service; default `<runtime_dir>/hosts.sock`.
    pub hosts: Option<String>,
    /// Address of the nat service; default `<runtime_dir>/nat.sock`.
    pub nat: Option<String>,
    /// Device name of the predefined `bridge` network.
    pub default_bridge_name: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            ipam: None,
            bridge: None,
            dns: None,
            hosts: None,
            nat: None,
            default_bridge_name: "cnet0".into(),
        }
    }
}

impl ServiceConfig for Config {
    fn server(&self) -> &ServerConfig {
        &self.server
    }
}

impl Config {
    /// Where `service` listens: as configured, else its socket in the runtime dir.
    fn endpoint(&self, service: &str) -> String {
        let configured = match service {
            "ipam" => &self.ipam,
            "bridge" => &self.bridge,
            "dns" => &self.dns,
            "hosts" => &self.hosts,
            "nat" => &self.nat,
            _ => &None,
        };
        configured.clone().unwrap_or_else(|| {
            format!("unix://{}", socket_path(&self.server.runtime_dir, service).display())
        })
    }
}

/// Reconciles with the other services, then serves until `shutdown` resolves.
pub async fn run(
    config: &Config,
    store: Store,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let backends = backends::Backends::connect(|service| config.endpoint(service))?;
    let records = store::Records::open(store)?;
    let gateway = ops::Gateway::new(
        records,
        backends,
        config.server.state_dir.clone(),
        config.default_bridge_name.clone(),
    );
    let api = grpc::Api::new(gateway.clone(), config.server.state_dir.clone());

    let mut starting = Starting::serve(listeners, &config.server, shutdown).await;
    gateway.reconcile().await?;
    starting
        .add_service(SystemServiceServer::new(api.clone()))
        .add_service(NetworkServiceServer::new(api.clone()))
        .add_service(ContainerServiceServer::new(api));
    tokio::spawn(gateway.clone().sweep_drift());
    let serving = starting.open().await;
    tokio::spawn({
        let config = config.clone();
        health::follow_dependencies(serving.health().clone(), move |service| {
            config.endpoint(service)
        })
    });
    serving.until_shutdown().await?;
    Ok(())
}

/// Now, as RFC 3339.
pub(crate) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 formats any time")
}
