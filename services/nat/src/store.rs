//! The NAT service's records in its sled store, which are the truth: at start the
//! in-memory [`State`] is rebuilt from them, and the rules and proxies from that.
//!
//! Layout: table "networks" holds one [`Network`] under its id, table "publications"
//! one [`Publication`] (requests and actual bindings, random ports included, so a
//! restart gives every container the same ports) under its container id. Records are
//! the domain types themselves, deserialised through the same checks as requests.
//!
//! Every write is flushed before the caller replies; if the flush fails, the write is
//! undone on a best-effort basis so memory, disk and the caller's error agree.

use cnet_common::store::{Store, StoreError, Table};

use crate::{
    Error,
    domain::{self, Network, Publication, State},
};

pub struct Records {
    store: Store,
    networks: Table<Network>,
    publications: Table<Publication>,
}

impl Records {
    pub fn open(store: Store) -> Result<Self, StoreError> {
        Ok(Self {
            networks: store.table("networks")?,
            publications: store.table("publications")?,
            store,
        })
    }

    /// Rebuilds the state. A publication whose network is gone is left over from an
    /// interrupted forced delete and is removed; one that overlaps another cannot be
    /// served and stops the start rather than guessing which one is right.
    pub async fn load(&self) -> Result<State, Error> {
        let mut state = State::default();
        for (key, network) in self.networks.all()? {
            if key != network.id.as_str() {
                let reason = format!("key does not match network {}", network.id);
                return Err(Error::Corrupt { key, reason });
            }
            // The subnet went through serde only; hold it to the request's rules too.
            domain::model::parse_subnet(&network.subnet.to_string())
                .and_then(|_| state.check_network(&network))
                .map_err(|error| Error::Corrupt { key: key.clone(), reason: error.to_string() })?;
            state.insert_network(network);
        }
        let mut orphans = Vec::new();
        for (key, publication) in self.publications.all()? {
            if key != publication.container.as_str() {
                let reason = format!("key does not match container {}", publication.container);
                return Err(Error::Corrupt { key, reason });
            }
            match state.restore_publication(publication) {
                Ok(()) => {}
                Err(domain::Error::NetworkNotFound { .. }) => orphans.push(key),
                Err(error) => return Err(Error::Corrupt { key, reason: error.to_string() }),
            }
        }
        if !orphans.is_empty() {
            tracing::warn!(count = orphans.len(), "removing publications of deleted networks");
            for key in &orphans {
                self.publications.delete(key)?;
            }
            self.store.flush().await?;
        }
        Ok(state)
    }

    pub async fn put_network(&self, network: &Network) -> Result<(), StoreError> {
        let key = network.id.as_str();
        self.networks.put(key, network)?;
        self.flush_or_undo(|| self.networks.delete(key).map(drop)).await
    }

    /// Deletes the publications before the network, so an interruption leaves a network
    /// with fewer publications rather than publications without a network.
    pub async fn delete_network(
        &self,
        network: &Network,
        publications: &[Publication],
    ) -> Result<(), StoreError> {
        let restore = || -> Result<(), StoreError> {
            for publication in publications {
                self.publications.put(publication.container.as_str(), publication)?;
            }
            self.networks.put(network.id.as_str(), network)
        };
        let deleted = (|| -> Result<(), StoreError> {
            for publication in publications {
                self.publications.delete(publication.container.as_str())?;
            }
            self.networks.delete(network.id.as_str()).map(drop)
        })();
        if let Err(error) = deleted {
            undo(restore);
            return Err(error);
        }
        self.flush_or_undo(restore).await
    }

    pub async fn put_publication(&self, publication: &Publication) -> Result<(), StoreError> {
        let key = publication.container.as_str();
        self.publications.put(key, publication)?;
        self.flush_or_undo(|| self.publications.delete(key).map(drop)).await
    }

    pub async fn delete_publication(&self, publication: &Publication) -> Result<(), StoreError> {
        let key = publication.container.as_str();
        self.publications.delete(key)?;
        self.flush_or_undo(|| self.publications.put(key, publication)).await
    }

    async fn flush_or_undo(
        &self,
        restore: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let flushed = self.store.flush().await;
        if flushed.is_err() {
            undo(restore);
        }
        flushed
    }
}

fn undo(restore: impl FnOnce() -> Result<(), StoreError>) {
    if let Err(error) = restore() {
        tracing::error!(%error, "undoing a failed store write failed too");
    }
}
