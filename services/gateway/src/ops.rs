//! The gateway's operations: each public method is one API call, carried out across the
//! ipam service, the bridge agent and the container's process, undoing its finished
//! steps when a later one fails.
//!
//! Locking, always taken in this order: `registry` (names are unique; held by create and
//! remove), `network_gate` (read by anything that attaches to a network, written by
//! network removal), then one lock per container (start, stop, exit handling).

mod connect;
mod container;
pub use container::CreateSpec;
pub use lifecycle::DEFAULT_STOP_TIMEOUT;
pub use ports::parse_port;
mod dns;
mod drift;
mod hosts;
mod lifecycle;
mod network;
mod ports;
mod reconcile;
mod recover;
pub mod sweep;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex as SyncMutex},
};

use tokio::sync::{Mutex, OwnedMutexGuard, RwLock, watch};

use crate::{
    backends::Backends,
    domain::{
        ContainerRecord, NetworkRecord,
        names::{self, Lookup},
    },
    error::{Error, Result},
    store::Records,
};

pub struct Gateway {
    records: Records,
    backends: Backends,
    state_dir: PathBuf,
    default_bridge_name: String,
    registry: Mutex<()>,
    network_gate: RwLock<()>,
    container_locks: SyncMutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Exit codes of running containers' processes, published by their watchers.
    exits: SyncMutex<HashMap<String, watch::Receiver<Option<i32>>>>,
}

impl Gateway {
    pub fn new(
        records: Records,
        backends: Backends,
        state_dir: PathBuf,
        default_bridge_name: String,
    ) -> Arc<Self> {
        Arc::new(Self {
            records,
            backends,
            state_dir,
            default_bridge_name,
            registry: Mutex::new(()),
            network_gate: RwLock::new(()),
            container_locks: SyncMutex::default(),
            exits: SyncMutex::default(),
        })
    }

    async fn lock_container(&self, id: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.container_locks.lock().expect("lock map poisoned");
            locks.entry(id.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    fn forget_container_lock(&self, id: &str) {
        self.container_locks.lock().expect("lock map poisoned").remove(id);
    }

    pub fn find_network(&self, reference: &str) -> Result<NetworkRecord> {
        let networks = self.records.network_list()?;
        match names::lookup(networks, reference, |n| (&n.id, &n.name)) {
            Lookup::Found(network) => Ok(network),
            Lookup::Missing => Err(Error::NotFound(format!("network {reference} not found"))),
            Lookup::Ambiguous => Err(Error::InvalidArgument(format!(
                "network {reference} is ambiguous: give more of its id"
            ))),
        }
    }

    pub fn find_container(&self, reference: &str) -> Result<ContainerRecord> {
        match self.records.find_container(reference) {
            Lookup::Found(container) => Ok(container),
            Lookup::Missing => Err(Error::NotFound(format!("No such container: {reference}"))),
            Lookup::Ambiguous => Err(Error::InvalidArgument(format!(
                "multiple containers found with provided prefix: {reference}"
            ))),
        }
    }

    /// Re-reads a container under its lock, since it may have changed while waiting.
    fn reload(&self, id: &str) -> Result<ContainerRecord> {
        self.records
            .container(id)?
            .ok_or_else(|| Error::NotFound(format!("No such container: {id}")))
    }

    pub fn networks(&self) -> Result<Vec<NetworkRecord>> {
        Ok(self.records.network_list()?)
    }

    pub fn containers(&self) -> Result<Vec<ContainerRecord>> {
        Ok(self.records.container_list()?)
    }
}
