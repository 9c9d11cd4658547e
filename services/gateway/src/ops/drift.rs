//! Drift: what the other services hold that no gateway record wants (left by a crash
//! half-way through an operation, or by hand), and running records whose process is
//! gone. Found the same way at start (and removed) and by `cnet system check` (shown,
//! and removed with `--repair`).

use std::{collections::HashSet, fmt};

use cnet_proto::{
    bridge::v1 as bridge, dns::v1 as dns, hosts::v1 as hosts, ipam::v1 as ipam, nat::v1 as nat,
};

use super::Gateway;
use crate::{backends::retry, error::Result, sandbox};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leftover {
    Pool { id: String },
    Address { pool_id: String, owner: String, address: String },
    Sandbox { id: String },
    Endpoint { id: String },
    DnsNames { container_id: String },
    HostsFiles { container_id: String },
    PublishedPorts { container_id: String },
    FirewallRules { network_id: String },
    Bridge { network_id: String, name: String },
    DeadProcess { container_id: String, name: String },
}

impl Leftover {
    /// The service that holds it.
    pub fn service(&self) -> &'static str {
        match self {
            Self::Pool { .. } | Self::Address { .. } => "ipam",
            Self::Sandbox { .. } | Self::Endpoint { .. } | Self::Bridge { .. } => "bridge",
            Self::DnsNames { .. } => "dns",
            Self::HostsFiles { .. } => "hosts",
            Self::PublishedPorts { .. } | Self::FirewallRules { .. } => "nat",
            Self::DeadProcess { .. } => "gateway",
        }
    }
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pool { id } => write!(f, "address pool {id} belongs to no network"),
            Self::Address { pool_id, owner, address } => {
                write!(
                    f,
                    "address {address} in pool {pool_id} is held by {owner}, which is not running there"
                )
            }
            Self::Sandbox { id } => {
                write!(f, "network namespace {id} is used by no running container")
            }
            Self::Endpoint { id } => {
                write!(f, "veth pair {id} belongs to no running container's network")
            }
            Self::DnsNames { container_id } => {
                write!(f, "DNS names are registered for {container_id}, which is not running")
            }
            Self::HostsFiles { container_id } => {
                write!(f, "hosts files are kept for {container_id}, which does not exist")
            }
            Self::PublishedPorts { container_id } => {
                write!(f, "ports are published for {container_id}, which is not running")
            }
            Self::FirewallRules { network_id } => {
                write!(f, "firewall rules exist for {network_id}, which is no network")
            }
            Self::Bridge { network_id, name } => {
                write!(f, "bridge {name} belongs to {network_id}, which is no network")
            }
            Self::DeadProcess { name, .. } => {
                write!(f, "container {name} is recorded running but its process is gone")
            }
        }
    }
}

impl Gateway {
    /// `cnet system check`: the drift, removed too when `repair` is set. Holds the
    /// registry and the network gate so that no operation is half-way meanwhile.
    pub async fn check(&self, repair: bool) -> Result<Vec<(Leftover, bool)>> {
        let _registry = self.registry.lock().await;
        let _gate = self.network_gate.write().await;
        let mut report = Vec::new();
        for leftover in self.find_leftovers().await? {
            let repaired = repair && self.remove_leftover(&leftover).await.is_ok();
            report.push((leftover, repaired));
        }
        Ok(report)
    }

