//! The desired state the agent records: one [`Bridge`] per network, one [`Sandbox`] per
//! container namespace and one [`Endpoint`] per attachment. These are also the store's
//! record types, so renaming a field is an on-disk format change.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::{EndpointId, FieldError, IfName, Mac, Mtu, NetworkId, SandboxId, naming};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bridge {
    pub network_id: NetworkId,
    pub name: IfName,
    /// The gateway address with the subnet's prefix length, host bits kept.
    pub gateway: Ipv4Net,
    pub mtu: Mtu,
}

impl Bridge {
    pub fn alias(&self) -> String {
        naming::bridge_alias(&self.network_id)
    }

    pub fn marker_mac(&self) -> Mac {
        naming::marker_mac(&self.alias())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    pub id: SandboxId,
    pub netns_path: PathBuf,
    /// The agent created the namespace and deletes it with the sandbox.
    pub owned: bool,
}

impl Sandbox {
    /// A namespace the agent creates at `<netns_dir>/<id>`.
    pub fn owned(id: SandboxId, netns_dir: &Path) -> Self {
        let netns_path = netns_dir.join(id.as_str());
        Self { id, netns_path, owned: true }
    }

    /// A namespace someone else created; the agent only puts interfaces into it.
    pub fn external(id: SandboxId, netns_path: PathBuf) -> Self {
        Self { id, netns_path, owned: false }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: EndpointId,
    pub network_id: NetworkId,
    pub sandbox_id: SandboxId,
    /// Name inside the sandbox.
    pub ifname: IfName,
    pub host_ifname: IfName,
    pub address: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub mac: Mac,
    pub mtu: Mtu,
    pub default_route: bool,
}

impl Endpoint {
    pub fn alias(&self) -> String {
        naming::endpoint_alias(&self.id)
    }

    /// The host end's MAC, which marks it as ours from the moment it exists.
    pub fn host_marker_mac(&self) -> Mac {
        naming::marker_mac(&self.alias())
    }
}

/// An EnsureEndpoint request with its optional fields still unresolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRequest {
    pub id: EndpointId,
    pub network_id: NetworkId,
    pub sandbox_id: SandboxId,
    pub ifname: Option<IfName>,
    pub address: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub mac: Option<Mac>,
    pub mtu: Option<Mtu>,
    pub default_route: bool,
}

impl EndpointRequest {
    pub const DEFAULT_IFNAME: &str = "eth0";

    /// Checks that the fields agree with each other.
    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(gateway) = self.gateway {
            if !self.address.contains(&gateway) {
                return Err(FieldError::new(
                    "gateway",
                    format!("{gateway} is outside {}", self.address.trunc()),
                ));
            }
            if gateway == self.address.addr() {
                return Err(FieldError::new(
                    "address_cidr",
                    format!("{} is the gateway's address", self.address.addr()),
                ));
            }
        } else if self.default_route {
            return Err(FieldError::new("gateway", "required when default_route is set"));
        }
        Ok(())
    }

    /// Fills in the defaults: eth0, Docker's MAC for the address, the bridge's MTU.
    pub fn resolve(self, bridge: &Bridge) -> Endpoint {
        let host_ifname = naming::host_ifname(&self.id);
        Endpoint {
            ifname: self
                .ifname
                .unwrap_or_else(|| Self::DEFAULT_IFNAME.parse().expect("eth0 is valid")),
            host_ifname,
            mac: self.mac.unwrap_or_else(|| Mac::from_ipv4(self.address.addr())),
            mtu: self.mtu.unwrap_or(bridge.mtu),
            id: self.id,
            network_id: self.network_id,
            sandbox_id: self.sandbox_id,
            address: self.address,
            gateway: self.gateway,
            default_route: self.default_route,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::net::parse_cidr;

    fn bridge() -> Bridge {
        Bridge {
            network_id: "n1".parse().unwrap(),
            name: "br-n1".parse().unwrap(),
            gateway: parse_cidr("172.16.1.1/16").unwrap(),
            mtu: Mtu::try_from(9000).unwrap(),
        }
    }

    fn request(address: &str, gateway: Option<&str>, default_route: bool) -> EndpointRequest {
        EndpointRequest {
            id: "c1/n1".parse().unwrap(),
            network_id: "n1".parse().unwrap(),
            sandbox_id: "c1".parse().unwrap(),
            ifname: None,
            address: parse_cidr(address).unwrap(),
            gateway: gateway.map(|g| g.parse().unwrap()),
            mac: None,
            mtu: None,
            default_route,
        }
    }

    #[test]
    fn defaults_follow_docker() {
        let endpoint = request("172.16.1.0/16", Some("172.16.1.1"), true).resolve(&bridge());
        assert_eq!(endpoint.ifname.as_str(), "eth0");
        assert_eq!(endpoint.mac.to_string(), "02:42:ac:10:01:00");
        assert_eq!(endpoint.mtu.get(), 9000);
        assert!(endpoint.host_ifname.as_str().starts_with("veth"));
    }

    #[test]
    fn gateway_rules() {
        let check = |address, gateway, default_route, expect: Option<&str>| {
            let got = request(address, gateway, default_route).validate().err();
            assert_eq!(got.map(|e| e.to_string()), expect.map(str::to_owned));
        };
        check("172.16.1.0/16", Some("172.16.1.1"), true, None);
        check("172.16.1.0/16", None, false, None);
        check("172.16.1.0/16", None, true, Some("gateway: required when default_route is set"));
        check(
            "172.16.1.0/16",
            Some("10.0.0.1"),
            true,
            Some("gateway: 10.0.0.1 is outside 172.16.0.0/16"),
        );
        check(
            "172.16.1.1/16",
            Some("172.16.1.1"),
            false,
            Some("address_cidr: 172.16.1.1 is the gateway's address"),
        );
    }
}
