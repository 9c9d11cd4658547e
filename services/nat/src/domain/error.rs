//! Errors of the domain rules. Messages name the object and follow Docker's wording where
//! Docker has one (the two port conflicts in particular, PUB-9).

use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A request field that cannot be used; it never reaches a command line.
    #[error("invalid {field} {value:?}: {reason}")]
    Invalid { field: &'static str, value: String, reason: String },
    #[error("network {id} not found")]
    NetworkNotFound { id: String },
    #[error("network {id} already exists with {existing}")]
    NetworkConflict { id: String, existing: String },
    #[error("bridge {bridge} is already used by network {other}")]
    BridgeTaken { bridge: String, other: String },
    #[error(
        "network {id} has published ports of {containers} container(s): unpublish them first or delete with force"
    )]
    NetworkInUse { id: String, containers: usize },
    #[error("container {id} already has other ports published: unpublish them first")]
    ContainerPublished { id: String },
    /// Docker's message for a host port cnet itself already uses (PUB-9).
    #[error("Bind for {host_ip}:{port} failed: port is already allocated")]
    PortAllocated { host_ip: Ipv4Addr, port: String },
    /// Docker's message when the ephemeral range has no free port left.
    #[error("all ports are allocated")]
    PortsExhausted,
}

impl Error {
    pub fn invalid(field: &'static str, value: impl ToString, reason: impl Into<String>) -> Self {
        Error::Invalid { field, value: value.to_string(), reason: reason.into() }
    }
}
