//! The gateway's records in its sled store: networks and containers, keyed by id.

use cnet_common::store::{Store, StoreError, Table};

use crate::domain::{ContainerRecord, NetworkRecord};

#[derive(Clone)]
pub struct Records {
    store: Store,
    pub networks: Table<NetworkRecord>,
    pub containers: Table<ContainerRecord>,
}

impl Records {
    pub fn open(store: Store) -> Result<Self, StoreError> {
        Ok(Self {
            networks: store.table("networks")?,
            containers: store.table("containers")?,
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
        self.store.flush().await
    }

    pub async fn delete_container(&self, id: &str) -> Result<(), StoreError> {
        self.containers.delete(id)?;
        self.store.flush().await
    }

    pub fn network_list(&self) -> Result<Vec<NetworkRecord>, StoreError> {
        Ok(self.networks.all()?.into_iter().map(|(_, n)| n).collect())
    }

    pub fn container_list(&self) -> Result<Vec<ContainerRecord>, StoreError> {
        Ok(self.containers.all()?.into_iter().map(|(_, c)| c).collect())
    }
}
