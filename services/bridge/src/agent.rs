//! The agent's operations: each checks the request against the records and the kernel,
//! records what it is about to make (flushed), makes it, and on failure undoes what this
//! call made. `grpc.rs` calls these with validated domain values; `reconcile.rs` reuses
//! the kernel-facing halves.

use std::{collections::BTreeSet, path::PathBuf};

use ipnet::Ipv4Net;
use tokio::sync::{Mutex, MutexGuard};

use crate::{
    domain::{
        Bridge, Endpoint, EndpointId, EndpointRequest, EndpointStatus, FieldError, Link, NetworkId,
        Sandbox, SandboxId, naming::Owner, observed::assess,
    },
    error::Error,
    kernel::Kernel,
    store::Records,
};

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub struct Agent<K> {
    pub(crate) kernel: K,
    pub(crate) records: Records,
    netns_dir: PathBuf,
    /// One lock over every mutation. Operations touching the same object must not
    /// interleave (check, record, create), and a single lock is the simplest way to get
    /// that; each mutation is a few netlink round trips, so callers queue briefly. Per-id
    /// locks can replace it if contention ever shows. Reads take no lock.
    mutations: Mutex<()>,
}

/// A bridge with its current ifindex (0 when the interface is missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeState {
    pub bridge: Bridge,
    pub ifindex: u32,
}

