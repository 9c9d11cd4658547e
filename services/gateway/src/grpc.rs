//! The public gRPC API (`cnet.gateway.v1`): request checks, proto <-> record conversion,
//! and nothing else. Only this module sees prost types.

use std::{collections::HashMap, sync::Arc};

use cnet_proto::gateway::v1::{
    self as api, container_service_server::ContainerService,
    network_service_server::NetworkService, system_service_server::SystemService,
};
use tonic::{Request, Response, Status};

use crate::{
    domain::{
        ContainerRecord, NetworkRecord, RunState,
        network::{NetworkRequest, NetworkSpec},
    },
    ops::{CreateSpec, DEFAULT_STOP_TIMEOUT, Gateway, parse_port},
    sandbox::ContainerFiles,
};

#[derive(Clone)]
pub struct Api {
    gateway: Arc<Gateway>,
    state_dir: std::path::PathBuf,
}

impl Api {
    pub fn new(gateway: Arc<Gateway>, state_dir: std::path::PathBuf) -> Self {
        Self { gateway, state_dir }
    }

    fn network_message(
        &self,
        network: NetworkRecord,
        containers: &[ContainerRecord],
    ) -> api::Network {
        let attached = containers
            .iter()
            .filter(|c| c.attached_to(&network.id))
            .map(|c| {
                let lease = c
                    .attachments
                    .iter()
                    .find(|a| a.network_id == network.id)
                    .and_then(|a| a.lease.as_ref());
                api::NetworkContainer {
                    container_id: c.id.clone(),
                    name: c.name.clone(),
                    ipv4_address: lease
                        .map(|l| format!("{}/{}", l.address, l.prefix_len))
                        .unwrap_or_default(),
                    mac_address: lease.map(|l| l.mac.clone()).unwrap_or_default(),
                }
            })
            .collect();
        api::Network {
            ipam: Some(api::IpamConfig {
                subnet: network.subnet.clone(),
                ip_range: network.ip_range.clone(),
                // Docker shows the gateway only when the user gave it or picked no subnet.
                gateway: if network.gateway_given || !network.subnet_given {
                    network.gateway.clone()
                } else {
                    String::new()
                },
            }),
            id: network.id,
            name: network.name,
            driver: network.driver,
            bridge_name: network.bridge_name,
            gateway: network.gateway,
            network: network.network,
            mtu: network.mtu,
            internal: network.internal,
            predefined: network.predefined,
            labels: network.labels.into_iter().collect(),
            options: network.options.into_iter().collect(),
            created: network.created,
            containers: attached,
        }
    }

    /// `name_of` gives a container's name from its id (for the links).
    fn container_message(
        &self,
        container: ContainerRecord,
        networks: &[NetworkRecord],
        name_of: impl Fn(&str) -> Option<String>,
    ) -> api::Container {
        let files = ContainerFiles::new(&self.state_dir, &container.id);
        let endpoints = container
            .attachments
            .iter()
            .filter_map(|attachment| {
                let network = networks.iter().find(|n| n.id == attachment.network_id)?;
                let lease = attachment.lease.as_ref();
                Some((
                    network.name.clone(),
                    api::EndpointSettings {
                        network_id: network.id.clone(),
                        network_name: network.name.clone(),
                        ifname: lease.map(|l| l.ifname.clone()).unwrap_or_default(),
                        ip_address: lease.map(|l| l.address.to_string()).unwrap_or_default(),
                        prefix_len: lease.map_or(0, |l| u32::from(l.prefix_len)),
                        gateway: lease.map(|l| l.gateway.to_string()).unwrap_or_default(),
                        mac_address: lease.map(|l| l.mac.clone()).unwrap_or_default(),
                        static_ip: attachment
                            .static_ip
                            .map(|ip| ip.to_string())
                            .unwrap_or_default(),
                        aliases: attachment.aliases.clone(),
                    },
                ))
            })
            .collect();
        let (state, pid) = match container.state {
            RunState::Created => (api::ContainerState::Created, 0),
            RunState::Running { pid, .. } => (api::ContainerState::Running, pid),
            RunState::Exited => (api::ContainerState::Exited, 0),
        };
        let links = container
            .links
            .iter()
            .map(|link| {
                let target = name_of(&link.target_id).unwrap_or_else(|| link.target_id.clone());
                format!("/{target}:/{}/{}", container.name, link.alias)
            })
            .collect();
        let netns_path = if pid != 0 { format!("/proc/{pid}/ns/net") } else { String::new() };
        api::Container {
            id: container.id,
            name: container.name,
            hostname: container.hostname,
            state: state.into(),
            pid,
            command: container.command,
            network_mode: container.network_mode,
            networks: endpoints,
            created: container.created,
            started_at: container.started_at,
            finished_at: container.finished_at,
            exit_code: container.exit_code,
            hosts_path: container.hosts_path,
            resolv_conf_path: container.resolv_conf_path,
            log_path: files.log().display().to_string(),
            netns_path,
            links,
            env: container.env.iter().chain(&container.link_env).cloned().collect(),
            add_hosts: container
                .extra_hosts
                .iter()
                .map(|h| format!("{}:{}", h.hostname, h.address))
                .collect(),
            dns: container.dns.servers.iter().map(ToString::to_string).collect(),
            dns_search: container.dns.search,
            dns_options: container.dns.options,
            ports: container
                .ports
                .iter()
                .map(|p| api::PortMapping {
                    host_ip: p.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                    host_port: p.host_port.into(),
                    host_port_end: p.host_port_end.into(),
                    container_port: p.container_port.into(),
                    protocol: p.protocol.clone(),
                })
                .collect(),
            port_bindings: container
                .port_bindings
                .iter()
                .map(|b| api::PortBinding {
                    host_ip: b.host_ip.clone(),
                    host_port: b.host_port.into(),
                    container_port: b.container_port.into(),
                    protocol: b.protocol.clone(),
                })
                .collect(),
        }
    }

