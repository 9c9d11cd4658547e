//! The service's state: the in-memory [`Graph`] kept in step with the store and with the
//! files on disk.
//!
//! One tokio mutex serialises every mutation from the in-memory change through the flush
//! and the file writes. That makes it the per-file write lock too: no two updates of one
//! file ever interleave, and a linker's hosts file is always rendered from a consistent
//! graph. Holding it across the flush costs little here (mutations are rare: container
//! starts, stops and removals) and keeps the order simple: memory and store first, then
//! files, then the reply.
//!
//! The in-memory change and the sled write happen with no await in between; only the
//! flush awaits, and the file writes are synchronous. A request dropped mid-way
//! (deadline, client gone) therefore leaves memory and store agreeing, at worst with
//! files not yet rewritten, which the caller's retry or the next start repairs.

use std::{collections::HashSet, io, path::PathBuf};

use tokio::sync::Mutex;

use cnet_common::store::Store;

use crate::{
    Error,
    domain::{self, Alias, Container, ContainerId, ContainerSpec, Contents, Graph, HostFiles},
    files::{FileTree, Paths},
    store::Records,
};

/// Where the host's own files are read from.
#[derive(Debug, Clone)]
pub struct HostPaths {
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
}

/// A container with everything a reply shows about it.
pub struct View {
    pub container: Container,
    pub linked_by: Vec<(ContainerId, Alias)>,
    pub paths: Paths,
    pub contents: Contents,
}

/// What removing a container did.
pub struct Removed {
    pub existed: bool,
    pub rewritten: Vec<ContainerId>,
}

pub struct Registry {
    graph: Mutex<Graph>,
    records: Records,
    files: FileTree,
    host: HostPaths,
}

impl Registry {
    /// Loads every container from `store` and rewrites all their files, so that files
    /// lost in a reboot come back and stale ones are corrected. A file that cannot be
    /// written is logged, not fatal: the service is still needed for the others.
    pub async fn open(store: Store, files: FileTree, host: HostPaths) -> Result<Self, Error> {
        let records = Records::open(store)?;
        let graph = records.load()?;
        let registry = Self { graph: Mutex::new(Graph::default()), records, files, host };
        let known: HashSet<&str> = graph.iter().map(|c| c.spec.id.as_str()).collect();
        for stale in registry.files.prune(&known)? {
            tracing::info!(container = %stale, "removed files of an unknown container");
        }
        let host_files = registry.read_host()?;
        let mut rewritten = 0;
        for container in graph.iter() {
            // A running container may have missed a swap (the service died in between).
            match registry.write(&graph, &container.spec.id, &host_files, true) {
                Ok(changed) => rewritten += usize::from(changed),
                Err(error) => tracing::error!(%error, "cannot rewrite a container's files"),
            }
        }
        tracing::info!(containers = graph.len(), rewritten, "state loaded, files rewritten");
        *registry.graph.lock().await = graph;
        Ok(registry)
    }

    /// Stores `spec`, writes its files and rewrites its linkers' hosts files.
    pub async fn put(&self, spec: ContainerSpec) -> Result<View, Error> {
        spec.validate()?;
        let host_files = self.read_host()?;
        let mut graph = self.graph.lock().await;
        let record = graph.record_for(spec);
        let id = record.spec.id.clone();
        let previous = graph.get(&id).cloned();
        if previous.as_ref() != Some(&record) {
            graph.insert(record.clone());
            if let Err(error) = self.records.put(&record, previous.as_ref()).await {
                match previous {
                    Some(previous) => graph.insert(previous),
                    None => graph.remove(&id),
                };
                return Err(error.into());
            }
            tracing::info!(
                container = %id,
                name = %record.spec.name,
                running = record.spec.running,
                link_address = ?record.link_address,
                "container put"
            );
        }
        let contents = graph.render(&id, &host_files).expect("the container was just stored");
        // A new process has the files as they were when it started: show it the latest.
        let new_process = previous.is_none_or(|p| p.spec.process != record.spec.process);
        let mut failures = Vec::new();
        if let Err(error) = self.publish(&record, &contents, new_process) {
            failures.push(error);
        }
        failures.extend(self.rewrite_linkers(&graph, &id, &host_files).1);
        let view = View {
            container: record,
            linked_by: graph.linkers_of(&id),
            paths: self.files.paths(&id),
            contents,
        };
        several(failures).map(|()| view)
    }

