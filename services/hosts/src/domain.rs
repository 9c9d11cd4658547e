//! The service's rules in plain Rust, free of gRPC, storage and files: validated names
//! and values ([`names`]), a container's description ([`spec`]), the content of its
//! hosts and resolv.conf files ([`hosts`], [`resolv`]) and the set of containers with
//! their legacy links ([`graph`]).

mod error;
pub mod graph;
pub mod hosts;
pub mod names;
pub mod resolv;
pub mod spec;

pub use error::Error;
pub use graph::{Container, Contents, Graph, HostFiles};
pub use names::{
    Alias, ContainerId, ContainerName, DnsOption, HostEntryName, Hostname, NetworkName,
    SearchDomain,
};
pub use spec::{ContainerSpec, Dns, Endpoint, ExtraHost, Link, Mode, Process};
