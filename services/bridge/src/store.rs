//! The agent's records in its sled store: one table per kind, keyed by id. Every write
//! is flushed before it returns, because the records are the write-ahead log of kernel
//! changes: a record is saved before the kernel object is made and forgotten only after
//! it is gone, so a crash in between leaves a record that reconcile finishes or undoes.

use cnet_common::store::{Store, StoreError, Table};

use crate::domain::{Bridge, Endpoint, EndpointId, NetworkId, Sandbox, SandboxId};

#[derive(Clone)]
pub struct Records {
    store: Store,
    bridges: Table<Bridge>,
    sandboxes: Table<Sandbox>,
    endpoints: Table<Endpoint>,
}

type Result<T> = std::result::Result<T, StoreError>;

impl Records {
    pub fn open(store: Store) -> Result<Self> {
        Ok(Self {
            bridges: store.table("bridges")?,
            sandboxes: store.table("sandboxes")?,
            endpoints: store.table("endpoints")?,
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

    pub fn endpoint(&self, id: &EndpointId) -> Result<Option<Endpoint>> {
        self.endpoints.get(id.as_str())
    }

    pub fn endpoints(&self) -> Result<Vec<Endpoint>> {
        Ok(self.endpoints.all()?.into_iter().map(|(_, endpoint)| endpoint).collect())
    }

    pub async fn save_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        self.endpoints.put(endpoint.id.as_str(), endpoint)?;
        self.store.flush().await
    }

    pub async fn forget_endpoint(&self, id: &EndpointId) -> Result<()> {
        self.endpoints.delete(id.as_str())?;
        self.store.flush().await
    }
}
