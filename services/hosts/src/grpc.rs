//! The `cnet.hosts.v1.Hosts` gRPC service: converts prost messages to validated domain
//! values, calls the [`Registry`], and converts results back. The mapping of errors to
//! status codes lives here, in one place, and follows the table in hosts.proto.

use tonic::{Request, Response, Status};

use cnet_proto::hosts::v1 as proto;

use crate::{
    Error,
    domain::{
        self, Alias, ContainerId, ContainerName, ContainerSpec, Dns, DnsOption, Endpoint,
        ExtraHost, HostEntryName, Hostname, Link, Mode, NetworkName, Process, SearchDomain,
        names::parse_address,
    },
    registry::{Registry, View},
};

pub struct HostsService {
    registry: Registry,
}

impl HostsService {
    pub fn new(registry: Registry) -> Self {
        Self { registry }
    }
}

#[tonic::async_trait]
impl proto::hosts_server::Hosts for HostsService {
    #[tracing::instrument(skip_all, fields(container = tracing::field::Empty))]
    async fn put_container(
        &self,
        request: Request<proto::PutContainerRequest>,
    ) -> Result<Response<proto::Container>, Status> {
        let spec =
            request.into_inner().spec.ok_or(domain::Error::Missing("spec")).map_err(Error::from)?;
        tracing::Span::current().record("container", spec.container_id.as_str());
        let spec = spec_from_proto(spec).map_err(Error::from)?;
        let view = self.registry.put(spec).await?;
        Ok(Response::new(view_to_proto(view)))
    }

