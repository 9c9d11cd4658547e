//! Bringing the other services in line with the gateway's records at start: the records
//! are the truth. Networks get their pool and bridge back, operations left in flight are
//! settled (`recover`), running containers whose process lives get their address, veths,
//! names and files back and are watched again, containers whose process died while the
//! gateway was away are torn down, and whatever the other services hold that no record
//! wants (pools, addresses, sandboxes, bridges left by a crash half-way through an
//! operation) is removed (see `drift`).

use std::sync::Arc;

use futures::StreamExt;

use cnet_proto::ipam::v1 as ipam;
use tonic::Code;

use super::Gateway;
use crate::{
    backends::retry,
    domain::{ContainerRecord, NetworkRecord, RunState},
    error::Result,
    sandbox,
};

/// Containers restored at the same time at start.
const RESTORE_CONCURRENCY: usize = 16;

impl Gateway {
    pub async fn reconcile(self: &Arc<Self>) -> Result<()> {
        self.ensure_predefined_networks().await?;
        let networks = self.records.network_list()?;
        for network in networks.iter().filter(|n| n.is_bridge()) {
            self.restore_network(network).await?;
        }
        self.recover().await?;
        // Containers are independent: restore several at once (each is a handful of
        // calls that mostly wait on other services), so a restart with a thousand of
        // them takes seconds, not a restore's latency times a thousand.
        let restores =
            self.records.container_list()?.into_iter().map(|c| self.restore_container(c));
        let restored: Vec<Result<bool>> =
            futures::stream::iter(restores).buffer_unordered(RESTORE_CONCURRENCY).collect().await;
        for result in restored {
            result?;
        }
        for leftover in self.find_leftovers().await? {
            tracing::warn!(service = leftover.service(), "{leftover}: removing it");
            self.remove_leftover(&leftover).await?;
        }
        Ok(())
    }

    async fn restore_network(&self, network: &NetworkRecord) -> Result<()> {
        let existing = self
            .backends
            .ipam
            .clone()
            .get_pool(ipam::GetPoolRequest { id: network.id.clone() })
            .await;
        match existing {
            Ok(_) => {}
            Err(status) if status.code() == Code::NotFound => {
                tracing::warn!(network = %network.name, "address pool missing, recreating it");
                let gateway = network.gateway.clone();
                retry(
                    "recreate address pool",
                    &self.backends.ipam,
                    ipam::CreatePoolRequest {
                        id: network.id.clone(),
                        subnet: network.subnet.clone(),
                        ip_range: network.ip_range.clone(),
                        gateway: gateway.clone(),
                        exclude: Vec::new(),
                    },
                    |mut c, m| async move { c.create_pool(m).await },
                )
                .await?;
            }
            Err(status) => return Err(status.into()),
        }
        self.ensure_bridge(network).await?;
        self.ensure_firewall(network).await
    }

    /// Returns whether the container is (still) running.
    async fn restore_container(self: &Arc<Self>, container: ContainerRecord) -> Result<bool> {
        let RunState::Running { pid, start_ticks } = container.state else { return Ok(false) };
        if !sandbox::is_alive(pid, start_ticks) {
            tracing::info!(container = %container.name, pid, "process ended while the gateway was away");
            if let Err(error) = self.mark_exited(container, -1).await {
                tracing::warn!(%error, "teardown of an exited container failed");
            }
            return Ok(false);
        }
        // Re-take each address (idempotent per owner) and re-create missing veths.
        for attachment in &container.attachments {
            if let Some(lease) = &attachment.lease {
                retry(
                    "re-allocate address",
                    &self.backends.ipam,
                    ipam::AllocateRequest {
                        pool_id: attachment.network_id.clone(),
                        owner: container.id.clone(),
                        address: lease.address.to_string(),
                    },
                    |mut c, m| async move { c.allocate(m).await },
                )
                .await?;
            }
        }
        if !container.shares_namespace() {
            let netns_path = self.plumb(&container).await?;
            self.register_names(&container, &netns_path).await?;
            self.publish(&container).await?;
        }
        if !container.shares_files() {
            self.put_files(&container, true).await?;
        }
        self.watch_exit(&container.id, pid, None);
        Ok(true)
    }
}
