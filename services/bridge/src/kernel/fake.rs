//! A recording stand-in for the kernel, for tests that need no root: it keeps a small
//! model of interfaces and namespaces (with veth-pair semantics: deleting either end or
//! the namespace of the container end removes both) and records every mutating call, so
//! tests assert on what the agent meant to do.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
};

use ipnet::Ipv4Net;

use super::{Kernel, KernelError, Result};
use crate::domain::{
    Bridge, Endpoint, EndpointObservation, HostPrefix, IfName, Link, PeerObservation,
};

#[derive(Default)]
pub struct Fake {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    links: Vec<Link>,
    next_index: u32,
    namespaces: BTreeSet<PathBuf>,
    /// Container ends, by namespace and name.
    peers: BTreeMap<(PathBuf, String), PeerObservation>,
    /// Host end name to where its container end lives.
    pairs: BTreeMap<String, (PathBuf, String)>,
    /// Prefixes set by the test, e.g. a LAN and docker0's.
    host_prefixes: Vec<HostPrefix>,
    /// Gateway subnet of each bridge, by ifindex.
    bridge_subnets: BTreeMap<u32, Ipv4Net>,
    calls: Vec<String>,
    /// Operations (by call name) that fail from now on.
    failing: BTreeSet<String>,
}

impl State {
    fn add(&mut self, mut link: Link) -> u32 {
        self.next_index += 1;
        link.index = self.next_index;
        self.links.push(link);
        self.next_index
    }

    fn find(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|link| link.name == name)
    }

    fn remove(&mut self, name: &str) {
        let Some(removed) = self.find(name).map(|link| link.index) else {
            return;
        };
        self.links.retain(|link| link.name != name);
        for link in &mut self.links {
            if link.master == Some(removed) {
                link.master = None;
            }
        }
        if let Some(peer) = self.pairs.remove(name) {
            self.peers.remove(&peer);
        }
    }

    fn check(&mut self, call: String) -> Result<()> {
        let op = call.split(' ').next().unwrap_or_default().to_owned();
        self.calls.push(call.clone());
        if self.failing.contains(&op) {
            return Err(KernelError::new(call, io::Error::other("injected failure")));
        }
        Ok(())
    }
}

impl Fake {
    /// A namespace with only `lo`.
    pub fn new() -> Self {
        let fake = Self::default();
        fake.add_link("lo", None, None);
        fake
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake kernel state")
    }

    /// Adds an interface behind the agent's back, e.g. a foreign one or an orphan.
    pub fn add_link(&self, name: &str, kind: Option<&str>, alias: Option<&str>) -> u32 {
        self.state().add(Link {
            index: 0,
            name: name.to_owned(),
            kind: kind.map(str::to_owned),
            alias: alias.map(str::to_owned),
            mac: None,
            master: None,
            mtu: 1500,
            up: true,
        })
    }

    /// Deletes an interface behind the agent's back.
    pub fn remove_link(&self, name: &str) {
        self.state().remove(name);
    }

    /// Makes a namespace exist, as one created by someone else would.
    pub fn add_namespace(&self, path: &Path) {
        self.state().namespaces.insert(path.to_owned());
    }

    /// Makes every later call named `op` (e.g. "create_endpoint") fail.
    pub fn fail(&self, op: &str) {
        self.state().failing.insert(op.to_owned());
    }

    pub fn set_host_prefixes(&self, prefixes: Vec<HostPrefix>) {
        self.state().host_prefixes = prefixes;
    }

    pub fn link(&self, name: &str) -> Option<Link> {
        self.state().find(name).cloned()
    }

    pub fn link_names(&self) -> Vec<String> {
        self.state().links.iter().map(|link| link.name.clone()).collect()
    }

    pub fn namespaces(&self) -> Vec<PathBuf> {
        self.state().namespaces.iter().cloned().collect()
    }

    pub fn peer(&self, netns: &Path, name: &str) -> Option<PeerObservation> {
        self.state().peers.get(&(netns.to_owned(), name.to_owned())).cloned()
    }

    /// The mutating calls made so far, e.g. "ensure_bridge br-n1"; clears the record.
    pub fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut self.state().calls)
    }
}

impl Kernel for Fake {
    async fn links(&self) -> Result<Vec<Link>> {
        Ok(self.state().links.clone())
    }

    async fn link(&self, name: &str) -> Result<Option<Link>> {
        Ok(self.state().links.iter().find(|link| link.name == name).cloned())
    }

