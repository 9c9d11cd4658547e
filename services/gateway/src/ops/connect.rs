//! `network connect` and `network disconnect`: one more (or one less) bridge network for
//! a container, live if it runs (MULTI-1).

use std::{path::Path, sync::Arc};

use cnet_proto::{bridge::v1 as bridge, ipam::v1 as ipam};

use super::Gateway;
use crate::{
    backends::retry,
    domain::{Attachment, ContainerRecord, NetworkMode, container::endpoint_id, names},
    error::{Error, Result},
};

const SHARED_NAMESPACE: &str = "container sharing network namespace with another container or host cannot be connected to any other network";
const PRIVATE_MODE: &str = "container cannot be connected to multiple networks with one of the networks in private (none) mode";
const HOST_NETWORK: &str =
    "container cannot be disconnected from host network or connected to host network";

impl Gateway {
    pub async fn connect_network(
        self: &Arc<Self>,
        network_ref: &str,
        container_ref: &str,
        ip: &str,
        aliases: Vec<String>,
    ) -> Result<ContainerRecord> {
        let _gate = self.network_gate.read().await;
        let network = self.find_network(network_ref)?;
        let found = self.find_container(container_ref)?;
        let _guard = self.lock_container(&found.id).await;
        let mut record = self.reload(&found.id)?;
        match (network.driver.as_str(), &record.mode) {
            ("host", _) => return Err(Error::InvalidArgument(HOST_NETWORK.into())),
            ("null", _) | (_, NetworkMode::None) => {
                return Err(Error::InvalidArgument(PRIVATE_MODE.into()));
            }
            (_, NetworkMode::Host | NetworkMode::Container(_)) => {
                return Err(Error::InvalidArgument(SHARED_NAMESPACE.into()));
            }
            _ => {}
        }
        if record.attached_to(&network.id) {
            return Err(Error::AlreadyExists(format!(
                "endpoint with name {} already exists in network {}",
                record.name, network.name
            )));
        }
        let static_ip = self.parse_static_ip(ip, &network)?;
        if !aliases.is_empty() && !network.is_user_defined() {
            return Err(Error::InvalidArgument(
                "network-scoped aliases are only supported for user-defined networks".into(),
            ));
        }
        for alias in &aliases {
            names::check_alias(alias).map_err(Error::InvalidArgument)?;
        }
        record.attachments.push(Attachment {
            network_id: network.id.clone(),
            aliases,
            static_ip,
            lease: None,
        });
        let connected = async {
            if record.is_running() {
                self.plug(&mut record).await?;
            }
            self.records.put_container(&record).await.map_err(Error::from)
        };
        if let Err(error) = connected.await {
            let attached = record.attachments.pop().expect("pushed above");
            // Without a lease nothing was made or told (the address was refused).
            if attached.lease.is_some() {
                self.undo_plug(&record, &network.id).await;
            }
            return Err(error);
        }
        tracing::info!(container = %record.name, network = %network.name, "connected");
        Ok(record)
    }

    pub async fn disconnect_network(
        &self,
        network_ref: &str,
        container_ref: &str,
    ) -> Result<ContainerRecord> {
        let _gate = self.network_gate.read().await;
        let network = self.find_network(network_ref)?;
        let found = self.find_container(container_ref)?;
        let _guard = self.lock_container(&found.id).await;
        let mut record = self.reload(&found.id)?;
        if network.driver == "host" || record.mode == NetworkMode::Host {
            return Err(Error::InvalidArgument(HOST_NETWORK.into()));
        }
        let Some(index) = record.attachments.iter().position(|a| a.network_id == network.id) else {
            return Err(Error::FailedPrecondition(format!(
                "container {} is not connected to network {}",
                record.name, network.name
            )));
        };
        let detached = record.attachments.remove(index);
        if detached.lease.is_some() {
            self.unplug(&record.id, &network.id).await;
            self.replumb(&record).await?;
        }
        self.records.put_container(&record).await?;
        tracing::info!(container = %record.name, network = %network.name, "disconnected");
        Ok(record)
    }

    /// Brings a running container's interfaces, names and files in line with its
    /// attachments (after a disconnect, another interface may now carry the default
    /// route).
    async fn replumb(&self, record: &ContainerRecord) -> Result<()> {
        let netns_path = self.ensure_sandbox(record.sandbox_id()).await?;
        let (plumbed, announced) =
            tokio::join!(self.ensure_endpoints(record), self.announce(record, &netns_path));
        plumbed?;
        announced
    }

    /// Gives a running container the interface of its last attachment (the others are
    /// already in place) and tells dns and hosts. No step waits for one it does not
    /// need: the namespace is confirmed while the address is leased, and the interface
    /// made while dns and hosts learn the address.
    async fn plug(&self, record: &mut ContainerRecord) -> Result<()> {
        let index = record.attachments.len() - 1;
        let (lease, netns_path) =
            tokio::join!(self.lease(record, index), self.ensure_sandbox(record.sandbox_id()));
        record.attachments[index].lease = Some(lease?);
        let netns_path = netns_path?;
        let (plugged, announced) =
            tokio::join!(self.ensure_endpoint(record, index), self.announce(record, &netns_path));
        plugged?;
        announced
    }

    /// Takes back a connect that failed part-way: `network_id`'s interface and address
    /// go, and dns and hosts are told the container's networks as they are in `record`
    /// again. Best effort, like [`Self::unplug`]: reconciliation repairs what is left.
    async fn undo_plug(&self, record: &ContainerRecord, network_id: &str) {
        self.unplug(&record.id, network_id).await;
        if !record.is_running() {
            return;
        }
        let announced = async {
            let netns_path = self.ensure_sandbox(record.sandbox_id()).await?;
            self.announce(record, &netns_path).await
        };
        if let Err(error) = announced.await {
            tracing::warn!(container = %record.name, network = network_id, %error, "names and files not reset");
        }
    }

    /// Tells the dns and hosts services about the container's networks, both at once.
    async fn announce(&self, record: &ContainerRecord, netns_path: &Path) -> Result<()> {
        let (registered, written) =
            tokio::join!(self.register_names(record, netns_path), self.put_files(record, true));
        registered?;
        written.map(drop)
    }

    /// Removes one network's veth and address from a container; failures are logged and
    /// left to reconciliation, since the caller is already undoing or detaching.
    async fn unplug(&self, container_id: &str, network_id: &str) {
        let deleted = retry(
            "delete veth pair",
            &self.backends.bridge,
            bridge::DeleteEndpointRequest { id: endpoint_id(container_id, network_id) },
            |mut c, m| async move { c.delete_endpoint(m).await },
        )
        .await;
        let released = retry(
            "release address",
            &self.backends.ipam,
            ipam::ReleaseRequest { pool_id: network_id.to_owned(), owner: container_id.to_owned() },
            |mut c, m| async move { c.release(m).await },
        )
        .await;
        for status in [deleted.err(), released.err()].into_iter().flatten() {
            tracing::warn!(container = container_id, network = network_id, %status, "unplug failed");
        }
    }
}
