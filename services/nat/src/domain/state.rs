//! The service's state in memory: networks and publications, keyed and ordered by id so
//! that the ruleset built from them is the same on every start, and the decisions made
//! on them (is this a repeat, a conflict, which port is free). Sockets and iptables are
//! the caller's business.

use std::{collections::BTreeMap, ops::RangeInclusive};

use super::{
    Binding, ContainerId, Error, HostPort, Network, NetworkId, PortRequest, Publication,
    PublishRequest, ports::PortAllocator, rules::Ruleset,
};

#[derive(Debug, Default, Clone)]
pub struct State {
    networks: BTreeMap<NetworkId, Network>,
    publications: BTreeMap<ContainerId, Publication>,
    allocator: PortAllocator,
}

/// What a Publish request amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishPlan {
    /// The same request was answered before: answer the same again.
    Existing(Publication),
    /// Nothing to publish: no ports, or an internal network (Docker publishes nothing
    /// there either).
    Nothing,
    /// New bindings to allocate on this network.
    New(Network),
}

impl State {
    pub fn network(&self, id: &NetworkId) -> Option<&Network> {
        self.networks.get(id)
    }

    pub fn networks(&self) -> impl Iterator<Item = &Network> {
        self.networks.values()
    }

    pub fn publication(&self, id: &ContainerId) -> Option<&Publication> {
        self.publications.get(id)
    }

    pub fn publications(&self) -> impl Iterator<Item = &Publication> {
        self.publications.values()
    }

    /// Every published port with its network and container address.
    pub fn bindings(&self) -> impl Iterator<Item = (&Network, &Publication, &Binding)> {
        self.publications.values().flat_map(move |publication| {
            let network = &self.networks[&publication.network];
            publication.bindings.iter().map(move |binding| (network, publication, binding))
        })
    }

    /// Everything cnet wants in the kernel for this state.
    pub fn ruleset(&self) -> Ruleset {
        let bindings = self
            .bindings()
            .map(|(network, publication, binding)| (network, publication.container_ip, binding));
        Ruleset::build(self.networks.values(), bindings)
    }

    /// Whether `network` is already there exactly (true), new (false), or conflicts.
    pub fn check_network(&self, network: &Network) -> Result<bool, Error> {
        if let Some(existing) = self.networks.get(&network.id) {
            if existing == network {
                return Ok(true);
            }
            let existing = existing.describe();
            return Err(Error::NetworkConflict { id: network.id.to_string(), existing });
        }
        match self.networks.values().find(|other| other.bridge == network.bridge) {
            Some(other) => Err(Error::BridgeTaken {
                bridge: network.bridge.to_string(),
                other: other.id.to_string(),
            }),
            None => Ok(false),
        }
    }

    pub fn insert_network(&mut self, network: Network) {
        self.networks.insert(network.id.clone(), network);
    }

    /// Removes a network, and with `force` the publications on it; None if absent.
    pub fn remove_network(
        &mut self,
        id: &NetworkId,
        force: bool,
    ) -> Result<Option<(Network, Vec<Publication>)>, Error> {
        if !self.networks.contains_key(id) {
            return Ok(None);
        }
        let on_network: Vec<ContainerId> = self
            .publications
            .values()
            .filter(|publication| &publication.network == id)
            .map(|publication| publication.container.clone())
            .collect();
        if !on_network.is_empty() && !force {
            return Err(Error::NetworkInUse { id: id.to_string(), containers: on_network.len() });
        }
        let removed = on_network.iter().filter_map(|container| self.publications.remove(container));
        let removed = removed.collect();
        Ok(self.networks.remove(id).map(|network| (network, removed)))
    }

    /// Decides what a Publish request needs, refusing a container that already has
    /// other ports published, an unknown network and an address outside its subnet.
    pub fn plan_publish(&self, request: &PublishRequest) -> Result<PublishPlan, Error> {
        if let Some(existing) = self.publications.get(&request.container) {
            if existing.answers(request) {
                return Ok(PublishPlan::Existing(existing.clone()));
            }
            return Err(Error::ContainerPublished { id: request.container.to_string() });
        }
        let network = self
            .networks
            .get(&request.network)
            .ok_or_else(|| Error::NetworkNotFound { id: request.network.to_string() })?;
        if !network.subnet.contains(&request.container_ip) {
            let reason = format!("outside subnet {} of network {}", network.subnet, network.id);
            return Err(Error::invalid("container_ip", request.container_ip, reason));
        }
        if request.ports.is_empty() || network.internal {
            return Ok(PublishPlan::Nothing);
        }
        Ok(PublishPlan::New(network.clone()))
    }

