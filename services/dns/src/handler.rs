//! What the resolver answers: one [`Handler`] per listener, which knows the container it
//! listens for (its scope), over the [`Resolver`] state all listeners share: the current
//! record tables, swapped atomically on every registration change (aardvark-dns's
//! `DNSBackend` in an `ArcSwap`), and the forwarder.
//!
//! A request is answered in two steps, so that both transports share them:
//! [`Handler::resolve_locally`] decides without waiting (names of the asker's networks,
//! and the errors for what the resolver does not serve), and [`Handler::forward`] asks
//! upstream for the rest. The UDP loop (`udp`) runs the first inline and spawns only the
//! second; over TCP hickory calls the [`RequestHandler`] below, which runs both.
//!
//! Queries never wait for a registration and registrations never wait for queries: the
//! handler takes the snapshot that is current when the query arrives.

use std::{iter, slice, sync::Arc};

use arc_swap::ArcSwap;
use hickory_proto::{
    op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode},
    rr::{DNSClass, Record, RecordType},
};
use hickory_server::{
    net::{runtime::Time, xfer::Protocol},
    server::{Request, RequestHandler, ResponseHandler, ResponseInfo},
    zone_handler::{MessageResponse, MessageResponseBuilder},
};

use crate::{
    domain::{Asker, ContainerId, Outcome, QueryKind, Records, Upstream, answer},
    forward::{ForwardOptions, Forwarder},
    metrics,
};

/// The smallest UDP payload every DNS client accepts (RFC 1035).
pub const MIN_PAYLOAD: u16 = 512;

/// What every listener shares.
pub struct Resolver {
    records: ArcSwap<Records>,
    forwarder: Forwarder,
}

impl Resolver {
    pub fn new(forwarder: Forwarder) -> Self {
        Self { records: ArcSwap::from_pointee(Records::default()), forwarder }
    }

    /// Makes `records` the tables every following query is answered from.
    pub fn publish(&self, records: Records) {
        self.records.store(Arc::new(records));
    }

    pub fn records(&self) -> Arc<Records> {
        self.records.load_full()
    }

    pub fn forwarder(&self) -> &Forwarder {
        &self.forwarder
    }
}

/// An answer's header and sections, before it is encoded for a transport.
pub struct Reply {
    pub metadata: Metadata,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

impl Reply {
    fn empty(metadata: Metadata) -> Self {
        Self { metadata, answers: Vec::new(), authorities: Vec::new(), additionals: Vec::new() }
    }

    fn error(request: &Metadata, code: ResponseCode) -> Self {
        let mut metadata = answer::local_metadata(request);
        metadata.response_code = code;
        Self::empty(metadata)
    }
}

/// What [`Handler::resolve_locally`] decided.
pub enum Resolution {
    Answered(Reply),
    /// Not a name of the asker's networks: ask these upstreams (empty: the host's).
    Forward(Vec<Upstream>),
}

#[derive(Clone)]
pub struct Handler {
    /// None for the host listener.
    asker: Option<ContainerId>,
    resolver: Arc<Resolver>,
}

impl Handler {
    pub fn for_container(container: ContainerId, resolver: Arc<Resolver>) -> Self {
        Self { asker: Some(container), resolver }
    }

    pub fn for_host(resolver: Arc<Resolver>) -> Self {
        Self { asker: None, resolver }
    }

    fn asker(&self) -> Asker<'_> {
        self.asker.as_ref().map_or(Asker::Host, Asker::Container)
    }

    /// Answers what needs no upstream; never waits.
    pub fn resolve_locally(&self, request: &Request) -> Resolution {
        let resolution = self.decide(request);
        if let Resolution::Answered(reply) = &resolution {
            metrics::local(reply.metadata.response_code);
        }
        resolution
    }

