//! The proxies on loopback, no root needed: a TCP exchange with half-close, the port
//! freed by stop, large streams both ways at once, a half-close from the container's
//! side, many short connections in a row, a bind conflict in docker-proxy's words, UDP
//! echo and flow expiry.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, UdpSocket},
};

use super::*;

const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;
const SETTINGS: Settings = Settings { udp_idle_timeout: Duration::from_millis(300) };

fn binding(port: u16, protocol: Protocol) -> Binding {
    Binding { host_ip: LOCALHOST, host_port: port, container_port: 1, protocol }
}

/// A free loopback port, found by binding port 0 and letting go.
fn free_port() -> u16 {
    std::net::TcpListener::bind((LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// A TCP server that answers "echo:<request>" after the client's half-close.
async fn tcp_upstream() -> SocketAddrV4 {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let SocketAddr::V4(address) = listener.local_addr().unwrap() else { unreachable!() };
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut request = Vec::new();
                stream.read_to_end(&mut request).await.unwrap();
                stream.write_all(b"echo:").await.unwrap();
                stream.write_all(&request).await.unwrap();
            });
        }
    });
    address
}

async fn exchange(port: u16, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect((LOCALHOST, port)).await.unwrap();
    stream.write_all(request).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    reply
}

#[tokio::test]
async fn tcp_relays_and_stop_frees_the_port() {
    let upstream = tcp_upstream().await;
    let port = free_port();
    let listener = bind(&binding(port, Protocol::Tcp)).unwrap();
    let proxy = Proxy::start(listener, upstream, SETTINGS);
    assert_eq!(exchange(port, b"GET / HTTP/1.0\r\n\r\n").await, b"echo:GET / HTTP/1.0\r\n\r\n");
    assert_eq!(exchange(port, b"again").await, b"echo:again");

    // An open connection goes with the proxy.
    let mut open = TcpStream::connect((LOCALHOST, port)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    proxy.stop().await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(2), open.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "connection still open after stop");
    assert!(std::net::TcpListener::bind((LOCALHOST, port)).is_ok(), "port still held");
}

/// A byte pattern that shows misordered, lost or repeated chunks.
fn pattern(length: usize) -> Vec<u8> {
    (0..length).map(|i| (i % 251) as u8 ^ (i / 65_536) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_relays_large_streams_both_ways_at_once() {
    // An upstream that echoes everything back as it arrives, then closes.
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let SocketAddr::V4(upstream) = listener.local_addr().unwrap() else { unreachable!() };
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let (mut read, mut write) = stream.split();
        tokio::io::copy(&mut read, &mut write).await.unwrap();
    });
    let port = free_port();
    let proxy = Proxy::start(bind(&binding(port, Protocol::Tcp)).unwrap(), upstream, SETTINGS);

    let sent = pattern(24 << 20);
    let stream = TcpStream::connect((LOCALHOST, port)).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn({
        let sent = sent.clone();
        async move {
            // Uneven writes, so the relay sees every kind of chunk.
            for chunk in sent.chunks(100_003) {
                write.write_all(chunk).await.unwrap();
            }
            write.shutdown().await.unwrap();
        }
    });
    let mut echoed = Vec::with_capacity(sent.len());
    tokio::time::timeout(Duration::from_secs(60), read.read_to_end(&mut echoed))
        .await
        .expect("echo finished")
        .unwrap();
    writer.await.unwrap();
    assert_eq!(echoed.len(), sent.len());
    assert!(echoed == sent, "the stream came back changed");
    proxy.stop().await;
}

