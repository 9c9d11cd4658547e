//! Driving the nat service: each bridge network's firewall rules (masquerade,
//! isolation, `--internal`) and each running container's published ports.

use cnet_proto::nat::v1 as nat;
use tonic::{Code, Status};

use super::Gateway;
use crate::{
    backends::retry,
    domain::{ContainerRecord, NetworkRecord, PortBinding, PortSpec, container::endpoint_id},
    error::{Error, Result},
};

impl Gateway {
    #[tracing::instrument(name = "program firewall", skip_all, fields(network = %network.name))]
    pub(super) async fn ensure_firewall(&self, network: &NetworkRecord) -> Result<()> {
        let request = nat::EnsureNetworkRequest {
            network_id: network.id.clone(),
            bridge_name: network.bridge_name.clone(),
            subnet: network.network.clone(),
            internal: network.internal,
        };
        retry("program firewall", &self.backends.nat, request, |mut c, m| async move {
            c.ensure_network(m).await
        })
        .await?;
        Ok(())
    }

    pub(super) async fn delete_firewall(&self, network_id: &str) -> Result<(), Status> {
        let request = nat::DeleteNetworkRequest { network_id: network_id.to_owned(), force: true };
        retry("remove firewall rules", &self.backends.nat, request, |mut c, m| async move {
            c.delete_network(m).await
        })
        .await
        .map(drop)
    }

    /// Publishes the container's ports on its first network; nothing without `-p`.
    #[tracing::instrument(name = "publish ports", skip_all, fields(container = %record.name, ports = record.ports.len()))]
    pub(super) async fn publish(&self, record: &ContainerRecord) -> Result<Vec<PortBinding>> {
        if record.ports.is_empty() {
            return Ok(Vec::new());
        }
        let Some((attachment, lease)) =
            record.attachments.iter().find_map(|a| a.lease.as_ref().map(|lease| (a, lease)))
        else {
            return Ok(Vec::new());
        };
        let request = nat::PublishRequest {
            container_id: record.id.clone(),
            network_id: attachment.network_id.clone(),
            container_ip: lease.address.to_string(),
            ports: record.ports.iter().map(port_mapping).collect(),
        };
        let published =
            retry("publish ports", &self.backends.nat, request, |mut c, m| async move {
                c.publish(m).await
            })
            .await
            .map_err(|status| match status.code() {
                // PUB-9: Docker's wording, naming the endpoint.
                Code::AlreadyExists | Code::FailedPrecondition => {
                    Error::FailedPrecondition(format!(
                        "driver failed programming external connectivity on endpoint {} ({}): {}",
                        record.name,
                        endpoint_id(&record.id, &attachment.network_id),
                        status.message()
                    ))
                }
                _ => Error::Backend(status),
            })?;
        Ok(published
            .bindings
            .into_iter()
            .map(|b| PortBinding {
                host_ip: b.host_ip,
                host_port: b.host_port as u16,
                container_port: b.container_port as u16,
                protocol: b.protocol,
            })
            .collect())
    }

    #[tracing::instrument(name = "unpublish ports", skip_all, fields(container = container_id))]
    pub(super) async fn unpublish(&self, container_id: &str) -> Result<()> {
        let request = nat::UnpublishRequest { container_id: container_id.to_owned() };
        retry("unpublish ports", &self.backends.nat, request, |mut c, m| async move {
            c.unpublish(m).await
        })
        .await?;
        Ok(())
    }
}

fn port_mapping(spec: &PortSpec) -> nat::PortMapping {
    nat::PortMapping {
        host_ip: spec.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        host_port: spec.host_port.into(),
        host_port_end: spec.host_port_end.into(),
        container_port: spec.container_port.into(),
        protocol: spec.protocol.clone(),
    }
}

/// Checks a `-p` mapping as the API received it (PUB-7).
pub fn parse_port(
    host_ip: &str,
    host_port: u32,
    host_port_end: u32,
    container_port: u32,
    protocol: &str,
) -> Result<PortSpec> {
    let invalid = |message: String| Err(Error::InvalidArgument(message));
    let host_ip = match host_ip {
        "" | "0.0.0.0" => None,
        ip => match ip.parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                return invalid(format!(
                    "invalid IP address {ip:?}: only IPv4 host addresses are supported"
                ));
            }
        },
    };
    if !(1..=65535).contains(&container_port) {
        return invalid(format!("invalid containerPort: {container_port}"));
    }
    for port in [host_port, host_port_end] {
        if port > 65535 {
            return invalid(format!("invalid hostPort: {port}"));
        }
    }
    if host_port_end != 0 && (host_port == 0 || host_port_end < host_port) {
        return invalid(format!("invalid host port range: {host_port}-{host_port_end}"));
    }
    let protocol = match protocol {
        "" | "tcp" => "tcp",
        "udp" => "udp",
        other => return invalid(format!("invalid proto: {other} (tcp and udp are supported)")),
    };
    Ok(PortSpec {
        host_ip,
        host_port: host_port as u16,
        host_port_end: host_port_end as u16,
        container_port: container_port as u16,
        protocol: protocol.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_checked_as_docker_checks_them() {
        assert!(parse_port("", 8080, 0, 80, "tcp").is_ok());
        assert!(parse_port("127.0.0.1", 0, 0, 53, "udp").is_ok());
        let error = |r: Result<PortSpec>| r.unwrap_err().to_string();
        assert_eq!(error(parse_port("", 70000, 0, 80, "")), "invalid hostPort: 70000");
        assert_eq!(error(parse_port("", 80, 0, 0, "")), "invalid containerPort: 0");
        assert!(error(parse_port("", 90, 80, 80, "")).contains("range"));
        assert!(error(parse_port("", 80, 0, 80, "sctp")).contains("invalid proto"));
        assert!(error(parse_port("::1", 80, 0, 80, "")).contains("IPv4"));
    }
}
