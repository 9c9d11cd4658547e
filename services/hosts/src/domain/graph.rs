//! The containers the service knows and the legacy-link graph between them.
//!
//! Links are stored on the linker (its spec lists targets by id), so the graph needs no
//! second copy: the reverse direction, "who links to X", is a scan, which for the number
//! of containers on one host is cheaper than keeping an index in step. A link whose
//! target is unknown (not put yet, or removed) is kept and writes nothing.

use std::{collections::BTreeMap, net::IpAddr};

use super::{
    hosts::{self, LinkLine},
    names::{Alias, ContainerId},
    resolv,
    spec::ContainerSpec,
};

/// A container as stored: its description plus the address its linkers write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub spec: ContainerSpec,
    /// The default-bridge address of the last put while running. It outlives a stop,
    /// because Docker leaves the linkers' line alone until the target runs again
    /// (LINK-3).
    pub link_address: Option<IpAddr>,
}

/// The host's own files, read once per request.
#[derive(Debug, Clone, Default)]
pub struct HostFiles {
    pub hosts: Vec<u8>,
    pub resolv_conf: Vec<u8>,
}

/// The three files of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    pub hosts: Vec<u8>,
    pub resolv_conf: Vec<u8>,
    pub hostname: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct Graph {
    containers: BTreeMap<ContainerId, Container>,
}

impl Graph {
    pub fn get(&self, id: &ContainerId) -> Option<&Container> {
        self.containers.get(id)
    }

