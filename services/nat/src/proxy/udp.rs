//! UDP: one socket on the host port and a flow table keyed by client address. Each flow
//! has its own upstream socket connected to the container, so replies find their client,
//! and a task that relays the container's datagrams back through the host socket. A
//! flow without a datagram in either direction for the idle timeout is dropped, which
//! closes its upstream socket. Flow tasks belong to the proxy's `JoinSet`, so stopping
//! the proxy ends them all.

use std::{
    collections::HashMap,
    net::{SocketAddr, SocketAddrV4},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    net::UdpSocket,
    task::{AbortHandle, JoinSet},
    time::Instant,
};

use super::traffic::{self, Traffic};

/// Flows one binding keeps at once; beyond that new clients are dropped (with a warning)
/// rather than exhausting file descriptors.
const MAX_FLOWS: usize = 1024;
/// The largest UDP payload.
const DATAGRAM: usize = 65_535;

struct Flow {
    upstream: Arc<UdpSocket>,
    /// Milliseconds since the proxy started, at the last datagram either way.
    last_seen: Arc<AtomicU64>,
    task: AbortHandle,
    traffic: Traffic,
}

pub async fn serve(socket: UdpSocket, target: SocketAddrV4, idle: Duration) {
    let socket = Arc::new(socket);
    let started = Instant::now();
    let now = move || started.elapsed().as_millis() as u64;
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut sweep =
        tokio::time::interval((idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(5)));
    let mut buffer = vec![0u8; DATAGRAM];
    let port = socket.local_addr().map_or(0, |address| address.port());
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buffer) => {
                let (length, client) = match received {
                    Ok(received) => received,
                    Err(error) => {
                        // An ICMP error from an earlier send; the socket stays usable.
                        tracing::debug!(%error, %target, "udp proxy receive");
                        continue;
                    }
                };
                if !flows.contains_key(&client) {
                    if flows.len() >= MAX_FLOWS {
                        tracing::warn!(%client, %target, "udp proxy has too many flows, dropping");
                        continue;
                    }
                    let traffic = traffic::opened("udp", port);
                    match open_flow(&socket, client, target, now(), &mut tasks, now, traffic).await {
                        Ok(flow) => {
                            flows.insert(client, flow);
                        }
                        Err(error) => {
                            tracing::warn!(%error, %client, %target, "udp proxy cannot open a flow");
                            continue;
                        }
                    }
                }
                let flow = &flows[&client];
                flow.last_seen.store(now(), Ordering::Relaxed);
                flow.traffic.inbound.inc_by(length as u64);
                if let Err(error) = flow.upstream.send(&buffer[..length]).await {
                    tracing::debug!(%error, %client, %target, "udp proxy send to container");
                }
            }
            _ = sweep.tick() => {
                let limit = idle.as_millis() as u64;
                let current = now();
                flows.retain(|client, flow| {
                    let alive = current.saturating_sub(flow.last_seen.load(Ordering::Relaxed)) < limit;
                    if !alive {
                        tracing::debug!(%client, %target, "udp flow idle, closed");
                        flow.task.abort();
                    }
                    alive
                });
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

async fn open_flow(
    socket: &Arc<UdpSocket>,
    client: SocketAddr,
    target: SocketAddrV4,
    seen: u64,
    tasks: &mut JoinSet<()>,
    now: impl Fn() -> u64 + Send + 'static,
    traffic: Traffic,
) -> std::io::Result<Flow> {
    let upstream = UdpSocket::bind(SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0)).await?;
    upstream.connect(target).await?;
    let upstream = Arc::new(upstream);
    let last_seen = Arc::new(AtomicU64::new(seen));
    let task = tasks.spawn({
        let (socket, upstream, last_seen) = (socket.clone(), upstream.clone(), last_seen.clone());
        let outbound = traffic.outbound.clone();
        async move {
            let mut buffer = vec![0u8; DATAGRAM];
            loop {
                match upstream.recv(&mut buffer).await {
                    Ok(length) => {
                        last_seen.store(now(), Ordering::Relaxed);
                        outbound.inc_by(length as u64);
                        if let Err(error) = socket.send_to(&buffer[..length], client).await {
                            tracing::debug!(%error, %client, "udp proxy send to client");
                        }
                    }
                    // ECONNREFUSED: nothing listens in the container (yet); keep the flow.
                    Err(error) => {
                        tracing::debug!(%error, %client, "udp proxy receive from container");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }
    });
    Ok(Flow { upstream, last_seen, task, traffic })
}
