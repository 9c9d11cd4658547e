//! The record tables the resolver answers from, kept up to date one registration at a
//! time and swapped in whole, so a query always sees one consistent snapshot and never
//! waits for a registration. Every table that grows with the containers is a persistent
//! map: a change copies only the O(log N) nodes on its path and shares the rest with the
//! snapshot being answered from, so publishing a change costs the same with ten
//! containers as with thousands, and a snapshot is cloned in O(1).
//!
//! Where registrations disagree (two claim one address on a network, or a stale one
//! names a network differently) the greatest container id wins, so the tables depend
//! only on the set of registrations, never on the order they came in.
//!
//! Scoping follows Docker 20.10's `Sandbox.ResolveName`: the asking container's networks
//! are searched in its endpoint order and the first network that knows the name answers.
//! For a dotted name `a.b.c` the candidates are `a.b.c` on any network, then `a.b` on
//! network `c`, then `a` on network `b.c`. For each candidate, the asker's link aliases
//! come first, then the network's names; a name that is a link alias of the asker is never
//! looked up as an ordinary name. Names of containers on networks the asker is not
//! attached to are unknown here, and so forwarded (DNS-6).

use std::{collections::HashMap, net::Ipv4Addr, sync::Arc};

use rand::{Rng, seq::SliceRandom};

use super::{
    names,
    registration::{ContainerId, Endpoint, NetworkId, Registration, Upstream},
};

/// Who asks: a registered container (through its own listener), or the host (through
/// the optional listen address of the config), which sees every network.
#[derive(Debug, Clone, Copy)]
pub enum Asker<'a> {
    Container(&'a ContainerId),
    Host,
}

/// The record types the resolver treats differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    A,
    Ptr,
    /// Any other type: empty NOERROR for a known name (DNS-3).
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A records, shuffled when there are several (DNS-5).
    Addresses { network: NetworkId, addresses: Vec<Ipv4Addr> },
    /// `<container name>.<network name>.` for a container's address (DNS-4).
    Pointer { network: NetworkId, target: String },
    /// A known name asked for another type.
    NoData,
    /// Not ours: ask the upstream servers.
    Forward,
}

/// One row of [`Records::list`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecordRow {
    pub network_name: String,
    pub kind: &'static str,
    pub name: String,
    pub value: String,
    pub network_id: NetworkId,
    pub container_id: ContainerId,
}

#[derive(Debug, Default, Clone)]
pub struct Records {
    /// Behind `Arc`: a change copies the map nodes on its path, and with them every
    /// value they hold, so values must be cheap to copy.
    scopes: imbl::HashMap<ContainerId, Arc<Scope>>,
    networks: imbl::HashMap<NetworkId, NetworkTable>,
    /// Every network, by name: the host's search order.
    all_networks: Arc<[NetworkId]>,
}

/// What one container may see.
#[derive(Debug)]
struct Scope {
    networks: Vec<NetworkId>,
    /// Lower-cased link alias → target container.
    links: HashMap<String, ContainerId>,
    upstreams: Vec<Upstream>,
    /// False when every network is `--internal`: such a container has no way out, and
    /// forwarding its queries from the host would be one.
    forwards: bool,
}

/// One network's records; it exists while the network has members.
#[derive(Debug, Default, Clone)]
struct NetworkTable {
    /// As the greatest member gives it.
    name: String,
    name_lower: String,
    /// Lower-cased name → every member answering to it, by address.
    names: imbl::HashMap<String, imbl::OrdSet<(Ipv4Addr, ContainerId)>>,
    /// Ordered, so that the greatest member, which names the network, is at hand.
    members: imbl::OrdMap<ContainerId, Member>,
    /// Address → PTR target of every member claiming it; the greatest one answers.
    /// All are kept so that the next one answers when it leaves.
    pointers: imbl::HashMap<Ipv4Addr, imbl::OrdMap<ContainerId, String>>,
}

#[derive(Debug, Clone)]
struct Member {
    address: Ipv4Addr,
    /// The network's name as this member's registration gives it.
    network_name: String,
}