    /// Every container, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Container> {
        self.containers.values()
    }

    pub fn len(&self) -> usize {
        self.containers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
    }

    /// The record `spec` turns into, given what is known about the container so far.
    pub fn record_for(&self, spec: ContainerSpec) -> Container {
        let link_address = if spec.running {
            spec.default_bridge_address()
        } else {
            self.get(&spec.id).and_then(|known| known.link_address)
        };
        Container { spec, link_address }
    }

    /// Adds or replaces a container; returns the record it replaced.
    pub fn insert(&mut self, container: Container) -> Option<Container> {
        self.containers.insert(container.spec.id.clone(), container)
    }

    pub fn remove(&mut self, id: &ContainerId) -> Option<Container> {
        self.containers.remove(id)
    }

    /// The containers linking to `target`, with their alias, by linker id then in the
    /// order of the linker's links.
    pub fn linkers_of(&self, target: &ContainerId) -> Vec<(ContainerId, Alias)> {
        self.containers
            .values()
            .flat_map(|linker| {
                linker
                    .spec
                    .links
                    .iter()
                    .filter(|link| &link.target == target)
                    .map(|link| (linker.spec.id.clone(), link.alias.clone()))
            })
            .collect()
    }

    /// The ids of the containers linking to `target`, each once.
    pub fn linker_ids(&self, target: &ContainerId) -> Vec<ContainerId> {
        let mut ids: Vec<_> = self.linkers_of(target).into_iter().map(|(id, _)| id).collect();
        ids.dedup();
        ids
    }

    /// The files of container `id` as they should be now; None for an unknown id.
    pub fn render(&self, id: &ContainerId, host: &HostFiles) -> Option<Contents> {
        let spec = &self.get(id)?.spec;
        let links: Vec<LinkLine<'_>> = spec
            .links
            .iter()
            .filter_map(|link| {
                let target = self.get(&link.target)?;
                Some(LinkLine {
                    alias: &link.alias,
                    address: target.link_address?,
                    hostname: &target.spec.hostname,
                    name: &target.spec.name,
                })
            })
            .collect();
        Some(Contents {
            hosts: hosts::render(spec, &links, &host.hosts),
            resolv_conf: resolv::render(spec, &host.resolv_conf),
            hostname: format!("{}\n", spec.hostname).into_bytes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        hosts::STANDARD,
        spec::tests::{endpoint, link, spec},
    };

    fn id(name: &str) -> ContainerId {
        ContainerId::parse(&format!("{name}-id")).unwrap()
    }

    fn put(graph: &mut Graph, spec: ContainerSpec) {
        let record = graph.record_for(spec);
        graph.insert(record);
    }

    fn hosts_tail(graph: &Graph, name: &str) -> String {
        let contents = graph.render(&id(name), &HostFiles::default()).unwrap();
        String::from_utf8(contents.hosts).unwrap().strip_prefix(STANDARD).unwrap().to_owned()
    }

    /// The lab's link scenario (LINK-1, LINK-3): centos3 links centos1, centos5 links
    /// centos4 as db.
    #[test]
    fn links_follow_their_targets() {
        let mut graph = Graph::default();
        put(&mut graph, spec("centos1", Some("172.17.0.2")));
        let mut centos3 = spec("centos3", Some("172.17.0.4"));
        centos3.links.push(link("centos1", "centos1"));
        put(&mut graph, centos3);
        let line = "172.17.0.2\tcentos1 centos1-host\n172.17.0.4\tcentos3-host\n";
        assert_eq!(hosts_tail(&graph, "centos3"), line);
        assert_eq!(hosts_tail(&graph, "centos1"), "172.17.0.2\tcentos1-host\n", "one-way");
        assert_eq!(
            graph.linkers_of(&id("centos1")),
            [(id("centos3"), Alias::parse("centos1").unwrap())]
        );

        // Stopped (no endpoint any more): the old line stays.
        let mut stopped = spec("centos1", None);
        stopped.running = false;
        put(&mut graph, stopped);
        assert_eq!(
            graph.get(&id("centos1")).unwrap().link_address,
            Some("172.17.0.2".parse().unwrap())
        );
        assert_eq!(hosts_tail(&graph, "centos3"), line);

        // Started again with a new address: the line follows.
        put(&mut graph, spec("centos1", Some("172.17.0.7")));
        assert_eq!(
            hosts_tail(&graph, "centos3"),
            "172.17.0.7\tcentos1 centos1-host\n172.17.0.4\tcentos3-host\n"
        );

        // Removed: the line goes, the link stays (and would come back with the target).
        graph.remove(&id("centos1"));
        assert_eq!(hosts_tail(&graph, "centos3"), "172.17.0.4\tcentos3-host\n");
        assert_eq!(graph.linker_ids(&id("centos1")), [id("centos3")]);
    }

    #[test]
    fn alias_and_hostname_differ_from_name() {
        let mut graph = Graph::default();
        let mut centos4 = spec("centos4", Some("172.17.0.5"));
        centos4.hostname = crate::domain::Hostname::parse("dbhost").unwrap();
        put(&mut graph, centos4);
        let mut centos5 = spec("centos5", Some("172.17.0.6"));
        centos5.links.extend([link("centos4", "db"), link("nosuch", "ghost")]);
        put(&mut graph, centos5);
        assert_eq!(
            hosts_tail(&graph, "centos5"),
            "172.17.0.5\tdb dbhost centos4\n172.17.0.6\tcentos5-host\n",
            "an unknown target writes nothing"
        );
    }

    #[test]
    fn only_a_default_bridge_address_is_linkable() {
        let mut graph = Graph::default();
        let mut user = spec("u1", None);
        user.endpoints.push(endpoint("vswitch01", "172.16.1.2"));
        put(&mut graph, user);
        assert_eq!(graph.get(&id("u1")).unwrap().link_address, None);
        let mut stopped_first = spec("s1", Some("172.17.0.9"));
        stopped_first.running = false;
        put(&mut graph, stopped_first);
        assert_eq!(graph.get(&id("s1")).unwrap().link_address, None, "never ran");
        let mut linker = spec("l1", Some("172.17.0.3"));
        linker.links.extend([link("u1", "u1"), link("s1", "s1")]);
        put(&mut graph, linker);
        assert_eq!(hosts_tail(&graph, "l1"), "172.17.0.3\tl1-host\n");
        assert_eq!(graph.len(), 3);
        assert!(graph.render(&id("nosuch"), &HostFiles::default()).is_none());
    }
}
