//! The service's error: domain refusals, proxy bind failures, packet-filter and store
//! failures. Mapped to gRPC status codes once, in `grpc.rs`.

use cnet_common::store::StoreError;

use crate::{domain, firewall::FirewallError, proxy::BindError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Nat(#[from] domain::Error),
    /// docker-proxy's wording (PUB-9).
    #[error("Error starting userland proxy: {0}")]
    Proxy(#[from] BindError),
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("store: record {key:?} is inconsistent: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("serve gRPC: {0}")]
    Serve(#[from] tonic::transport::Error),
}
