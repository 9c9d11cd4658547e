//! The gateway's records in its sled store: networks and containers, keyed by id.
//!
//! Container records are also kept decoded in memory, indexed by id and by name: every
//! call looks containers up by name or id prefix, and decoding every record from the
//! store for each lookup made a `run` slower with each container already there
//! (bench/control.sh: 8 ms of gateway time at 10 containers, 31 ms at 1,000). The store
//! is written first; memory follows only once the write is flushed.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, RwLock},
};

use cnet_common::store::{Store, StoreError, Table};

use crate::domain::{
    ContainerRecord, NetworkRecord,
    names::{self, Lookup},
};

#[derive(Clone)]
pub struct Records {
    store: Store,
    pub networks: Table<NetworkRecord>,
    containers: Table<ContainerRecord>,
    loaded: Arc<RwLock<Loaded>>,
}

/// The container records, by id (ordered, for prefix lookups) and name.
#[derive(Default)]
struct Loaded {
    by_id: BTreeMap<String, ContainerRecord>,
    id_by_name: HashMap<String, String>,
}

impl Loaded {
    fn insert(&mut self, container: ContainerRecord) {
        if let Some(old) = self.by_id.get(&container.id) {
            self.id_by_name.remove(&old.name);
        }
        self.id_by_name.insert(container.name.clone(), container.id.clone());
        self.by_id.insert(container.id.clone(), container);
    }

    fn remove(&mut self, id: &str) {
        if let Some(old) = self.by_id.remove(id) {
            self.id_by_name.remove(&old.name);
        }
    }
}

impl Records {
    pub fn open(store: Store) -> Result<Self, StoreError> {
        let containers: Table<ContainerRecord> = store.table("containers")?;
        let mut loaded = Loaded::default();
        for (_, container) in containers.all()? {
            loaded.insert(container);
        }
        Ok(Self {
            networks: store.table("networks")?,
            containers,
            loaded: Arc::new(RwLock::new(loaded)),
            store,
        })
    }

    pub async fn put_network(&self, network: &NetworkRecord) -> Result<(), StoreError> {
        self.networks.put(&network.id, network)?;
        self.store.flush().await
    }

    pub async fn delete_network(&self, id: &str) -> Result<(), StoreError> {
        self.networks.delete(id)?;
        self.store.flush().await
    }

    pub async fn put_container(&self, container: &ContainerRecord) -> Result<(), StoreError> {
        self.containers.put(&container.id, container)?;
        self.store.flush().await?;
        self.write().insert(container.clone());
        Ok(())
    }

    pub async fn delete_container(&self, id: &str) -> Result<(), StoreError> {
        self.containers.delete(id)?;
        self.store.flush().await?;
        self.write().remove(id);
        Ok(())
    }

    pub fn network_list(&self) -> Result<Vec<NetworkRecord>, StoreError> {
        Ok(self.networks.all()?.into_iter().map(|(_, n)| n).collect())
    }

    /// Every container, in id order.
    pub fn container_list(&self) -> Result<Vec<ContainerRecord>, StoreError> {
        Ok(self.read().by_id.values().cloned().collect())
    }

    pub fn container(&self, id: &str) -> Result<Option<ContainerRecord>, StoreError> {
        Ok(self.read().by_id.get(id).cloned())
    }

    pub fn container_named(&self, name: &str) -> Option<ContainerRecord> {
        let loaded = self.read();
        loaded.id_by_name.get(name).and_then(|id| loaded.by_id.get(id)).cloned()
    }

    /// The container `reference` names as Docker resolves it: an exact id or name, else
    /// a unique id prefix.
    pub fn find_container(&self, reference: &str) -> Lookup<ContainerRecord> {
        let loaded = self.read();
        if let Some(found) = loaded.by_id.get(reference) {
            return Lookup::Found(found.clone());
        }
        if let Some(found) = loaded.id_by_name.get(reference).and_then(|id| loaded.by_id.get(id)) {
            return Lookup::Found(found.clone());
        }
        if reference.is_empty() {
            return Lookup::Missing;
        }
        let prefixed = loaded
            .by_id
            .range(reference.to_owned()..)
            .take_while(|(id, _)| id.starts_with(reference))
            .take(2)
            .map(|(_, container)| container);
        names::lookup(prefixed, reference, |c| (&c.id, &c.name)).map(Clone::clone)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.loaded.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Loaded> {
        self.loaded.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
