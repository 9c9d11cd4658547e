//! How cnet names and marks the interfaces it creates.
//!
//! Ownership is carried by the interface alias (IFLA_IFALIAS), "cnet:bridge:<network id>"
//! or "cnet:endpoint:<endpoint id>", so that reconcile can tell ours from others' after a
//! restart. The kernel ignores an alias in RTM_NEWLINK, so it can only be set by a second
//! request; to close that window every interface is also created with a MAC address
//! derived from the same alias ([`marker_mac`]), which the kernel does take at creation.
//! An interface without an alias whose MAC is our marker is ours (the chance that a
//! foreign interface has it is 2^-46).

use sha2::{Digest, Sha256};

use super::{EndpointId, IfName, Mac, NetworkId};

pub const ALIAS_PREFIX: &str = "cnet:";
const BRIDGE_ALIAS_PREFIX: &str = "cnet:bridge:";
const ENDPOINT_ALIAS_PREFIX: &str = "cnet:endpoint:";

/// The object an alias says an interface belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Bridge(String),
    Endpoint(String),
}

impl Owner {
    /// Only the two kinds this agent creates; other "cnet:" aliases belong to other cnet
    /// services and are left alone.
    pub fn from_alias(alias: &str) -> Option<Owner> {
        if let Some(id) = alias.strip_prefix(BRIDGE_ALIAS_PREFIX) {
            return Some(Owner::Bridge(id.to_owned()));
        }
        alias.strip_prefix(ENDPOINT_ALIAS_PREFIX).map(|id| Owner::Endpoint(id.to_owned()))
    }
}

pub fn bridge_alias(network_id: &NetworkId) -> String {
    format!("{BRIDGE_ALIAS_PREFIX}{network_id}")
}

pub fn endpoint_alias(endpoint_id: &EndpointId) -> String {
    format!("{ENDPOINT_ALIAS_PREFIX}{endpoint_id}")
}

/// A locally administered unicast MAC derived from an alias (see the module docs).
pub fn marker_mac(alias: &str) -> Mac {
    let digest = Sha256::digest(alias.as_bytes());
    let mut bytes = [0u8; 6];
    bytes.copy_from_slice(&digest[..6]);
    bytes[0] = (bytes[0] & 0xfc) | 0x02;
    Mac::from_bytes(bytes)
}

fn short_hash(endpoint_id: &EndpointId) -> String {
    let digest = Sha256::digest(endpoint_id.as_str().as_bytes());
    hex::encode(&digest[..4])[..7].to_owned()
}

/// The host end of an endpoint's veth pair: "veth" + 7 hex digits, like Docker's (NET-7),
/// but derived from the endpoint id so that a retry or a reconcile finds the same name.
pub fn host_ifname(endpoint_id: &EndpointId) -> IfName {
    format!("veth{}", short_hash(endpoint_id)).parse().expect("11 safe characters")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_are_deterministic_and_docker_shaped() {
        let id: EndpointId = "c0ffee/net1".parse().unwrap();
        let host = host_ifname(&id);
        assert_eq!(host, host_ifname(&id));
        assert_eq!(host.as_str().len(), 11);
        assert!(host.as_str().starts_with("veth"));
        assert!(host.as_str()[4..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(host, host_ifname(&"c0ffee/net2".parse().unwrap()));
    }

    #[test]
    fn aliases_round_trip() {
        let network: NetworkId = "n1".parse().unwrap();
        let endpoint: EndpointId = "c/n1".parse().unwrap();
        assert_eq!(bridge_alias(&network), "cnet:bridge:n1");
        assert_eq!(Owner::from_alias(&bridge_alias(&network)), Some(Owner::Bridge("n1".into())));
        assert_eq!(
            Owner::from_alias(&endpoint_alias(&endpoint)),
            Some(Owner::Endpoint("c/n1".into()))
        );
        assert_eq!(Owner::from_alias("cnet:dns:x"), None);
        assert_eq!(Owner::from_alias("docker0"), None);
    }

    #[test]
    fn marker_macs_are_unicast_and_local() {
        for alias in ["cnet:bridge:a", "cnet:bridge:b", "cnet:endpoint:x"] {
            let [first, ..] = marker_mac(alias).octets();
            assert_eq!(first & 0b11, 0b10, "{alias}");
        }
        assert_ne!(marker_mac("cnet:bridge:a"), marker_mac("cnet:bridge:b"));
    }
}
