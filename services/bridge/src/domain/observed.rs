//! What the kernel shows, as plain data, and how it is judged against the records: is an
//! interface ours, is an endpoint complete, broken (ours but not as recorded) or in the
//! way of something foreign.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{Bridge, Endpoint, Mac};

/// One interface as RTM_GETLINK reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// IFLA_INFO_KIND, e.g. "bridge", "veth", "dummy"; None for e.g. loopback.
    pub kind: Option<String>,
    pub alias: Option<String>,
    pub mac: Option<Mac>,
    /// Index of the bridge this interface is a port of.
    pub master: Option<u32>,
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
}

impl Link {
    /// Ours when it carries `alias`, or carries no alias but our marker MAC (created by
    /// us just before a crash that came before the alias was set).
    pub fn is_marked(&self, alias: &str, marker: Mac) -> bool {
        match &self.alias {
            Some(own) => own == alias,
            None => self.mac == Some(marker),
        }
    }

    pub fn is_bridge_of(&self, bridge: &Bridge) -> bool {
        self.kind.as_deref() == Some("bridge")
            && self.is_marked(&bridge.alias(), bridge.marker_mac())
    }
}

/// The container end of an endpoint, seen from inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerObservation {
    pub link: Link,
    pub addresses: Vec<Ipv4Net>,
    /// Gateways of the default routes through this interface.
    pub default_gateways: Vec<Ipv4Addr>,
}

/// Everything [`assess`] needs about one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointObservation {
    /// The interface named like the endpoint's host end, whoever owns it.
    pub host: Option<Link>,
    pub bridge_index: Option<u32>,
    /// The interface named like the endpoint's container end inside the sandbox.
    pub peer: Option<PeerObservation>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointStatus {
    Absent,
    Complete,
    /// Ours but not as recorded; the reason says what differs.
    Broken(String),
    /// A name the endpoint needs is taken by something that is not ours.
    Foreign(String),
}

pub fn assess(endpoint: &Endpoint, seen: &EndpointObservation) -> EndpointStatus {
    let alias = endpoint.alias();
    let peer_is_ours = seen.peer.as_ref().map(|peer| peer.link.alias.as_deref() == Some(&*alias));
    if peer_is_ours == Some(false) {
        return EndpointStatus::Foreign(format!(
            "interface {:?} in sandbox {:?} exists and is not cnet's",
            endpoint.ifname.as_str(),
            endpoint.sandbox_id.as_str()
        ));
    }
    let Some(host) = &seen.host else {
        return match peer_is_ours {
            Some(_) => EndpointStatus::Broken("container end without host end".into()),
            None => EndpointStatus::Absent,
        };
    };
    if !host.is_marked(&alias, endpoint.host_marker_mac()) {
        return EndpointStatus::Foreign(format!(
            "interface {:?} exists and is not cnet's",
            endpoint.host_ifname.as_str()
        ));
    }
    let Some(peer) = &seen.peer else {
        return EndpointStatus::Broken("container end is not in the sandbox".into());
    };
    let mut wrong = Vec::new();
    if host.kind.as_deref() != Some("veth") {
        wrong.push("host end is not a veth");
    }
    if host.alias.as_deref() != Some(&*alias) {
        wrong.push("host end has no alias");
    }
    if seen.bridge_index.is_none() || host.master != seen.bridge_index {
        wrong.push("host end is not on the bridge");
    }
    if !host.up || !peer.link.up {
        wrong.push("down");
    }
    if host.mtu != endpoint.mtu.get() || peer.link.mtu != endpoint.mtu.get() {
        wrong.push("mtu differs");
    }
    if peer.link.mac != Some(endpoint.mac) {
        wrong.push("mac differs");
    }
    if !peer.addresses.contains(&endpoint.address) {
        wrong.push("address missing");
    }
    let route_present = endpoint.gateway.is_some_and(|g| peer.default_gateways.contains(&g));
    if endpoint.default_route && !route_present {
        wrong.push("default route missing");
    }
    if wrong.is_empty() {
        EndpointStatus::Complete
    } else {
        EndpointStatus::Broken(wrong.join(", "))
    }
}