#[tokio::test]
async fn tcp_passes_a_half_close_from_the_container() {
    // The container speaks first, closes its sending side, then still reads the client.
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let SocketAddr::V4(upstream) = listener.local_addr().unwrap() else { unreachable!() };
    let (heard, mut hear) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.write_all(b"banner").await.unwrap();
        stream.shutdown().await.unwrap();
        let mut request = Vec::new();
        stream.read_to_end(&mut request).await.unwrap();
        heard.send(request).await.unwrap();
    });
    let port = free_port();
    let proxy = Proxy::start(bind(&binding(port, Protocol::Tcp)).unwrap(), upstream, SETTINGS);
    let mut stream = TcpStream::connect((LOCALHOST, port)).await.unwrap();
    let mut banner = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut banner))
        .await
        .expect("the container's EOF is passed on")
        .unwrap();
    assert_eq!(banner, b"banner");
    stream.write_all(b"after their EOF").await.unwrap();
    stream.shutdown().await.unwrap();
    let request = tokio::time::timeout(Duration::from_secs(5), hear.recv()).await.unwrap();
    assert_eq!(request.unwrap(), b"after their EOF");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_serves_many_short_connections() {
    let upstream = tcp_upstream().await;
    let port = free_port();
    let proxy = Proxy::start(bind(&binding(port, Protocol::Tcp)).unwrap(), upstream, SETTINGS);
    // Concurrent batches of request/response connections, as a load generator makes:
    // pipes are taken from and given back to the pool all the time.
    for batch in 0..20 {
        let exchanges = (0..16).map(|i| {
            tokio::spawn(async move {
                let request = format!("request {batch}.{i}");
                let reply = exchange(port, request.as_bytes()).await;
                assert_eq!(reply, format!("echo:{request}").into_bytes());
            })
        });
        for exchange in exchanges.collect::<Vec<_>>() {
            exchange.await.unwrap();
        }
    }
    proxy.stop().await;
}

#[tokio::test]
async fn bind_conflicts_use_docker_proxy_wording() {
    let taken = std::net::TcpListener::bind((LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut all = binding(port, Protocol::Tcp);
    all.host_ip = Ipv4Addr::UNSPECIFIED;
    let Err(error) = bind(&all) else { panic!("bind succeeded on a taken port") };
    assert!(error.in_use());
    assert_eq!(
        error.to_string(),
        format!("listen tcp4 0.0.0.0:{port}: bind: address already in use")
    );

    let udp_taken = std::net::UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let udp_port = udp_taken.local_addr().unwrap().port();
    let Err(error) = bind(&binding(udp_port, Protocol::Udp)) else { panic!("udp bind succeeded") };
    assert_eq!(
        error.to_string(),
        format!("listen udp4 127.0.0.1:{udp_port}: bind: address already in use")
    );

    let mut foreign = binding(port, Protocol::Tcp);
    foreign.host_ip = Ipv4Addr::new(192, 0, 2, 1);
    let Err(error) = bind(&foreign) else { panic!("bind to a foreign address succeeded") };
    assert!(!error.in_use());
    assert!(error.to_string().ends_with("bind: cannot assign requested address"), "{error}");
}

#[tokio::test]
async fn udp_echoes_and_forgets_idle_flows() {
    // Upstream echo server that prefixes each reply with the sender's port.
    let upstream = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let SocketAddr::V4(target) = upstream.local_addr().unwrap() else { unreachable!() };
    tokio::spawn(async move {
        let mut buffer = [0u8; 1500];
        loop {
            let (length, peer) = upstream.recv_from(&mut buffer).await.unwrap();
            let reply = format!("{}:{}", peer.port(), String::from_utf8_lossy(&buffer[..length]));
            upstream.send_to(reply.as_bytes(), peer).await.unwrap();
        }
    });
    let port = {
        let probe = std::net::UdpSocket::bind((LOCALHOST, 0)).unwrap();
        probe.local_addr().unwrap().port()
    };
    let proxy = Proxy::start(bind(&binding(port, Protocol::Udp)).unwrap(), target, SETTINGS);
    let client = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    client.connect((LOCALHOST, port)).await.unwrap();
    let ask = |text: &'static str| {
        let client = &client;
        async move {
            client.send(text.as_bytes()).await.unwrap();
            let mut buffer = [0u8; 1500];
            let length = tokio::time::timeout(Duration::from_secs(2), client.recv(&mut buffer))
                .await
                .expect("udp reply")
                .unwrap();
            let reply = String::from_utf8_lossy(&buffer[..length]).into_owned();
            let (flow_port, text) = reply.split_once(':').unwrap();
            (flow_port.to_owned(), text.to_owned())
        }
    };
    let (first_flow, text) = ask("ping").await;
    assert_eq!(text, "ping");
    let (same_flow, _) = ask("ping2").await;
    assert_eq!(same_flow, first_flow, "one flow per client while active");
    tokio::time::sleep(SETTINGS.udp_idle_timeout * 3).await;
    let (new_flow, text) = ask("after idle").await;
    assert_eq!(text, "after idle");
    assert_ne!(new_flow, first_flow, "an idle flow is closed and a new one opened");
    proxy.stop().await;
    assert!(std::net::UdpSocket::bind((LOCALHOST, port)).is_ok(), "port still held");
}