    /// Forgets container `id`, deletes its files and rewrites its linkers' hosts files.
    pub async fn remove(&self, id: &ContainerId) -> Result<Removed, Error> {
        let mut graph = self.graph.lock().await;
        let Some(removed) = graph.remove(id) else {
            // Nothing stored; files could still be left from an interrupted removal.
            self.files.remove(id)?;
            return Ok(Removed { existed: false, rewritten: Vec::new() });
        };
        if let Err(error) = self.records.delete(&removed).await {
            graph.insert(removed);
            return Err(error.into());
        }
        tracing::info!(container = %id, name = %removed.spec.name, "container removed");
        let mut failures = Vec::new();
        if let Err(error) = self.files.remove(id) {
            failures.push(error);
        }
        let (rewritten, errors) = match self.read_host() {
            Ok(host_files) => self.rewrite_linkers(&graph, id, &host_files),
            Err(error) => (Vec::new(), vec![error]),
        };
        failures.extend(errors);
        several(failures).map(|()| Removed { existed: true, rewritten })
    }

    pub async fn get(&self, id: &ContainerId) -> Result<View, Error> {
        let graph = self.graph.lock().await;
        let container =
            graph.get(id).ok_or_else(|| domain::Error::NotFound { id: id.to_string() })?;
        self.view(&graph, container)
    }

    pub async fn list(&self) -> Result<Vec<View>, Error> {
        let graph = self.graph.lock().await;
        graph.iter().map(|container| self.view(&graph, container)).collect()
    }

    fn view(&self, graph: &Graph, container: &Container) -> Result<View, Error> {
        let id = &container.spec.id;
        Ok(View {
            container: container.clone(),
            linked_by: graph.linkers_of(id),
            paths: self.files.paths(id),
            contents: self.files.read(id)?,
        })
    }

    /// Writes the files of `id` as the graph says they should be, and shows them to its
    /// process if they changed or `ensure_shown`.
    fn write(
        &self,
        graph: &Graph,
        id: &ContainerId,
        host: &HostFiles,
        ensure_shown: bool,
    ) -> Result<bool, Error> {
        match (graph.get(id), graph.render(id, host)) {
            (Some(container), Some(contents)) => self.publish(container, &contents, ensure_shown),
            _ => Ok(false),
        }
    }

    /// Writes `contents` as the files of `container`; returns whether they changed.
    fn publish(
        &self,
        container: &Container,
        contents: &Contents,
        ensure_shown: bool,
    ) -> Result<bool, Error> {
        let id = &container.spec.id;
        let changed = self.files.write(id, contents)?;
        if let Some(process) = container.spec.process
            && (changed || ensure_shown)
        {
            self.files.show(id, process)?;
        }
        Ok(changed)
    }

    /// Rewrites the files of every container linking to `target`; keeps going past
    /// failures. Returns the linkers and the failures.
    fn rewrite_linkers(
        &self,
        graph: &Graph,
        target: &ContainerId,
        host: &HostFiles,
    ) -> (Vec<ContainerId>, Vec<Error>) {
        let linkers = graph.linker_ids(target);
        let mut failures = Vec::new();
        for linker in &linkers {
            match self.write(graph, linker, host, false) {
                Ok(true) => {
                    tracing::info!(container = %linker, link_target = %target, "hosts file rewritten")
                }
                Ok(false) => {}
                Err(error) => failures.push(error),
            }
        }
        (linkers, failures)
    }

    /// The host's files; a missing one reads as empty (Docker then writes an empty copy
    /// or falls back to default nameservers).
    fn read_host(&self) -> Result<HostFiles, Error> {
        let read = |path: &PathBuf| match std::fs::read(path) {
            Ok(bytes) => Ok(bytes),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(error) => Err(Error::io("read host file", path)(error)),
        };
        Ok(HostFiles { hosts: read(&self.host.hosts)?, resolv_conf: read(&self.host.resolv_conf)? })
    }
}

fn several(mut failures: Vec<Error>) -> Result<(), Error> {
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.remove(0)),
        _ => Err(Error::Several(failures)),
    }
}
