//! The service's state and the operations on it: the in-memory [`State`], the running
//! proxies, the store and the firewall, kept in step behind one tokio mutex.
//!
//! The mutex is held across the bind, the iptables batch and the flush on purpose: a
//! port becomes visible to the next request only once it is bound, ruled and durable,
//! and the periodic check never sees half a change. Memory mirrors the store; the
//! kernel (rules, listeners) is brought to memory. A failed Publish undoes everything it
//! did in memory, in the tables and on sockets, so nothing is left behind.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddrV4,
    ops::RangeInclusive,
};

use tokio::sync::Mutex;

use crate::{
    Error,
    domain::{
        Binding, ContainerId, HostPort, Network, NetworkId, Publication, PublishRequest, State,
        ports::{DEFAULT_RANGE, parse_range},
        state::PublishPlan,
    },
    firewall::Firewall,
    proxy::{self, Listener, Proxy},
    store::Records,
};

const PORT_RANGE_FILE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
/// Ports a random pick may find held by another process before Publish gives up.
const MAX_BIND_RETRIES: usize = 64;

pub struct Registry {
    inner: Mutex<Inner>,
    records: Records,
    firewall: Firewall,
    settings: proxy::Settings,
}

#[derive(Default)]
struct Inner {
    state: State,
    /// One per binding of the state, keyed by the binding (bindings never overlap).
    proxies: HashMap<Binding, Proxy>,
    /// Bindings whose listener could not be re-opened, already reported once.
    reported: HashSet<Binding>,
}

fn target(publication: &Publication, binding: &Binding) -> SocketAddrV4 {
    SocketAddrV4::new(publication.container_ip, binding.container_port)
}

impl Registry {
    /// Loads the records, brings the rules to them (adding what is missing, removing
    /// what is stale) and re-opens every proxy. A listener that cannot be opened is
    /// reported and retried by [`Registry::check`]; a firewall failure stops the start.
    pub async fn open(
        records: Records,
        firewall: Firewall,
        settings: proxy::Settings,
    ) -> Result<Self, Error> {
        let state = records.load().await?;
        let registry = Self {
            inner: Mutex::new(Inner { state, ..Inner::default() }),
            records,
            firewall,
            settings,
        };
        let mut inner = registry.inner.lock().await;
        let changed = registry.sync(&inner.state).await?;
        let networks = inner.state.networks().count();
        let publications = inner.state.publications().count();
        tracing::info!(networks, publications, ?changed, "state loaded, rules in place");
        registry.open_missing_proxies(&mut inner);
        drop(inner);
        Ok(registry)
    }

    /// Brings the rules to `state`, and turns IPv4 forwarding on when a network routes
    /// to the outside.
    async fn sync(&self, state: &State) -> Result<Vec<String>, Error> {
        let forwarding = state.networks().any(|network| !network.internal);
        Ok(self.firewall.sync(&state.ruleset(), forwarding).await?)
    }

    /// Brings the rules back after a failed step; its own failure is only logged since
    /// the caller returns the error that caused it, and the check repeats it anyway.
    async fn sync_logged(&self, state: &State) {
        if let Err(error) = self.sync(state).await {
            tracing::error!(%error, "restoring the rules after a failure failed");
        }
    }

    fn open_missing_proxies(&self, inner: &mut Inner) {
        let missing: Vec<(Binding, SocketAddrV4)> = inner
            .state
            .bindings()
            .filter(|(_, _, binding)| !inner.proxies.contains_key(binding))
            .map(|(_, publication, binding)| (*binding, target(publication, binding)))
            .collect();
        for (binding, target) in missing {
            match proxy::bind(&binding) {
                Ok(listener) => {
                    inner.reported.remove(&binding);
                    inner.proxies.insert(binding, Proxy::start(listener, target, self.settings));
                }
                Err(error) if inner.reported.insert(binding) => {
                    tracing::error!(%error, "cannot re-open a published port; retrying")
                }
                Err(_) => {}
            }
        }
    }

    /// The periodic check: puts back rules someone else removed or changed and
    /// re-opens listeners that could not be opened before. Containers are not touched,
    /// and neither is `ip_forward`: like dockerd, cnet sets it at start and when a
    /// network is ensured, but does not fight an operator who turns it off.
    pub async fn check(&self) {
        let mut inner = self.inner.lock().await;
        match self.firewall.sync(&inner.state.ruleset(), false).await {
            Ok(changed) if !changed.is_empty() => {
                tracing::warn!(?changed, "cnet rules were changed outside cnet; restored")
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "checking the rules failed"),
        }
        self.open_missing_proxies(&mut inner);
    }

    /// Stops every proxy, waiting until each listener is closed.
    pub async fn close(&self) {
        let mut inner = self.inner.lock().await;
        for (_, proxy) in inner.proxies.drain() {
            proxy.stop().await;
        }
    }

    pub async fn ensure_network(&self, network: Network) -> Result<Network, Error> {
        let mut inner = self.inner.lock().await;
        let existed = inner.state.check_network(&network)?;
        if !existed {
            inner.state.insert_network(network.clone());
            if let Err(error) = self.records.put_network(&network).await {
                let _ = inner.state.remove_network(&network.id, false);
                return Err(error.into());
            }
        }
        if let Err(error) = self.sync(&inner.state).await {
            if !existed {
                let _ = inner.state.remove_network(&network.id, false);
                if let Err(error) = self.records.delete_network(&network, &[]).await {
                    tracing::error!(%error, network = %network.id, "undoing the record failed");
                }
                self.sync_logged(&inner.state).await;
            }
            return Err(error);
        }
        if !existed {
            tracing::info!(network = %network.id, bridge = %network.bridge, subnet = %network.subnet, internal = network.internal, "network ensured");
        }
        Ok(network)
    }

