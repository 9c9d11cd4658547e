//! A DNS client that asks 127.0.0.11:53 from inside a sandbox (UDP, TCP, or an open TCP
//! connection), and fake upstream servers on the test's own loopback.

use std::{
    io::{self, Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket},
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{Name, RData, Record, RecordType, rdata::A},
};
use tokio::task::JoinHandle;

use crate::support::in_netns;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

fn query_message(name: &str, record_type: RecordType) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(format!("{name}.")).unwrap(), record_type));
    message.to_vec().unwrap()
}

/// Asks 127.0.0.11:53 from inside `netns`, as a container's resolver would.
pub async fn ask(
    netns: &Path,
    name: &str,
    record_type: RecordType,
    transport: Transport,
) -> io::Result<Message> {
    let netns = netns.to_owned();
    let request = query_message(name, record_type);
    let resolver = SocketAddr::from(cnet_dns::RESOLVER_ADDRESS);
    tokio::task::spawn_blocking(move || {
        in_netns(&netns, move || match transport {
            Transport::Udp => {
                let socket = UdpSocket::bind("127.0.0.1:0")?;
                socket.set_read_timeout(Some(Duration::from_secs(5)))?;
                socket.connect(resolver)?;
                socket.send(&request)?;
                let mut buffer = [0; 4096];
                let length = socket.recv(&mut buffer)?;
                Message::from_vec(&buffer[..length]).map_err(io::Error::other)
            }
            Transport::Tcp => {
                let mut stream = TcpStream::connect_timeout(&resolver, Duration::from_secs(5))?;
                exchange_tcp(&mut stream, &request)
            }
        })
    })
    .await
    .expect("query thread")
}

/// Asks `address` in the test's own namespace over UDP.
pub async fn ask_host(address: SocketAddr, name: &str) -> Message {
    let request = query_message(name, RecordType::A);
    tokio::task::spawn_blocking(move || {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_secs(5)))?;
        socket.send_to(&request, address)?;
        let mut buffer = [0; 4096];
        let length = socket.recv(&mut buffer)?;
        Message::from_vec(&buffer[..length]).map_err(io::Error::other)
    })
    .await
    .unwrap()
    .expect("answer from the host address")
}

/// A TCP connection to the resolver of `netns`, opened from inside it and usable from
/// anywhere afterwards.
pub async fn connect_tcp(netns: &Path) -> TcpStream {
    let netns = netns.to_owned();
    let resolver = SocketAddr::from(cnet_dns::RESOLVER_ADDRESS);
    tokio::task::spawn_blocking(move || {
        in_netns(&netns, move || TcpStream::connect_timeout(&resolver, Duration::from_secs(5)))
    })
    .await
    .unwrap()
    .expect("connect to the resolver")
}

/// One question over an open TCP connection.
pub async fn ask_on(stream: &TcpStream, name: &str, record_type: RecordType) -> Message {
    let mut stream = stream.try_clone().unwrap();
    let request = query_message(name, record_type);
    tokio::task::spawn_blocking(move || exchange_tcp(&mut stream, &request))
        .await
        .unwrap()
        .expect("answer over the open connection")
}

fn exchange_tcp(stream: &mut TcpStream, request: &[u8]) -> io::Result<Message> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut framed = (request.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(request);
    stream.write_all(&framed)?;
    let mut length = [0; 2];
    stream.read_exact(&mut length)?;
    let mut buffer = vec![0; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut buffer)?;
    Message::from_vec(&buffer).map_err(io::Error::other)
}

/// The A addresses of an answer, in answer order.
pub fn addresses(message: &Message) -> Vec<Ipv4Addr> {
    message
        .answers
        .iter()
        .filter_map(|record| match record.data {
            RData::A(A(address)) => Some(address),
            _ => None,
        })
        .collect()
}

/// A fake upstream DNS server on 127.0.0.1 (UDP and TCP on one port) that answers by the
/// first label of the name: "www…" → A `tag` (TTL 300), "fail…" → SERVFAIL, "big…" → TC
/// over UDP and A `tag` over TCP, anything else → NXDOMAIN. It records every question.
pub struct FakeUpstream {
    pub address: SocketAddr,
    log: Arc<Mutex<Vec<(String, Transport)>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeUpstream {
    pub async fn start(tag: Ipv4Addr) -> FakeUpstream {
        let (udp, tcp) = loop {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let port = udp.local_addr().unwrap().port();
            if let Ok(tcp) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                break (udp, tcp);
            }
        };
        let address = udp.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let udp_log = log.clone();
        let udp_task = tokio::spawn(async move {
            let mut buffer = [0; 4096];
            while let Ok((length, peer)) = udp.recv_from(&mut buffer).await {
                let Ok(query) = Message::from_vec(&buffer[..length]) else { continue };
                let reply = reply(&query, tag, Transport::Udp, &udp_log);
                let _ = udp.send_to(&reply.to_vec().unwrap(), peer).await;
            }
        });
        let tcp_log = log.clone();
        let tcp_task = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut stream, _)) = tcp.accept().await {
                let log = tcp_log.clone();
                tokio::spawn(async move {
                    while let Ok(length) = stream.read_u16().await {
                        let mut buffer = vec![0; usize::from(length)];
                        if stream.read_exact(&mut buffer).await.is_err() {
                            return;
                        }
                        let Ok(query) = Message::from_vec(&buffer) else { return };
                        let bytes = reply(&query, tag, Transport::Tcp, &log).to_vec().unwrap();
                        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
                        framed.extend_from_slice(&bytes);
                        if stream.write_all(&framed).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FakeUpstream { address, log, tasks: vec![udp_task, tcp_task] }
    }

    /// The transports `name` (without the final dot) was asked over, in order.
    pub fn asked(&self, name: &str) -> Vec<Transport> {
        let wanted = format!("{name}.");
        let log = self.log.lock().unwrap();
        log.iter().filter(|(asked, _)| *asked == wanted).map(|(_, t)| *t).collect()
    }

    pub fn total(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn reply(
    query: &Message,
    tag: Ipv4Addr,
    transport: Transport,
    log: &Mutex<Vec<(String, Transport)>>,
) -> Message {
    let mut reply = Message::response(query.metadata.id, OpCode::Query);
    reply.metadata.message_type = MessageType::Response;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_queries(query.queries.clone());
    let Some(question) = query.queries.first() else { return reply };
    let name = question.name().to_ascii().to_ascii_lowercase();
    log.lock().unwrap().push((name.clone(), transport));
    let answer = Record::from_rdata(question.name().clone(), 300, RData::A(A(tag)));
    match name.split('.').next().unwrap_or_default() {
        "www" => {
            reply.add_answer(answer);
        }
        "big" if transport == Transport::Udp => reply.metadata.truncation = true,
        "big" => {
            reply.add_answer(answer);
        }
        "fail" => reply.metadata.response_code = ResponseCode::ServFail,
        _ => reply.metadata.response_code = ResponseCode::NXDomain,
    }
    reply
}

/// A UDP port on 127.0.0.1 that swallows every query: an upstream that is down but does
/// not say so, the case only a timeout catches.
pub fn black_hole() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

/// Writes the resolv.conf the service under `root` reads.
pub fn write_resolv_conf(root: &Path, servers: &[SocketAddr]) {
    let text: String = servers.iter().map(|s| format!("nameserver {s}\n")).collect();
    // Replace by rename, as resolvconf does, so the service never reads half a file.
    let next = root.join("resolv.conf.new");
    std::fs::write(&next, text).unwrap();
    std::fs::rename(next, root.join("resolv.conf")).unwrap();
}
