//! TCP: accept on the host port, connect to the container, relay both ways until each
//! side has closed (half-closes are passed on, so request/response exchanges that end
//! with a shutdown work). The bytes move with splice(2), socket to pipe to socket, never
//! through user space (see [`splice`]); a connection that can get no pipe is copied
//! instead. Connections are owned by the accept task's `JoinSet`, so stopping the proxy
//! closes them too, as killing docker-proxy does.
//!
//! Where the host's congestion control is BBR, the relay's own sending on a hop that
//! never leaves the host (to the container; to a loopback client) uses CUBIC instead:
//! see [`unpaced`].

mod splice;

use std::{
    io,
    net::{SocketAddr, SocketAddrV4},
    os::fd::{AsRawFd, RawFd},
    time::Duration,
};

use tokio::{
    io::copy_bidirectional,
    net::{TcpListener, TcpSocket, TcpStream},
    task::JoinSet,
};

use super::{
    CONNECT_TIMEOUT,
    traffic::{self, Traffic},
};

pub async fn serve(listener: TcpListener, target: SocketAddrV4) {
    let port = listener.local_addr().map_or(0, |address| address.port());
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    let traffic = traffic::opened("tcp", port);
                    connections.spawn(async move {
                        relay(client, peer, target, traffic).await;
                        tracing::debug!(%peer, %target, "tcp connection closed");
                    });
                }
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, %target, "tcp proxy cannot accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn relay(mut client: TcpStream, peer: SocketAddr, target: SocketAddrV4, traffic: Traffic) {
    let mut upstream = match tokio::time::timeout(CONNECT_TIMEOUT, connect(target)).await {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(error)) => {
            tracing::debug!(%error, %target, "container refused the connection");
            return;
        }
        Err(_) => {
            tracing::debug!(%target, "container did not answer the connection");
            return;
        }
    };
    // As docker-proxy (Go sets it on every TCP connection): the endpoints make their own
    // choice about Nagle's algorithm, the relay adds no delay of its own.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    if peer.ip().is_loopback() {
        unpaced(client.as_raw_fd());
    }
    let result = match splice::relay(&client, &upstream, &traffic).await {
        Err(error) if error.kind() == std::io::ErrorKind::Unsupported => {
            copy_bidirectional(&mut client, &mut upstream).await.map(|(inbound, outbound)| {
                traffic.inbound.inc_by(inbound);
                traffic.outbound.inc_by(outbound);
            })
        }
        result => result,
    };
    if let Err(error) = result {
        tracing::debug!(%error, %target, "tcp relay ended");
    }
}

/// A connection to the container, whose sending side is [`unpaced`] from the start.
async fn connect(target: SocketAddrV4) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    unpaced(socket.as_raw_fd());
    socket.connect(target.into()).await
}

/// The congestion control used instead of a pacing one, in order of preference (reno is
/// always built in and allowed without privileges).
const UNPACED: [&[u8]; 2] = [b"cubic", b"reno"];

/// Switches `socket` from BBR to CUBIC (else Reno), for sending on a hop inside the host:
/// to the container over its veth, or to a client on loopback. BBR paces each socket at
/// the rate it has measured (with a timer per socket where no fq qdisc does it), which on
/// such a hop, with no network queue to spare, only costs. In `bench/ports.sh` on a BBR
/// host, one iperf3 stream through the relay went from about 15 to 24 Gbit/s with the
/// container hop on CUBIC (direct, paced by the client's own BBR: 18), the relay's CPU per
/// byte fell by a quarter, and one the other way (`-R`) from about 15 to 17.5 with the
/// loopback hop on CUBIC; with Reno everywhere, relay and direct both did about 32.
/// Sockets on any other algorithm, the operator's choice, are left alone, and so is a
/// client not on loopback. Best effort: a failure leaves the socket as it was.
pub(super) fn unpaced(socket: RawFd) {
    let mut name = [0u8; 16];
    let mut length = name.len() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `length` bytes into `name` and the length back;
    // `socket` is an open socket for the whole call.
    let got = unsafe {
        libc::getsockopt(
            socket,
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_mut_ptr().cast(),
            &mut length,
        )
    };
    if got != 0 || !name.starts_with(b"bbr") {
        return;
    }
    for algorithm in UNPACED {
        // SAFETY: setsockopt reads `algorithm.len()` bytes from it (no NUL needed: the
        // kernel takes the given length); `socket` is open for the whole call.
        let set = unsafe {
            libc::setsockopt(
                socket,
                libc::IPPROTO_TCP,
                libc::TCP_CONGESTION,
                algorithm.as_ptr().cast(),
                algorithm.len() as libc::socklen_t,
            )
        };
        if set == 0 {
            return;
        }
    }
}
