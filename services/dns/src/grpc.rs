//! The `cnet.dns.v1.Dns` gRPC service: converts prost messages to validated domain
//! requests, calls the [`Registry`], and converts results back. The mapping of errors to
//! status codes lives here, in one place, and follows the table in dns.proto.

use std::{str::FromStr, sync::Arc};

use hickory_proto::rr::RecordType;
use tonic::{Request, Response, Status};

use cnet_proto::dns::v1 as proto;

use crate::{
    Error,
    domain::{
        self, ContainerId, NetworkId, Outcome, QueryKind, Registration,
        records::RecordRow,
        registration::{EndpointRequest, RegistrationRequest},
    },
    registry::{ContainerView, Registry},
};

pub struct DnsService {
    registry: Arc<Registry>,
}

impl DnsService {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

#[tonic::async_trait]
impl proto::dns_server::Dns for DnsService {
    #[tracing::instrument(skip_all, fields(container = %request.get_ref().container_id))]
    async fn register_container(
        &self,
        request: Request<proto::RegisterContainerRequest>,
    ) -> Result<Response<proto::Container>, Status> {
        let registration = Registration::parse(&registration_request(request.into_inner()))
            .map_err(Error::from)?;
        let view = self.registry.register(registration).await?;
        Ok(Response::new(container_to_proto(view)))
    }

    #[tracing::instrument(skip_all, fields(container = %request.get_ref().container_id))]
    async fn deregister_container(
        &self,
        request: Request<proto::DeregisterContainerRequest>,
    ) -> Result<Response<proto::DeregisterContainerResponse>, Status> {
        let id = ContainerId::parse(&request.get_ref().container_id).map_err(Error::from)?;
        let removed = self.registry.deregister(&id).await?;
        Ok(Response::new(proto::DeregisterContainerResponse { removed }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_containers(
        &self,
        _request: Request<proto::ListContainersRequest>,
    ) -> Result<Response<proto::ListContainersResponse>, Status> {
        let views = self.registry.containers().await;
        let containers = views.into_iter().map(container_to_proto).collect();
        Ok(Response::new(proto::ListContainersResponse { containers }))
    }

    /// An empty network id lists every network's records.
    #[tracing::instrument(skip_all, fields(network = %request.get_ref().network_id))]
    async fn list_records(
        &self,
        request: Request<proto::ListRecordsRequest>,
    ) -> Result<Response<proto::ListRecordsResponse>, Status> {
        let network = &request.get_ref().network_id;
        let network = (!network.is_empty())
            .then(|| NetworkId::parse(network))
            .transpose()
            .map_err(Error::from)?;
        let records =
            self.registry.records(network.as_ref()).into_iter().map(record_to_proto).collect();
        Ok(Response::new(proto::ListRecordsResponse { records }))
    }

    #[tracing::instrument(skip_all, fields(container = %request.get_ref().container_id, name = %request.get_ref().name))]
    async fn lookup(
        &self,
        request: Request<proto::LookupRequest>,
    ) -> Result<Response<proto::LookupResponse>, Status> {
        let proto::LookupRequest { container_id, name, r#type } = request.into_inner();
        let id = ContainerId::parse(&container_id).map_err(Error::from)?;
        let kind = query_kind(&r#type).map_err(Error::from)?;
        let (outcome, upstreams) = self.registry.lookup(&id, &name, kind)?;
        let mut response = proto::LookupResponse::default();
        match outcome {
            Outcome::Addresses { network, addresses } => {
                response.set_outcome(proto::lookup_response::Outcome::Answer);
                response.answers = addresses.iter().map(ToString::to_string).collect();
                response.network_id = network.to_string();
            }
            Outcome::Pointer { network, target } => {
                response.set_outcome(proto::lookup_response::Outcome::Answer);
                response.answers = vec![target];
                response.network_id = network.to_string();
            }
            Outcome::NoData => response.set_outcome(proto::lookup_response::Outcome::NoData),
            Outcome::Forward => {
                response.set_outcome(proto::lookup_response::Outcome::Forward);
                response.upstreams = upstreams.iter().map(ToString::to_string).collect();
            }
        }
        Ok(Response::new(response))
    }
}

fn query_kind(text: &str) -> Result<QueryKind, domain::Error> {
    if text.is_empty() {
        return Ok(QueryKind::A);
    }
    let invalid = || domain::Error::InvalidRecordType { value: text.to_owned() };
    match RecordType::from_str(&text.to_ascii_uppercase()).map_err(|_| invalid())? {
        RecordType::A => Ok(QueryKind::A),
        RecordType::PTR => Ok(QueryKind::Ptr),
        RecordType::Unknown(_) => Err(invalid()),
        _ => Ok(QueryKind::Other),
    }
}

fn registration_request(request: proto::RegisterContainerRequest) -> RegistrationRequest {
    RegistrationRequest {
        container_id: request.container_id,
        name: request.name,
        hostname: request.hostname,
        netns_path: request.netns_path,
        upstreams: request.upstreams,
        link_aliases: request
            .link_aliases
            .into_iter()
            .map(|link| (link.alias, link.target_container_id))
            .collect(),
        endpoints: request
            .endpoints
            .into_iter()
            .map(|endpoint| EndpointRequest {
                network_id: endpoint.network_id,
                network_name: endpoint.network_name,
                address: endpoint.address,
                aliases: endpoint.aliases,
                internal: endpoint.internal,
            })
            .collect(),
    }
}

fn container_to_proto(view: ContainerView) -> proto::Container {
    let ContainerView { registration, listening, listen_error } = view;
    proto::Container {
        container_id: registration.container_id.to_string(),
        name: registration.name,
        hostname: registration.hostname.unwrap_or_default(),
        netns_path: registration.netns_path.to_string_lossy().into_owned(),
        upstreams: registration.upstreams.iter().map(ToString::to_string).collect(),
        link_aliases: registration
            .link_aliases
            .into_iter()
            .map(|link| proto::LinkAlias {
                alias: link.alias,
                target_container_id: link.target.to_string(),
            })
            .collect(),
        endpoints: registration
            .endpoints
            .into_iter()
            .map(|endpoint| proto::Endpoint {
                network_id: endpoint.network_id.to_string(),
                network_name: endpoint.network_name,
                address: endpoint.address.to_string(),
                aliases: endpoint.aliases,
                internal: endpoint.internal,
            })
            .collect(),
        listening,
        listen_error: listen_error.unwrap_or_default(),
    }
}

fn record_to_proto(row: RecordRow) -> proto::Record {
    proto::Record {
        network_id: row.network_id.to_string(),
        network_name: row.network_name,
        r#type: row.kind.to_owned(),
        name: row.name,
        value: row.value,
        container_id: row.container_id.to_string(),
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::Invalid(_) => Status::invalid_argument(message),
            Error::NotRegistered { .. } => Status::not_found(message),
            Error::Listen { .. } => Status::failed_precondition(message),
            Error::Store(_)
            | Error::Corrupt { .. }
            | Error::Bind { .. }
            | Error::Config(_)
            | Error::Serve(_) => {
                tracing::error!(%message, "internal error");
                Status::internal(message)
            }
        }
    }
}
