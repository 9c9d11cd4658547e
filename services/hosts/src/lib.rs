//! cnet's hosts and links service: it writes and keeps each container's /etc/hosts,
//! /etc/resolv.conf and /etc/hostname, which the gateway bind-mounts into the container,
//! and keeps the legacy-link graph so that a linker's hosts file follows its targets
//! (see `proto/cnet/hosts/v1/hosts.proto` and DOCKER_SEMANTICS.md FILE-1 … FILE-4,
//! LINK-1 … LINK-3, DNS-7, HOST-1, NONE-1).
//!
//! - [`domain`]: the rules in plain Rust: validation, file contents, the link graph.
//! - [`files`]: the files directory and the in-place writer that keeps bind-mounted
//!   inodes (and documents what a concurrent reader can see).
//! - `store`: one sled record per container; links live on the linker's record.
//! - `registry`: the in-memory graph behind one lock, persisted and flushed before the
//!   files are written and the reply is sent.
//! - `grpc`: the `cnet.hosts.v1.Hosts` service; the only place that sees prost types and
//!   maps errors to status codes.
//!
//! [`run`] rewrites every file from the store, then serves until a shutdown future
//! resolves; `main.rs` only wires config, logging, store and sockets.

pub mod domain;
pub mod files;
mod grpc;
mod registry;
mod store;

use std::{
    future::Future,
    io,
    path::{Path, PathBuf},
};

use cnet_common::{
    config::{ServerConfig, ServiceConfig},
    server::{Listeners, Starting},
    store::{Store, StoreError},
};
use cnet_proto::hosts::v1::hosts_server::HostsServer;
use serde::{Deserialize, Serialize};

use crate::{
    files::FileTree,
    grpc::HostsService,
    registry::{HostPaths, Registry},
};

/// The service name: socket `hosts.sock`, store dir `<state_dir>/hosts`, env `CNET_HOSTS__*`.
pub const SERVICE: &str = "hosts";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    /// The host's hosts file, copied for host-mode containers (HOST-1).
    pub host_hosts: PathBuf,
    /// The host's resolv.conf, the base of every container's resolv.conf (FILE-3). On a
    /// host whose /etc/resolv.conf points at a local stub resolver (systemd-resolved's
    /// 127.0.0.53), point this at the real one (/run/systemd/resolve/resolv.conf), as
    /// Docker does.
    pub host_resolv_conf: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            host_hosts: "/etc/hosts".into(),
            host_resolv_conf: "/etc/resolv.conf".into(),
        }
    }
}

impl ServiceConfig for Config {
    fn server(&self) -> &ServerConfig {
        &self.server
    }
}

impl Config {
    /// `<state_dir>/hosts/files`: one directory per container.
    pub fn files_dir(&self) -> PathBuf {
        self.server.store_dir(SERVICE).join("files")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Domain(#[from] domain::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("store: record {key:?} is inconsistent: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Every failure of a step that keeps going (rewriting the files of many linkers).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<Error>),
    #[error("serve gRPC: {0}")]
    Serve(#[from] tonic::transport::Error),
}

impl Error {
    /// Wraps an io::Error with what was being done to which path.
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
        let path = path.to_owned();
        move |source| Error::Io { action, path, source }
    }
}

/// Loads the state from `store`, rewrites every container's files from it, and serves
/// the hosts service on `listeners` until `shutdown` resolves. Health turns SERVING only
/// once the files are rewritten.
pub async fn run(
    config: &Config,
    store: Store,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let files = FileTree::open(config.files_dir())?;
    let host = HostPaths {
        hosts: config.host_hosts.clone(),
        resolv_conf: config.host_resolv_conf.clone(),
    };
    let mut starting = Starting::serve(listeners, &config.server, shutdown).await;
    let registry = Registry::open(store, files, host).await?;
    starting.add_service(HostsServer::new(HostsService::new(registry)));
    starting.ready().await?;
    tracing::info!("stopped");
    Ok(())
}
