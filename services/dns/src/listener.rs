//! The resolver's sockets: 127.0.0.11:53, UDP and TCP, inside each container's network
//! namespace, served on the service's runtime: UDP by our own loop ([`UdpServer`]), TCP
//! by a hickory [`Server`].
//!
//! A socket belongs to the namespace of the thread that created it, for its whole life,
//! and entering a namespace changes the calling thread for good. So the sockets are
//! created on a fresh OS thread that enters the namespace, binds and ends; never on a
//! tokio worker, which would go on serving everything else from inside the container.
//! The sockets are then handed to the runtime, which does not care where they live.
//!
//! A listener is opened when a container is registered (or the service starts) and
//! closed only when it is deregistered or moves to another namespace: record changes
//! swap the tables the handler reads and never touch a socket.

use std::{
    fs::File,
    io,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::Path,
    time::Duration,
};

use hickory_server::Server;
use nix::sched::{CloneFlags, setns};
use serde::{Deserialize, Serialize};

use crate::{Error, domain, handler::Handler, udp::UdpServer};

/// Where Docker's embedded DNS listens inside a container (DNS-1).
pub const RESOLVER_ADDRESS: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 11), 53);

/// A TCP client that sends nothing for this long is disconnected.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection before the handler waits for the client.
const TCP_RESPONSE_BUFFER: usize = 32;

/// Which namespace a namespace file refers to: the device and inode of its nsfs file,
/// stable for the namespace's life and never shared by two living namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetnsIdentity {
    pub dev: u64,
    pub ino: u64,
}

/// Checks that `path` is a network namespace and says which one.
pub fn identify(path: &Path) -> Result<NetnsIdentity, domain::Error> {
    let invalid = |reason: String| domain::Error::InvalidNetnsPath {
        value: path.to_string_lossy().into_owned(),
        reason,
    };
    let file = File::open(path).map_err(|error| match error.kind() {
        io::ErrorKind::NotFound => invalid("no such file".into()),
        _ => invalid(error.to_string()),
    })?;
    identify_file(&file).map_err(invalid)
}

fn identify_file(file: &File) -> Result<NetnsIdentity, String> {
    // SAFETY: NS_GET_NSTYPE takes no argument and only inspects the open descriptor; on
    // anything that is not a namespace file it fails with ENOTTY.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), libc::NS_GET_NSTYPE) };
    if kind != libc::CLONE_NEWNET {
        return Err("not a network namespace".into());
    }
    let metadata = file.metadata().map_err(|error| error.to_string())?;
    Ok(NetnsIdentity { dev: metadata.dev(), ino: metadata.ino() })
}

/// The resolver listening in one container's namespace.
pub struct ContainerListener {
    serving: Serving,
}

impl ContainerListener {
    /// Binds 127.0.0.11:53 (UDP and TCP) in the namespace at `path`, provided it is still
    /// the namespace `expected` identifies, and starts serving with `handler`.
    pub async fn open(
        path: &Path,
        expected: NetnsIdentity,
        handler: Handler,
    ) -> Result<Self, Error> {
        let target = path.to_owned();
        let bound = on_fresh_thread("cnet-dns-bind", move || bind_in(&target, expected))
            .await
            .and_then(|result| result);
        let (udp, tcp) = bound.map_err(|source| Error::Listen { path: path.to_owned(), source })?;
        let serving = Serving::start(udp, tcp, handler)
            .map_err(|source| Error::Listen { path: path.to_owned(), source })?;
        Ok(Self { serving })
    }

    /// Stops serving and closes both sockets; in-flight TCP connections and forwarded
    /// UDP queries are dropped.
    pub async fn close(self) {
        self.serving.close().await;
    }
}

/// The optional listener on an address of the service's own namespace (`listen` in the
/// config), which answers as the host: every network's names.
pub struct HostListener {
    serving: Serving,
}

impl HostListener {
    pub async fn open(address: SocketAddr, handler: Handler) -> Result<Self, Error> {
        let bind = |error: io::Error| Error::Bind { address, source: error };
        let udp = std::net::UdpSocket::bind(address).map_err(bind)?;
        let tcp = std::net::TcpListener::bind(address).map_err(bind)?;
        Ok(Self { serving: Serving::start(udp, tcp, handler).map_err(bind)? })
    }

    pub async fn close(self) {
        self.serving.close().await;
    }
}

/// Both halves of a listener, on the current runtime.
struct Serving {
    udp: UdpServer,
    tcp: Server<Handler>,
}

impl Serving {
    fn start(
        udp: std::net::UdpSocket,
        tcp: std::net::TcpListener,
        handler: Handler,
    ) -> io::Result<Self> {
        tcp.set_nonblocking(true)?;
        let tcp_listener = tokio::net::TcpListener::from_std(tcp)?;
        let mut tcp = Server::new(handler.clone());
        tcp.register_listener(tcp_listener, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
        Ok(Self { udp: UdpServer::start(udp, handler)?, tcp })
    }

    async fn close(mut self) {
        self.udp.close().await;
        if let Err(error) = self.tcp.shutdown_gracefully().await {
            tracing::warn!(%error, "TCP listener stopped with an error");
        }
    }
}

/// Runs on a fresh thread: enters the namespace and binds both sockets there.
fn bind_in(
    path: &Path,
    expected: NetnsIdentity,
) -> io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let file = File::open(path)?;
    // The same descriptor is checked and entered, so the namespace cannot change between
    // the check and setns.
    let identity = identify_file(&file).map_err(io::Error::other)?;
    if identity != expected {
        return Err(io::Error::other("the namespace file now refers to another namespace"));
    }
    setns(&file, CloneFlags::CLONE_NEWNET)?;
    let udp = std::net::UdpSocket::bind(RESOLVER_ADDRESS)?;
    // std sets SO_REUSEADDR on listeners, so connections of a killed predecessor left in
    // TIME_WAIT do not keep a restarted service from binding again.
    let tcp = std::net::TcpListener::bind(RESOLVER_ADDRESS)?;
    Ok((udp, tcp))
}

/// Runs `work` on a new OS thread that exits when it is done.
async fn on_fresh_thread<T, F>(name: &str, work: F) -> io::Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        let _ = done.send(work());
    })?;
    result.await.map_err(|_| io::Error::other(format!("thread {name} panicked")))
}
