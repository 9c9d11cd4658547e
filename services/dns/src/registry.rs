//! The service's state: every registration with its listener, kept in step with the
//! store, and the record tables made from them, updated by each change (the old
//! registration's records out, the new one's in) and published to the handlers as a
//! snapshot.
//!
//! One tokio mutex serialises registrations from the namespace check through the flush
//! to the publication, so the store, the listeners and the tables always describe the
//! same set of containers, also across restarts. Queries never take it: they read the
//! published snapshot.
//!
//! Order of a registration: check the namespace, open the listener if it needs a new one,
//! store and flush, then publish and close a replaced listener. A failure before the
//! flush closes what was opened and changes nothing else, so a refused registration
//! leaves no trace; a reply is only sent once the names answer.

use std::{collections::BTreeMap, sync::Arc};

use tokio::sync::Mutex;

use cnet_common::store::Store;

use crate::{
    Error,
    domain::{
        Asker, ContainerId, NetworkId, Outcome, QueryKind, Records, Registration, Upstream,
        records::RecordRow,
    },
    handler::{Handler, Resolver},
    listener::{self, ContainerListener, NetnsIdentity},
    store::Containers,
};

pub struct Registry {
    state: Mutex<State>,
    containers: Containers,
    resolver: Arc<Resolver>,
}

/// The entries and the tables made from their registrations: only changed together.
#[derive(Default)]
struct State {
    entries: BTreeMap<ContainerId, Entry>,
    records: Records,
}

struct Entry {
    registration: Registration,
    netns: NetnsIdentity,
    listener: Option<ContainerListener>,
    /// Why `listener` is None.
    listen_error: Option<String>,
}

/// A registration as the API shows it.
pub struct ContainerView {
    pub registration: Registration,
    pub listening: bool,
    pub listen_error: Option<String>,
}

impl Entry {
    fn view(&self) -> ContainerView {
        ContainerView {
            registration: self.registration.clone(),
            listening: self.listener.is_some(),
            listen_error: self.listen_error.clone(),
        }
    }
}

impl Registry {
    /// Loads every registration and listens again in each namespace that still exists and
    /// is still the one registered. A container whose namespace is gone keeps its record
    /// (and its names, for the others) until it is deregistered.
    pub async fn open(store: Store, resolver: Arc<Resolver>) -> Result<Self, Error> {
        let containers = Containers::open(store)?;
        let mut entries: BTreeMap<ContainerId, Entry> = BTreeMap::new();
        for (registration, netns) in containers.load()? {
            let entry = Entry { registration, netns, listener: None, listen_error: None };
            entries.insert(entry.registration.container_id.clone(), entry);
        }
        let records = Records::build(entries.values().map(|entry| &entry.registration));
        let registry = Self { state: Mutex::default(), containers, resolver };
        // The tables go first: a listener answers from its first packet on.
        registry.resolver.publish(records.clone());
        for (id, entry) in &mut entries {
            let path = &entry.registration.netns_path;
            let opened = match listener::identify(path) {
                Ok(current) if current == entry.netns => {
                    let handler = Handler::for_container(id.clone(), registry.resolver.clone());
                    ContainerListener::open(path, entry.netns, handler)
                        .await
                        .map_err(|error| error.to_string())
                }
                Ok(_) => Err("the namespace file now refers to another namespace".to_owned()),
                Err(error) => Err(error.to_string()),
            };
            match opened {
                Ok(listener) => entry.listener = Some(listener),
                Err(error) => {
                    tracing::warn!(container = %id, %error, "not listening for container");
                    entry.listen_error = Some(error);
                }
            }
        }
        let listening = entries.values().filter(|entry| entry.listener.is_some()).count();
        tracing::info!(containers = entries.len(), listening, "state loaded");
        *registry.state.lock().await = State { entries, records };
        Ok(registry)
    }

