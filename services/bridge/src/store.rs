//! The agent's records in its sled store: one table per kind, keyed by id. Every write
//! is flushed before it returns, because the records are the write-ahead log of kernel
//! changes: a record is saved before the kernel object is made and forgotten only after
//! it is gone, so a crash in between leaves a record that reconcile finishes or undoes.
//!
//! Endpoints are also kept in memory, indexed by sandbox, network and host interface
//! name: the questions an attach or a teardown asks ("is this name free?", "what is in
//! this sandbox?") must not cost a decode of every endpoint once there are thousands.
//! The index is loaded at open and changed only after the store accepted the change.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex, MutexGuard},
};

use cnet_common::store::{Store, StoreError, Table};

use crate::domain::{Bridge, Endpoint, EndpointId, IfName, NetworkId, Sandbox, SandboxId};

#[derive(Clone)]
pub struct Records {
    store: Store,
    bridges: Table<Bridge>,
    sandboxes: Table<Sandbox>,
    endpoints: Table<Endpoint>,
    index: Arc<Mutex<EndpointIndex>>,
}

type Result<T> = std::result::Result<T, StoreError>;

impl Records {
    pub fn open(store: Store) -> Result<Self> {
        let endpoints: Table<Endpoint> = store.table("endpoints")?;
        let mut index = EndpointIndex::default();
        for (_, endpoint) in endpoints.all()? {
            index.insert(endpoint);
        }
        Ok(Self {
            bridges: store.table("bridges")?,
            sandboxes: store.table("sandboxes")?,
            endpoints,
            index: Arc::new(Mutex::new(index)),
            store,
        })
    }

    pub fn bridge(&self, id: &NetworkId) -> Result<Option<Bridge>> {
        self.bridges.get(id.as_str())
    }

    pub fn bridges(&self) -> Result<Vec<Bridge>> {
        Ok(self.bridges.all()?.into_iter().map(|(_, bridge)| bridge).collect())
    }

    pub async fn save_bridge(&self, bridge: &Bridge) -> Result<()> {
        self.bridges.put(bridge.network_id.as_str(), bridge)?;
        self.store.flush().await
    }

    pub async fn forget_bridge(&self, id: &NetworkId) -> Result<()> {
        self.bridges.delete(id.as_str())?;
        self.store.flush().await
    }

    pub fn sandbox(&self, id: &SandboxId) -> Result<Option<Sandbox>> {
        self.sandboxes.get(id.as_str())
    }

    pub fn sandboxes(&self) -> Result<Vec<Sandbox>> {
        Ok(self.sandboxes.all()?.into_iter().map(|(_, sandbox)| sandbox).collect())
    }

    pub async fn save_sandbox(&self, sandbox: &Sandbox) -> Result<()> {
        self.sandboxes.put(sandbox.id.as_str(), sandbox)?;
        self.store.flush().await
    }

    pub async fn forget_sandbox(&self, id: &SandboxId) -> Result<()> {
        self.sandboxes.delete(id.as_str())?;
        self.store.flush().await
    }

    pub fn endpoint(&self, id: &EndpointId) -> Option<Endpoint> {
        self.index().by_id.get(id).cloned()
    }

    /// Every endpoint, by id.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.index().by_id.values().cloned().collect()
    }

    pub fn endpoints_in_sandbox(&self, id: &SandboxId) -> Vec<Endpoint> {
        let index = self.index();
        index.by_sandbox.get(id).map_or_else(Vec::new, |ids| index.resolve(ids))
    }

    pub fn endpoints_on_network(&self, id: &NetworkId) -> Vec<Endpoint> {
        let index = self.index();
        index.by_network.get(id).map_or_else(Vec::new, |ids| index.resolve(ids))
    }

    /// The endpoint whose host end is called `name`.
    pub fn endpoint_with_host_ifname(&self, name: &IfName) -> Option<Endpoint> {
        let index = self.index();
        index.by_host_ifname.get(name).and_then(|id| index.by_id.get(id)).cloned()
    }

    pub async fn save_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        self.endpoints.put(endpoint.id.as_str(), endpoint)?;
        self.index().insert(endpoint.clone());
        self.store.flush().await
    }

    pub async fn forget_endpoint(&self, id: &EndpointId) -> Result<()> {
        self.endpoints.delete(id.as_str())?;
        self.index().remove(id);
        self.store.flush().await
    }

    fn index(&self) -> MutexGuard<'_, EndpointIndex> {
        self.index.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Default)]
struct EndpointIndex {
    by_id: BTreeMap<EndpointId, Endpoint>,
    by_sandbox: HashMap<SandboxId, BTreeSet<EndpointId>>,
    by_network: HashMap<NetworkId, BTreeSet<EndpointId>>,
    by_host_ifname: HashMap<IfName, EndpointId>,
}

impl EndpointIndex {
    fn insert(&mut self, endpoint: Endpoint) {
        self.remove(&endpoint.id);
        let id = endpoint.id.clone();
        self.by_sandbox.entry(endpoint.sandbox_id.clone()).or_default().insert(id.clone());
        self.by_network.entry(endpoint.network_id.clone()).or_default().insert(id.clone());
        self.by_host_ifname.insert(endpoint.host_ifname.clone(), id.clone());
        self.by_id.insert(id, endpoint);
    }

    fn remove(&mut self, id: &EndpointId) {
        let Some(endpoint) = self.by_id.remove(id) else { return };
        forget(&mut self.by_sandbox, &endpoint.sandbox_id, id);
        forget(&mut self.by_network, &endpoint.network_id, id);
        if self.by_host_ifname.get(&endpoint.host_ifname) == Some(id) {
            self.by_host_ifname.remove(&endpoint.host_ifname);
        }
    }

    fn resolve(&self, ids: &BTreeSet<EndpointId>) -> Vec<Endpoint> {
        ids.iter().filter_map(|id| self.by_id.get(id)).cloned().collect()
    }
}

fn forget<K: std::hash::Hash + Eq>(
    sets: &mut HashMap<K, BTreeSet<EndpointId>>,
    key: &K,
    id: &EndpointId,
) {
    if let Some(ids) = sets.get_mut(key) {
        ids.remove(id);
        if ids.is_empty() {
            sets.remove(key);
        }
    }
}