    /// Picks the binding for `request`, given the bindings already taken by this request
    /// (`pending`) and ports a bind just failed on (`refused`). A fixed port that cnet
    /// already publishes is Docker's "port is already allocated".
    pub fn allocate(
        &mut self,
        request: &PortRequest,
        pending: &[Binding],
        refused: &[u16],
        ephemeral: RangeInclusive<u16>,
    ) -> Result<Binding, Error> {
        let binding = |host_port| Binding {
            host_ip: request.host_ip,
            host_port,
            container_port: request.container_port,
            protocol: request.protocol,
        };
        let publications = &self.publications;
        let is_free = |port: u16| {
            let candidate = binding(port);
            !refused.contains(&port)
                && !pending.iter().any(|taken| taken.overlaps(&candidate))
                && !publications
                    .values()
                    .flat_map(|publication| &publication.bindings)
                    .any(|taken| taken.overlaps(&candidate))
        };
        let allocated = |port: String| Error::PortAllocated { host_ip: request.host_ip, port };
        match request.host_port {
            HostPort::Fixed(port) if is_free(port) => Ok(binding(port)),
            HostPort::Fixed(port) => Err(allocated(port.to_string())),
            HostPort::Range(start, end) => match self.allocator.pick(start..=end, is_free) {
                Some(port) => Ok(binding(port)),
                None => Err(allocated(format!("{start}-{end}"))),
            },
            HostPort::Random => self.allocator.pick_or_exhausted(ephemeral, is_free).map(binding),
        }
    }

    pub fn insert_publication(&mut self, publication: Publication) {
        self.publications.insert(publication.container.clone(), publication);
    }

    pub fn remove_publication(&mut self, id: &ContainerId) -> Option<Publication> {
        self.publications.remove(id)
    }