    /// Creates or replaces a registration; see the module comment for the order.
    pub async fn register(&self, registration: Registration) -> Result<ContainerView, Error> {
        let netns = listener::identify(&registration.netns_path)?;
        let id = registration.container_id.clone();
        let mut state = self.state.lock().await;
        // Same namespace and still listening: the sockets stay as they are, so clients
        // in the middle of a TCP exchange never notice a record change.
        let keep = state.entries.get(&id).is_some_and(|e| e.netns == netns && e.listener.is_some());
        let opened = if keep {
            None
        } else {
            let handler = Handler::for_container(id.clone(), self.resolver.clone());
            Some(ContainerListener::open(&registration.netns_path, netns, handler).await?)
        };
        if let Err(error) = self.containers.put(&registration, netns).await {
            if let Some(listener) = opened {
                listener.close().await;
            }
            return Err(error.into());
        }
        let old_listener = state.remove(&id).and_then(|entry| entry.listener);
        let (listener, replaced) = match opened {
            Some(new) => (Some(new), old_listener),
            None => (old_listener, None),
        };
        let entry = Entry { registration, netns, listener, listen_error: None };
        let view = entry.view();
        state.insert(entry);
        self.publish(&state);
        if let Some(old) = replaced {
            old.close().await;
        }
        tracing::info!(
            container = %id,
            name = %view.registration.name,
            networks = view.registration.endpoints.len(),
            new_listener = !keep,
            "container registered"
        );
        Ok(view)
    }

    /// Forgets a container and closes its listener; false if it was not registered.
    pub async fn deregister(&self, id: &ContainerId) -> Result<bool, Error> {
        let mut state = self.state.lock().await;
        let stored = self.containers.delete(id).await?;
        let entry = state.remove(id);
        self.publish(&state);
        let known = stored || entry.is_some();
        if let Some(listener) = entry.and_then(|entry| entry.listener) {
            listener.close().await;
        }
        if known {
            tracing::info!(container = %id, "container deregistered");
        }
        Ok(known)
    }

    /// Every registration, ordered by name.
    pub async fn containers(&self) -> Vec<ContainerView> {
        let state = self.state.lock().await;
        let mut views: Vec<ContainerView> = state.entries.values().map(Entry::view).collect();
        views.sort_by(|a, b| a.registration.name.cmp(&b.registration.name));
        views
    }

    /// What the resolver would do with `name` asked by `container`, and the upstreams a
    /// forwarded query would go to.
    pub fn lookup(
        &self,
        container: &ContainerId,
        name: &str,
        kind: QueryKind,
    ) -> Result<(Outcome, Vec<Upstream>), Error> {
        let records = self.resolver.records();
        if !records.is_registered(container) {
            return Err(Error::NotRegistered { container: container.to_string() });
        }
        let asker = Asker::Container(container);
        let outcome = records.lookup(asker, name, kind, &mut rand::rng());
        let mut upstreams = records.upstreams(asker).to_vec();
        if upstreams.is_empty() {
            upstreams = self.resolver.forwarder().host_upstreams();
        }
        Ok((outcome, upstreams))
    }

    pub fn records(&self, network: Option<&NetworkId>) -> Vec<RecordRow> {
        self.resolver.records().list(network)
    }

    /// Closes every listener, at shutdown. The registrations stay stored.
    pub async fn close_all(&self) {
        let mut state = self.state.lock().await;
        for entry in state.entries.values_mut() {
            if let Some(listener) = entry.listener.take() {
                listener.close().await;
            }
        }
    }

    /// Publishes a clone of the tables, which shares all their structure: O(1).
    fn publish(&self, state: &State) {
        self.resolver.publish(state.records.clone());
    }
}

impl State {
    /// Adds an entry whose container has none.
    fn insert(&mut self, entry: Entry) {
        self.records.insert(&entry.registration);
        self.entries.insert(entry.registration.container_id.clone(), entry);
    }

    fn remove(&mut self, id: &ContainerId) -> Option<Entry> {
        let entry = self.entries.remove(id)?;
        self.records.remove(&entry.registration);
        Some(entry)
    }
}