    fn decide(&self, request: &Request) -> Resolution {
        let metadata = &request.metadata;
        if metadata.op_code != OpCode::Query || metadata.message_type != MessageType::Query {
            return Resolution::Answered(Reply::error(metadata, ResponseCode::NotImp));
        }
        let Ok(info) = request.request_info() else {
            return Resolution::Answered(Reply::error(metadata, ResponseCode::FormErr));
        };
        let query = info.query;
        let kind = match query.query_type() {
            RecordType::A => QueryKind::A,
            RecordType::PTR => QueryKind::Ptr,
            _ => QueryKind::Other,
        };
        let records = self.resolver.records();
        let outcome = if query.query_class() == DNSClass::IN {
            records.lookup(self.asker(), &query.name().to_string(), kind, &mut rand::rng())
        } else {
            Outcome::Forward
        };
        tracing::debug!(
            asker = self.asker.as_ref().map_or("host", ContainerId::as_str),
            name = %query.name(),
            kind = %query.query_type(),
            ?outcome,
            "query"
        );
        match outcome {
            Outcome::Forward if !records.forwards(self.asker()) => {
                Resolution::Answered(Reply::error(metadata, ResponseCode::NXDomain))
            }
            Outcome::Forward => Resolution::Forward(records.upstreams(self.asker()).to_vec()),
            local => Resolution::Answered(Reply {
                answers: answer::local_records(query.original().name(), &local),
                ..Reply::empty(answer::local_metadata(metadata))
            }),
        }
    }

    /// Asks `upstreams` (the host's if empty) and makes the client's answer of theirs.
    pub async fn forward(&self, request: &Request, upstreams: Vec<Upstream>) -> Reply {
        let reply = self.ask_upstreams(request, upstreams).await;
        metrics::upstream(reply.metadata.response_code);
        reply
    }

    async fn ask_upstreams(&self, request: &Request, upstreams: Vec<Upstream>) -> Reply {
        let query = match request.request_info() {
            Ok(info) => info.query.original().clone(),
            Err(_) => return Reply::error(&request.metadata, ResponseCode::FormErr),
        };
        let upstreams =
            if upstreams.is_empty() { self.resolver.forwarder.host_upstreams() } else { upstreams };
        let options = ForwardOptions {
            over_tcp: request.protocol() == Protocol::Tcp,
            recursion_desired: request.metadata.recursion_desired,
            checking_disabled: request.metadata.checking_disabled,
            dnssec_ok: request.edns.as_ref().is_some_and(|edns| edns.flags().dnssec_ok),
        };
        match self.resolver.forwarder.forward(&query, &upstreams, options).await {
            Ok(upstream) => Reply {
                metadata: answer::forwarded_metadata(&request.metadata, &upstream.metadata),
                answers: upstream.answers,
                authorities: upstream.authorities,
                additionals: upstream.additionals,
            },
            Err(error) => {
                tracing::debug!(%error, name = %query.name(), "forwarding failed");
                Reply::empty(answer::failure_metadata(&request.metadata))
            }
        }
    }
}

/// Over TCP: hickory reads the requests and writes what this returns.
#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let reply = match self.resolve_locally(request) {
            Resolution::Answered(reply) => reply,
            Resolution::Forward(upstreams) => self.forward(request, upstreams).await,
        };
        let edns = response_edns(request);
        match response.send_response(response_message(request, edns.as_ref(), &reply)).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, "sending an answer failed");
                ResponseInfo::from(Header {
                    metadata: reply.metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

/// The EDNS record of the answer to `request`: EDNS is answered with EDNS (RFC 6891), and
/// the client's buffer size bounds the answer over UDP.
pub fn response_edns(request: &Request) -> Option<Edns> {
    request.edns.as_ref().map(|client| {
        let mut edns = Edns::new();
        edns.set_max_payload(client.max_payload().max(MIN_PAYLOAD))
            .set_dnssec_ok(client.flags().dnssec_ok);
        edns
    })
}

type Section<'a> = slice::Iter<'a, Record>;

/// The answer as hickory encodes it: the client's question, `reply`'s sections and
/// `edns` (from [`response_edns`]). Encoding for UDP cuts what does not fit the client's
/// buffer and sets TC, so the client retries over TCP.
pub fn response_message<'a>(
    request: &'a Request,
    edns: Option<&'a Edns>,
    reply: &'a Reply,
) -> MessageResponse<'a, 'a, Section<'a>, Section<'a>, iter::Empty<&'a Record>, Section<'a>> {
    MessageResponseBuilder::new(&request.queries, edns).build(
        reply.metadata,
        reply.answers.iter(),
        reply.authorities.iter(),
        iter::empty(),
        reply.additionals.iter(),
    )
}
