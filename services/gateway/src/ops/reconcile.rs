//! Bringing the other services in line with the gateway's records at start: the records
//! are the truth. Networks get their pool and bridge back, running containers whose
//! process lives get their address and veths back and are watched again, containers
//! whose process died while the gateway was away are torn down, and whatever the other
//! services hold that no record wants (pools, addresses, sandboxes, bridges left by a
//! crash half-way through an operation) is removed.

use std::{collections::HashSet, sync::Arc};

use cnet_proto::{
    bridge::v1 as bridge, dns::v1 as dns, hosts::v1 as hosts, ipam::v1 as ipam, nat::v1 as nat,
};
use tonic::Code;

use super::Gateway;
use crate::{
    backends::retry,
    domain::{ContainerRecord, NetworkRecord, RunState},
    error::Result,
    sandbox,
};

impl Gateway {
    pub async fn reconcile(self: &Arc<Self>) -> Result<()> {
        self.ensure_predefined_networks().await?;
        let networks = self.records.network_list()?;
        for network in networks.iter().filter(|n| n.is_bridge()) {
            self.restore_network(network).await?;
        }
        let mut running = HashSet::new();
        for container in self.records.container_list()? {
            if self.restore_container(container.clone()).await? {
                running.insert(container.id);
            }
        }
        self.collect_garbage(&networks, &running).await
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
        self.watch_exit(&container.id, pid, None);
        Ok(true)
    }

    async fn collect_garbage(
        &self,
        networks: &[NetworkRecord],
        running: &HashSet<String>,
    ) -> Result<()> {
        let wanted_networks: HashSet<&str> = networks.iter().map(|n| n.id.as_str()).collect();
        let pools = retry(
            "list pools",
            &self.backends.ipam,
            ipam::ListPoolsRequest {},
            |mut c, m| async move { c.list_pools(m).await },
        )
        .await?;
        for pool in pools.pools {
            if !wanted_networks.contains(pool.id.as_str()) {
                tracing::warn!(pool = %pool.id, "removing an address pool no network owns");
                self.delete_pool(&pool.id).await;
                continue;
            }
            let allocations = retry(
                "list allocations",
                &self.backends.ipam,
                ipam::ListAllocationsRequest { pool_id: pool.id.clone() },
                |mut c, m| async move { c.list_allocations(m).await },
            )
            .await?;
            for allocation in allocations.allocations {
                if !running.contains(&allocation.owner) {
                    tracing::warn!(address = %allocation.address, owner = %allocation.owner, "releasing an address no running container holds");
                    retry(
                        "release address",
                        &self.backends.ipam,
                        ipam::ReleaseRequest {
                            pool_id: pool.id.clone(),
                            owner: allocation.owner.clone(),
                        },
                        |mut c, m| async move { c.release(m).await },
                    )
                    .await?;
                }
            }
        }
        let sandboxes = retry(
            "list sandboxes",
            &self.backends.bridge,
            bridge::ListSandboxesRequest {},
            |mut c, m| async move { c.list_sandboxes(m).await },
        )
        .await?;
        for sandbox in sandboxes.sandboxes {
            if !running.contains(&sandbox.id) {
                tracing::warn!(sandbox = %sandbox.id, "removing a network namespace no running container uses");
                retry(
                    "delete sandbox",
                    &self.backends.bridge,
                    bridge::DeleteSandboxRequest { id: sandbox.id.clone() },
                    |mut c, m| async move { c.delete_sandbox(m).await },
                )
                .await?;
            }
        }
        let registered = retry(
            "list DNS registrations",
            &self.backends.dns,
            dns::ListContainersRequest {},
            |mut c, m| async move { c.list_containers(m).await },
        )
        .await?;
        for container in registered.containers {
            if !running.contains(&container.container_id) {
                tracing::warn!(container = %container.container_id, "dropping DNS names of a container that is not running");
                self.deregister_names(&container.container_id).await?;
            }
        }

        let known: HashSet<String> =
            self.records.container_list()?.into_iter().map(|c| c.id).collect();
        let files = retry(
            "list hosts files",
            &self.backends.hosts,
            hosts::ListContainersRequest {},
            |mut c, m| async move { c.list_containers(m).await },
        )
        .await?;
        for spec in files.containers.into_iter().filter_map(|c| c.spec) {
            if !known.contains(&spec.container_id) {
                tracing::warn!(container = %spec.container_id, "removing hosts files of a container that no longer exists");
                self.forget_files(&spec.container_id).await?;
            }
        }

        let mappings = retry(
            "list published ports",
            &self.backends.nat,
            nat::ListMappingsRequest { container_id: String::new() },
            |mut c, m| async move { c.list_mappings(m).await },
        )
        .await?;
        let published: HashSet<String> =
            mappings.bindings.into_iter().map(|b| b.container_id).collect();
        for container_id in published.difference(running) {
            tracing::warn!(container = %container_id, "unpublishing ports of a container that is not running");
            self.unpublish(container_id).await?;
        }
        let firewalled = retry(
            "list firewalled networks",
            &self.backends.nat,
            nat::ListNetworksRequest {},
            |mut c, m| async move { c.list_networks(m).await },
        )
        .await?;
        for network in firewalled.networks {
            if !wanted_networks.contains(network.network_id.as_str()) {
                tracing::warn!(network = %network.network_id, "removing firewall rules no network owns");
                self.delete_firewall(&network.network_id).await;
            }
        }

        let bridges = retry(
            "list bridges",
            &self.backends.bridge,
            bridge::ListBridgesRequest {},
            |mut c, m| async move { c.list_bridges(m).await },
        )
        .await?;
        for device in bridges.bridges {
            if !wanted_networks.contains(device.network_id.as_str()) {
                tracing::warn!(bridge = %device.name, "removing a bridge no network owns");
                self.delete_bridge(&device.network_id).await;
            }
        }
        Ok(())
    }
}
