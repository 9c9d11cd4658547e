//! The userland proxy, in-process: one tokio task per binding instead of Docker's one
//! `docker-proxy` process per binding (PUB-2). [`bind`] opens the listening socket
//! before a mapping is acknowledged (a port held by another process fails here, with
//! docker-proxy's wording), [`Proxy::start`] serves it, and [`Proxy::stop`] returns only
//! once the socket and every connection or flow of that binding are closed. IPv4 only:
//! the listener is `0.0.0.0:port` or the given host address.

mod tcp;
mod traffic;
mod udp;

use std::{
    fmt, io,
    net::{SocketAddr, SocketAddrV4},
    time::Duration,
};

use tokio::{
    net::{TcpListener, TcpSocket, UdpSocket},
    task::JoinHandle,
};

use crate::domain::{Binding, Protocol};

/// How long a TCP proxy waits for the container to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pending connections the kernel queues before the proxy accepts them.
const BACKLOG: u32 = 1024;

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// A UDP flow (one client address) is forgotten after this long without a packet in
    /// either direction.
    pub udp_idle_timeout: Duration,
}

/// A bound, not yet served, listening socket.
pub enum Listener {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

/// Why a listener could not be opened, worded like docker-proxy's message after
/// "Error starting userland proxy: ".
#[derive(Debug, thiserror::Error)]
pub struct BindError {
    pub protocol: Protocol,
    pub address: SocketAddrV4,
    pub step: &'static str,
    #[source]
    pub source: io::Error,
}

impl BindError {
    pub fn in_use(&self) -> bool {
        self.source.kind() == io::ErrorKind::AddrInUse
    }
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Go prints the bare lowercase strerror ("address already in use").
        let reason = match self.source.raw_os_error() {
            Some(code) => {
                let text = nix::errno::Errno::from_raw(code).desc();
                let mut chars = text.chars();
                chars
                    .next()
                    .map(|first| first.to_lowercase().chain(chars).collect())
                    .unwrap_or_default()
            }
            None => self.source.to_string(),
        };
        write!(f, "listen {}4 {}: {}: {reason}", self.protocol, self.address, self.step)
    }
}

/// Opens the listening socket of `binding`. Must run inside the tokio runtime.
pub fn bind(binding: &Binding) -> Result<Listener, BindError> {
    let address = SocketAddrV4::new(binding.host_ip, binding.host_port);
    let error = |step, source| BindError { protocol: binding.protocol, address, step, source };
    match binding.protocol {
        Protocol::Tcp => {
            let socket = TcpSocket::new_v4().map_err(|e| error("socket", e))?;
            // As Go's net.Listen: lets a restarted service listen again while old
            // connections linger in TIME_WAIT; it never allows two listeners.
            socket.set_reuseaddr(true).map_err(|e| error("setsockopt", e))?;
            socket.bind(SocketAddr::V4(address)).map_err(|e| error("bind", e))?;
            Ok(Listener::Tcp(socket.listen(BACKLOG).map_err(|e| error("listen", e))?))
        }
        Protocol::Udp => {
            // No SO_REUSEADDR for UDP: it would let two sockets share the port.
            let socket = std::net::UdpSocket::bind(address).map_err(|e| error("bind", e))?;
            socket.set_nonblocking(true).map_err(|e| error("bind", e))?;
            Ok(Listener::Udp(UdpSocket::from_std(socket).map_err(|e| error("bind", e))?))
        }
    }
}

/// A running proxy; dropping it aborts it, [`Proxy::stop`] also waits for the close.
pub struct Proxy {
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Serves `listener`, relaying to `target` (the container's address and port).
    pub fn start(listener: Listener, target: SocketAddrV4, settings: Settings) -> Proxy {
        let task = match listener {
            Listener::Tcp(listener) => tokio::spawn(tcp::serve(listener, target)),
            Listener::Udp(socket) => {
                tokio::spawn(udp::serve(socket, target, settings.udp_idle_timeout))
            }
        };
        Proxy { task: Some(task) }
    }

    /// Closes the listener and every connection of this binding. Awaiting the aborted
    /// task means its future, and so every socket it owns, has been dropped.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests;
