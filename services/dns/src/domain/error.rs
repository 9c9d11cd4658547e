//! Why a registration or a lookup request is refused. Every variant is the caller's
//! mistake (INVALID_ARGUMENT) and its message names the offending field and value.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid container id {value:?}: expected 64 lowercase hex digits")]
    InvalidContainerId { value: String },
    #[error("invalid network id {value:?}: expected letters, digits, '_', '.' or '-'")]
    InvalidNetworkId { value: String },
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidName { field: &'static str, value: String, reason: &'static str },
    #[error("invalid hostname {value:?}: expected an RFC 1123 host name")]
    InvalidHostname { value: String },
    #[error("invalid address {value:?} on network {network}: {reason}")]
    InvalidAddress { network: String, value: String, reason: &'static str },
    #[error("invalid upstream {value:?}: {reason}")]
    InvalidUpstream { value: String, reason: &'static str },
    #[error("network {network} appears twice in the endpoints")]
    DuplicateNetwork { network: String },
    #[error("invalid netns path {value:?}: {reason}")]
    InvalidNetnsPath { value: String, reason: String },
    #[error("invalid record type {value:?}")]
    InvalidRecordType { value: String },
}
