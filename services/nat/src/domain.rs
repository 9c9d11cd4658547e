//! The NAT service's rules in plain Rust, free of gRPC, storage, processes and sockets:
//! validated values ([`model`]), the exact iptables rule lines of networks and published
//! ports ([`rules`]), how to bring iptables-save's view to those rules in one
//! iptables-restore batch ([`plan`]), the same rules as one nftables table and its
//! one-batch rewrite ([`nft`]), the host-port allocator ([`ports`]) and the
//! in-memory state of networks and publications ([`state`]).

mod error;
pub mod model;
pub mod nft;
pub mod plan;
pub mod ports;
pub mod rules;
pub mod state;

pub use error::Error;
pub use model::{
    Binding, BridgeName, ContainerId, HostPort, Network, NetworkId, PortRequest, Protocol,
    Publication, PublishRequest,
};
pub use state::State;
