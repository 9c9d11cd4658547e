//! Creating, running and removing containers. Starting and stopping live in
//! `lifecycle`.

use std::net::Ipv4Addr;

use super::Gateway;
use crate::{
    domain::{
        Attachment, ContainerRecord, DnsSettings, ExtraHost, InFlight, Link, NetworkMode, PortSpec,
        RunState, container::DEFAULT_COMMAND, names, network::DEFAULT_NETWORK,
    },
    error::{Error, Result},
    now,
    sandbox::ContainerFiles,
};

/// A create request as the API received it.
#[derive(Debug, Clone, Default)]
pub struct CreateSpec {
    pub name: String,
    pub hostname: String,
    pub network: String,
    pub ip: String,
    pub command: Vec<String>,
    pub env: Vec<String>,
    pub aliases: Vec<String>,
    /// "name" or "name:alias".
    pub links: Vec<String>,
    /// "hostname:ip".
    pub add_hosts: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// Checked with `parse_port` by the API layer.
    pub ports: Vec<PortSpec>,
}

/// Bound on one container's record, so that a listing of many containers stays a message
/// any client can read (and a process's command and environment stay well inside the
/// kernel's limit for exec).
const MAX_RECORD_BYTES: usize = 256 * 1024;

impl Gateway {
    #[tracing::instrument(name = "create container", skip_all, fields(container = %spec.name, network = %spec.network))]
    pub async fn create_container(&self, spec: CreateSpec) -> Result<ContainerRecord> {
        self.create_recorded(spec, None).await
    }

    async fn create_recorded(
        &self,
        spec: CreateSpec,
        in_flight: Option<InFlight>,
    ) -> Result<ContainerRecord> {
        let _registry = self.registry.lock().await;
        let _gate = self.network_gate.read().await;
        let mut record = self.new_container_record(spec)?;
        record.in_flight = in_flight;
        let files = ContainerFiles::new(&self.state_dir, &record.id);
        std::fs::create_dir_all(&files.dir).map_err(Error::io("create container directory"))?;
        if let Err(error) = self.records.put_container(&record).await {
            let _ = std::fs::remove_dir_all(&files.dir);
            return Err(error.into());
        }
        tracing::info!(container = %record.name, id = %names::short_id(&record.id), "container created");
        Ok(record)
    }

    /// Create and start; a container that fails to start is removed again.
    #[tracing::instrument(name = "run container", skip_all, fields(container = %spec.name, network = %spec.network))]
    pub async fn run_container(
        self: &std::sync::Arc<Self>,
        spec: CreateSpec,
    ) -> Result<ContainerRecord> {
        // Recorded as a run from its first write, so that a gateway dying before the
        // container runs removes it at its next start.
        let created = self.create_recorded(spec, Some(InFlight::Run)).await?;
        match self.start_container(&created.id).await {
            Ok(running) => Ok(running),
            Err(error) => {
                if let Err(cleanup) = self.remove_container(&created.id, true).await {
                    tracing::warn!(container = %created.name, %cleanup, "removing a container that failed to start");
                }
                Err(error)
            }
        }
    }