    #[tracing::instrument(skip_all, fields(container = %request.get_ref().container_id))]
    async fn remove_container(
        &self,
        request: Request<proto::RemoveContainerRequest>,
    ) -> Result<Response<proto::RemoveContainerResponse>, Status> {
        let id = ContainerId::parse(&request.get_ref().container_id).map_err(Error::from)?;
        let removed = self.registry.remove(&id).await?;
        Ok(Response::new(proto::RemoveContainerResponse {
            removed: removed.existed,
            rewritten_container_ids: removed.rewritten.iter().map(ToString::to_string).collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(container = %request.get_ref().container_id))]
    async fn get_container(
        &self,
        request: Request<proto::GetContainerRequest>,
    ) -> Result<Response<proto::Container>, Status> {
        let id = ContainerId::parse(&request.get_ref().container_id).map_err(Error::from)?;
        Ok(Response::new(view_to_proto(self.registry.get(&id).await?)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_containers(
        &self,
        _request: Request<proto::ListContainersRequest>,
    ) -> Result<Response<proto::ListContainersResponse>, Status> {
        let containers = self.registry.list().await?.into_iter().map(view_to_proto).collect();
        Ok(Response::new(proto::ListContainersResponse { containers }))
    }
}

fn spec_from_proto(spec: proto::ContainerSpec) -> Result<ContainerSpec, domain::Error> {
    let mode = match proto::NetworkMode::try_from(spec.mode) {
        Ok(proto::NetworkMode::Bridge) => Mode::Bridge,
        Ok(proto::NetworkMode::Host) => Mode::Host,
        Ok(proto::NetworkMode::None) => Mode::None,
        Ok(proto::NetworkMode::Unspecified) | Err(_) => {
            return Err(domain::Error::Invalid {
                what: "network mode",
                value: spec.mode.to_string(),
                reason: "must be BRIDGE, HOST or NONE",
            });
        }
    };
    let endpoints = spec
        .endpoints
        .iter()
        .map(|endpoint| {
            Ok(Endpoint {
                network: NetworkName::parse(&endpoint.network)?,
                address: parse_address("endpoint address", &endpoint.address, false)?,
                default_bridge: endpoint.default_bridge,
            })
        })
        .collect::<Result<_, domain::Error>>()?;
    let extra_hosts = spec
        .extra_hosts
        .iter()
        .map(|extra| {
            Ok(ExtraHost {
                hostname: HostEntryName::parse(&extra.hostname)?,
                address: parse_address("extra host address", &extra.address, true)?,
            })
        })
        .collect::<Result<_, domain::Error>>()?;
    let links = spec
        .links
        .iter()
        .map(|link| {
            Ok(Link {
                target: ContainerId::parse(&link.target_container_id)?,
                alias: Alias::parse(&link.alias)?,
            })
        })
        .collect::<Result<_, domain::Error>>()?;
    let dns = Dns {
        servers: spec
            .dns_servers
            .iter()
            .map(|server| parse_address("dns server", server, false))
            .collect::<Result<_, _>>()?,
        search: spec.dns_search.iter().map(|s| SearchDomain::parse(s)).collect::<Result<_, _>>()?,
        options: spec.dns_options.iter().map(|o| DnsOption::parse(o)).collect::<Result<_, _>>()?,
    };
    Ok(ContainerSpec {
        id: ContainerId::parse(&spec.container_id)?,
        name: ContainerName::parse(&spec.name)?,
        hostname: Hostname::parse(&spec.hostname)?,
        mode,
        endpoints,
        extra_hosts,
        dns,
        links,
        running: spec.running,
        process: spec.process.map(parse_process).transpose()?,
    })
}

fn parse_process(process: proto::Process) -> Result<Process, domain::Error> {
    if process.pid == 0 {
        return Err(domain::Error::Conflict("process: pid must not be 0".into()));
    }
    Ok(Process { pid: process.pid, start_ticks: process.start_ticks })
}

fn spec_to_proto(spec: &ContainerSpec) -> proto::ContainerSpec {
    let mode = match spec.mode {
        Mode::Bridge => proto::NetworkMode::Bridge,
        Mode::Host => proto::NetworkMode::Host,
        Mode::None => proto::NetworkMode::None,
    };
    proto::ContainerSpec {
        container_id: spec.id.to_string(),
        name: spec.name.to_string(),
        hostname: spec.hostname.to_string(),
        mode: mode.into(),
        endpoints: spec
            .endpoints
            .iter()
            .map(|endpoint| proto::Endpoint {
                network: endpoint.network.to_string(),
                address: endpoint.address.to_string(),
                default_bridge: endpoint.default_bridge,
            })
            .collect(),
        extra_hosts: spec
            .extra_hosts
            .iter()
            .map(|extra| proto::ExtraHost {
                hostname: extra.hostname.to_string(),
                address: extra.address.to_string(),
            })
            .collect(),
        dns_servers: spec.dns.servers.iter().map(ToString::to_string).collect(),
        dns_search: spec.dns.search.iter().map(ToString::to_string).collect(),
        dns_options: spec.dns.options.iter().map(ToString::to_string).collect(),
        links: spec
            .links
            .iter()
            .map(|link| proto::Link {
                target_container_id: link.target.to_string(),
                alias: link.alias.to_string(),
            })
            .collect(),
        running: spec.running,
        process: spec.process.map(|p| proto::Process { pid: p.pid, start_ticks: p.start_ticks }),
    }
}

fn view_to_proto(view: View) -> proto::Container {
    let View { container, linked_by, paths, contents } = view;
    let path = |path: &std::path::Path| path.to_string_lossy().into_owned();
    proto::Container {
        spec: Some(spec_to_proto(&container.spec)),
        link_address: container.link_address.map(|a| a.to_string()).unwrap_or_default(),
        linked_by: linked_by
            .into_iter()
            .map(|(id, alias)| proto::Linker { container_id: id.into(), alias: alias.into() })
            .collect(),
        files: Some(proto::Files {
            hosts_path: path(&paths.hosts),
            resolv_conf_path: path(&paths.resolv_conf),
            hostname_path: path(&paths.hostname),
            hosts: contents.hosts,
            resolv_conf: contents.resolv_conf,
            hostname: contents.hostname,
        }),
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::Domain(domain::Error::NotFound { .. }) => Status::not_found(message),
            Error::Domain(
                domain::Error::Invalid { .. }
                | domain::Error::Conflict(_)
                | domain::Error::Missing(_),
            ) => Status::invalid_argument(message),
            Error::Store(_)
            | Error::Corrupt { .. }
            | Error::Io { .. }
            | Error::Several(_)
            | Error::Serve(_) => {
                tracing::error!(%message, "internal error");
                Status::internal(message)
            }
        }
    }
}