impl<K: Kernel> Agent<K> {
    pub fn new(kernel: K, records: Records, netns_dir: PathBuf) -> Self {
        Self { kernel, records, netns_dir, mutations: Mutex::new(()) }
    }

    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    pub(crate) async fn lock(&self) -> MutexGuard<'_, ()> {
        self.mutations.lock().await
    }

    async fn find_link(&self, name: &str) -> Result<Option<Link>> {
        Ok(self.kernel.link(name).await?)
    }

    pub async fn ensure_bridge(&self, bridge: Bridge) -> Result<BridgeState> {
        let _guard = self.lock().await;
        let recorded = self.records.bridge(&bridge.network_id)?;
        match &recorded {
            // A network keeps its bridge as first given; changing it would strand the
            // endpoints already on it.
            Some(recorded) if *recorded != bridge => {
                return Err(Error::AlreadyExists(format!(
                    "network {:?} already has bridge {:?} with gateway {} and mtu {}",
                    recorded.network_id.as_str(),
                    recorded.name.as_str(),
                    recorded.gateway,
                    recorded.mtu.get()
                )));
            }
            Some(_) => {}
            None => {
                let bridges = self.records.bridges()?;
                if let Some(other) = bridges.iter().find(|other| other.name == bridge.name) {
                    return Err(Error::AlreadyExists(format!(
                        "bridge {:?} belongs to network {:?}",
                        bridge.name.as_str(),
                        other.network_id.as_str()
                    )));
                }
            }
        }
        let existing = self.find_link(bridge.name.as_str()).await?;
        if existing.as_ref().is_some_and(|link| !link.is_bridge_of(&bridge)) {
            return Err(Error::AlreadyExists(format!(
                "interface {:?} exists and is not cnet's bridge for network {:?}",
                bridge.name.as_str(),
                bridge.network_id.as_str()
            )));
        }
        if recorded.is_none() {
            self.records.save_bridge(&bridge).await?;
        }
        match self.kernel.ensure_bridge(&bridge).await {
            Ok(ifindex) => Ok(BridgeState { bridge, ifindex }),
            Err(error) => {
                if recorded.is_none() {
                    if existing.is_none() {
                        self.remove_half_made_bridge(&bridge).await;
                    }
                    self.records.forget_bridge(&bridge.network_id).await?;
                }
                Err(error.into())
            }
        }
    }

    pub async fn delete_bridge(&self, network_id: &NetworkId) -> Result<()> {
        let _guard = self.lock().await;
        let Some(bridge) = self.records.bridge(network_id)? else {
            return Ok(());
        };
        let attached: Vec<String> = self
            .records
            .endpoints_on_network(network_id)
            .into_iter()
            .map(|endpoint| endpoint.id.to_string())
            .collect();
        if !attached.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "network {:?} still has endpoints: {}",
                network_id.as_str(),
                attached.join(", ")
            )));
        }
        match self.find_link(bridge.name.as_str()).await? {
            Some(link) if link.is_bridge_of(&bridge) => {
                self.kernel.delete_link(bridge.name.as_str()).await?;
            }
            Some(_) => {
                tracing::warn!(iface = %bridge.name, "bridge name is held by an interface that is not ours; left alone")
            }
            None => {}
        }
        self.records.forget_bridge(network_id).await?;
        Ok(())
    }

    pub async fn bridges(&self) -> Result<Vec<BridgeState>> {
        let links = self.kernel.links().await?;
        let bridges = self.records.bridges()?;
        Ok(bridges
            .into_iter()
            .map(|bridge| {
                let link = links.iter().find(|link| link.name == bridge.name.as_str());
                let ifindex = link.filter(|link| link.is_bridge_of(&bridge)).map_or(0, |l| l.index);
                BridgeState { bridge, ifindex }
            })
            .collect())
    }

    /// Creates (or confirms) a sandbox: a namespace of ours at `<netns_dir>/<id>`, or
    /// the existing one at `netns_path`.
    pub async fn ensure_sandbox(
        &self,
        id: SandboxId,
        netns_path: Option<PathBuf>,
    ) -> Result<Sandbox> {
        let _guard = self.lock().await;
        let wanted = match netns_path {
            Some(path) => Sandbox::external(id, path),
            None => Sandbox::owned(id, &self.netns_dir),
        };
        let recorded = self.records.sandbox(&wanted.id)?;
        if let Some(recorded) = recorded.as_ref().filter(|recorded| **recorded != wanted) {
            return Err(Error::AlreadyExists(format!(
                "sandbox {:?} already uses namespace {}",
                recorded.id.as_str(),
                recorded.netns_path.display()
            )));
        }
        let path = &wanted.netns_path;
        let alive = self.kernel.netns_alive(path).await;
        if !wanted.owned && !alive {
            let reason =
                if path.exists() { "is not a network namespace" } else { "does not exist" };
            return Err(
                FieldError::new("netns_path", format!("{} {reason}", path.display())).into()
            );
        }
        if recorded.is_none() {
            self.records.save_sandbox(&wanted).await?;
        }
        if !alive && let Err(error) = self.kernel.create_netns(path).await {
            if recorded.is_none() {
                self.records.forget_sandbox(&wanted.id).await?;
            }
            return Err(error.into());
        }
        Ok(wanted)
    }

    /// Deletes a sandbox's endpoints, then its namespace if the agent made it. Goes on
    /// past failures and keeps the record unless everything went.
    pub async fn delete_sandbox(&self, id: &SandboxId) -> Result<()> {
        let _guard = self.lock().await;
        let Some(sandbox) = self.records.sandbox(id)? else {
            return Ok(());
        };
        let mut errors = Vec::new();
        for endpoint in self.records.endpoints_in_sandbox(id) {
            if let Err(error) = self.remove_endpoint(&endpoint).await {
                errors.push(error);
            }
        }
        if sandbox.owned
            && let Err(error) = self.kernel.delete_netns(&sandbox.netns_path).await
        {
            errors.push(error.into());
        }
        if !errors.is_empty() {
            return Err(Error::Teardown(errors));
        }
        self.records.forget_sandbox(id).await?;
        Ok(())
    }

    pub fn sandboxes(&self) -> Result<Vec<Sandbox>> {
        Ok(self.records.sandboxes()?)
    }

    pub async fn ensure_endpoint(&self, request: EndpointRequest) -> Result<Endpoint> {
        let _guard = self.lock().await;
        request.validate()?;
        let bridge = self.records.bridge(&request.network_id)?.ok_or_else(|| {
            Error::NotFound(format!("network {:?} has no bridge", request.network_id.as_str()))
        })?;
        let sandbox = self.records.sandbox(&request.sandbox_id)?.ok_or_else(|| {
            Error::NotFound(format!("sandbox {:?} does not exist", request.sandbox_id.as_str()))
        })?;
        let endpoint = request.resolve(&bridge);
        let recorded = self.records.endpoint(&endpoint.id);
        match &recorded {
            Some(recorded) if *recorded != endpoint => {
                return Err(Error::AlreadyExists(format!(
                    "endpoint {:?} already exists with other parameters",
                    endpoint.id.as_str()
                )));
            }
            Some(_) => {}
            None => self.check_names_free(&endpoint)?,
        }
        let status = self.endpoint_status(&endpoint, &bridge, &sandbox).await?;
        if let EndpointStatus::Foreign(why) = status {
            return Err(Error::AlreadyExists(why));
        }
        if recorded.is_none() {
            self.records.save_endpoint(&endpoint).await?;
        }
        if let Err(error) = self.apply_endpoint(&endpoint, &bridge, &sandbox, status).await {
            if recorded.is_none() {
                self.records.forget_endpoint(&endpoint.id).await?;
            }
            return Err(error);
        }
        Ok(endpoint)
    }

    /// Two records must never want the same interface name.
    fn check_names_free(&self, endpoint: &Endpoint) -> Result<()> {
        if let Some(other) = self.records.endpoint_with_host_ifname(&endpoint.host_ifname) {
            return Err(Error::AlreadyExists(format!(
                "host interface {:?} of endpoint {:?} is already used by endpoint {:?}",
                endpoint.host_ifname.as_str(),
                endpoint.id.as_str(),
                other.id.as_str()
            )));
        }
        for other in self.records.endpoints_in_sandbox(&endpoint.sandbox_id) {
            if other.ifname == endpoint.ifname {
                return Err(Error::AlreadyExists(format!(
                    "sandbox {:?} already has {:?} (endpoint {:?})",
                    endpoint.sandbox_id.as_str(),
                    endpoint.ifname.as_str(),
                    other.id.as_str()
                )));
            }
        }
        Ok(())
    }

    pub(crate) async fn endpoint_status(
        &self,
        endpoint: &Endpoint,
        bridge: &Bridge,
        sandbox: &Sandbox,
    ) -> Result<EndpointStatus> {
        if !self.kernel.netns_alive(&sandbox.netns_path).await {
            return Err(Error::FailedPrecondition(format!(
                "namespace {} of sandbox {:?} is gone",
                sandbox.netns_path.display(),
                sandbox.id.as_str()
            )));
        }
        let seen =
            self.kernel.observe_endpoint(endpoint, &bridge.name, &sandbox.netns_path).await?;
        Ok(assess(endpoint, &seen))
    }

    /// Brings the kernel from `status` to the recorded endpoint.
    pub(crate) async fn apply_endpoint(
        &self,
        endpoint: &Endpoint,
        bridge: &Bridge,
        sandbox: &Sandbox,
        status: EndpointStatus,
    ) -> Result<()> {
        match status {
            EndpointStatus::Complete => return Ok(()),
            EndpointStatus::Foreign(why) => return Err(Error::AlreadyExists(why)),
            EndpointStatus::Absent => {}
            EndpointStatus::Broken(why) => {
                tracing::info!(endpoint = %endpoint.id, why, "recreating a broken endpoint");
                self.kernel.delete_link(endpoint.host_ifname.as_str()).await?;
            }
        }
        let netns = &sandbox.netns_path;
        self.kernel.create_endpoint(endpoint, &bridge.name, netns).await.map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                Error::FailedPrecondition(error.to_string())
            } else {
                error.into()
            }
        })
    }

    pub async fn delete_endpoint(&self, id: &EndpointId) -> Result<()> {
        let _guard = self.lock().await;
        match self.records.endpoint(id) {
            Some(endpoint) => self.remove_endpoint(&endpoint).await,
            None => Ok(()),
        }
    }

    async fn remove_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        let host = endpoint.host_ifname.as_str();
        match self.find_link(host).await? {
            Some(link) if link.is_marked(&endpoint.alias(), endpoint.host_marker_mac()) => {
                // The container end goes with it, wherever it is.
                self.kernel.delete_link(host).await?;
            }
            Some(_) => tracing::warn!(
                iface = host,
                "host interface name is held by an interface that is not ours; left alone"
            ),
            None => {}
        }
        self.records.forget_endpoint(&endpoint.id).await?;
        Ok(())
    }

    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.records.endpoints()
    }

    /// Prefixes in use in the agent's namespace, except those on cnet bridges, masked
    /// and sorted.
    pub async fn host_prefixes(&self) -> Result<Vec<Ipv4Net>> {
        let ours: BTreeSet<u32> = self
            .kernel
            .links()
            .await?
            .into_iter()
            .filter(|link| link.kind.as_deref() == Some("bridge"))
            .filter(|link| {
                matches!(link.alias.as_deref().and_then(Owner::from_alias), Some(Owner::Bridge(_)))
            })
            .map(|link| link.index)
            .collect();
        let prefixes: BTreeSet<Ipv4Net> = self
            .kernel
            .host_prefixes()
            .await?
            .into_iter()
            .filter(|prefix| prefix.ifindex.is_none_or(|index| !ours.contains(&index)))
            .map(|prefix| prefix.prefix.trunc())
            .collect();
        Ok(prefixes.into_iter().collect())
    }

    /// Best effort: the caller reports the original error. Only a bridge carrying our
    /// marker goes, since the failure may have been another creator winning the name.
    async fn remove_half_made_bridge(&self, bridge: &Bridge) {
        let name = bridge.name.as_str();
        match self.find_link(name).await {
            Ok(Some(link)) if link.is_bridge_of(bridge) => {
                if let Err(error) = self.kernel.delete_link(name).await {
                    tracing::warn!(%error, iface = name, "could not undo a half-made bridge");
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, iface = name, "could not undo a half-made bridge"),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
