//! `ps` rows (status strings, quoted commands) and the container `inspect` JSON, whose
//! field names follow Docker's (`State.Status`, `NetworkSettings.Networks.<net>.IPAddress`).

use std::collections::BTreeMap;

use cnet_proto::gateway::v1::{Container, ContainerState, EndpointSettings};
use serde::Serialize;
use time::OffsetDateTime;

use super::{short_id, time as human};

pub const LIST_HEADERS: [&str; 6] =
    ["CONTAINER ID", "COMMAND", "CREATED", "STATUS", "NETWORKS", "NAMES"];

/// Docker prints this for times that never happened (a container never started).
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Newest first, like `docker ps`.
pub fn sort(containers: &mut [Container]) {
    containers.sort_by(|a, b| {
        let created = |c: &Container| human::parse(&c.created);
        created(b).cmp(&created(a)).then_with(|| a.name.cmp(&b.name))
    });
}

pub fn list_row(container: &Container, now: OffsetDateTime, no_trunc: bool) -> Vec<String> {
    vec![
        short_id(&container.id, no_trunc).to_owned(),
        command(&container.command, no_trunc),
        human::ago(&container.created, now),
        status(container, now),
        networks(container, no_trunc),
        container.name.clone(),
    ]
}

/// The command in double quotes, cut to 20 characters as Docker does.
pub fn command(command: &[String], no_trunc: bool) -> String {
    const WIDTH: usize = 20;
    let joined = command.join(" ");
    let shown = if !no_trunc && joined.chars().count() > WIDTH {
        joined.chars().take(WIDTH - 1).chain(['…']).collect()
    } else {
        joined
    };
    format!("{shown:?}")
}

/// "Up 5 seconds", "Exited (0) 3 seconds ago" or "Created", as in `docker ps`.
pub fn status(container: &Container, now: OffsetDateTime) -> String {
    let since = |timestamp: &str| {
        human::parse(timestamp).map(|then| human::human_duration(human::elapsed(then, now)))
    };
    match container.state() {
        ContainerState::Running => match since(&container.started_at) {
            Some(duration) => format!("Up {duration}"),
            None => "Up".into(),
        },
        ContainerState::Exited => match since(&container.finished_at) {
            Some(duration) => format!("Exited ({}) {duration} ago", container.exit_code),
            None => format!("Exited ({})", container.exit_code),
        },
        ContainerState::Created => "Created".into(),
        ContainerState::Unspecified => "Unknown".into(),
    }
}

/// `net:ip` per attached network (just `net` while stopped), else the network mode
/// (`host`, `none`, `container:<id>`), which has no networks of its own.
pub fn networks(container: &Container, no_trunc: bool) -> String {
    if container.networks.is_empty() {
        return match container.network_mode.strip_prefix("container:") {
            Some(id) => format!("container:{}", short_id(id, no_trunc)),
            None => container.network_mode.clone(),
        };
    }
    let mut entries: Vec<(&String, &EndpointSettings)> = container.networks.iter().collect();
    entries.sort_by_key(|(name, _)| *name);
    let cells: Vec<String> = entries
        .into_iter()
        .map(|(name, endpoint)| match endpoint.ip_address.as_str() {
            "" => name.clone(),
            ip => format!("{name}:{ip}"),
        })
        .collect();
    cells.join(",")
}

fn state_name(state: ContainerState) -> &'static str {
    match state {
        ContainerState::Created => "created",
        ContainerState::Running => "running",
        ContainerState::Exited => "exited",
        ContainerState::Unspecified => "unknown",
    }
}

