//! The resolver's rules in plain Rust, without gRPC, sled or sockets: validated
//! registrations ([`registration`]), name rules ([`names`]), the record tables built from
//! every registration with Docker's scoping ([`records`]) and the DNS answers made from a
//! lookup ([`answer`]).

pub mod answer;
mod error;
pub mod names;
pub mod records;
pub mod registration;

pub use error::Error;
pub use records::{Asker, Outcome, QueryKind, Records};
pub use registration::{ContainerId, Endpoint, LinkAlias, NetworkId, Registration, Upstream};
