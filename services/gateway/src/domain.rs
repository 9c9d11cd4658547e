//! The gateway's own records and rules, free of gRPC, sled and the kernel: what a
//! network and a container are, how names and ids are checked, and what goes into the
//! files a container sees.

pub mod container;
pub mod files;
pub mod names;
pub mod network;

pub use container::{Attachment, ContainerRecord, Lease, NetworkMode, RunState};
pub use network::NetworkRecord;
