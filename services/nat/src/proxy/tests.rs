//! The proxies on loopback, no root needed: a TCP exchange with half-close, the port
//! freed by stop, large streams both ways at once, large transfers to slow readers ending
//! in a half-close, BBR taken off the relay's sockets, a half-close from the container's
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

/// Writes `data` in small uneven pieces (many small segments), then half-closes.
async fn write_in_pieces(stream: &mut (impl AsyncWriteExt + Unpin), data: &[u8]) {
    let (mut offset, mut step) = (0, 0usize);
    while offset < data.len() {
        step += 1;
        let length = (1 + step * 7_919 % 3_000).min(data.len() - offset);
        stream.write_all(&data[offset..offset + length]).await.unwrap();
        offset += length;
    }
    stream.shutdown().await.unwrap();
}

/// Reads slowly for a while (so the relay's pipe and buffers fill up and stay full),
/// then everything to EOF.
async fn read_slowly(stream: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = vec![0; 4_096];
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..100 {
        let length = stream.read(&mut buffer).await.unwrap();
        if length == 0 {
            return received;
        }
        received.extend_from_slice(&buffer[..length]);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut received))
        .await
        .expect("the rest arrives")
        .unwrap();
    received
}

/// The bytes the proxy counted on `port` in `direction` ("in" or "out").
fn counted(port: u16, direction: &str) -> u64 {
    let port = port.to_string();
    prometheus::gather()
        .iter()
        .filter(|family| family.name() == "cnet_nat_proxy_bytes_total")
        .flat_map(|family| family.get_metric())
        .filter(|metric| {
            let label =
                |name| metric.get_label().iter().find(|l| l.name() == name).map(|l| l.value());
            label("port") == Some(port.as_str()) && label("direction") == Some(direction)
        })
        .map(|metric| metric.get_counter().get_value() as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_delivers_everything_to_slow_readers_before_the_half_close() {
    // Each side in turn sends several MiB in small pieces and half-closes at once, while
    // the other reads slowly: the EOF reaches the relay with much of the stream still in
    // its pipe and socket buffers, which must all arrive, intact and in order, before the
    // EOF is passed on. The byte counters must count every byte once.
    let upload = pattern(8 << 20);
    let download: Vec<u8> = pattern(9 << 20).into_iter().map(|byte| byte.rotate_left(3)).collect();
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let SocketAddr::V4(upstream) = listener.local_addr().unwrap() else { unreachable!() };
    let container = tokio::spawn({
        let download = download.clone();
        async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let uploaded = read_slowly(&mut stream).await;
            write_in_pieces(&mut stream, &download).await;
            uploaded
        }
    });
    let port = free_port();
    let proxy = Proxy::start(bind(&binding(port, Protocol::Tcp)).unwrap(), upstream, SETTINGS);

    let mut stream = TcpStream::connect((LOCALHOST, port)).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut read, mut write) = stream.split();
    let (downloaded, ()) =
        tokio::join!(read_slowly(&mut read), write_in_pieces(&mut write, &upload));
    let uploaded = tokio::time::timeout(Duration::from_secs(60), container)
        .await
        .expect("the container read to its EOF")
        .unwrap();
    assert_eq!(uploaded.len(), upload.len());
    assert!(uploaded == upload, "the upload arrived changed");
    assert_eq!(downloaded.len(), download.len());
    assert!(downloaded == download, "the download arrived changed");
    assert_eq!(counted(port, "in"), upload.len() as u64);
    assert_eq!(counted(port, "out"), download.len() as u64);
    proxy.stop().await;
}

/// A socket's congestion control, and setting it (false if the kernel refuses).
fn congestion(socket: &impl std::os::fd::AsRawFd) -> String {
    let mut name = [0u8; 16];
    let mut length = name.len() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `length` bytes into `name`.
    let got = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_mut_ptr().cast(),
            &mut length,
        )
    };
    assert_eq!(got, 0, "{}", std::io::Error::last_os_error());
    String::from_utf8_lossy(&name[..length as usize]).trim_end_matches('\0').to_owned()
}

fn set_congestion(socket: &impl std::os::fd::AsRawFd, algorithm: &str) -> bool {
    // SAFETY: setsockopt reads `algorithm.len()` bytes from it.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            algorithm.as_ptr().cast(),
            algorithm.len() as libc::socklen_t,
        ) == 0
    }
}

#[test]
fn unpaced_takes_bbr_off_and_leaves_other_algorithms() {
    use std::os::fd::AsRawFd;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    assert!(set_congestion(&socket, "reno"));
    tcp::unpaced(socket.as_raw_fd());
    assert_eq!(congestion(&socket), "reno", "an algorithm other than BBR is left alone");
    // BBR may not be built into the kernel (or allowed to this user): nothing to check.
    if set_congestion(&socket, "bbr") {
        tcp::unpaced(socket.as_raw_fd());
        let now = congestion(&socket);
        assert!(now == "cubic" || now == "reno", "still {now}");
    }
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