    pub(super) async fn find_leftovers(&self) -> Result<Vec<Leftover>> {
        let networks: HashSet<String> =
            self.records.network_list()?.into_iter().map(|n| n.id).collect();
        let containers = self.records.container_list()?;
        let known: HashSet<&str> = containers.iter().map(|c| c.id.as_str()).collect();
        let mut running = HashSet::new();
        // (container, network) pairs that hold an address and a veth.
        let mut leases = HashSet::new();
        let mut found = Vec::new();
        for container in &containers {
            if let crate::domain::RunState::Running { pid, start_ticks } = container.state {
                if sandbox::is_alive(pid, start_ticks) {
                    running.insert(container.id.as_str());
                    for attachment in container.attachments.iter().filter(|a| a.lease.is_some()) {
                        leases.insert((container.id.clone(), attachment.network_id.clone()));
                    }
                } else {
                    found.push(Leftover::DeadProcess {
                        container_id: container.id.clone(),
                        name: container.name.clone(),
                    });
                }
            }
        }

        let pools = retry(
            "list pools",
            &self.backends.ipam,
            ipam::ListPoolsRequest {},
            |mut c, m| async move { c.list_pools(m).await },
        )
        .await?;
        for pool in pools.pools {
            if !networks.contains(&pool.id) {
                found.push(Leftover::Pool { id: pool.id });
                continue;
            }
            let request = ipam::ListAllocationsRequest { pool_id: pool.id.clone() };
            let allocations =
                retry("list allocations", &self.backends.ipam, request, |mut c, m| async move {
                    c.list_allocations(m).await
                })
                .await?;
            for allocation in allocations.allocations {
                if !leases.contains(&(allocation.owner.clone(), pool.id.clone())) {
                    found.push(Leftover::Address {
                        pool_id: pool.id.clone(),
                        owner: allocation.owner,
                        address: allocation.address,
                    });
                }
            }
        }

        let request = bridge::ListSandboxesRequest {};
        let sandboxes =
            retry("list sandboxes", &self.backends.bridge, request, |mut c, m| async move {
                c.list_sandboxes(m).await
            })
            .await?;
        for sandbox in sandboxes.sandboxes {
            if !running.contains(sandbox.id.as_str()) {
                found.push(Leftover::Sandbox { id: sandbox.id });
            }
        }
        let request = bridge::ListEndpointsRequest {};
        let endpoints =
            retry("list endpoints", &self.backends.bridge, request, |mut c, m| async move {
                c.list_endpoints(m).await
            })
            .await?;
        for endpoint in endpoints.endpoints {
            let (container, network) = endpoint.id.split_once('/').unwrap_or((&endpoint.id, ""));
            if !leases.contains(&(container.to_owned(), network.to_owned())) {
                found.push(Leftover::Endpoint { id: endpoint.id });
            }
        }
        let request = bridge::ListBridgesRequest {};
        let bridges =
            retry("list bridges", &self.backends.bridge, request, |mut c, m| async move {
                c.list_bridges(m).await
            })
            .await?;
        for device in bridges.bridges {
            if !networks.contains(&device.network_id) {
                found.push(Leftover::Bridge { network_id: device.network_id, name: device.name });
            }
        }

        let request = dns::ListContainersRequest {};
        let registered =
            retry("list DNS registrations", &self.backends.dns, request, |mut c, m| async move {
                c.list_containers(m).await
            })
            .await?;
        for container in registered.containers {
            if !running.contains(container.container_id.as_str()) {
                found.push(Leftover::DnsNames { container_id: container.container_id });
            }
        }

        let request = hosts::ListContainersRequest {};
        let files =
            retry("list hosts files", &self.backends.hosts, request, |mut c, m| async move {
                c.list_containers(m).await
            })
            .await?;
        for spec in files.containers.into_iter().filter_map(|c| c.spec) {
            if !known.contains(spec.container_id.as_str()) {
                found.push(Leftover::HostsFiles { container_id: spec.container_id });
            }
        }

        let request = nat::ListMappingsRequest { container_id: String::new() };
        let mappings =
            retry("list published ports", &self.backends.nat, request, |mut c, m| async move {
                c.list_mappings(m).await
            })
            .await?;
        let mut published: Vec<String> = mappings
            .bindings
            .into_iter()
            .map(|b| b.container_id)
            .filter(|id| !running.contains(id.as_str()))
            .collect();
        published.sort();
        published.dedup();
        found.extend(
            published.into_iter().map(|container_id| Leftover::PublishedPorts { container_id }),
        );
        let request = nat::ListNetworksRequest {};
        let firewalled =
            retry("list firewalled networks", &self.backends.nat, request, |mut c, m| async move {
                c.list_networks(m).await
            })
            .await?;
        for network in firewalled.networks {
            if !networks.contains(&network.network_id) {
                found.push(Leftover::FirewallRules { network_id: network.network_id });
            }
        }
        Ok(found)
    }

    pub(super) async fn remove_leftover(&self, leftover: &Leftover) -> Result<()> {
        match leftover {
            Leftover::Pool { id } => self.delete_pool(id).await?,
            Leftover::Address { pool_id, owner, .. } => {
                let request =
                    ipam::ReleaseRequest { pool_id: pool_id.clone(), owner: owner.clone() };
                retry("release address", &self.backends.ipam, request, |mut c, m| async move {
                    c.release(m).await
                })
                .await?;
            }
            Leftover::Sandbox { id } => {
                let request = bridge::DeleteSandboxRequest { id: id.clone() };
                retry("delete sandbox", &self.backends.bridge, request, |mut c, m| async move {
                    c.delete_sandbox(m).await
                })
                .await?;
            }
            Leftover::Endpoint { id } => {
                let request = bridge::DeleteEndpointRequest { id: id.clone() };
                retry("delete veth pair", &self.backends.bridge, request, |mut c, m| async move {
                    c.delete_endpoint(m).await
                })
                .await?;
            }
            Leftover::Bridge { network_id, .. } => self.delete_bridge(network_id).await?,
            Leftover::DnsNames { container_id } => self.deregister_names(container_id).await?,
            Leftover::HostsFiles { container_id } => self.forget_files(container_id).await?,
            Leftover::PublishedPorts { container_id } => self.unpublish(container_id).await?,
            Leftover::FirewallRules { network_id } => self.delete_firewall(network_id).await?,
            Leftover::DeadProcess { container_id, .. } => {
                let _guard = self.lock_container(container_id).await;
                let record = self.reload(container_id)?;
                // A stop or the exit watcher may have finished it meanwhile.
                if record.is_running() {
                    self.mark_exited(record, -1).await?;
                }
            }
        }
        Ok(())
    }
}