    /// Puts back a record loaded from the store. A publication whose network is gone is
    /// refused (the caller drops it); one overlapping another cannot be served.
    pub fn restore_publication(&mut self, publication: Publication) -> Result<(), Error> {
        if !self.networks.contains_key(&publication.network) {
            return Err(Error::NetworkNotFound { id: publication.network.to_string() });
        }
        for binding in &publication.bindings {
            let clash = self.bindings().any(|(_, _, taken)| taken.overlaps(binding));
            if clash {
                let port = binding.host_port.to_string();
                return Err(Error::PortAllocated { host_ip: binding.host_ip, port });
            }
        }
        self.insert_publication(publication);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::domain::ports::DEFAULT_RANGE;

    fn network(id: &str, bridge: &str, subnet: &str, internal: bool) -> Network {
        Network::parse(id, bridge, subnet, internal).unwrap()
    }

    fn request(container: &str, ports: &[(&str, u32, u32)]) -> PublishRequest {
        let ports = ports
            .iter()
            .map(|(ip, host, end)| PortRequest::parse(ip, *host, *end, 80, "tcp").unwrap())
            .collect();
        PublishRequest::parse(container, "n1", "172.16.1.2", ports).unwrap()
    }

    /// Allocates every port of `request` and records the publication.
    fn publish(state: &mut State, request: &PublishRequest) -> Result<Vec<Binding>, Error> {
        let mut bindings = Vec::new();
        for port in &request.ports {
            bindings.push(state.allocate(port, &bindings, &[], DEFAULT_RANGE)?);
        }
        state.insert_publication(Publication {
            container: request.container.clone(),
            network: request.network.clone(),
            container_ip: request.container_ip,
            requests: request.ports.clone(),
            bindings: bindings.clone(),
        });
        Ok(bindings)
    }

    fn state() -> State {
        let mut state = State::default();
        state.insert_network(network("n1", "br-a", "172.16.0.0/16", false));
        state
    }

    #[test]
    fn networks_conflict_on_id_and_bridge() {
        let state = state();
        assert_eq!(state.check_network(&network("n1", "br-a", "172.16.0.0/16", false)), Ok(true));
        assert_eq!(state.check_network(&network("n2", "br-b", "172.17.0.0/16", false)), Ok(false));
        let changed = state.check_network(&network("n1", "br-a", "172.16.0.0/16", true));
        assert_eq!(
            changed.unwrap_err().to_string(),
            "network n1 already exists with bridge br-a, subnet 172.16.0.0/16, internal false"
        );
        let taken = state.check_network(&network("n2", "br-a", "172.17.0.0/16", false));
        assert_eq!(taken.unwrap_err().to_string(), "bridge br-a is already used by network n1");
    }

    #[test]
    fn publish_decisions() {
        let mut state = state();
        let first = request("c1", &[("", 8080, 0)]);
        assert_eq!(
            state.plan_publish(&first),
            Ok(PublishPlan::New(state.networks[&first.network].clone()))
        );
        publish(&mut state, &first).unwrap();
        assert!(matches!(state.plan_publish(&first), Ok(PublishPlan::Existing(_))));
        let other = request("c1", &[("", 8081, 0)]);
        assert_eq!(
            state.plan_publish(&other).unwrap_err().to_string(),
            "container c1 already has other ports published: unpublish them first"
        );
        let mut elsewhere = request("c2", &[]);
        elsewhere.container_ip = Ipv4Addr::new(10, 0, 0, 2);
        assert!(state.plan_publish(&elsewhere).unwrap_err().to_string().contains("outside subnet"));
        assert_eq!(state.plan_publish(&request("c2", &[])), Ok(PublishPlan::Nothing));
        let mut unknown = request("c2", &[("", 1, 0)]);
        unknown.network = NetworkId::parse("nope").unwrap();
        assert_eq!(state.plan_publish(&unknown).unwrap_err().to_string(), "network nope not found");
        state.insert_network(network("n1", "br-a", "172.16.0.0/16", true));
        assert_eq!(state.plan_publish(&request("c3", &[("", 1, 0)])), Ok(PublishPlan::Nothing));
    }

    #[test]
    fn port_conflicts() {
        let mut state = state();
        publish(&mut state, &request("c1", &[("", 8080, 0), ("127.0.0.1", 8081, 0)])).unwrap();
        let error = publish(&mut state, &request("c2", &[("", 8080, 0)])).unwrap_err();
        assert_eq!(error.to_string(), "Bind for 0.0.0.0:8080 failed: port is already allocated");
        let error = publish(&mut state, &request("c2", &[("127.0.0.5", 8080, 0)])).unwrap_err();
        assert_eq!(error.to_string(), "Bind for 127.0.0.5:8080 failed: port is already allocated");
        let error = publish(&mut state, &request("c2", &[("", 8081, 0)])).unwrap_err();
        assert_eq!(error.to_string(), "Bind for 0.0.0.0:8081 failed: port is already allocated");
        // Another address on the same port is fine (PUB-5), a duplicate within one request is not.
        assert!(publish(&mut state, &request("c3", &[("127.0.0.2", 8081, 0)])).is_ok());
        let twice = request("c4", &[("", 9000, 0), ("", 9000, 0)]);
        assert!(publish(&mut state, &twice).unwrap_err().to_string().contains("0.0.0.0:9000"));
    }

    #[test]
    fn random_and_ranges() {
        let mut state = state();
        let ports = publish(&mut state, &request("c1", &[("", 0, 0), ("", 0, 0)])).unwrap();
        assert_eq!((ports[0].host_port, ports[1].host_port), (32768, 32769));
        let ports = publish(&mut state, &request("c2", &[("", 8090, 8092), ("", 8090, 8092)]));
        let ports: Vec<_> = ports.unwrap().iter().map(|b| b.host_port).collect();
        assert_eq!(ports, [8090, 8091]);
        let ports = publish(&mut state, &request("c3", &[("", 8090, 8092)])).unwrap();
        assert_eq!(ports[0].host_port, 8092);
        let error = publish(&mut state, &request("c4", &[("", 8090, 8092)])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Bind for 0.0.0.0:8090-8092 failed: port is already allocated"
        );
        let refused =
            state.allocate(&request("c5", &[("", 0, 0)]).ports[0], &[], &[32770], DEFAULT_RANGE);
        assert_eq!(refused.unwrap().host_port, 32771);
    }

    #[test]
    fn deleting_networks() {
        let mut state = state();
        publish(&mut state, &request("c1", &[("", 8080, 0)])).unwrap();
        let id = NetworkId::parse("n1").unwrap();
        let error = state.remove_network(&id, false).unwrap_err();
        assert!(error.to_string().contains("has published ports of 1 container(s)"));
        let (network, removed) = state.remove_network(&id, true).unwrap().unwrap();
        assert_eq!((network.id.as_str(), removed.len()), ("n1", 1));
        assert_eq!(state.publications().count(), 0);
        assert_eq!(state.remove_network(&id, false), Ok(None));
    }

    #[test]
    fn restoring_refuses_orphans_and_clashes() {
        let mut state = state();
        publish(&mut state, &request("c1", &[("", 8080, 0)])).unwrap();
        let mut clash = state.publication(&ContainerId::parse("c1").unwrap()).unwrap().clone();
        clash.container = ContainerId::parse("c2").unwrap();
        assert!(state.restore_publication(clash.clone()).is_err());
        clash.network = NetworkId::parse("gone").unwrap();
        assert_eq!(
            state.restore_publication(clash).unwrap_err(),
            Error::NetworkNotFound { id: "gone".into() }
        );
    }
}
