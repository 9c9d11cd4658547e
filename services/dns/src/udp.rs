//! Serving DNS over one UDP socket: a single task reads the queued datagrams, a batch per
//! system call (see `batch`), answers every query it can from the records right there
//! and sends those answers together. Only a query that must be forwarded gets a task of
//! its own, which sends its answer when it has one, so a slow upstream never holds up
//! the loop.
//!
//! hickory's UDP server spawned a task per datagram and handed each answer back to the
//! socket's task through a channel; for a name answered from memory those wake-ups cost
//! more than the answer itself (see BENCHMARKS.md, DNS). The requests are still parsed,
//! and the answers built and encoded, with hickory's own types, so both transports say
//! the same thing: an unreadable header is ignored, an unreadable body gets FORMERR,
//! requests that are responses get nothing, and an answer that does not fit the client's
//! buffer (512 bytes without EDNS) is cut and marked TC.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    os::fd::AsRawFd,
    sync::Arc,
};

use hickory_proto::{
    op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode},
    rr::Record,
    serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder},
};
use hickory_server::{
    net::xfer::Protocol,
    server::Request,
    zone_handler::{MessageResponse, MessageResponseBuilder, Queries},
};
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::oneshot,
    task::JoinSet,
};

use self::batch::{BATCH, Batch, with_batch};
use crate::{
    domain::Upstream,
    handler::{Handler, MIN_PAYLOAD, Reply, Resolution, response_edns, response_message},
};

/// Room for about a thousand queued queries (~10 ms of work) instead of the default's
/// couple of hundred, so that a burst of lookups from one container waits a little
/// rather than being dropped and retried after the client's 5 s timeout. No send buffer
/// is set: the kernel releases a reply's send-buffer charge as soon as loopback or veth
/// hands it on, so replies never queue there.
const RECEIVE_BUFFER: libc::c_int = 1 << 20;

/// The UDP half of a listener; stops when closed or dropped.
pub struct UdpServer {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl UdpServer {
    /// Serves `socket` with `handler` on the current runtime.
    pub fn start(socket: std::net::UdpSocket, handler: Handler) -> io::Result<Self> {
        size_receive_buffer(&socket);
        socket.set_nonblocking(true)?;
        // Readable only: with write interest too (as tokio's UdpSocket registers), every
        // sent reply would wake the runtime's epoll when the kernel frees its buffer.
        // SAFETY: the AsyncFd owns the socket, so its descriptor stays open and the same
        // for as long as it is registered.
        let socket = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) };
        let socket = Arc::new(socket.map_err(io::Error::from)?);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(socket, handler, stopped));
        Ok(Self { stop, task })
    }

    /// Stops reading, abandons the queries being forwarded and closes the socket.
    pub async fn close(self) {
        let _ = self.stop.send(());
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "UDP listener task failed");
        }
    }
}

type Socket = Arc<AsyncFd<std::net::UdpSocket>>;

async fn serve(socket: Socket, handler: Handler, mut stopped: oneshot::Receiver<()>) {
    let mut forwards = JoinSet::new();
    loop {
        let ready = tokio::select! {
            biased;
            // A dropped sender (the listener went away without close) stops it too.
            _ = &mut stopped => break,
            ready = socket.readable() => ready,
        };
        let mut ready = match ready {
            Ok(ready) => ready,
            Err(error) => {
                tracing::warn!(%error, "waiting for the UDP socket failed");
                break;
            }
        };
        match with_batch(|batch| answer_queued(batch, &socket, &handler, &mut forwards)) {
            // Less than a full batch: the queue was empty when it was read, and whatever
            // arrives later is a new readiness event, which clearing does not lose.
            Ok(read) if read < BATCH => ready.clear_ready(),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => ready.clear_ready(),
            Err(error) => {
                tracing::warn!(%error, "receiving on the UDP socket failed");
                if matches!(
                    error.kind(),
                    io::ErrorKind::NotConnected | io::ErrorKind::ConnectionAborted
                ) {
                    break;
                }
            }
        }
        while forwards.try_join_next().is_some() {}
        // Nothing above waits, so without this a flood of queries would keep the
        // runtime's thread from everything else.
        tokio::task::consume_budget().await;
    }
    forwards.shutdown().await;
}

/// Reads what is queued (a batch at most), answers what it can at once and sends those
/// answers together; the queries to forward get tasks of their own. Returns how many
/// datagrams were read.
fn answer_queued(
    batch: &mut Batch,
    socket: &Socket,
    handler: &Handler,
    forwards: &mut JoinSet<()>,
) -> io::Result<usize> {
    let fd = socket.get_ref().as_raw_fd();
    let read = batch.receive(fd)?;
    for index in 0..read {
        let (datagram, client) = batch.datagram(index);
        let Some(client) = client.filter(|client| can_answer(*client)) else {
            tracing::debug!(?client, "query from an address that cannot be answered");
            continue;
        };
        match parse(datagram, client) {
            Parsed::Ignored => {}
            Parsed::Malformed(header) => encode_format_error(&header, batch.reply(index)),
            Parsed::Request(request) => match handler.resolve_locally(&request) {
                Resolution::Answered(reply) => encode(&request, &reply, batch.reply(index)),
                Resolution::Forward(upstreams) => {
                    forwards.spawn(forward(handler.clone(), socket.clone(), request, upstreams));
                }
            },
        }
    }
    batch.send_replies(fd);
    Ok(read)
}

