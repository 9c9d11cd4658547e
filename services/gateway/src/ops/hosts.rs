//! Keeping the hosts service's view of a container current: it writes the container's
//! /etc/hosts, /etc/resolv.conf and /etc/hostname (which the gateway bind-mounts) and
//! rewrites the hosts files of every container that links to it when its address
//! changes (LINK-3).

use cnet_proto::hosts::v1 as hosts;

use super::Gateway;
use crate::{
    backends::retry,
    domain::{ContainerRecord, NetworkMode, RunState, container::link_env},
    error::{Error, Result},
    sandbox::MountedFiles,
};

impl Gateway {
    /// Describes the container to the hosts service and returns the files to mount.
    #[tracing::instrument(name = "write hosts files", skip_all, fields(container = %record.name, running = running))]
    pub(super) async fn put_files(
        &self,
        record: &ContainerRecord,
        running: bool,
    ) -> Result<MountedFiles> {
        let mode = match record.mode {
            NetworkMode::Host => hosts::NetworkMode::Host,
            NetworkMode::None => hosts::NetworkMode::None,
            _ => hosts::NetworkMode::Bridge,
        };
        let mut endpoints = Vec::new();
        for attachment in &record.attachments {
            let (Some(lease), Some(network)) =
                (&attachment.lease, self.records.networks.get(&attachment.network_id)?)
            else {
                continue;
            };
            endpoints.push(hosts::Endpoint {
                network: network.name.clone(),
                address: lease.address.to_string(),
                default_bridge: network.is_default(),
            });
        }
        // On user-defined networks a link is a DNS alias, not a hosts line (DNS-7).
        let links = if self.on_default_bridge(record)? {
            let to_link = |l: &crate::domain::Link| hosts::Link {
                target_container_id: l.target_id.clone(),
                alias: l.alias.clone(),
            };
            record.links.iter().map(to_link).collect()
        } else {
            Vec::new()
        };
        let spec = hosts::ContainerSpec {
            container_id: record.id.clone(),
            name: record.name.clone(),
            hostname: record.hostname.clone(),
            mode: mode.into(),
            endpoints,
            extra_hosts: record
                .extra_hosts
                .iter()
                .map(|h| hosts::ExtraHost {
                    hostname: h.hostname.clone(),
                    address: h.address.to_string(),
                })
                .collect(),
            dns_servers: record.dns.servers.iter().map(ToString::to_string).collect(),
            dns_search: record.dns.search.clone(),
            dns_options: record.dns.options.clone(),
            links,
            running,
            process: match record.state {
                RunState::Running { pid, start_ticks } => Some(hosts::Process { pid, start_ticks }),
                _ => None,
            },
        };
        let request = hosts::PutContainerRequest { spec: Some(spec) };
        let container =
            retry("write hosts files", &self.backends.hosts, request, |mut c, m| async move {
                c.put_container(m).await
            })
            .await?;
        mounted(container)
    }

    /// The files of a container another one joins (container: mode shares them, CNS-1).
    pub(super) async fn files_of(&self, container_id: &str) -> Result<MountedFiles> {
        let request = hosts::GetContainerRequest { container_id: container_id.to_owned() };
        let container =
            retry("find hosts files", &self.backends.hosts, request, |mut c, m| async move {
                c.get_container(m).await
            })
            .await?;
        mounted(container)
    }

    pub(super) async fn forget_files(&self, container_id: &str) -> Result<()> {
        let request = hosts::RemoveContainerRequest { container_id: container_id.to_owned() };
        retry("remove hosts files", &self.backends.hosts, request, |mut c, m| async move {
            c.remove_container(m).await
        })
        .await?;
        Ok(())
    }

    /// Whether the container's first network is the default bridge, where legacy links
    /// write hosts lines and environment variables.
    pub(super) fn on_default_bridge(&self, record: &ContainerRecord) -> Result<bool> {
        let Some(first) = record.attachments.first() else { return Ok(false) };
        Ok(self.records.networks.get(&first.network_id)?.is_some_and(|n| n.is_default()))
    }

    /// Checks each link's target at start (LINK-4) and computes the link variables.
    pub(super) fn resolve_links(&self, record: &ContainerRecord) -> Result<Vec<String>> {
        let default_bridge = self.on_default_bridge(record)?;
        let mut env = Vec::new();
        for link in &record.links {
            let target = self.records.container(&link.target_id)?.ok_or_else(|| {
                Error::NotFound(format!(
                    "could not get container for {}: No such container: {}",
                    link.alias, link.target_id
                ))
            })?;
            if !target.is_running() {
                return Err(Error::FailedPrecondition(format!(
                    "Cannot link to a non running container: /{} AS /{}/{}",
                    target.name, record.name, link.alias
                )));
            }
            if default_bridge {
                if !self.on_default_bridge(&target)? {
                    return Err(Error::FailedPrecondition(format!(
                        "Cannot link to /{}, as it does not belong to the default network",
                        target.name
                    )));
                }
                env.extend(link_env(&record.name, &link.alias, &target.env));
            }
        }
        Ok(env)
    }
}

fn mounted(container: hosts::Container) -> Result<MountedFiles> {
    let files = container.files.ok_or_else(|| {
        Error::Backend(tonic::Status::internal("the hosts service returned no files"))
    })?;
    Ok(MountedFiles {
        hosts: files.hosts_path.into(),
        resolv_conf: files.resolv_conf_path.into(),
        hostname: files.hostname_path.into(),
    })
}