/// A prefix in use in the agent's namespace, with the interface it is on (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPrefix {
    pub prefix: Ipv4Net,
    pub ifindex: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EndpointRequest, Mtu, naming, net::parse_cidr};

    fn endpoint() -> Endpoint {
        let bridge = Bridge {
            network_id: "n1".parse().unwrap(),
            name: "br-n1".parse().unwrap(),
            gateway: parse_cidr("172.16.1.1/16").unwrap(),
            mtu: Mtu::DEFAULT,
        };
        EndpointRequest {
            id: "c1/n1".parse().unwrap(),
            network_id: "n1".parse().unwrap(),
            sandbox_id: "c1".parse().unwrap(),
            ifname: None,
            address: parse_cidr("172.16.1.2/16").unwrap(),
            gateway: Some("172.16.1.1".parse().unwrap()),
            mac: None,
            mtu: None,
            default_route: true,
        }
        .resolve(&bridge)
    }

    fn complete(endpoint: &Endpoint) -> EndpointObservation {
        let host = Link {
            index: 7,
            name: endpoint.host_ifname.to_string(),
            kind: Some("veth".into()),
            alias: Some(endpoint.alias()),
            mac: Some(endpoint.host_marker_mac()),
            master: Some(3),
            mtu: 1500,
            up: true,
        };
        let peer = Link {
            index: 2,
            name: "eth0".into(),
            mac: Some(endpoint.mac),
            master: None,
            ..host.clone()
        };
        EndpointObservation {
            host: Some(host),
            bridge_index: Some(3),
            peer: Some(PeerObservation {
                link: peer,
                addresses: vec![endpoint.address],
                default_gateways: vec![endpoint.gateway.unwrap()],
            }),
        }
    }

    #[test]
    fn statuses() {
        let endpoint = endpoint();
        let check = |change: &dyn Fn(&mut EndpointObservation), expect: EndpointStatus| {
            let mut seen = complete(&endpoint);
            change(&mut seen);
            assert_eq!(assess(&endpoint, &seen), expect);
        };
        let broken = |why: &str| EndpointStatus::Broken(why.into());
        check(&|_| {}, EndpointStatus::Complete);
        check(&|s| (s.host, s.peer) = (None, None), EndpointStatus::Absent);
        check(&|s| s.peer = None, broken("container end is not in the sandbox"));
        check(&|s| s.host.as_mut().unwrap().master = None, broken("host end is not on the bridge"));
        check(&|s| s.peer.as_mut().unwrap().addresses.clear(), broken("address missing"));
        check(
            &|s| s.peer.as_mut().unwrap().default_gateways.clear(),
            broken("default route missing"),
        );
        check(&|s| s.host.as_mut().unwrap().alias = None, broken("host end has no alias"));
        check(&|s| s.host.as_mut().unwrap().up = false, broken("down"));
        check(
            &|s| {
                let host = s.host.as_mut().unwrap();
                (host.alias, host.mac) = (None, None);
            },
            EndpointStatus::Foreign(
                "interface \"veth".to_owned()
                    + &endpoint.host_ifname.as_str()[4..]
                    + "\" exists and is not cnet's",
            ),
        );
        check(
            &|s| s.peer.as_mut().unwrap().link.alias = Some("docker".into()),
            EndpointStatus::Foreign(
                "interface \"eth0\" in sandbox \"c1\" exists and is not cnet's".into(),
            ),
        );
    }

    #[test]
    fn marked_links() {
        let alias = "cnet:bridge:n1";
        let marker = naming::marker_mac(alias);
        let link = |alias: Option<&str>, mac| Link {
            index: 1,
            name: "br".into(),
            kind: Some("bridge".into()),
            alias: alias.map(str::to_owned),
            mac: Some(mac),
            master: None,
            mtu: 1500,
            up: true,
        };
        let other = Mac::from_bytes([2, 0, 0, 0, 0, 1]);
        assert!(link(Some(alias), other).is_marked(alias, marker));
        assert!(link(None, marker).is_marked(alias, marker));
        assert!(!link(None, other).is_marked(alias, marker));
        assert!(!link(Some("cnet:bridge:n2"), marker).is_marked(alias, marker));
    }
}
