//! Creating and removing networks: an ipam pool plus a bridge device, recorded once both
//! exist.

use cnet_proto::{bridge::v1 as bridge, ipam::v1 as ipam};
use tonic::Status;

use super::Gateway;
use crate::{
    backends::retry,
    domain::{
        NetworkRecord,
        names::{self},
        network::{self, DEFAULT_NETWORK, NetworkRequest, NetworkSpec},
    },
    error::{Error, Result},
    now,
};

impl Gateway {
    #[tracing::instrument(name = "create network", skip_all, fields(network = %spec.name))]
    pub async fn create_network(&self, spec: NetworkSpec) -> Result<NetworkRecord> {
        let _registry = self.registry.lock().await;
        self.create_network_locked(spec, false).await
    }

    async fn create_network_locked(
        &self,
        spec: NetworkSpec,
        predefined: bool,
    ) -> Result<NetworkRecord> {
        let existing = self.records.network_list()?;
        if existing.iter().any(|n| n.name == spec.name) {
            return Err(Error::AlreadyExists(format!(
                "network with name {} already exists",
                spec.name
            )));
        }
        let id = names::new_id();
        let bridge_name =
            spec.bridge_name.clone().unwrap_or_else(|| network::default_bridge_name(&id));
        if let Some(other) = existing.iter().find(|n| n.bridge_name == bridge_name) {
            return Err(Error::AlreadyExists(format!(
                "bridge name {bridge_name} is already used by network {}",
                other.name
            )));
        }

        let exclude = if spec.subnet.is_empty() {
            retry(
                "list host prefixes",
                &self.backends.bridge,
                bridge::HostPrefixesRequest {},
                |mut c, m| async move { c.host_prefixes(m).await },
            )
            .await?
            .prefixes
        } else {
            Vec::new()
        };
        let pool = retry(
            "create address pool",
            &self.backends.ipam,
            ipam::CreatePoolRequest {
                id: id.clone(),
                subnet: spec.subnet.clone(),
                ip_range: spec.ip_range.clone(),
                gateway: spec.gateway.clone(),
                exclude: exclude.clone(),
            },
            |mut c, m| async move { c.create_pool(m).await },
        )
        .await?;
        let prefix_len =
            pool.network.rsplit_once('/').and_then(|(_, p)| p.parse().ok()).unwrap_or(0);
        let record = NetworkRecord {
            id: id.clone(),
            name: spec.name.clone(),
            driver: "bridge".into(),
            bridge_name,
            subnet: pool.subnet.clone(),
            network: pool.network.clone(),
            ip_range: pool.ip_range.clone(),
            gateway: pool.gateway.clone(),
            prefix_len,
            gateway_given: !spec.gateway.is_empty(),
            subnet_given: !spec.subnet.is_empty(),
            mtu: spec.mtu,
            internal: spec.internal,
            predefined,
            labels: spec.labels,
            options: spec.options,
            created: now(),
        };
        if let Err(error) = self.ensure_bridge(&record).await {
            self.undo_create(&id, false).await;
            return Err(error);
        }
        let recorded = match self.ensure_firewall(&record).await {
            Ok(()) => self.records.put_network(&record).await.map_err(Error::from),
            Err(error) => Err(error),
        };
        if let Err(error) = recorded {
            self.undo_create(&id, true).await;
            return Err(error);
        }
        tracing::info!(network = %record.name, id = %names::short_id(&id), subnet = %record.subnet, "network created");
        Ok(record)
    }

    #[tracing::instrument(name = "ensure bridge", skip_all, fields(network = %record.name))]
    pub(super) async fn ensure_bridge(&self, record: &NetworkRecord) -> Result<()> {
        retry(
            "create bridge",
            &self.backends.bridge,
            bridge::EnsureBridgeRequest {
                network_id: record.id.clone(),
                name: record.bridge_name.clone(),
                gateway_cidr: record.gateway_cidr(),
                mtu: record.mtu,
            },
            |mut c, m| async move { c.ensure_bridge(m).await },
        )
        .await?;
        Ok(())
    }