/// Runs on a task of its own: waits for the upstreams, then answers.
async fn forward(handler: Handler, socket: Socket, request: Request, upstreams: Vec<Upstream>) {
    let reply = handler.forward(&request, upstreams).await;
    let mut encoded = Vec::with_capacity(usize::from(MIN_PAYLOAD));
    encode(&request, &reply, &mut encoded);
    send(&socket, &encoded, request.src());
}

#[expect(
    clippy::large_enum_variant,
    reason = "lives for one datagram on the loop's stack; a box would cost an allocation per query"
)]
enum Parsed {
    Ignored,
    /// A header but no readable message: FORMERR, without the question.
    Malformed(Header),
    Request(Request),
}

fn parse(datagram: &[u8], client: SocketAddr) -> Parsed {
    // Shorter than a header: not DNS at all, and there is no id to answer to.
    let Ok(header) = Header::read(&mut BinDecoder::new(datagram)) else {
        return Parsed::Ignored;
    };
    match Request::from_bytes(datagram.to_vec(), client, Protocol::Udp) {
        Err(error) => {
            tracing::debug!(%client, id = header.metadata.id, %error, "malformed query");
            Parsed::Malformed(header)
        }
        // Answering responses would let anyone bounce traffic between two servers.
        Ok(request) if request.metadata.message_type == MessageType::Response => Parsed::Ignored,
        Ok(request) => Parsed::Request(request),
    }
}

/// Whether a reply to `client` could arrive: not port 0, not an unspecified or broadcast
/// address (the same rule as hickory's server).
fn can_answer(client: SocketAddr) -> bool {
    client.port() != 0
        && match client.ip() {
            IpAddr::V4(ip) => !ip.is_unspecified() && !ip.is_broadcast(),
            IpAddr::V6(ip) => !ip.is_unspecified(),
        }
}

fn encode(request: &Request, reply: &Reply, encoded: &mut Vec<u8>) {
    let edns = response_edns(request);
    let limit = edns.as_ref().map_or(MIN_PAYLOAD, Edns::max_payload);
    emit(response_message(request, edns.as_ref(), reply), limit, encoded);
}

fn encode_format_error(header: &Header, encoded: &mut Vec<u8>) {
    let Ok(no_question) = Queries::read(&mut BinDecoder::new(&[]), 0) else {
        unreachable!("reading zero questions reads nothing")
    };
    let message = MessageResponseBuilder::new(&no_question, None)
        .error_msg(&header.metadata, ResponseCode::FormErr);
    emit(message, MIN_PAYLOAD, encoded);
}

/// Encodes `message` into `encoded`, cut to `limit` bytes with TC set if it is longer.
fn emit<'a, A, N, S, D>(
    message: MessageResponse<'_, 'a, A, N, S, D>,
    limit: u16,
    encoded: &mut Vec<u8>,
) where
    A: Iterator<Item = &'a Record> + Send + 'a,
    N: Iterator<Item = &'a Record> + Send + 'a,
    S: Iterator<Item = &'a Record> + Send + 'a,
    D: Iterator<Item = &'a Record> + Send + 'a,
{
    let id = message.metadata().id;
    encoded.clear();
    let mut encoder = BinEncoder::new(encoded);
    encoder.set_max_size(limit);
    let Err(error) = message.destructive_emit(&mut encoder) else {
        return;
    };
    // As hickory's server does: a bare SERVFAIL rather than silence.
    tracing::error!(%error, id, "encoding an answer failed");
    encoded.clear();
    let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
    metadata.response_code = ResponseCode::ServFail;
    let header = Header { metadata, counts: HeaderCounts::default() };
    if header.emit(&mut BinEncoder::new(encoded)).is_err() {
        encoded.clear();
    }
}

/// Sends without waiting: a full send buffer drops the reply, as a full receive buffer
/// drops a query, and the client asks again. (Loopback and veths free a reply's buffer
/// as they pass it on, so it does not fill in practice.)
fn send(socket: &Socket, encoded: &[u8], client: SocketAddr) {
    if encoded.is_empty() {
        return;
    }
    if let Err(error) = socket.get_ref().send_to(encoded, client) {
        tracing::debug!(%client, %error, "sending an answer failed");
    }
}

/// Asks for [`RECEIVE_BUFFER`], beyond the host's `net.core.rmem_max` if the service may
/// (it runs as root to enter namespaces anyway); a refusal only leaves the default.
fn size_receive_buffer(socket: &std::net::UdpSocket) {
    let set = |option| {
        // SAFETY: the option value is a c_int that outlives the call, and its size is
        // passed with it.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&RECEIVE_BUFFER as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    if set(libc::SO_RCVBUFFORCE) != 0 && set(libc::SO_RCVBUF) != 0 {
        let error = io::Error::last_os_error();
        tracing::debug!(%error, "could not enlarge the receive buffer");
    }
}

mod batch;
#[cfg(test)]
mod tests;
