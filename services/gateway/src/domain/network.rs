//! A network as the gateway records it, and the checks on a create request that need no
//! other service (the ipam service checks the addressing itself).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::names;

/// Name of the predefined default network, as in Docker.
pub const DEFAULT_NETWORK: &str = "bridge";
const DEFAULT_MTU: u32 = 1500;
const BRIDGE_NAME_OPTIONS: &[&str] = &["com.docker.network.bridge.name", "bridge_name"];
const MTU_OPTIONS: &[&str] = &["com.docker.network.driver.mtu", "mtu"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub bridge_name: String,
    /// As the user typed it (host bits included), or the auto-picked one.
    pub subnet: String,
    /// Masked subnet, as the kernel sees it.
    pub network: String,
    pub ip_range: String,
    /// The gateway in use; `gateway_given` says whether the user chose it.
    pub gateway: String,
    pub prefix_len: u8,
    pub gateway_given: bool,
    /// True when the subnet came from the user (static `--ip` needs that).
    pub subnet_given: bool,
    pub mtu: u32,
    pub internal: bool,
    pub predefined: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub created: String,
}

impl NetworkRecord {
    /// `<gateway>/<prefix>`, the address the bridge holds.
    pub fn gateway_cidr(&self) -> String {
        format!("{}/{}", self.gateway, self.prefix_len)
    }

    pub fn is_default(&self) -> bool {
        self.predefined && self.name == DEFAULT_NETWORK
    }

    /// A bridge network a user created (embedded DNS, aliases and `--ip` need one).
    pub fn is_user_defined(&self) -> bool {
        !self.predefined && self.is_bridge()
    }

    pub fn is_bridge(&self) -> bool {
        self.driver == "bridge"
    }

    /// The predefined `host` or `none` network: no bridge, no pool.
    pub fn special(name: &str, driver: &str, created: String) -> Self {
        Self {
            id: names::new_id(),
            name: name.to_owned(),
            driver: driver.to_owned(),
            bridge_name: String::new(),
            subnet: String::new(),
            network: String::new(),
            ip_range: String::new(),
            gateway: String::new(),
            prefix_len: 0,
            gateway_given: false,
            subnet_given: false,
            mtu: 0,
            internal: false,
            predefined: true,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            created,
        }
    }
}

/// What a create request asks for once checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSpec {
    pub name: String,
    pub subnet: String,
    pub ip_range: String,
    pub gateway: String,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    /// From the bridge-name option, else derived from the id.
    pub bridge_name: Option<String>,
    pub mtu: u32,
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("invalid network name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    Name(String),
    #[error("plugin {0:?} not found: only the \"bridge\" driver is supported")]
    Driver(String),
    #[error("every ip-range or gateway must have a corresponding subnet")]
    RangeWithoutSubnet,
    #[error("invalid bridge name {0:?}: 1 to 15 characters, no '/', ':' or whitespace")]
    BridgeName(String),
    #[error("invalid mtu {0:?}: expected a number from 68 to 65535")]
    Mtu(String),
    #[error(
        "labels and options take {0} bytes; a network holds at most {MAX_METADATA_BYTES} \
         (every listing of networks carries them)"
    )]
    TooMuchMetadata(usize),
}