    /// Best effort: what cannot be undone now is drift, which reconciliation removes.
    async fn undo_create(&self, id: &str, made_bridge: bool) {
        let mut undone = Vec::new();
        if made_bridge {
            undone.push(("firewall rules", self.delete_firewall(id).await));
            undone.push(("bridge", self.delete_bridge(id).await));
        }
        undone.push(("address pool", self.delete_pool(id).await));
        for (what, result) in undone {
            if let Err(status) = result {
                tracing::warn!(network = id, %status, "could not remove the {what} of a network not made");
            }
        }
    }

    /// Deletes the network's address pool, with its allocations.
    pub(super) async fn delete_pool(&self, id: &str) -> Result<(), Status> {
        let request = ipam::DeletePoolRequest { id: id.to_owned(), force: true };
        retry("delete address pool", &self.backends.ipam, request, |mut c, m| async move {
            c.delete_pool(m).await
        })
        .await
        .map(drop)
    }

    pub(super) async fn delete_bridge(&self, id: &str) -> Result<(), Status> {
        let request = bridge::DeleteBridgeRequest { network_id: id.to_owned() };
        retry("delete bridge", &self.backends.bridge, request, |mut c, m| async move {
            c.delete_bridge(m).await
        })
        .await
        .map(drop)
    }

    #[tracing::instrument(name = "remove network", skip_all, fields(network = reference))]
    pub async fn remove_network(&self, reference: &str) -> Result<NetworkRecord> {
        let _registry = self.registry.lock().await;
        let _gate = self.network_gate.write().await;
        let network = self.find_network(reference)?;
        if network.predefined {
            return Err(Error::FailedPrecondition(format!(
                "{} is a pre-defined network and cannot be removed",
                network.name
            )));
        }
        if self.has_active_endpoints(&network)? {
            return Err(Error::FailedPrecondition(format!(
                "error while removing network: network {} id {} has active endpoints",
                network.name, network.id
            )));
        }
        self.remove_network_locked(network).await
    }

    /// Removes every network without running containers, as `docker network prune`.
    pub async fn prune_networks(&self) -> Result<Vec<NetworkRecord>> {
        let _registry = self.registry.lock().await;
        let _gate = self.network_gate.write().await;
        let mut removed = Vec::new();
        for network in self.records.network_list()? {
            if !network.predefined && !self.has_active_endpoints(&network)? {
                removed.push(self.remove_network_locked(network).await?);
            }
        }
        Ok(removed)
    }

    fn has_active_endpoints(&self, network: &NetworkRecord) -> Result<bool> {
        let containers = self.records.container_list()?;
        Ok(containers.iter().any(|c| c.is_running() && c.attached_to(&network.id)))
    }

    async fn remove_network_locked(&self, network: NetworkRecord) -> Result<NetworkRecord> {
        if let Err(status) = self.delete_firewall(&network.id).await {
            // Left to reconciliation: rules of a network without a record are drift.
            tracing::warn!(network = %network.id, %status, "removing firewall rules failed");
        }
        self.delete_bridge(&network.id).await?;
        self.delete_pool(&network.id).await?;
        self.records.delete_network(&network.id).await?;
        tracing::info!(network = %network.name, "network removed");
        Ok(network)
    }

    /// Creates the predefined networks on first start: `bridge` (a real bridge with an
    /// automatic subnet), and `host` and `none`, which select those modes.
    pub(super) async fn ensure_predefined_networks(&self) -> Result<()> {
        let _registry = self.registry.lock().await;
        let existing = self.records.network_list()?;
        for (name, driver) in [("host", "host"), ("none", "null")] {
            if !existing.iter().any(|n| n.predefined && n.name == name) {
                self.records.put_network(&NetworkRecord::special(name, driver, now())).await?;
            }
        }
        if existing.iter().any(|n| n.is_default()) {
            return Ok(());
        }
        let options =
            [("com.docker.network.bridge.name".to_owned(), self.default_bridge_name.clone())];
        let spec = NetworkSpec::parse(NetworkRequest {
            name: DEFAULT_NETWORK.into(),
            options: options.into_iter().collect(),
            ..Default::default()
        })
        .map_err(|e| Error::InvalidArgument(format!("default network: {e}")))?;
        self.create_network_locked(spec, true).await.map(|_| ())
    }
}
