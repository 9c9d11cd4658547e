//! IPAM's rules in plain Rust, free of gRPC and storage: parsing and validating subnets
//! and names ([`cidr`], [`id`]), a pool and its reserved addresses ([`pool`]), Docker's
//! default pools ([`defaults`]) and the in-memory state of all pools ([`allocator`]).

pub mod allocator;
pub mod cidr;
pub mod defaults;
mod error;
pub mod id;
pub mod pool;

pub use allocator::{Allocation, AllocationRequest, Allocator, Outcome, PoolSummary, RemovedPool};
pub use cidr::Cidr;
pub use error::Error;
pub use id::{Owner, PoolId};
pub use pool::{Pool, PoolRequest};
