//! Keeping the dns service's view of a container current: its names on each
//! user-defined network it is attached to, and the listener at 127.0.0.11 in its
//! namespace. The default bridge has no embedded DNS (BR0-2), so a container attached
//! to nothing else is not registered at all.

use std::path::Path;

use cnet_proto::dns::v1 as dns;

use super::Gateway;
use crate::{backends::retry, domain::ContainerRecord, error::Result};

impl Gateway {
    /// The container's endpoints on networks with embedded DNS.
    pub(super) fn dns_endpoints(&self, record: &ContainerRecord) -> Result<Vec<dns::Endpoint>> {
        let mut endpoints = Vec::new();
        for attachment in &record.attachments {
            let Some(lease) = &attachment.lease else { continue };
            let Some(network) = self.records.networks.get(&attachment.network_id)? else {
                continue;
            };
            if network.is_user_defined() {
                endpoints.push(dns::Endpoint {
                    network_id: network.id,
                    network_name: network.name,
                    address: lease.address.to_string(),
                    aliases: attachment.aliases.clone(),
                    internal: network.internal,
                });
            }
        }
        Ok(endpoints)
    }

    /// Registers (or updates) the container's names, or drops them when it has no
    /// endpoint with embedded DNS left.
    #[tracing::instrument(name = "register names", skip_all, fields(container = %record.name))]
    pub(super) async fn register_names(
        &self,
        record: &ContainerRecord,
        netns_path: &Path,
    ) -> Result<()> {
        let endpoints = self.dns_endpoints(record)?;
        if endpoints.is_empty() {
            return self.deregister_names(&record.id).await;
        }
        let request = dns::RegisterContainerRequest {
            container_id: record.id.clone(),
            name: record.name.clone(),
            hostname: record.hostname.clone(),
            netns_path: netns_path.display().to_string(),
            // `--dns` sets the servers the embedded DNS forwards to (FILE-2).
            upstreams: record.dns.servers.iter().map(ToString::to_string).collect(),
            // On user-defined networks a legacy link is a name only the linker sees (DNS-7).
            link_aliases: record
                .links
                .iter()
                .map(|link| dns::LinkAlias {
                    alias: link.alias.clone(),
                    target_container_id: link.target_id.clone(),
                })
                .collect(),
            endpoints,
        };
        retry("register DNS names", &self.backends.dns, request, |mut c, m| async move {
            c.register_container(m).await
        })
        .await?;
        Ok(())
    }

    #[tracing::instrument(name = "deregister names", skip_all, fields(container = container_id))]
    pub(super) async fn deregister_names(&self, container_id: &str) -> Result<()> {
        let request = dns::DeregisterContainerRequest { container_id: container_id.to_owned() };
        retry("deregister DNS names", &self.backends.dns, request, |mut c, m| async move {
            c.deregister_container(m).await
        })
        .await?;
        Ok(())
    }
}
