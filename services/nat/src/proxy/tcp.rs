//! TCP: accept on the host port, connect to the container, copy both ways until each
//! side has closed (half-closes are passed on, so request/response exchanges that end
//! with a shutdown work). Connections are owned by the accept task's `JoinSet`, so
//! stopping the proxy closes them too, as killing docker-proxy does.

use std::{net::SocketAddrV4, time::Duration};

use tokio::{
    io::copy_bidirectional_with_sizes,
    net::{TcpListener, TcpStream},
    task::JoinSet,
};

use super::CONNECT_TIMEOUT;

/// Bytes moved per read/write in each direction. tokio's default (8 KiB) caps a relay at
/// about a fifth of the direct path on loopback (bench/ports.sh: one core saturated by
/// syscalls); 64 KiB, as docker-proxy's splice uses, reaches its range for 128 KiB per
/// open connection.
const RELAY_BUFFER: usize = 64 * 1024;

pub async fn serve(listener: TcpListener, target: SocketAddrV4) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    connections.spawn(async move {
                        relay(client, target).await;
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

async fn relay(mut client: TcpStream, target: SocketAddrV4) {
    let upstream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
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
    let mut upstream = upstream;
    if let Err(error) =
        copy_bidirectional_with_sizes(&mut client, &mut upstream, RELAY_BUFFER, RELAY_BUFFER).await
    {
        tracing::debug!(%error, %target, "tcp relay ended");
    }
}