    /// Deletes a network's rules (and with `force` its publications); absent is fine.
    pub async fn delete_network(&self, id: &NetworkId, force: bool) -> Result<(), Error> {
        let mut inner = self.inner.lock().await;
        let Some((network, removed)) = inner.state.remove_network(id, force)? else {
            return Ok(());
        };
        if let Err(error) = self.records.delete_network(&network, &removed).await {
            inner.state.insert_network(network);
            for publication in removed {
                inner.state.insert_publication(publication);
            }
            return Err(error.into());
        }
        for publication in &removed {
            stop_proxies(&mut inner, publication).await;
        }
        self.sync(&inner.state).await?;
        tracing::info!(network = %id, publications = removed.len(), "network deleted");
        Ok(())
    }

    pub async fn networks(&self) -> Vec<Network> {
        self.inner.lock().await.state.networks().cloned().collect()
    }

    /// Publishes the ports of `request` (all or nothing), or returns what an identical
    /// earlier request got.
    pub async fn publish(&self, request: PublishRequest) -> Result<Publication, Error> {
        let mut inner = self.inner.lock().await;
        let nothing = || Publication {
            container: request.container.clone(),
            network: request.network.clone(),
            container_ip: request.container_ip,
            requests: request.ports.clone(),
            bindings: Vec::new(),
        };
        match inner.state.plan_publish(&request)? {
            PublishPlan::Existing(publication) => return Ok(publication),
            PublishPlan::Nothing => return Ok(nothing()),
            PublishPlan::New(_) => {}
        }
        // Listeners are bound before anything else: the bind is the conflict check with
        // other processes. On any error below they are dropped, which closes them.
        let (bindings, listeners) = self.bind_all(&mut inner.state, &request)?;
        let publication = Publication { bindings, ..nothing() };
        inner.state.insert_publication(publication.clone());
        if let Err(error) = self.sync(&inner.state).await {
            inner.state.remove_publication(&publication.container);
            self.sync_logged(&inner.state).await;
            return Err(error);
        }
        if let Err(error) = self.records.put_publication(&publication).await {
            inner.state.remove_publication(&publication.container);
            self.sync_logged(&inner.state).await;
            return Err(error.into());
        }
        for (binding, listener) in publication.bindings.iter().zip(listeners) {
            let proxy = Proxy::start(listener, target(&publication, binding), self.settings);
            inner.proxies.insert(*binding, proxy);
        }
        let ports: Vec<String> = publication
            .bindings
            .iter()
            .map(|b| format!("{}:{}->{}/{}", b.host_ip, b.host_port, b.container_port, b.protocol))
            .collect();
        tracing::info!(container = %publication.container, ip = %publication.container_ip, ?ports, "ports published");
        Ok(publication)
    }

    fn bind_all(
        &self,
        state: &mut State,
        request: &PublishRequest,
    ) -> Result<(Vec<Binding>, Vec<Listener>), Error> {
        let ephemeral = ephemeral_range();
        let mut bindings = Vec::with_capacity(request.ports.len());
        let mut listeners = Vec::with_capacity(request.ports.len());
        for port in &request.ports {
            let mut refused = Vec::new();
            loop {
                let binding = state.allocate(port, &bindings, &refused, ephemeral.clone())?;
                match proxy::bind(&binding) {
                    Ok(listener) => {
                        bindings.push(binding);
                        listeners.push(listener);
                        break;
                    }
                    // A picked port that another process holds: pick the next one.
                    Err(error)
                        if error.in_use()
                            && port.host_port != HostPort::Fixed(binding.host_port)
                            && refused.len() < MAX_BIND_RETRIES =>
                    {
                        refused.push(binding.host_port)
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        }
        Ok((bindings, listeners))
    }

    /// Removes a container's publication; None if it had none.
    pub async fn unpublish(&self, id: &ContainerId) -> Result<Option<Publication>, Error> {
        let mut inner = self.inner.lock().await;
        let Some(publication) = inner.state.remove_publication(id) else { return Ok(None) };
        if let Err(error) = self.records.delete_publication(&publication).await {
            inner.state.insert_publication(publication);
            return Err(error.into());
        }
        stop_proxies(&mut inner, &publication).await;
        // If this fails the record is gone already; the periodic check removes the rules.
        self.sync(&inner.state).await?;
        tracing::info!(container = %id, ports = publication.bindings.len(), "ports unpublished");
        Ok(Some(publication))
    }

    /// One container's publication, or all of them ordered by container id.
    pub async fn publications(&self, container: Option<&ContainerId>) -> Vec<Publication> {
        let inner = self.inner.lock().await;
        match container {
            Some(id) => inner.state.publication(id).cloned().into_iter().collect(),
            None => inner.state.publications().cloned().collect(),
        }
    }
}

async fn stop_proxies(inner: &mut Inner, publication: &Publication) {
    for binding in &publication.bindings {
        inner.reported.remove(binding);
        if let Some(proxy) = inner.proxies.remove(binding) {
            proxy.stop().await;
        }
    }
}

/// The namespace's ephemeral range (PUB-6); the kernel default if it cannot be read.
fn ephemeral_range() -> RangeInclusive<u16> {
    match std::fs::read_to_string(PORT_RANGE_FILE).ok().as_deref().and_then(parse_range) {
        Some(range) => range,
        None => {
            tracing::warn!(file = PORT_RANGE_FILE, "cannot read the ephemeral port range");
            DEFAULT_RANGE
        }
    }
}