/// Bound on the keys and values of a network's labels and options together, so that a
/// listing of many networks stays a message any client can read.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// A create request as received, before any check.
#[derive(Debug, Clone, Default)]
pub struct NetworkRequest {
    pub name: String,
    pub driver: String,
    pub subnet: String,
    pub ip_range: String,
    pub gateway: String,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

impl NetworkSpec {
    pub fn parse(request: NetworkRequest) -> Result<Self, SpecError> {
        let NetworkRequest { name, driver, subnet, ip_range, gateway, internal, labels, options } =
            request;
        let (name, driver, subnet, ip_range, gateway) =
            (name.as_str(), driver.as_str(), subnet.as_str(), ip_range.as_str(), gateway.as_str());
        if !names::is_valid_name(name) {
            return Err(SpecError::Name(name.to_owned()));
        }
        let metadata: usize =
            labels.iter().chain(&options).map(|(key, value)| key.len() + value.len()).sum();
        if metadata > MAX_METADATA_BYTES {
            return Err(SpecError::TooMuchMetadata(metadata));
        }
        if !(driver.is_empty() || driver == "bridge") {
            return Err(SpecError::Driver(driver.to_owned()));
        }
        if subnet.trim().is_empty() && !(ip_range.trim().is_empty() && gateway.trim().is_empty()) {
            return Err(SpecError::RangeWithoutSubnet);
        }
        let bridge_name = option(&options, BRIDGE_NAME_OPTIONS)
            .map(|value| {
                is_valid_ifname(value)
                    .then(|| value.to_owned())
                    .ok_or_else(|| SpecError::BridgeName(value.to_owned()))
            })
            .transpose()?;
        let mtu = option(&options, MTU_OPTIONS)
            .map(|value| {
                value
                    .parse::<u32>()
                    .ok()
                    .filter(|mtu| (68..=65535).contains(mtu))
                    .ok_or_else(|| SpecError::Mtu(value.to_owned()))
            })
            .transpose()?
            .unwrap_or(DEFAULT_MTU);
        Ok(Self {
            name: name.to_owned(),
            subnet: subnet.trim().to_owned(),
            ip_range: ip_range.trim().to_owned(),
            gateway: gateway.trim().to_owned(),
            internal,
            labels,
            options,
            bridge_name,
            mtu,
        })
    }
}

fn option<'a>(options: &'a BTreeMap<String, String>, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|key| options.get(*key)).map(String::as_str)
}

/// Linux interface names: at most 15 bytes, no '/', ':' or whitespace.
pub fn is_valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// The bridge device of a network: Docker's `br-` + 12 hex digits of the id.
pub fn default_bridge_name(id: &str) -> String {
    format!("br-{}", names::short_id(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        name: &str,
        subnet: &str,
        range: &str,
        gateway: &str,
        options: &[(&str, &str)],
    ) -> Result<NetworkSpec, SpecError> {
        let options = options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        NetworkSpec::parse(NetworkRequest {
            name: name.into(),
            subnet: subnet.into(),
            ip_range: range.into(),
            gateway: gateway.into(),
            options,
            ..Default::default()
        })
    }

    #[test]
    fn the_labs_network_parses() {
        let spec = parse("vswitch01", "172.16.1.0/16", "172.16.1.0/24", "172.16.1.1", &[]).unwrap();
        assert_eq!(spec.mtu, 1500);
        assert_eq!(spec.bridge_name, None);
    }

    #[test]
    fn bad_requests_are_refused_with_dockers_words() {
        type Case = (
            &'static str,
            &'static str,
            &'static str,
            &'static str,
            &'static [(&'static str, &'static str)],
            SpecError,
        );
        let cases: &[Case] = &[
            ("x", "", "", "", &[], SpecError::Name("x".into())),
            ("n1", "", "10.0.0.0/24", "", &[], SpecError::RangeWithoutSubnet),
            ("n1", "", "", "10.0.0.1", &[], SpecError::RangeWithoutSubnet),
            ("n1", "", "", "", &[("bridge_name", "a/b")], SpecError::BridgeName("a/b".into())),
            ("n1", "", "", "", &[("mtu", "9")], SpecError::Mtu("9".into())),
        ];
        for (name, subnet, range, gateway, options, expected) in cases {
            assert_eq!(parse(name, subnet, range, gateway, options).unwrap_err(), *expected);
        }
        let error = NetworkSpec::parse(NetworkRequest {
            name: "n1".into(),
            driver: "overlay".into(),
            ..Default::default()
        });
        assert_eq!(error.unwrap_err(), SpecError::Driver("overlay".into()));
    }

    #[test]
    fn options_set_bridge_name_and_mtu() {
        let spec =
            parse("n1", "", "", "", &[("com.docker.network.bridge.name", "lab0"), ("mtu", "9000")])
                .unwrap();
        assert_eq!(spec.bridge_name.as_deref(), Some("lab0"));
        assert_eq!(spec.mtu, 9000);
        assert_eq!(default_bridge_name(&"ab".repeat(32)), "br-abababababab");
    }
}
