//! A container as the gateway records it: its configuration, where it runs, and each
//! network attachment with the lease it holds while running.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// Command run when the user gives none: keeps the sandbox alive, like `-itd centos`.
pub const DEFAULT_COMMAND: &[&str] = &["sleep", "infinity"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub hostname: String,
    pub command: Vec<String>,
    pub env: Vec<String>,
    /// As Docker shows it: a network name, "host", "none" or "container:<id>".
    pub network_mode: String,
    /// How the container gets its network namespace.
    pub mode: NetworkMode,
    /// Bridge networks in connect order; the first one carries the default route.
    /// Empty in host, none and container modes.
    pub attachments: Vec<Attachment>,
    pub state: RunState,
    /// Legacy `--link`s, in the order given.
    #[serde(default)]
    pub links: Vec<Link>,
    /// Link environment variables, computed at each start (LINK-2).
    #[serde(default)]
    pub link_env: Vec<String>,
    #[serde(default)]
    pub extra_hosts: Vec<ExtraHost>,
    #[serde(default)]
    pub dns: DnsSettings,
    /// `-p` mappings as requested.
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    /// Bindings in force while running.
    #[serde(default)]
    pub port_bindings: Vec<PortBinding>,
    /// The files bind-mounted over /etc/hosts and /etc/resolv.conf at the last start.
    #[serde(default)]
    pub hosts_path: String,
    #[serde(default)]
    pub resolv_conf_path: String,
    pub created: String,
    pub started_at: String,
    pub finished_at: String,
    pub exit_code: i32,
    /// The operation under way, written before its first step touches another service
    /// and cleared by its last write; found set at start, it is finished or undone.
    #[serde(default)]
    pub in_flight: Option<InFlight>,
}

/// An operation whose steps span services, recorded so that a gateway that dies
/// half-way finishes or undoes it at its next start (`ops::recover`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InFlight {
    /// `run`: undone (the container is removed), as a failed `run` leaves nothing.
    Run,
    /// `start`: kept if its process was recorded, else undone (back to its state before).
    Start,
    /// `rm`: finished.
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub target_id: String,
    pub alias: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraHost {
    pub hostname: String,
    pub address: Ipv4Addr,
}

/// One `-p` mapping (PUB-3 to PUB-8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    pub host_ip: Option<Ipv4Addr>,
    /// 0: a free port from the ephemeral range.
    pub host_port: u16,
    /// Last port of a host range; 0 when none.
    pub host_port_end: u16,
    pub container_port: u16,
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
}

/// `--dns`, `--dns-search`, `--dns-option`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsSettings {
    pub servers: Vec<Ipv4Addr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// Docker's network modes (scenarios A–E).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkMode {
    /// A namespace of its own with one veth per attached bridge network.
    Bridge,
    /// The host's namespace: no isolation, nothing on any bridge (HOST-1).
    Host,
    /// A namespace of its own with only `lo` (NONE-1).
    None,
    /// The namespace of another container, by id (CNS-1).
    Container(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub network_id: String,
    /// `--network-alias` / `connect --alias` names on this network.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--ip`, kept across restarts (NET-5).
    pub static_ip: Option<Ipv4Addr>,
    /// Present while the container runs: addresses are released on stop (NET-5).
    pub lease: Option<Lease>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    pub ifname: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunState {
    Created,
    /// `start_ticks` is the process start time from /proc/<pid>/stat, which tells a
    /// live process from a later one that reused its pid.
    Running {
        pid: u32,
        start_ticks: u64,
    },
    Exited,
}

impl ContainerRecord {
    pub fn pid(&self) -> Option<u32> {
        match self.state {
            RunState::Running { pid, .. } => Some(pid),
            _ => None,
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state, RunState::Running { .. })
    }

    /// The sandbox (network namespace) id the bridge agent knows this container by.
    pub fn sandbox_id(&self) -> &str {
        &self.id
    }

    /// Host and container modes use a namespace that is not the container's own.
    pub fn shares_namespace(&self) -> bool {
        matches!(self.mode, NetworkMode::Host | NetworkMode::Container(_))
    }

    /// Whether its /etc files are another container's (container: mode, CNS-1).
    pub fn shares_files(&self) -> bool {
        matches!(self.mode, NetworkMode::Container(_))
    }

    /// Lowest `ethN` not used by another attachment.
    pub fn next_ifname(&self) -> String {
        let used: Vec<&str> = self
            .attachments
            .iter()
            .filter_map(|a| a.lease.as_ref().map(|lease| lease.ifname.as_str()))
            .collect();
        (0..)
            .map(|index| format!("eth{index}"))
            .find(|name| !used.contains(&name.as_str()))
            .expect("a free interface name")
    }

    pub fn attached_to(&self, network_id: &str) -> bool {
        self.attachments.iter().any(|a| a.network_id == network_id)
    }
}

/// Link environment variables (LINK-2): `<ALIAS>_NAME=/<linker>/<alias>` and the
/// target's own variables as `<ALIAS>_ENV_<NAME>`. cnet has no exposed ports, so no
/// `_PORT` variables.
pub fn link_env(linker: &str, alias: &str, target_env: &[String]) -> Vec<String> {
    let prefix = alias.to_uppercase().replace(['-', '.'], "_");
    let mut env = vec![format!("{prefix}_NAME=/{linker}/{alias}")];
    for pair in target_env {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "PATH" && key != "HOSTNAME" && key != "HOME" {
            env.push(format!("{prefix}_ENV_{key}={value}"));
        }
    }
    env
}

/// The bridge agent's endpoint id for a container on a network.
pub fn endpoint_id(container_id: &str, network_id: &str) -> String {
    format!("{container_id}/{network_id}")
}

/// Docker's MAC: `02:42` followed by the four IPv4 octets (NET-8).
pub fn mac_for(address: Ipv4Addr) -> String {
    let [a, b, c, d] = address.octets();
    format!("02:42:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_variables_follow_docker() {
        assert_eq!(link_env("centos3", "centos1", &[]), ["CENTOS1_NAME=/centos3/centos1"]);
        assert_eq!(
            link_env("centos5", "db-1", &["FOO=bar".into(), "PATH=/bin".into()]),
            ["DB_1_NAME=/centos5/db-1", "DB_1_ENV_FOO=bar"]
        );
    }

    #[test]
    fn mac_derives_from_the_address() {
        assert_eq!(mac_for(Ipv4Addr::new(172, 16, 1, 0)), "02:42:ac:10:01:00");
        assert_eq!(mac_for(Ipv4Addr::new(172, 17, 0, 2)), "02:42:ac:11:00:02");
    }
}