    fn new_container_record(&self, spec: CreateSpec) -> Result<ContainerRecord> {
        let name = if spec.name.is_empty() {
            (0..)
                .map(names::generated_name)
                .find(|candidate| self.records.container_named(candidate).is_none())
                .expect("an endless supply of names")
        } else {
            spec.name.clone()
        };
        if !names::is_valid_name(&name) {
            return Err(Error::InvalidArgument(format!(
                "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        if let Some(other) = self.records.container_named(&name) {
            return Err(Error::AlreadyExists(format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{}\". \
                 You have to remove (or rename) that container to be able to reuse that name.",
                other.id
            )));
        }
        if !spec.hostname.is_empty() && !names::is_valid_hostname(&spec.hostname) {
            return Err(Error::InvalidArgument(format!(
                "invalid hostname format: {}",
                spec.hostname
            )));
        }
        let command = if spec.command.is_empty() {
            DEFAULT_COMMAND.iter().map(|s| s.to_string()).collect()
        } else {
            spec.command.clone()
        };
        if command[0].is_empty() || command.iter().any(|arg| arg.contains('\0')) {
            return Err(Error::InvalidArgument(
                "invalid command: empty program or NUL byte".into(),
            ));
        }
        if let Some(bad) = spec.env.iter().find(|e| !is_valid_env(e)) {
            return Err(Error::InvalidArgument(format!("invalid environment variable: {bad:?}")));
        }

        let network_ref =
            if spec.network.is_empty() { DEFAULT_NETWORK } else { spec.network.as_str() };
        let id = names::new_id();
        let (mode, network_mode, attachments) = match network_ref.strip_prefix("container:") {
            Some(target) => {
                if !spec.hostname.is_empty() {
                    return Err(Error::InvalidArgument(
                        "conflicting options: hostname and the network mode".into(),
                    ));
                }
                if !spec.ip.is_empty() || !spec.aliases.is_empty() {
                    return Err(Error::InvalidArgument(
                        "conflicting options: network settings and the container type network mode"
                            .into(),
                    ));
                }
                let target = self.find_container(target)?;
                let mode = NetworkMode::Container(target.id.clone());
                (mode, format!("container:{}", target.id), vec![])
            }
            None => {
                let network = self.find_network(network_ref)?;
                let static_ip = self.parse_static_ip(&spec.ip, &network)?;
                if !spec.aliases.is_empty() && !network.is_user_defined() {
                    return Err(Error::InvalidArgument(
                        "network-scoped aliases are only supported for user-defined networks"
                            .into(),
                    ));
                }
                for alias in &spec.aliases {
                    names::check_alias(alias).map_err(Error::InvalidArgument)?;
                }
                match network.driver.as_str() {
                    "host" => (NetworkMode::Host, network.name, vec![]),
                    "null" => (NetworkMode::None, network.name, vec![]),
                    _ => {
                        let attachment = Attachment {
                            network_id: network.id,
                            aliases: spec.aliases.clone(),
                            static_ip,
                            lease: None,
                        };
                        (NetworkMode::Bridge, network.name, vec![attachment])
                    }
                }
            }
        };
        let links = self.parse_links(&spec.links)?;
        let extra_hosts = parse_add_hosts(&spec.add_hosts)?;
        let dns = parse_dns(&spec)?;
        if matches!(mode, NetworkMode::Container(_)) {
            let conflict = if !spec.ports.is_empty() {
                Some("port publishing")
            } else if !spec.dns.is_empty() {
                Some("dns")
            } else if !links.is_empty() {
                Some("links")
            } else if !extra_hosts.is_empty() {
                Some("custom host-to-IP mapping")
            } else {
                None
            };
            if let Some(option) = conflict {
                return Err(Error::InvalidArgument(format!(
                    "conflicting options: {option} and the network mode"
                )));
            }
        }
        // Host and none modes have nothing to publish on (Docker discards them too).
        let ports = if mode == NetworkMode::Bridge { spec.ports.clone() } else { Vec::new() };
        let hostname = match (&mode, spec.hostname.is_empty()) {
            (_, false) => spec.hostname,
            (NetworkMode::Host, true) => host_hostname(),
            (NetworkMode::Container(target), true) => {
                self.records.container(target)?.map(|t| t.hostname).unwrap_or_default()
            }
            _ => names::short_id(&id).to_owned(),
        };
        let record = ContainerRecord {
            id,
            name,
            hostname,
            command,
            env: spec.env,
            network_mode,
            mode,
            attachments,
            state: RunState::Created,
            links,
            link_env: Vec::new(),
            extra_hosts,
            dns,
            ports,
            port_bindings: Vec::new(),
            hosts_path: String::new(),
            resolv_conf_path: String::new(),
            created: now(),
            started_at: String::new(),
            finished_at: String::new(),
            exit_code: 0,
            in_flight: None,
        };
        let size = serde_json::to_vec(&record).map_or(usize::MAX, |json| json.len());
        if size > MAX_RECORD_BYTES {
            return Err(Error::InvalidArgument(format!(
                "the container's configuration (command, environment, hosts, DNS settings, \
                 ports) takes {size} bytes; at most {MAX_RECORD_BYTES} are allowed"
            )));
        }
        Ok(record)
    }

    /// `--ip` rules (NET-9); whether the address is inside the subnet and free is the
    /// ipam service's call at start.
    pub(super) fn parse_static_ip(
        &self,
        ip: &str,
        network: &crate::domain::NetworkRecord,
    ) -> Result<Option<Ipv4Addr>> {
        if ip.is_empty() {
            return Ok(None);
        }
        let address: Ipv4Addr = ip
            .parse()
            .map_err(|_| Error::InvalidArgument(format!("invalid IPv4 address: {ip}")))?;
        if !network.is_user_defined() {
            return Err(Error::InvalidArgument(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        if !network.subnet_given {
            return Err(Error::InvalidArgument(
                "user specified IP address is supported only when connecting to networks with user configured subnets"
                    .into(),
            ));
        }
        Ok(Some(address))
    }

    #[tracing::instrument(name = "remove container", skip_all, fields(container = reference, force = force))]
    pub async fn remove_container(&self, reference: &str, force: bool) -> Result<ContainerRecord> {
        let _registry = self.registry.lock().await;
        let found = self.find_container(reference)?;
        let guard = self.lock_container(&found.id).await;
        let mut record = self.reload(&found.id)?;
        if record.is_running() && !force {
            return Err(Error::FailedPrecondition(format!(
                "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                record.id
            )));
        }
        if record.in_flight != Some(InFlight::Remove) {
            record.in_flight = Some(InFlight::Remove);
            self.records.put_container(&record).await?;
        }
        let record = if record.is_running() { self.stop_locked(record, 0).await? } else { record };
        let files = ContainerFiles::new(&self.state_dir, &record.id);
        match std::fs::remove_dir_all(&files.dir) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Io { what: "remove container directory".into(), source: error });
            }
            _ => {}
        }
        self.forget_files(&record.id).await?;
        self.records.delete_container(&record.id).await?;
        drop(guard);
        self.forget_container_lock(&record.id);
        tracing::info!(container = %record.name, "container removed");
        Ok(record)
    }
}

impl Gateway {
    /// `--link name[:alias]`: the target must exist now (LINK-4); whether it runs is
    /// checked at each start.
    fn parse_links(&self, links: &[String]) -> Result<Vec<Link>> {
        links
            .iter()
            .map(|link| {
                let (target, alias) = link.split_once(':').unwrap_or((link, link));
                let found = self.find_container(target).map_err(|_| {
                    Error::NotFound(format!(
                        "could not get container for {target}: No such container: {target}"
                    ))
                })?;
                if !names::is_valid_hostname(alias) {
                    return Err(Error::InvalidArgument(format!("invalid link alias: {alias:?}")));
                }
                Ok(Link { target_id: found.id, alias: alias.to_owned() })
            })
            .collect()
    }
}

/// `--add-host hostname:ip`.
fn parse_add_hosts(entries: &[String]) -> Result<Vec<ExtraHost>> {
    entries
        .iter()
        .map(|entry| {
            let (hostname, address) = entry.split_once(':').ok_or_else(|| {
                Error::InvalidArgument(format!("bad format for add-host: {entry:?}"))
            })?;
            if !names::is_valid_hostname(hostname) {
                return Err(Error::InvalidArgument(format!(
                    "invalid hostname in add-host: {hostname:?}"
                )));
            }
            let address = address.parse().map_err(|_| {
                Error::InvalidArgument(format!("invalid IP address in add-host: {address:?}"))
            })?;
            Ok(ExtraHost { hostname: hostname.to_owned(), address })
        })
        .collect()
}

/// `--dns`, `--dns-search`, `--dns-option`: checked here so nothing odd reaches a file.
fn parse_dns(spec: &CreateSpec) -> Result<DnsSettings> {
    let servers = spec
        .dns
        .iter()
        .map(|server| {
            server.parse().map_err(|_| {
                Error::InvalidArgument(format!("invalid IP address in --dns: {server:?}"))
            })
        })
        .collect::<Result<_>>()?;
    for domain in &spec.dns_search {
        if domain != "." && !names::is_valid_hostname(domain) {
            return Err(Error::InvalidArgument(format!("invalid --dns-search domain: {domain:?}")));
        }
    }
    for option in &spec.dns_options {
        let valid = !option.is_empty()
            && option
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.'));
        if !valid {
            return Err(Error::InvalidArgument(format!("invalid --dns-option: {option:?}")));
        }
    }
    Ok(DnsSettings { servers, search: spec.dns_search.clone(), options: spec.dns_options.clone() })
}

fn is_valid_env(pair: &str) -> bool {
    let key = pair.split_once('=').map_or(pair, |(key, _)| key);
    !key.is_empty() && !pair.contains('\0')
}

/// The host's own hostname, which host-mode containers share (HOST-1).
fn host_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned()
}
