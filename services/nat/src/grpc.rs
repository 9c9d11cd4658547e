//! The `cnet.nat.v1.Nat` gRPC service: converts prost messages into validated domain
//! requests, calls the [`Registry`], and converts results back. The mapping of errors to
//! status codes lives here, in one place, and follows the table in nat.proto.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use cnet_proto::nat::v1 as proto;

use crate::{
    Error,
    domain::{self, ContainerId, Network, NetworkId, PortRequest, Publication, PublishRequest},
    registry::Registry,
};

pub struct NatService {
    registry: Arc<Registry>,
}

impl NatService {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

#[tonic::async_trait]
impl proto::nat_server::Nat for NatService {
    #[tracing::instrument(skip_all, fields(network = %request.get_ref().network_id))]
    async fn ensure_network(
        &self,
        request: Request<proto::EnsureNetworkRequest>,
    ) -> Result<Response<proto::Network>, Status> {
        let proto::EnsureNetworkRequest { network_id, bridge_name, subnet, internal } =
            request.into_inner();
        let network =
            Network::parse(&network_id, &bridge_name, &subnet, internal).map_err(Error::from)?;
        let network = self.registry.ensure_network(network).await?;
        Ok(Response::new(network_to_proto(&network)))
    }

    #[tracing::instrument(skip_all, fields(network = %request.get_ref().network_id))]
    async fn delete_network(
        &self,
        request: Request<proto::DeleteNetworkRequest>,
    ) -> Result<Response<proto::DeleteNetworkResponse>, Status> {
        let request = request.into_inner();
        let id = NetworkId::parse(&request.network_id).map_err(Error::from)?;
        self.registry.delete_network(&id, request.force).await?;
        Ok(Response::new(proto::DeleteNetworkResponse {}))
    }

    #[tracing::instrument(skip_all)]
    async fn list_networks(
        &self,
        _request: Request<proto::ListNetworksRequest>,
    ) -> Result<Response<proto::ListNetworksResponse>, Status> {
        let networks = self.registry.networks().await.iter().map(network_to_proto).collect();
        Ok(Response::new(proto::ListNetworksResponse { networks }))
    }

    #[tracing::instrument(skip_all, fields(container = %request.get_ref().container_id))]
    async fn publish(
        &self,
        request: Request<proto::PublishRequest>,
    ) -> Result<Response<proto::PublishResponse>, Status> {
        let proto::PublishRequest { container_id, network_id, container_ip, ports } =
            request.into_inner();
        let ports = ports
            .iter()
            .map(|port| {
                PortRequest::parse(
                    &port.host_ip,
                    port.host_port,
                    port.host_port_end,
                    port.container_port,
                    &port.protocol,
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::from)?;
        let request = PublishRequest::parse(&container_id, &network_id, &container_ip, ports)
            .map_err(Error::from)?;
        let publication = self.registry.publish(request).await?;
        Ok(Response::new(proto::PublishResponse { bindings: bindings_to_proto(&publication) }))
    }

    #[tracing::instrument(skip_all, fields(container = %request.get_ref().container_id))]
    async fn unpublish(
        &self,
        request: Request<proto::UnpublishRequest>,
    ) -> Result<Response<proto::UnpublishResponse>, Status> {
        let id = ContainerId::parse(&request.get_ref().container_id).map_err(Error::from)?;
        let removed = self.registry.unpublish(&id).await?;
        let removed = removed.as_ref().map(bindings_to_proto).unwrap_or_default();
        Ok(Response::new(proto::UnpublishResponse { removed }))
    }

    #[tracing::instrument(skip_all, fields(container = %request.get_ref().container_id))]
    async fn list_mappings(
        &self,
        request: Request<proto::ListMappingsRequest>,
    ) -> Result<Response<proto::ListMappingsResponse>, Status> {
        let container = &request.get_ref().container_id;
        let container = (!container.is_empty())
            .then(|| ContainerId::parse(container))
            .transpose()
            .map_err(Error::from)?;
        let publications = self.registry.publications(container.as_ref()).await;
        let bindings = publications.iter().flat_map(bindings_to_proto).collect();
        Ok(Response::new(proto::ListMappingsResponse { bindings }))
    }
}

fn network_to_proto(network: &Network) -> proto::Network {
    proto::Network {
        network_id: network.id.to_string(),
        bridge_name: network.bridge.to_string(),
        subnet: network.subnet.to_string(),
        internal: network.internal,
    }
}

fn bindings_to_proto(publication: &Publication) -> Vec<proto::Binding> {
    publication
        .bindings
        .iter()
        .map(|binding| proto::Binding {
            container_id: publication.container.to_string(),
            network_id: publication.network.to_string(),
            container_ip: publication.container_ip.to_string(),
            host_ip: binding.host_ip.to_string(),
            host_port: binding.host_port.into(),
            container_port: binding.container_port.into(),
            protocol: binding.protocol.to_string(),
        })
        .collect()
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        use domain::Error as E;
        let message = error.to_string();
        match error {
            Error::Nat(error) => match error {
                E::Invalid { .. } => Status::invalid_argument(message),
                E::NetworkNotFound { .. } => Status::not_found(message),
                E::NetworkConflict { .. } | E::BridgeTaken { .. } | E::PortAllocated { .. } => {
                    Status::already_exists(message)
                }
                E::NetworkInUse { .. } | E::ContainerPublished { .. } => {
                    Status::failed_precondition(message)
                }
                E::PortsExhausted => Status::resource_exhausted(message),
            },
            Error::Proxy(bind) if bind.in_use() => Status::already_exists(message),
            Error::Proxy(_) => Status::failed_precondition(message),
            Error::Firewall(_) | Error::Store(_) | Error::Corrupt { .. } | Error::Serve(_) => {
                tracing::error!(%message, "internal error");
                Status::internal(message)
            }
        }
    }
}