    fn one_container(
        &self,
        container: ContainerRecord,
    ) -> Result<Response<api::Container>, Status> {
        let networks = self.gateway.networks()?;
        // Only the link targets are looked up: listing every container here made each
        // run, connect and inspect cost O(containers).
        let name_of = |id: &str| self.gateway.find_container(id).ok().map(|target| target.name);
        Ok(Response::new(self.container_message(container, &networks, name_of)))
    }
}

fn create_spec(request: api::CreateContainerRequest) -> Result<CreateSpec, Status> {
    let ports = request
        .ports
        .iter()
        .map(|p| {
            parse_port(&p.host_ip, p.host_port, p.host_port_end, p.container_port, &p.protocol)
        })
        .collect::<Result<_, _>>()?;
    Ok(CreateSpec {
        ports,
        name: request.name,
        hostname: request.hostname,
        network: request.network,
        ip: request.ip,
        command: request.command,
        env: request.env,
        aliases: request.aliases,
        links: request.links,
        add_hosts: request.add_hosts,
        dns: request.dns,
        dns_search: request.dns_search,
        dns_options: request.dns_options,
    })
}

fn required<'a>(value: &'a str, field: &str) -> Result<&'a str, Status> {
    if value.is_empty() {
        Err(Status::invalid_argument(format!("{field} is required")))
    } else {
        Ok(value)
    }
}

#[tonic::async_trait]
impl NetworkService for Api {
    #[tracing::instrument(skip_all, fields(network = %request.get_ref().name))]
    async fn create_network(
        &self,
        request: Request<api::CreateNetworkRequest>,
    ) -> Result<Response<api::Network>, Status> {
        let r = request.into_inner();
        let spec = NetworkSpec::parse(NetworkRequest {
            name: r.name,
            driver: r.driver,
            subnet: r.subnet,
            ip_range: r.ip_range,
            gateway: r.gateway,
            internal: r.internal,
            labels: r.labels.into_iter().collect(),
            options: r.options.into_iter().collect(),
        })
        .map_err(|e| Status::from(crate::error::Error::InvalidArgument(e.to_string())))?;
        let network = self.gateway.create_network(spec).await?;
        Ok(Response::new(self.network_message(network, &[])))
    }

    async fn list_networks(
        &self,
        _: Request<api::ListNetworksRequest>,
    ) -> Result<Response<api::ListNetworksResponse>, Status> {
        let containers = self.gateway.containers()?;
        let mut networks: Vec<_> = self
            .gateway
            .networks()?
            .into_iter()
            .map(|n| self.network_message(n, &containers))
            .collect();
        networks.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        Ok(Response::new(api::ListNetworksResponse { networks }))
    }

    async fn inspect_network(
        &self,
        request: Request<api::InspectNetworkRequest>,
    ) -> Result<Response<api::Network>, Status> {
        let reference = required(&request.get_ref().network, "network")?;
        let network = self.gateway.find_network(reference)?;
        let containers = self.gateway.containers()?;
        Ok(Response::new(self.network_message(network, &containers)))
    }