impl Records {
    pub fn build<'a>(registrations: impl IntoIterator<Item = &'a Registration>) -> Self {
        let mut records = Self::default();
        for registration in registrations {
            records.insert(registration);
        }
        records
    }

    /// Adds a container's records. It must not be in the tables already: replacing a
    /// registration is [`Records::remove`] of the old one, then this.
    pub fn insert(&mut self, registration: &Registration) {
        let id = &registration.container_id;
        debug_assert!(!self.scopes.contains_key(id), "{id} inserted twice");
        let mut reorder = false;
        for endpoint in &registration.endpoints {
            let table = self.networks.entry(endpoint.network_id.clone()).or_default();
            reorder |= table.insert(registration, endpoint);
        }
        self.scopes.insert(id.clone(), Arc::new(Scope::of(registration)));
        if reorder {
            self.order_networks();
        }
    }

    /// Drops the records of `registration`, which must be the one inserted: its names and
    /// addresses say what to drop. Other containers' records under the same names or
    /// addresses stay.
    pub fn remove(&mut self, registration: &Registration) {
        let mut reorder = false;
        for endpoint in &registration.endpoints {
            let Some(table) = self.networks.get_mut(&endpoint.network_id) else { continue };
            reorder |= table.remove(registration, endpoint);
            if table.members.is_empty() {
                self.networks.remove(&endpoint.network_id);
                reorder = true;
            }
        }
        self.scopes.remove(&registration.container_id);
        if reorder {
            self.order_networks();
        }
    }

    /// Recomputes the host's order; only needed when a network comes, goes or is renamed,
    /// and there are few networks.
    fn order_networks(&mut self) {
        let mut all: Vec<_> = self.networks.iter().map(|(id, t)| (&t.name, id)).collect();
        all.sort();
        self.all_networks = all.into_iter().map(|(_, id)| id.clone()).collect();
    }

    pub fn is_registered(&self, container: &ContainerId) -> bool {
        self.scopes.contains_key(container)
    }

    /// Whether names this resolver does not know are forwarded for `asker`.
    pub fn forwards(&self, asker: Asker<'_>) -> bool {
        match asker {
            Asker::Container(id) => self.scopes.get(id).is_none_or(|scope| scope.forwards),
            Asker::Host => true,
        }
    }

    /// The container's own upstreams; empty means the host's resolv.conf servers.
    pub fn upstreams(&self, asker: Asker<'_>) -> &[Upstream] {
        match asker {
            Asker::Container(id) => self.scopes.get(id).map_or(&[], |s| &s.upstreams),
            Asker::Host => &[],
        }
    }

    pub fn lookup(
        &self,
        asker: Asker<'_>,
        qname: &str,
        kind: QueryKind,
        rng: &mut impl Rng,
    ) -> Outcome {
        let name = names::normalise(qname);
        let (networks, links) = self.scope(asker);
        if kind == QueryKind::Ptr
            && let Some(address) = names::reverse_ipv4(&name)
        {
            return networks
                .iter()
                .filter_map(|id| Some((id, self.networks.get(id)?.pointer(address)?)))
                .map(|(id, (_, target))| Outcome::Pointer {
                    network: id.clone(),
                    target: target.clone(),
                })
                .next()
                .unwrap_or(Outcome::Forward);
        }
        match self.resolve(networks, links, &name) {
            None => Outcome::Forward,
            Some(_) if kind != QueryKind::A => Outcome::NoData,
            Some((network, mut addresses)) => {
                addresses.shuffle(rng);
                Outcome::Addresses { network: network.clone(), addresses }
            }
        }
    }

    fn scope(&self, asker: Asker<'_>) -> (&[NetworkId], Option<&HashMap<String, ContainerId>>) {
        match asker {
            Asker::Container(id) => match self.scopes.get(id) {
                Some(scope) => (&scope.networks, Some(&scope.links)),
                None => (&[], None),
            },
            Asker::Host => (&self.all_networks, None),
        }
    }

    /// The first network (in the asker's order) that knows `name`, with the addresses it
    /// gives, sorted.
    fn resolve<'s>(
        &'s self,
        networks: &'s [NetworkId],
        links: Option<&HashMap<String, ContainerId>>,
        name: &str,
    ) -> Option<(&'s NetworkId, Vec<Ipv4Addr>)> {
        // `a.b.c` on any network, then `a.b` on network "c", then `a` on network "b.c".
        let mut candidates = vec![(name, None)];
        candidates.extend(
            name.match_indices('.').rev().map(|(dot, _)| (&name[..dot], Some(&name[dot + 1..]))),
        );
        for (base, network_name) in candidates {
            let tables = networks.iter().filter_map(|id| {
                let table = self.networks.get(id)?;
                let wanted = network_name.is_none_or(|n| n == table.name_lower);
                wanted.then_some((id, table))
            });
            let link_target = links.and_then(|links| links.get(base));
            if let Some(target) = link_target {
                for (id, table) in tables {
                    if let Some(member) = table.members.get(target) {
                        return Some((id, vec![member.address]));
                    }
                }
                continue;
            }
            for (id, table) in tables {
                if let Some(members) = table.names.get(base) {
                    return Some((id, members.iter().map(|(address, _)| *address).collect()));
                }
            }
        }
        None
    }

    /// Every A and PTR record of one network, or of all; ordered by network name, type,
    /// name and value.
    pub fn list(&self, network: Option<&NetworkId>) -> Vec<RecordRow> {
        let mut rows = Vec::new();
        for (id, table) in &self.networks {
            if network.is_some_and(|wanted| wanted != id) {
                continue;
            }
            let row = |kind, name: String, value: String, container_id: &ContainerId| RecordRow {
                network_name: table.name.clone(),
                kind,
                name,
                value,
                network_id: id.clone(),
                container_id: container_id.clone(),
            };
            for (name, members) in &table.names {
                for (address, container) in members {
                    rows.push(row("A", name.clone(), address.to_string(), container));
                }
            }
            for address in table.pointers.keys() {
                if let Some((container, target)) = table.pointer(*address) {
                    let name = names::reverse_name(*address);
                    rows.push(row("PTR", name, target.clone(), container));
                }
            }
        }
        rows.sort();
        rows
    }
}

