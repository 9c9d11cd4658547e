//! The gateway's own records and rules, free of gRPC, sled and the kernel: what a
//! network and a container are, and how names and ids are checked.

pub mod container;
pub mod names;
pub mod network;

pub use container::{
    Attachment, ContainerRecord, DnsSettings, ExtraHost, InFlight, Lease, Link, NetworkMode,
    PortBinding, PortSpec, RunState,
};
pub use network::NetworkRecord;