    async fn ensure_bridge(&self, bridge: &Bridge) -> Result<u32> {
        let mut state = self.state();
        state.check(format!("ensure_bridge {}", bridge.name))?;
        let wanted = Link {
            index: 0,
            name: bridge.name.to_string(),
            kind: Some("bridge".into()),
            alias: Some(bridge.alias()),
            mac: Some(bridge.marker_mac()),
            master: None,
            mtu: bridge.mtu.get(),
            up: true,
        };
        let index = match state.links.iter_mut().find(|link| link.name == wanted.name) {
            Some(link) => {
                *link = Link { index: link.index, mac: link.mac, ..wanted };
                link.index
            }
            None => state.add(wanted),
        };
        state.bridge_subnets.insert(index, bridge.gateway.trunc());
        Ok(index)
    }

    async fn delete_link(&self, name: &str) -> Result<()> {
        let mut state = self.state();
        state.check(format!("delete_link {name}"))?;
        state.remove(name);
        Ok(())
    }

    async fn netns_alive(&self, path: &Path) -> bool {
        self.state().namespaces.contains(path)
    }

    async fn create_netns(&self, path: &Path) -> Result<()> {
        let mut state = self.state();
        state.check(format!("create_netns {}", path.display()))?;
        state.namespaces.insert(path.to_owned());
        Ok(())
    }

    async fn delete_netns(&self, path: &Path) -> Result<()> {
        let mut state = self.state();
        state.check(format!("delete_netns {}", path.display()))?;
        state.namespaces.remove(path);
        let hosts: Vec<String> = state
            .pairs
            .iter()
            .filter(|(_, (netns, _))| netns == path)
            .map(|(host, _)| host.clone())
            .collect();
        for host in hosts {
            state.remove(&host);
        }
        Ok(())
    }

    async fn observe_endpoint(
        &self,
        endpoint: &Endpoint,
        bridge: &IfName,
        netns: &Path,
    ) -> Result<EndpointObservation> {
        let state = self.state();
        Ok(EndpointObservation {
            host: state.find(endpoint.host_ifname.as_str()).cloned(),
            bridge_index: state.find(bridge.as_str()).map(|link| link.index),
            peer: state.peers.get(&(netns.to_owned(), endpoint.ifname.to_string())).cloned(),
        })
    }

    async fn create_endpoint(
        &self,
        endpoint: &Endpoint,
        bridge: &IfName,
        netns: &Path,
    ) -> Result<()> {
        let mut state = self.state();
        let call = format!("create_endpoint {}", endpoint.host_ifname);
        state.check(call.clone())?;
        let fail =
            |why: &str| Err(KernelError::new(call.clone(), io::Error::other(why.to_owned())));
        let Some(bridge_index) = state.find(bridge.as_str()).map(|link| link.index) else {
            return fail("no bridge");
        };
        if !state.namespaces.contains(netns) {
            return fail("no namespace");
        }
        let peer_key = (netns.to_owned(), endpoint.ifname.to_string());
        if state.find(endpoint.host_ifname.as_str()).is_some()
            || state.peers.contains_key(&peer_key)
        {
            return fail("file exists");
        }
        let host = Link {
            index: 0,
            name: endpoint.host_ifname.to_string(),
            kind: Some("veth".into()),
            alias: Some(endpoint.alias()),
            mac: Some(endpoint.host_marker_mac()),
            master: Some(bridge_index),
            mtu: endpoint.mtu.get(),
            up: true,
        };
        state.add(host.clone());
        let link = Link {
            name: endpoint.ifname.to_string(),
            mac: Some(endpoint.mac),
            master: None,
            ..host
        };
        let peer = PeerObservation {
            link,
            addresses: vec![endpoint.address],
            default_gateways: endpoint
                .gateway
                .filter(|_| endpoint.default_route)
                .into_iter()
                .collect(),
        };
        state.peers.insert(peer_key.clone(), peer);
        state.pairs.insert(endpoint.host_ifname.to_string(), peer_key);
        Ok(())
    }

    async fn host_prefixes(&self) -> Result<Vec<HostPrefix>> {
        let state = self.state();
        let mut prefixes = state.host_prefixes.clone();
        // A bridge's gateway subnet shows up as an address and a link route on it.
        for link in &state.links {
            if let Some(subnet) = state.bridge_subnets.get(&link.index) {
                prefixes.push(HostPrefix { prefix: *subnet, ifindex: Some(link.index) });
            }
        }
        Ok(prefixes)
    }
}