fn time_or_zero(timestamp: &str) -> String {
    if timestamp.is_empty() { ZERO_TIME.into() } else { timestamp.into() }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerJson {
    id: String,
    created: String,
    path: String,
    args: Vec<String>,
    state: StateJson,
    /// Without Docker's leading slash: cnet has no container hierarchy to mark.
    name: String,
    hosts_path: String,
    resolv_conf_path: String,
    log_path: String,
    config: ConfigJson,
    host_config: HostConfigJson,
    network_settings: NetworkSettingsJson,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct StateJson {
    status: &'static str,
    running: bool,
    pid: u32,
    exit_code: i32,
    started_at: String,
    finished_at: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigJson {
    hostname: String,
    /// The user's variables plus the link variables (LINK-2).
    env: Vec<String>,
    cmd: Vec<String>,
}

/// Docker's shape for ports: `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}`.
type PortMapJson = BTreeMap<String, Vec<HostPortJson>>;

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct HostPortJson {
    host_ip: String,
    host_port: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct HostConfigJson {
    network_mode: String,
    port_bindings: PortMapJson,
    links: Vec<String>,
    extra_hosts: Vec<String>,
    dns: Vec<String>,
    dns_search: Vec<String>,
    dns_options: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct NetworkSettingsJson {
    /// The network namespace file while running, as in Docker.
    sandbox_key: String,
    /// Bindings in force while running.
    ports: PortMapJson,
    networks: BTreeMap<String, EndpointJson>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct EndpointJson {
    /// Only set for a static `--ip`, as in Docker (null otherwise).
    #[serde(rename = "IPAMConfig")]
    ipam_config: Option<IpamConfigJson>,
    #[serde(rename = "NetworkID")]
    network_id: String,
    gateway: String,
    #[serde(rename = "IPAddress")]
    ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    ip_prefix_len: u32,
    mac_address: String,
    aliases: Vec<String>,
    /// cnet's addition: the interface inside the container.
    interface_name: String,
}

#[derive(Debug, Serialize)]
struct IpamConfigJson {
    #[serde(rename = "IPv4Address")]
    ipv4_address: String,
}

impl From<&Container> for ContainerJson {
    fn from(container: &Container) -> Self {
        let (path, args) = match container.command.split_first() {
            Some((path, args)) => (path.clone(), args.to_vec()),
            None => (String::new(), Vec::new()),
        };
        let state = container.state();
        Self {
            id: container.id.clone(),
            created: container.created.clone(),
            path,
            args,
            state: StateJson {
                status: state_name(state),
                running: state == ContainerState::Running,
                pid: container.pid,
                exit_code: container.exit_code,
                started_at: time_or_zero(&container.started_at),
                finished_at: time_or_zero(&container.finished_at),
            },
            name: container.name.clone(),
            hosts_path: container.hosts_path.clone(),
            resolv_conf_path: container.resolv_conf_path.clone(),
            log_path: container.log_path.clone(),
            config: ConfigJson {
                hostname: container.hostname.clone(),
                env: container.env.clone(),
                cmd: container.command.clone(),
            },
            host_config: HostConfigJson {
                network_mode: container.network_mode.clone(),
                port_bindings: port_map(container.ports.iter().map(|p| {
                    let host_port = match (p.host_port, p.host_port_end) {
                        (0, _) => String::new(),
                        (start, 0) => start.to_string(),
                        (start, end) => format!("{start}-{end}"),
                    };
                    (p.container_port, p.protocol.as_str(), p.host_ip.clone(), host_port)
                })),
                links: container.links.clone(),
                extra_hosts: container.add_hosts.clone(),
                dns: container.dns.clone(),
                dns_search: container.dns_search.clone(),
                dns_options: container.dns_options.clone(),
            },
            network_settings: NetworkSettingsJson {
                sandbox_key: container.netns_path.clone(),
                ports: port_map(container.port_bindings.iter().map(|b| {
                    let host_ip = if b.host_ip.is_empty() { "0.0.0.0" } else { &b.host_ip };
                    (
                        b.container_port,
                        b.protocol.as_str(),
                        host_ip.to_owned(),
                        b.host_port.to_string(),
                    )
                })),
                networks: container
                    .networks
                    .iter()
                    .map(|(name, endpoint)| (name.clone(), endpoint_json(endpoint)))
                    .collect(),
            },
        }
    }
}

fn endpoint_json(endpoint: &EndpointSettings) -> EndpointJson {
    EndpointJson {
        ipam_config: (!endpoint.static_ip.is_empty())
            .then(|| IpamConfigJson { ipv4_address: endpoint.static_ip.clone() }),
        network_id: endpoint.network_id.clone(),
        gateway: endpoint.gateway.clone(),
        ip_address: endpoint.ip_address.clone(),
        ip_prefix_len: endpoint.prefix_len,
        mac_address: endpoint.mac_address.clone(),
        aliases: endpoint.aliases.clone(),
        interface_name: endpoint.ifname.clone(),
    }
}

/// (container port, protocol, host ip, host port) into Docker's port map.
fn port_map<'a>(entries: impl Iterator<Item = (u32, &'a str, String, String)>) -> PortMapJson {
    let mut map = PortMapJson::new();
    for (container_port, protocol, host_ip, host_port) in entries {
        let key = format!("{container_port}/{protocol}");
        map.entry(key).or_default().push(HostPortJson { host_ip, host_port });
    }
    map
}

#[cfg(test)]
mod tests;
