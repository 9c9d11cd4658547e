//! A container's description as the gateway sends it: everything its files depend on.
//! Each value is validated by its type ([`super::names`]); [`ContainerSpec::validate`]
//! adds the rules that tie values together.

use std::{collections::HashSet, net::IpAddr};

use serde::{Deserialize, Serialize};

use super::{
    Error,
    names::{
        Alias, ContainerId, ContainerName, DnsOption, HostEntryName, Hostname, NetworkName,
        SearchDomain,
    },
};

/// Where a container's network (and so its files) comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Its own namespace on bridge networks (possibly on none at the moment).
    Bridge,
    /// The host's namespace (HOST-1).
    Host,
    /// Loopback only (NONE-1).
    None,
}

/// The container's address on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub network: NetworkName,
    pub address: IpAddr,
    /// The predefined default bridge: no embedded DNS, and the only network where
    /// links write hosts lines.
    pub default_bridge: bool,
}

/// An --add-host entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraHost {
    pub hostname: HostEntryName,
    pub address: IpAddr,
}

/// A legacy --link to `target` under `alias`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub target: ContainerId,
    pub alias: Alias,
}

/// The --dns, --dns-search and --dns-option values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    pub servers: Vec<IpAddr>,
    pub search: Vec<SearchDomain>,
    pub options: Vec<DnsOption>,
}

impl Dns {
    /// Whether the user gave any DNS setting, which makes Docker build resolv.conf
    /// instead of copying the host's.
    pub fn is_set(&self) -> bool {
        !self.servers.is_empty() || !self.search.is_empty() || !self.options.is_empty()
    }
}

/// A container's running process: its pid and the start time that tells it from a later
/// process with the same pid. Its mount namespace holds the container's /etc mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    pub start_ticks: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub id: ContainerId,
    pub name: ContainerName,
    pub hostname: Hostname,
    pub mode: Mode,
    /// In connect order.
    pub endpoints: Vec<Endpoint>,
    pub extra_hosts: Vec<ExtraHost>,
    pub dns: Dns,
    pub links: Vec<Link>,
    pub running: bool,
    /// Set once the process runs; records stored before this field existed have none.
    #[serde(default)]
    pub process: Option<Process>,
}

impl ContainerSpec {
    /// The rules between fields. Docker's CLI refuses most of these combinations; here
    /// they would produce files that mean nothing, so they are refused too.
    pub fn validate(&self) -> Result<(), Error> {
        let conflict = |message: String| Err(Error::Conflict(message));
        if self.process.is_some() && !self.running {
            return conflict(format!("container {}: a process but not running", self.id));
        }
        if self.mode != Mode::Bridge && !self.endpoints.is_empty() {
            return conflict(format!(
                "container {}: endpoints are only allowed in bridge mode, not in {} mode",
                self.id,
                self.mode.as_str()
            ));
        }
        if self.mode == Mode::Host && !self.links.is_empty() {
            return conflict(format!(
                "container {}: conflicting options: host type networking can't be used with links",
                self.id
            ));
        }
        let mut networks = HashSet::new();
        for endpoint in &self.endpoints {
            if !networks.insert(&endpoint.network) {
                return conflict(format!(
                    "container {}: two endpoints on network {}",
                    self.id, endpoint.network
                ));
            }
        }
        if self.endpoints.iter().filter(|endpoint| endpoint.default_bridge).count() > 1 {
            return conflict(format!(
                "container {}: more than one endpoint on the default bridge",
                self.id
            ));
        }
        let mut aliases = HashSet::new();
        for link in &self.links {
            if link.target == self.id {
                return conflict(format!("container {}: cannot link to itself", self.id));
            }
            if !aliases.insert(&link.alias) {
                return conflict(format!(
                    "container {}: link alias {} is used twice",
                    self.id, link.alias
                ));
            }
        }
        Ok(())
    }

    /// The address on the default bridge, the one legacy links use.
    pub fn default_bridge_address(&self) -> Option<IpAddr> {
        self.endpoints.iter().find(|endpoint| endpoint.default_bridge).map(|e| e.address)
    }

    /// Whether some endpoint is on a user-defined network, whose embedded DNS then
    /// serves the container (127.0.0.11 in resolv.conf).
    pub fn uses_embedded_dns(&self) -> bool {
        self.endpoints.iter().any(|endpoint| !endpoint.default_bridge)
    }
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Bridge => "bridge",
            Mode::Host => "host",
            Mode::None => "none",
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A running default-bridge container named `name` with id `<name>-id`, hostname
    /// `<name>-host` and no other settings; tests adjust what they need.
    pub(crate) fn spec(name: &str, address: Option<&str>) -> ContainerSpec {
        ContainerSpec {
            id: ContainerId::parse(&format!("{name}-id")).unwrap(),
            name: ContainerName::parse(name).unwrap(),
            hostname: Hostname::parse(&format!("{name}-host")).unwrap(),
            mode: Mode::Bridge,
            endpoints: address
                .map(|address| Endpoint {
                    network: NetworkName::parse("bridge").unwrap(),
                    address: address.parse().unwrap(),
                    default_bridge: true,
                })
                .into_iter()
                .collect(),
            extra_hosts: vec![],
            dns: Dns::default(),
            links: vec![],
            running: true,
            process: None,
        }
    }

    pub(crate) fn link(target: &str, alias: &str) -> Link {
        Link {
            target: ContainerId::parse(&format!("{target}-id")).unwrap(),
            alias: Alias::parse(alias).unwrap(),
        }
    }

    pub(crate) fn endpoint(network: &str, address: &str) -> Endpoint {
        Endpoint {
            network: NetworkName::parse(network).unwrap(),
            address: address.parse().unwrap(),
            default_bridge: network == "bridge",
        }
    }

    #[test]
    fn contradictions_are_refused() {
        type Change = fn(&mut ContainerSpec);
        let cases: &[(&str, Change)] = &[
            ("endpoints are only allowed in bridge mode", |s| s.mode = Mode::Host),
            ("endpoints are only allowed in bridge mode", |s| s.mode = Mode::None),
            ("host type networking can't be used with links", |s| {
                s.endpoints.clear();
                s.mode = Mode::Host;
                s.links.push(link("cb", "b"));
            }),
            ("two endpoints on network bridge", |s| {
                s.endpoints.push(endpoint("bridge", "172.17.0.9"))
            }),
            ("more than one endpoint on the default bridge", |s| {
                let mut other = endpoint("bridge2", "172.18.0.2");
                other.default_bridge = true;
                s.endpoints.push(other);
            }),
            ("cannot link to itself", |s| s.links.push(link("ca", "me"))),
            ("link alias db is used twice", |s| {
                s.links.extend([link("cb", "db"), link("cc", "db")])
            }),
        ];
        for (expected, change) in cases {
            let mut spec = spec("ca", Some("172.17.0.2"));
            change(&mut spec);
            let error = spec.validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{error:?} should contain {expected:?}");
        }
    }

    #[test]
    fn ordinary_descriptions_pass() {
        let mut spec = spec("ca", Some("172.17.0.2"));
        spec.endpoints.push(endpoint("vswitch01", "172.16.1.2"));
        spec.links.extend([link("cb", "b"), link("cb", "db")]);
        spec.validate().unwrap();
        assert_eq!(spec.default_bridge_address(), Some("172.17.0.2".parse().unwrap()));
        assert!(spec.uses_embedded_dns());
        let mut none = self::spec("nn", None);
        none.mode = Mode::None;
        none.validate().unwrap();
        assert!(!none.uses_embedded_dns());
    }
}
