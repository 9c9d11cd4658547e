//! hickory's [`RequestHandler`] for the resolver: one [`Handler`] per listener, which
//! knows the container it listens for (its scope), over the [`Resolver`] state all
//! listeners share: the current record tables, swapped atomically on every registration
//! change (aardvark-dns's `DNSBackend` in an `ArcSwap`), and the forwarder.
//!
//! Queries never wait for a registration and registrations never wait for queries: the
//! handler takes the snapshot that is current when the query arrives.

use std::{iter, sync::Arc};

use arc_swap::ArcSwap;
use hickory_proto::{
    op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode},
    rr::{DNSClass, Record, RecordType},
};
use hickory_server::{
    net::{runtime::Time, xfer::Protocol},
    server::{Request, RequestHandler, ResponseHandler, ResponseInfo},
    zone_handler::MessageResponseBuilder,
};

use crate::{
    domain::{Asker, ContainerId, Outcome, QueryKind, Records, Upstream, answer},
    forward::{ForwardOptions, Forwarder},
};

/// The smallest UDP payload every DNS client accepts (RFC 1035).
const MIN_PAYLOAD: u16 = 512;

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

    async fn forward<R: ResponseHandler>(
        &self,
        request: &Request,
        upstreams: Vec<Upstream>,
        response: R,
    ) -> ResponseInfo {
        let query = match request.request_info() {
            Ok(info) => info.query.original().clone(),
            Err(_) => return send_error(request, response, ResponseCode::FormErr).await,
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
            Ok(upstream) => {
                let metadata = answer::forwarded_metadata(&request.metadata, &upstream.metadata);
                let sections: (&[Record], &[Record], &[Record]) =
                    (&upstream.answers, &upstream.authorities, &upstream.additionals);
                send(request, response, metadata, sections).await
            }
            Err(error) => {
                tracing::debug!(%error, name = %query.name(), "forwarding failed");
                let metadata = answer::failure_metadata(&request.metadata);
                send(request, response, metadata, (&[], &[], &[])).await
            }
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response: R,
    ) -> ResponseInfo {
        let metadata = &request.metadata;
        if metadata.op_code != OpCode::Query || metadata.message_type != MessageType::Query {
            return send_error(request, response, ResponseCode::NotImp).await;
        }
        let Ok(info) = request.request_info() else {
            return send_error(request, response, ResponseCode::FormErr).await;
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
            Outcome::Forward => {
                let upstreams = records.upstreams(self.asker()).to_vec();
                drop(records);
                self.forward(request, upstreams, response).await
            }
            local => {
                let answers = answer::local_records(query.original().name(), &local);
                let metadata = answer::local_metadata(metadata);
                send(request, response, metadata, (&answers, &[], &[])).await
            }
        }
    }
}

async fn send_error<R: ResponseHandler>(
    request: &Request,
    response: R,
    code: ResponseCode,
) -> ResponseInfo {
    let mut metadata = answer::local_metadata(&request.metadata);
    metadata.response_code = code;
    send(request, response, metadata, (&[], &[], &[])).await
}

/// Encodes and sends one answer. Over UDP the encoder cuts what does not fit the client's
/// buffer and sets TC, so the client retries over TCP.
async fn send<R: ResponseHandler>(
    request: &Request,
    mut response: R,
    metadata: Metadata,
    (answers, authorities, additionals): (&[Record], &[Record], &[Record]),
) -> ResponseInfo {
    // EDNS is answered with EDNS (RFC 6891); the client's buffer size bounds the answer.
    let edns = request.edns.as_ref().map(|client| {
        let mut edns = Edns::new();
        edns.set_max_payload(client.max_payload().max(MIN_PAYLOAD))
            .set_dnssec_ok(client.flags().dnssec_ok);
        edns
    });
    let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
    let message = builder.build(
        metadata,
        answers.iter(),
        authorities.iter(),
        iter::empty(),
        additionals.iter(),
    );
    match response.send_response(message).await {
        Ok(info) => info,
        Err(error) => {
            tracing::debug!(%error, "sending an answer failed");
            ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() })
        }
    }
}
