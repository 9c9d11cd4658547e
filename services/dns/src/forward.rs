//! Forwarding what the resolver does not know to upstream servers, from the service's own
//! namespace (DNS-6).
//!
//! Each upstream gets a short timeout (1.5 s by default) so that a dead one costs a
//! client less than its own 5 s timeout; then the next one is tried. An upstream's answer
//! is passed back unchanged, rcode included; only SERVFAIL moves on to the next server,
//! as Docker does, and is returned if no server does better. A UDP answer with TC set is
//! fetched again over TCP from the same server, and a query that came in over TCP goes
//! out over TCP. Each exchange uses a fresh socket with a random port and id, and only a
//! reply with that id and question is accepted, so off-path spoofing has to guess both.

mod cache;
mod resolv_conf;

use std::{
    io,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
    sync::Mutex,
    time::{Duration, Instant},
};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, UdpSocket},
};

use self::cache::{Cache, CacheKey};
use self::resolv_conf::ResolvConf;
use crate::domain::Upstream;

/// The EDNS buffer size offered upstream, the DNS flag day 2020 value that avoids IP
/// fragmentation; larger answers come over TCP.
const UPSTREAM_PAYLOAD: u16 = 1232;

/// What the client asked for besides the question itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardOptions {
    pub over_tcp: bool,
    pub recursion_desired: bool,
    pub checking_disabled: bool,
    pub dnssec_ok: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no upstream server configured")]
    NoUpstream,
    #[error("no upstream server answered")]
    NoAnswer,
}

pub struct Forwarder {
    timeout: Duration,
    cache: Mutex<Cache>,
    resolv_conf: ResolvConf,
}

impl Forwarder {
    pub fn new(resolv_conf: PathBuf, timeout: Duration, cache_size: usize) -> Self {
        Self {
            timeout,
            cache: Mutex::new(Cache::new(cache_size)),
            resolv_conf: ResolvConf::new(resolv_conf),
        }
    }

    /// The servers of the host's resolv.conf, for containers without their own.
    pub fn host_upstreams(&self) -> Vec<Upstream> {
        self.resolv_conf.servers()
    }

    /// Asks `upstreams` in order; see the module comment for the rules.
    pub async fn forward(
        &self,
        query: &Query,
        upstreams: &[Upstream],
        options: ForwardOptions,
    ) -> Result<Message, ForwardError> {
        if upstreams.is_empty() {
            return Err(ForwardError::NoUpstream);
        }
        let key = CacheKey::new(query, upstreams, options.dnssec_ok, options.checking_disabled);
        if let Some(hit) = self.lock_cache().get(&key, Instant::now()) {
            tracing::debug!(name = %query.name(), "answered from the cache");
            return Ok(hit);
        }
        let mut server_failure = None;
        for upstream in upstreams {
            let exchange = exchange(upstream.0, query, options);
            match tokio::time::timeout(self.timeout, exchange).await {
                Ok(Ok(answer)) if answer.metadata.response_code == ResponseCode::ServFail => {
                    tracing::debug!(%upstream, name = %query.name(), "upstream answered SERVFAIL");
                    server_failure = Some(answer);
                }
                Ok(Ok(answer)) => {
                    self.lock_cache().insert(key, &answer, Instant::now());
                    return Ok(answer);
                }
                Ok(Err(error)) => {
                    tracing::debug!(%upstream, %error, name = %query.name(), "upstream failed");
                }
                Err(_) => {
                    tracing::debug!(%upstream, name = %query.name(), "upstream timed out");
                }
            }
        }
        server_failure.ok_or(ForwardError::NoAnswer)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // The cache holds no invariant a panic could break halfway.
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One question to one server, over TCP if asked or if the UDP answer was truncated.
async fn exchange(
    server: SocketAddr,
    query: &Query,
    options: ForwardOptions,
) -> io::Result<Message> {
    let id: u16 = rand::random();
    let mut request = Message::new(id, MessageType::Query, OpCode::Query);
    request.metadata.recursion_desired = options.recursion_desired;
    request.metadata.checking_disabled = options.checking_disabled;
    request.add_query(query.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(UPSTREAM_PAYLOAD).set_dnssec_ok(options.dnssec_ok);
    request.set_edns(edns);
    let bytes = request.to_vec().map_err(invalid_data)?;
    if !options.over_tcp {
        let answer = exchange_udp(server, &bytes, id, query).await?;
        if !answer.metadata.truncation {
            return Ok(answer);
        }
        tracing::debug!(%server, name = %query.name(), "truncated over UDP, retrying over TCP");
    }
    exchange_tcp(server, &bytes, id, query).await
}

async fn exchange_udp(
    server: SocketAddr,
    request: &[u8],
    id: u16,
    query: &Query,
) -> io::Result<Message> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    // Connected: the kernel drops datagrams from anyone else, and an ICMP "port
    // unreachable" fails the receive at once instead of waiting for the timeout.
    socket.connect(server).await?;
    socket.send(request).await?;
    let mut buffer = vec![0; usize::from(u16::MAX)];
    loop {
        let length = socket.recv(&mut buffer).await?;
        match Message::from_vec(&buffer[..length]) {
            Ok(answer) if answers(&answer, id, query) => return Ok(answer),
            // A stray or malformed datagram: keep waiting for the real answer.
            _ => continue,
        }
    }
}

async fn exchange_tcp(
    server: SocketAddr,
    request: &[u8],
    id: u16,
    query: &Query,
) -> io::Result<Message> {
    let mut stream = TcpStream::connect(server).await?;
    let length = u16::try_from(request.len()).map_err(invalid_data)?;
    let mut framed = Vec::with_capacity(request.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(request);
    stream.write_all(&framed).await?;
    let length = stream.read_u16().await?;
    let mut buffer = vec![0; usize::from(length)];
    stream.read_exact(&mut buffer).await?;
    let answer = Message::from_vec(&buffer).map_err(invalid_data)?;
    if !answers(&answer, id, query) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "answer to another question"));
    }
    Ok(answer)
}

/// Whether `answer` is the reply to our question `id` about `query`. Servers may omit
/// the question in error replies; the name's case may differ.
fn answers(answer: &Message, id: u16, query: &Query) -> bool {
    let same_question = |asked: &Query| {
        asked.query_type() == query.query_type()
            && asked.query_class() == query.query_class()
            && asked.name().eq_ignore_root(query.name())
    };
    answer.metadata.id == id
        && answer.metadata.message_type == MessageType::Response
        && (answer.queries.is_empty() || answer.queries.iter().all(same_question))
}

fn invalid_data(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}