impl Scope {
    fn of(registration: &Registration) -> Self {
        Self {
            networks: registration.endpoints.iter().map(|e| e.network_id.clone()).collect(),
            links: registration
                .link_aliases
                .iter()
                .map(|link| (names::normalise(&link.alias), link.target.clone()))
                .collect(),
            upstreams: registration.upstreams.clone(),
            forwards: registration.endpoints.iter().any(|endpoint| !endpoint.internal),
        }
    }
}

impl NetworkTable {
    /// Adds the member `registration` has through `endpoint`; true if the network is new
    /// or renamed.
    fn insert(&mut self, registration: &Registration, endpoint: &Endpoint) -> bool {
        let id = &registration.container_id;
        let fresh = self.members.is_empty();
        for name in registration.names_on(endpoint) {
            self.names.entry(name).or_default().insert((endpoint.address, id.clone()));
        }
        let target = format!("{}.{}.", registration.name, endpoint.network_name);
        self.pointers.entry(endpoint.address).or_default().insert(id.clone(), target);
        let member =
            Member { address: endpoint.address, network_name: endpoint.network_name.clone() };
        self.members.insert(id.clone(), member);
        self.rename() || fresh
    }

    /// The inverse of [`NetworkTable::insert`]; true if the network is renamed.
    fn remove(&mut self, registration: &Registration, endpoint: &Endpoint) -> bool {
        let id = &registration.container_id;
        let entry = (endpoint.address, id.clone());
        for name in registration.names_on(endpoint) {
            if let Some(members) = self.names.get_mut(&name) {
                members.remove(&entry);
                if members.is_empty() {
                    self.names.remove(&name);
                }
            }
        }
        if let Some(claims) = self.pointers.get_mut(&endpoint.address) {
            claims.remove(id);
            if claims.is_empty() {
                self.pointers.remove(&endpoint.address);
            }
        }
        self.members.remove(id);
        self.rename()
    }

    /// Takes the name the greatest member gives; true if it changed.
    fn rename(&mut self) -> bool {
        let Some((_, member)) = self.members.get_max() else { return false };
        if member.network_name == self.name {
            return false;
        }
        self.name.clone_from(&member.network_name);
        self.name_lower = self.name.to_ascii_lowercase();
        true
    }

    /// The owner and PTR target of `address`.
    fn pointer(&self, address: Ipv4Addr) -> Option<&(ContainerId, String)> {
        self.pointers.get(&address)?.get_max()
    }
}

#[cfg(test)]
mod tests;
