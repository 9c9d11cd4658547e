//! TCP: accept on the host port, connect to the container, relay both ways until each
//! side has closed (half-closes are passed on, so request/response exchanges that end
//! with a shutdown work). The bytes move with splice(2), socket to pipe to socket, never
//! through user space (see [`splice`]); a connection that can get no pipe is copied
//! instead. Connections are owned by the accept task's `JoinSet`, so stopping the proxy
//! closes them too, as killing docker-proxy does.

mod splice;

use std::{net::SocketAddrV4, time::Duration};

use tokio::{
    io::copy_bidirectional,
    net::{TcpListener, TcpStream},
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
                        relay(client, target, traffic).await;
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

async fn relay(mut client: TcpStream, target: SocketAddrV4, traffic: Traffic) {
    let mut upstream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await
    {
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
