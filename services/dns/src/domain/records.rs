//! The record tables the resolver answers from, rebuilt from every registration after
//! each change and swapped in whole, so a query always sees one consistent snapshot and
//! never waits for a registration.
//!
//! Scoping follows Docker 20.10's `Sandbox.ResolveName`: the asking container's networks
//! are searched in its endpoint order and the first network that knows the name answers.
//! For a dotted name `a.b.c` the candidates are `a.b.c` on any network, then `a.b` on
//! network `c`, then `a` on network `b.c`. For each candidate, the asker's link aliases
//! come first, then the network's names; a name that is a link alias of the asker is never
//! looked up as an ordinary name. Names of containers on networks the asker is not
//! attached to are unknown here, and so forwarded (DNS-6).

use std::{
    collections::{BTreeSet, HashMap},
    net::Ipv4Addr,
};

use rand::{Rng, seq::SliceRandom};

use super::{
    names,
    registration::{ContainerId, NetworkId, Registration, Upstream},
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

#[derive(Debug, Default)]
pub struct Records {
    scopes: HashMap<ContainerId, Scope>,
    networks: HashMap<NetworkId, NetworkTable>,
    /// Every network, by name: the host's search order.
    all_networks: Vec<NetworkId>,
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

#[derive(Debug, Default)]
struct NetworkTable {
    name: String,
    name_lower: String,
    /// Lower-cased name → every member answering to it, by address.
    names: HashMap<String, BTreeSet<(Ipv4Addr, ContainerId)>>,
    members: HashMap<ContainerId, Ipv4Addr>,
    /// Address → PTR target and owner.
    pointers: HashMap<Ipv4Addr, (String, ContainerId)>,
}

impl Records {
    pub fn build<'a>(registrations: impl IntoIterator<Item = &'a Registration>) -> Self {
        let mut records = Self::default();
        for registration in registrations {
            let id = &registration.container_id;
            for endpoint in &registration.endpoints {
                let table = records.networks.entry(endpoint.network_id.clone()).or_default();
                table.name.clone_from(&endpoint.network_name);
                table.name_lower = endpoint.network_name.to_ascii_lowercase();
                for name in registration.names_on(endpoint) {
                    table.names.entry(name).or_default().insert((endpoint.address, id.clone()));
                }
                table.members.insert(id.clone(), endpoint.address);
                let target = format!("{}.{}.", registration.name, endpoint.network_name);
                table.pointers.insert(endpoint.address, (target, id.clone()));
            }
            let scope = Scope {
                networks: registration.endpoints.iter().map(|e| e.network_id.clone()).collect(),
                links: registration
                    .link_aliases
                    .iter()
                    .map(|link| (names::normalise(&link.alias), link.target.clone()))
                    .collect(),
                upstreams: registration.upstreams.clone(),
                forwards: registration.endpoints.iter().any(|endpoint| !endpoint.internal),
            };
            records.scopes.insert(id.clone(), scope);
        }
        let mut all: Vec<_> = records.networks.iter().map(|(id, t)| (&t.name, id)).collect();
        all.sort();
        records.all_networks = all.into_iter().map(|(_, id)| id.clone()).collect();
        records
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
                .filter_map(|id| Some((id, self.networks.get(id)?.pointers.get(&address)?)))
                .map(|(id, (target, _))| Outcome::Pointer {
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
                    if let Some(address) = table.members.get(target) {
                        return Some((id, vec![*address]));
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
            for (address, (target, container)) in &table.pointers {
                rows.push(row("PTR", names::reverse_name(*address), target.clone(), container));
            }
        }
        rows.sort();
        rows
    }
}

#[cfg(test)]
mod tests;
