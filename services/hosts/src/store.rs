//! The service's state in its sled store, which is the truth: the in-memory graph is
//! rebuilt from it at start, and so is every file.
//!
//! Layout: table "containers" holds one record per container under its id: the
//! description as the gateway sent it plus the address its linkers write. Links live on
//! the linker's record only, so the graph has a single copy and a container costs one
//! small write.
//!
//! Every write is flushed before the caller goes on. If the flush fails the write is
//! undone on a best-effort basis, so that memory, disk and the caller's error agree as
//! far as the store still allows.

use std::net::IpAddr;

use cnet_common::store::{Store, StoreError, Table};
use serde::{Deserialize, Serialize};

use crate::{
    Error,
    domain::{Container, ContainerSpec, Graph},
};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ContainerRecord {
    /// Deserialising re-runs every value check.
    spec: ContainerSpec,
    link_address: Option<IpAddr>,
}

impl From<&Container> for ContainerRecord {
    fn from(container: &Container) -> Self {
        Self { spec: container.spec.clone(), link_address: container.link_address }
    }
}

pub struct Records {
    store: Store,
    containers: Table<ContainerRecord>,
}

impl Records {
    pub fn open(store: Store) -> Result<Self, StoreError> {
        Ok(Self { containers: store.table("containers")?, store })
    }

    /// Rebuilds the graph. A record that breaks the rules stops the start rather than
    /// being guessed at: its files would be wrong.
    pub fn load(&self) -> Result<Graph, Error> {
        let mut graph = Graph::default();
        for (key, record) in self.containers.all()? {
            let corrupt = |reason: String| Error::Corrupt { key: key.clone(), reason };
            record.spec.validate().map_err(|error| corrupt(error.to_string()))?;
            if key != record.spec.id.as_str() {
                return Err(corrupt(format!("key does not match id {}", record.spec.id)));
            }
            graph.insert(Container { spec: record.spec, link_address: record.link_address });
        }
        Ok(graph)
    }

    /// Stores `container`; on failure restores `previous` (or the absence of a record).
    pub async fn put(
        &self,
        container: &Container,
        previous: Option<&Container>,
    ) -> Result<(), StoreError> {
        let key = container.spec.id.as_str();
        self.containers.put(key, &ContainerRecord::from(container))?;
        self.flush_or_undo(|| match previous {
            Some(previous) => self.containers.put(key, &ContainerRecord::from(previous)),
            None => self.containers.delete(key).map(drop),
        })
        .await
    }

    pub async fn delete(&self, container: &Container) -> Result<(), StoreError> {
        let key = container.spec.id.as_str();
        self.containers.delete(key)?;
        self.flush_or_undo(|| self.containers.put(key, &ContainerRecord::from(container))).await
    }

    async fn flush_or_undo(
        &self,
        restore: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let flushed = self.store.flush().await;
        if flushed.is_err()
            && let Err(error) = restore()
        {
            tracing::error!(%error, "undoing a failed store write failed too");
        }
        flushed
    }
}