    async fn prune_networks(
        &self,
        _: Request<api::PruneNetworksRequest>,
    ) -> Result<Response<api::PruneNetworksResponse>, Status> {
        let removed = self.gateway.prune_networks().await?;
        Ok(Response::new(api::PruneNetworksResponse {
            removed: removed.into_iter().map(|n| n.name).collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(network = %request.get_ref().network, container = %request.get_ref().container))]
    async fn connect_network(
        &self,
        request: Request<api::ConnectNetworkRequest>,
    ) -> Result<Response<api::Container>, Status> {
        let request = request.into_inner();
        let network = required(&request.network, "network")?;
        let container = required(&request.container, "container")?;
        let record = self
            .gateway
            .connect_network(network, container, &request.ip, request.aliases.clone())
            .await?;
        self.one_container(record)
    }

    #[tracing::instrument(skip_all, fields(network = %request.get_ref().network, container = %request.get_ref().container))]
    async fn disconnect_network(
        &self,
        request: Request<api::DisconnectNetworkRequest>,
    ) -> Result<Response<api::Container>, Status> {
        let request = request.into_inner();
        let network = required(&request.network, "network")?;
        let container = required(&request.container, "container")?;
        let record = self.gateway.disconnect_network(network, container).await?;
        self.one_container(record)
    }

    #[tracing::instrument(skip_all, fields(network = %request.get_ref().network))]
    async fn remove_network(
        &self,
        request: Request<api::RemoveNetworkRequest>,
    ) -> Result<Response<api::RemoveNetworkResponse>, Status> {
        let reference = required(&request.get_ref().network, "network")?;
        let network = self.gateway.remove_network(reference).await?;
        Ok(Response::new(api::RemoveNetworkResponse { id: network.id }))
    }
}

#[tonic::async_trait]
impl ContainerService for Api {
    #[tracing::instrument(skip_all, fields(container = %request.get_ref().name))]
    async fn create_container(
        &self,
        request: Request<api::CreateContainerRequest>,
    ) -> Result<Response<api::Container>, Status> {
        let container = self.gateway.create_container(create_spec(request.into_inner())?).await?;
        self.one_container(container)
    }

    #[tracing::instrument(skip_all, fields(container = %request.get_ref().name))]
    async fn run_container(
        &self,
        request: Request<api::CreateContainerRequest>,
    ) -> Result<Response<api::Container>, Status> {
        let container = self.gateway.run_container(create_spec(request.into_inner())?).await?;
        self.one_container(container)
    }

    #[tracing::instrument(skip_all, fields(container = %request.get_ref().container))]
    async fn start_container(
        &self,
        request: Request<api::StartContainerRequest>,
    ) -> Result<Response<api::Container>, Status> {
        let reference = required(&request.get_ref().container, "container")?;
        let container = self.gateway.start_container(reference).await?;
        self.one_container(container)
    }

    #[tracing::instrument(skip_all, fields(container = %request.get_ref().container))]
    async fn stop_container(
        &self,
        request: Request<api::StopContainerRequest>,
    ) -> Result<Response<api::Container>, Status> {
        let request = request.into_inner();
        let reference = required(&request.container, "container")?;
        let timeout = request.timeout_seconds.unwrap_or(DEFAULT_STOP_TIMEOUT);
        let container = self.gateway.stop_container(reference, timeout).await?;
        self.one_container(container)
    }

    #[tracing::instrument(skip_all, fields(container = %request.get_ref().container))]
    async fn remove_container(
        &self,
        request: Request<api::RemoveContainerRequest>,
    ) -> Result<Response<api::RemoveContainerResponse>, Status> {
        let request = request.into_inner();
        let reference = required(&request.container, "container")?;
        let container = self.gateway.remove_container(reference, request.force).await?;
        Ok(Response::new(api::RemoveContainerResponse { id: container.id }))
    }

    async fn inspect_container(
        &self,
        request: Request<api::InspectContainerRequest>,
    ) -> Result<Response<api::Container>, Status> {
        let reference = required(&request.get_ref().container, "container")?;
        let container = self.gateway.find_container(reference)?;
        self.one_container(container)
    }

    async fn list_containers(
        &self,
        request: Request<api::ListContainersRequest>,
    ) -> Result<Response<api::ListContainersResponse>, Status> {
        let all = request.get_ref().all;
        let networks = self.gateway.networks()?;
        let everything = self.gateway.containers()?;
        let names: HashMap<&str, &str> =
            everything.iter().map(|c| (c.id.as_str(), c.name.as_str())).collect();
        let name_of = |id: &str| names.get(id).map(|name| (*name).to_owned());
        let mut containers: Vec<_> = everything
            .iter()
            .filter(|c| all || c.is_running())
            .map(|c| self.container_message(c.clone(), &networks, name_of))
            .collect();
        containers.sort_by(|a, b| b.created.cmp(&a.created));
        Ok(Response::new(api::ListContainersResponse { containers }))
    }
}

#[tonic::async_trait]
impl SystemService for Api {
    #[tracing::instrument(skip_all, fields(repair = request.get_ref().repair))]
    async fn check(
        &self,
        request: Request<api::CheckRequest>,
    ) -> Result<Response<api::CheckResponse>, Status> {
        let report = self.gateway.check(request.get_ref().repair).await?;
        let drifts = report
            .into_iter()
            .map(|(leftover, repaired)| api::Drift {
                service: leftover.service().to_owned(),
                description: leftover.to_string(),
                repaired,
            })
            .collect();
        Ok(Response::new(api::CheckResponse { drifts }))
    }
}
