//! The bridge agent's pure model: validated names and ids ([`id`], [`net`]), the desired
//! state the agent records ([`model`]), how cnet names and marks its interfaces
//! ([`naming`]) and how an observed interface is judged against what was recorded
//! ([`observed`]). Nothing here talks to tonic, sled or the kernel.

pub mod id;
pub mod model;
pub mod naming;
pub mod net;
pub mod observed;

pub use id::{EndpointId, NetworkId, SandboxId};
pub use model::{Bridge, Endpoint, EndpointRequest, Sandbox};
pub use net::{IfName, Mac, Mtu};
pub use observed::{EndpointObservation, EndpointStatus, HostPrefix, Link, PeerObservation};

/// Why a value was refused; the caller adds the name of the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// A refused request field, named as in the proto contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: &'static str,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self { field, reason: reason.into() }
    }
}

/// Parses the request field `field`, naming it in the error.
pub fn parse_field<T>(field: &'static str, value: &str) -> Result<T, FieldError>
where
    T: std::str::FromStr<Err = Invalid>,
{
    value.parse().map_err(|Invalid(reason)| FieldError { field, reason })
}
