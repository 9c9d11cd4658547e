//! The kernel operations the agent needs, as one small trait: [`netlink::Netlink`] does
//! them with rtnetlink and bind-mounted namespaces, [`fake::Fake`] records them for
//! tests. Every operation is idempotent or reports exactly what it could not do, and
//! the ones that create several objects undo their own partial work on failure.

pub mod fake;
pub mod netlink;
pub mod netns;

use std::{future::Future, io, path::Path};

use crate::domain::{Bridge, Endpoint, EndpointObservation, HostPrefix, IfName, Link};

/// A kernel operation that failed: what was attempted, and the errno or reason.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {source}")]
pub struct KernelError {
    pub op: String,
    #[source]
    pub source: io::Error,
}

impl KernelError {
    pub fn new(op: impl Into<String>, source: io::Error) -> Self {
        Self { op: op.into(), source }
    }

    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}

pub type Result<T, E = KernelError> = std::result::Result<T, E>;

pub trait Kernel: Send + Sync + 'static {
    /// Every interface in the agent's namespace.
    fn links(&self) -> impl Future<Output = Result<Vec<Link>>> + Send;

    /// The interface of the agent's namespace called `name`, if any: one lookup, not a
    /// dump of every interface (there is one per container).
    fn link(&self, name: &str) -> impl Future<Output = Result<Option<Link>>> + Send;

    /// Creates the bridge, or brings an existing one (which the caller checked is ours)
    /// to the record: alias, MTU, STP off, exactly the gateway address, up. Returns its
    /// ifindex.
    fn ensure_bridge(&self, bridge: &Bridge) -> impl Future<Output = Result<u32>> + Send;

    /// Deletes an interface of the agent's namespace; an absent one is fine.
    fn delete_link(&self, name: &str) -> impl Future<Output = Result<()>> + Send;

    /// Whether `path` is a live network namespace.
    fn netns_alive(&self, path: &Path) -> impl Future<Output = bool> + Send;

    /// Bind-mounts a fresh network namespace at `path` (creating the file and its
    /// directory) with `lo` up.
    fn create_netns(&self, path: &Path) -> impl Future<Output = Result<()>> + Send;

    /// Unmounts and removes a namespace created by [`Kernel::create_netns`]; absent is
    /// fine.
    fn delete_netns(&self, path: &Path) -> impl Future<Output = Result<()>> + Send;

    /// Looks at the interfaces an endpoint needs, in the agent's namespace and in the
    /// sandbox at `netns`.
    fn observe_endpoint(
        &self,
        endpoint: &Endpoint,
        bridge: &IfName,
        netns: &Path,
    ) -> impl Future<Output = Result<EndpointObservation>> + Send;

    /// Creates the endpoint's veth pair, host end on `bridge`, container end configured
    /// inside `netns`. On failure nothing it created is left.
    fn create_endpoint(
        &self,
        endpoint: &Endpoint,
        bridge: &IfName,
        netns: &Path,
    ) -> impl Future<Output = Result<()>> + Send;

    /// IPv4 interface networks and main-table routes of the agent's namespace, except
    /// default routes.
    fn host_prefixes(&self) -> impl Future<Output = Result<Vec<HostPrefix>>> + Send;
}
