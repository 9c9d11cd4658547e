//! `network ls` rows and the `network inspect` JSON. The JSON keeps Docker's field names
//! and order (Name, Id, IPAM.Config[{Subnet, IPRange, Gateway}], ...) so that jq lines
//! written for `docker network inspect` work; facts Docker has no field for live under
//! `Cnet`.

use std::collections::BTreeMap;

use cnet_proto::gateway::v1::{Network, NetworkContainer};
use serde::Serialize;

use super::short_id;

pub const LIST_HEADERS: [&str; 4] = ["NETWORK ID", "NAME", "DRIVER", "SCOPE"];

/// Docker lists networks by name.
pub fn sort(networks: &mut [Network]) {
    networks.sort_by(|a, b| a.name.cmp(&b.name));
}

pub fn list_row(network: &Network, no_trunc: bool) -> Vec<String> {
    vec![
        short_id(&network.id, no_trunc).to_owned(),
        network.name.clone(),
        network.driver.clone(),
        "local".to_owned(),
    ]
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkJson {
    name: String,
    id: String,
    created: String,
    scope: &'static str,
    driver: String,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    ipam: IpamJson,
    internal: bool,
    attachable: bool,
    ingress: bool,
    containers: BTreeMap<String, EndpointJson>,
    options: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    cnet: CnetJson,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct IpamJson {
    driver: &'static str,
    options: BTreeMap<String, String>,
    config: Vec<IpamConfigJson>,
}

/// Docker leaves IPRange and Gateway out when the user did not give them (NET-1).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct IpamConfigJson {
    subnet: String,
    #[serde(rename = "IPRange", skip_serializing_if = "String::is_empty")]
    ip_range: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    gateway: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct EndpointJson {
    name: String,
    mac_address: String,
    #[serde(rename = "IPv4Address")]
    ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    ipv6_address: String,
}

/// What cnet knows beyond Docker's fields: the kernel's view of the network.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct CnetJson {
    bridge_name: String,
    /// The gateway actually used, also when `IPAM.Config` hides it.
    gateway: String,
    /// The masked subnet, as the kernel and iptables see it.
    network: String,
    #[serde(rename = "MTU")]
    mtu: u32,
    predefined: bool,
}

impl From<&Network> for NetworkJson {
    fn from(network: &Network) -> Self {
        let config = network
            .ipam
            .iter()
            .filter(|ipam| !ipam.subnet.is_empty())
            .map(|ipam| IpamConfigJson {
                subnet: ipam.subnet.clone(),
                ip_range: ipam.ip_range.clone(),
                gateway: ipam.gateway.clone(),
            })
            .collect();
        Self {
            name: network.name.clone(),
            id: network.id.clone(),
            created: network.created.clone(),
            scope: "local",
            driver: network.driver.clone(),
            enable_ipv6: false,
            ipam: IpamJson { driver: "default", options: BTreeMap::new(), config },
            internal: network.internal,
            attachable: false,
            ingress: false,
            containers: network.containers.iter().map(endpoint).collect(),
            options: sorted(&network.options),
            labels: sorted(&network.labels),
            cnet: CnetJson {
                bridge_name: network.bridge_name.clone(),
                gateway: network.gateway.clone(),
                network: network.network.clone(),
                mtu: network.mtu,
                predefined: network.predefined,
            },
        }
    }
}

fn endpoint(container: &NetworkContainer) -> (String, EndpointJson) {
    let json = EndpointJson {
        name: container.name.clone(),
        mac_address: container.mac_address.clone(),
        ipv4_address: container.ipv4_address.clone(),
        ipv6_address: String::new(),
    };
    (container.container_id.clone(), json)
}

/// Stable key order, so that output can be diffed and tested.
fn sorted(map: &std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use cnet_proto::gateway::v1::IpamConfig;
    use serde_json::json;

    use super::*;

    fn vswitch01() -> Network {
        Network {
            id: "ba9876543210".repeat(5) + "abcd",
            name: "vswitch01".into(),
            driver: "bridge".into(),
            bridge_name: "br-ba9876543210".into(),
            ipam: Some(IpamConfig {
                subnet: "172.16.1.0/16".into(),
                ip_range: "172.16.1.0/24".into(),
                gateway: "172.16.1.1".into(),
            }),
            gateway: "172.16.1.1".into(),
            network: "172.16.0.0/16".into(),
            mtu: 1500,
            created: "2024-05-01T12:00:00Z".into(),
            labels: [("team".to_owned(), "net".to_owned())].into(),
            containers: vec![NetworkContainer {
                container_id: "c1".into(),
                name: "centos1".into(),
                ipv4_address: "172.16.1.0/16".into(),
                mac_address: "02:42:ac:10:01:00".into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn list_rows_use_short_ids() {
        let network = vswitch01();
        assert_eq!(list_row(&network, false), ["ba9876543210", "vswitch01", "bridge", "local"]);
        assert_eq!(list_row(&network, true)[0], network.id);
    }

    #[test]
    fn networks_sort_by_name() {
        let mut networks = vec![
            Network { name: "vswitch01".into(), ..Default::default() },
            Network { name: "bridge".into(), ..Default::default() },
            Network { name: "none".into(), ..Default::default() },
        ];
        sort(&mut networks);
        let names: Vec<_> = networks.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["bridge", "none", "vswitch01"]);
    }

    #[test]
    fn inspect_json_has_docker_shape() {
        let value = serde_json::to_value(NetworkJson::from(&vswitch01())).unwrap();
        assert_eq!(value["Name"], "vswitch01");
        assert_eq!(value["Scope"], "local");
        assert_eq!(value["Internal"], false);
        assert_eq!(
            value["IPAM"]["Config"],
            json!([{"Subnet": "172.16.1.0/16", "IPRange": "172.16.1.0/24", "Gateway": "172.16.1.1"}])
        );
        assert_eq!(
            value["Containers"]["c1"],
            json!({"Name": "centos1", "MacAddress": "02:42:ac:10:01:00",
                   "IPv4Address": "172.16.1.0/16", "IPv6Address": ""})
        );
        assert_eq!(value["Labels"], json!({"team": "net"}));
        assert_eq!(value["Options"], json!({}));
        assert_eq!(value["Cnet"]["BridgeName"], "br-ba9876543210");
        assert_eq!(value["Cnet"]["Network"], "172.16.0.0/16");
    }

    #[test]
    fn hidden_gateway_and_range_are_left_out() {
        let mut network = vswitch01();
        network.ipam = Some(IpamConfig { subnet: "10.123.9.0/29".into(), ..Default::default() });
        let value = serde_json::to_value(NetworkJson::from(&network)).unwrap();
        assert_eq!(value["IPAM"]["Config"], json!([{"Subnet": "10.123.9.0/29"}]));

        network.ipam = None;
        let value = serde_json::to_value(NetworkJson::from(&network)).unwrap();
        assert_eq!(value["IPAM"]["Config"], json!([]), "host and none have no subnet");
    }
}
