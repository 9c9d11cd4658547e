//! Registrations in the service's sled store, which is the truth: at start every listener
//! is reopened and every record table rebuilt from it.
//!
//! Layout: table "containers" holds one record per container under its 64-hex id, with
//! the registration as the caller sent it (plain strings, validated again on load) and
//! the identity (device and inode) of the namespace it was registered with, so that a
//! `/proc/<pid>/ns/net` path whose pid was reused by another process is recognised and
//! not entered after a restart.
//!
//! Every write is flushed before the caller replies; a failed flush undoes the write on
//! a best-effort basis.

use cnet_common::store::{Store, StoreError, Table};
use serde::{Deserialize, Serialize};

use crate::{
    Error,
    domain::{
        ContainerId, Registration,
        registration::{EndpointRequest, RegistrationRequest},
    },
    listener::NetnsIdentity,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ContainerRecord {
    container_id: String,
    name: String,
    hostname: String,
    netns_path: String,
    upstreams: Vec<String>,
    link_aliases: Vec<LinkRecord>,
    endpoints: Vec<EndpointRecord>,
    netns: NetnsIdentity,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LinkRecord {
    alias: String,
    target_container_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EndpointRecord {
    network_id: String,
    network_name: String,
    address: String,
    aliases: Vec<String>,
    internal: bool,
}

impl ContainerRecord {
    fn new(registration: &Registration, netns: NetnsIdentity) -> Self {
        Self {
            container_id: registration.container_id.to_string(),
            name: registration.name.clone(),
            hostname: registration.hostname.clone().unwrap_or_default(),
            netns_path: registration.netns_path.to_string_lossy().into_owned(),
            upstreams: registration.upstreams.iter().map(ToString::to_string).collect(),
            link_aliases: registration
                .link_aliases
                .iter()
                .map(|link| LinkRecord {
                    alias: link.alias.clone(),
                    target_container_id: link.target.to_string(),
                })
                .collect(),
            endpoints: registration
                .endpoints
                .iter()
                .map(|endpoint| EndpointRecord {
                    network_id: endpoint.network_id.to_string(),
                    network_name: endpoint.network_name.clone(),
                    address: endpoint.address.to_string(),
                    aliases: endpoint.aliases.clone(),
                    internal: endpoint.internal,
                })
                .collect(),
            netns,
        }
    }

    fn request(&self) -> RegistrationRequest {
        RegistrationRequest {
            container_id: self.container_id.clone(),
            name: self.name.clone(),
            hostname: self.hostname.clone(),
            netns_path: self.netns_path.clone(),
            upstreams: self.upstreams.clone(),
            link_aliases: self
                .link_aliases
                .iter()
                .map(|link| (link.alias.clone(), link.target_container_id.clone()))
                .collect(),
            endpoints: self
                .endpoints
                .iter()
                .map(|endpoint| EndpointRequest {
                    network_id: endpoint.network_id.clone(),
                    network_name: endpoint.network_name.clone(),
                    address: endpoint.address.clone(),
                    aliases: endpoint.aliases.clone(),
                    internal: endpoint.internal,
                })
                .collect(),
        }
    }
}

/// The containers table of one store.
pub struct Containers {
    store: Store,
    table: Table<ContainerRecord>,
}

impl Containers {
    pub fn open(store: Store) -> Result<Self, StoreError> {
        Ok(Self { table: store.table("containers")?, store })
    }

    /// Every stored registration with the namespace it was registered with. A record
    /// that no longer passes validation stops the start rather than silently losing a
    /// container's names.
    pub fn load(&self) -> Result<Vec<(Registration, NetnsIdentity)>, Error> {
        let mut loaded = Vec::new();
        for (key, record) in self.table.all()? {
            let registration = Registration::parse(&record.request())
                .map_err(|error| Error::Corrupt { key: key.clone(), reason: error.to_string() })?;
            if registration.container_id.as_str() != key {
                let reason = format!("holds container {}", registration.container_id);
                return Err(Error::Corrupt { key, reason });
            }
            loaded.push((registration, record.netns));
        }
        Ok(loaded)
    }

    /// Stores `registration`, replacing `previous` (restored if the flush fails).
    pub async fn put(
        &self,
        registration: &Registration,
        netns: NetnsIdentity,
    ) -> Result<(), StoreError> {
        let key = registration.container_id.as_str();
        let previous = self.table.get(key)?;
        self.table.put(key, &ContainerRecord::new(registration, netns))?;
        self.flush_or_undo(|| match &previous {
            Some(record) => self.table.put(key, record),
            None => self.table.delete(key).map(drop),
        })
        .await
    }

    /// Removes a container's record; true if there was one.
    pub async fn delete(&self, id: &ContainerId) -> Result<bool, StoreError> {
        let Some(previous) = self.table.delete(id.as_str())? else { return Ok(false) };
        self.flush_or_undo(|| self.table.put(id.as_str(), &previous)).await?;
        Ok(true)
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
