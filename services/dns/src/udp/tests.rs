//! The UDP loop on 127.0.0.1, with raw datagrams: local answers, what does not fit the
//! client's buffer, malformed and unusual requests, and that a silent upstream holds up
//! only the query that waits for it.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, Query, ResponseCode},
    rr::{Name, RData, RecordType, rdata::A},
};

use super::*;
use crate::{
    domain::{
        Records, Registration,
        registration::{EndpointRequest, RegistrationRequest},
    },
    forward::Forwarder,
    handler::Resolver,
};

/// How long a test waits for an answer that should come at once.
const PROMPT: Duration = Duration::from_millis(500);
/// The forwarder's timeout per upstream: long next to a local answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_millis(1500);
/// Containers sharing the alias "web": 60 A records (960 bytes) do not fit in 512.
const WEB_MEMBERS: u8 = 60;

struct Fixture {
    server: Option<UdpServer>,
    address: SocketAddr,
    client: tokio::net::UdpSocket,
    // Kept open so the upstream swallows queries instead of refusing them.
    _silent_upstream: std::net::UdpSocket,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// A host listener (every network's names) whose only upstream never answers.
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let silent_upstream = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let resolv_conf = dir.path().join("resolv.conf");
        let upstream = silent_upstream.local_addr().unwrap();
        std::fs::write(&resolv_conf, format!("nameserver {upstream}\n")).unwrap();
        let resolver = Arc::new(Resolver::new(Forwarder::new(resolv_conf, UPSTREAM_TIMEOUT, 0)));
        resolver.publish(records());
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = socket.local_addr().unwrap();
        let server = UdpServer::start(socket, Handler::for_host(resolver)).unwrap();
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.connect(address).await.unwrap();
        Self { server: Some(server), address, client, _silent_upstream: silent_upstream, _dir: dir }
    }

    async fn send(&self, datagram: &[u8]) {
        self.client.send(datagram).await.unwrap();
    }

    /// The next answer, if one comes within `wait`.
    async fn receive(&self, wait: Duration) -> Option<Vec<u8>> {
        let mut buffer = vec![0; 65_535];
        let length = tokio::time::timeout(wait, self.client.recv(&mut buffer)).await.ok()?;
        buffer.truncate(length.unwrap());
        Some(buffer)
    }

    async fn ask(&self, datagram: &[u8]) -> Message {
        self.send(datagram).await;
        let answer = self.receive(PROMPT).await.expect("an answer");
        Message::from_vec(&answer).unwrap()
    }
}

fn records() -> Records {
    let registration = |n: u8, name: &str, address: String, aliases: &[&str]| {
        Registration::parse(&RegistrationRequest {
            container_id: format!("{n:02x}").repeat(32),
            name: name.into(),
            netns_path: format!("/run/test/{n}"),
            endpoints: vec![EndpointRequest {
                network_id: "id-front".into(),
                network_name: "front".into(),
                address,
                aliases: aliases.iter().map(|alias| (*alias).to_owned()).collect(),
                internal: false,
            }],
            ..RegistrationRequest::default()
        })
        .unwrap()
    };
    let mut registrations = vec![registration(1, "c1", "172.16.1.1".into(), &[])];
    registrations.extend(
        (0..WEB_MEMBERS)
            .map(|n| registration(n + 10, &format!("w{n}"), format!("10.1.0.{n}"), &["web"])),
    );
    Records::build(&registrations)
}

fn query(id: u16, name: &str, record_type: RecordType, edns: Option<u16>) -> Message {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), record_type));
    if let Some(payload) = edns {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        message.set_edns(edns);
    }
    message
}

fn bytes(message: &Message) -> Vec<u8> {
    message.to_vec().unwrap()
}

#[tokio::test]
async fn local_names_are_answered_with_dockers_flags() {
    let fixture = Fixture::start().await;
    let answer = fixture.ask(&bytes(&query(7, "C1.front.", RecordType::A, None))).await;
    assert_eq!(answer.metadata.id, 7);
    assert_eq!(answer.metadata.message_type, MessageType::Response);
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.metadata.recursion_desired && answer.metadata.recursion_available);
    assert!(!answer.metadata.authoritative && !answer.metadata.truncation);
    assert_eq!(answer.queries[0].name().to_ascii(), "C1.front.");
    assert_eq!(answer.answers.len(), 1);
    assert_eq!(answer.answers[0].name.to_ascii(), "C1.front.", "the name as asked");
    assert_eq!(answer.answers[0].ttl, 600);
    assert_eq!(answer.answers[0].data, RData::A(A(Ipv4Addr::new(172, 16, 1, 1))));
    assert!(answer.edns.is_none(), "no EDNS asked, none answered");

    let answer =
        fixture.ask(&bytes(&query(8, "1.1.16.172.in-addr.arpa.", RecordType::PTR, None))).await;
    assert_eq!(answer.answers.len(), 1);
    let answer = fixture.ask(&bytes(&query(9, "c1.", RecordType::AAAA, None))).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.answers.is_empty(), "known name, other type: empty NOERROR");
}

#[tokio::test]
async fn answers_are_cut_to_the_clients_buffer_and_marked_truncated() {
    let fixture = Fixture::start().await;
    let answer = fixture.ask(&bytes(&query(1, "web.", RecordType::A, None))).await;
    assert!(answer.metadata.truncation);
    assert!(answer.answers.len() < usize::from(WEB_MEMBERS));
    assert!(bytes(&answer).len() <= 512);

    let answer = fixture.ask(&bytes(&query(2, "web.", RecordType::A, Some(4096)))).await;
    assert!(!answer.metadata.truncation);
    assert_eq!(answer.answers.len(), usize::from(WEB_MEMBERS));
    let edns = answer.edns.expect("EDNS is answered with EDNS");
    assert_eq!(edns.max_payload(), 4096);

    // A buffer smaller than 512 is taken as 512.
    let answer = fixture.ask(&bytes(&query(3, "web.", RecordType::A, Some(100)))).await;
    assert!(answer.metadata.truncation);
    assert!(bytes(&answer).len() <= 512);
}

#[tokio::test]
async fn malformed_and_unusual_requests_get_hickorys_answers() {
    let fixture = Fixture::start().await;
    // Shorter than a header: nothing to answer to.
    fixture.send(b"hello").await;
    assert!(fixture.receive(Duration::from_millis(200)).await.is_none());

    // A header that promises a question that is not there: FORMERR, no question.
    let mut truncated = bytes(&Message::new(11, MessageType::Query, OpCode::Query));
    truncated[5] = 1;
    let answer = fixture.ask(&truncated).await;
    assert_eq!((answer.metadata.id, answer.metadata.response_code), (11, ResponseCode::FormErr));
    assert!(answer.queries.is_empty());

    // Two questions: FORMERR.
    let mut two = query(12, "c1.", RecordType::A, None);
    two.add_query(Query::query(Name::from_ascii("web.").unwrap(), RecordType::A));
    let answer = fixture.ask(&bytes(&two)).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::FormErr);

    // Another opcode: NOTIMP.
    let mut status = query(13, "c1.", RecordType::A, None);
    status.metadata.op_code = OpCode::Status;
    let answer = fixture.ask(&bytes(&status)).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NotImp);

    // A response is never answered.
    let mut response = query(14, "c1.", RecordType::A, None);
    response.metadata.message_type = MessageType::Response;
    fixture.send(&bytes(&response)).await;
    assert!(fixture.receive(Duration::from_millis(200)).await.is_none());

    // The loop still answers afterwards.
    let answer = fixture.ask(&bytes(&query(15, "c1.", RecordType::A, None))).await;
    assert_eq!(answer.answers.len(), 1);
}

#[tokio::test]
async fn a_burst_is_answered_in_full_each_to_its_question() {
    let fixture = Fixture::start().await;
    // Several batches' worth, sent before the first answer is read.
    const BURST: u16 = 300;
    for id in 0..BURST {
        fixture.send(&bytes(&query(id, &format!("w{}.", id % 60), RecordType::A, None))).await;
    }
    let mut seen = vec![false; usize::from(BURST)];
    for _ in 0..BURST {
        let answer = fixture.receive(PROMPT).await.expect("every query answered");
        let answer = Message::from_vec(&answer).unwrap();
        let id = answer.metadata.id;
        assert!(!std::mem::replace(&mut seen[usize::from(id)], true), "one answer per query");
        let expected = Ipv4Addr::new(10, 1, 0, (id % 60) as u8);
        assert_eq!(answer.answers[0].data, RData::A(A(expected)), "answer {id}");
    }
}

#[tokio::test]
async fn a_silent_upstream_delays_only_the_forwarded_query() {
    let fixture = Fixture::start().await;
    let started = Instant::now();
    fixture.send(&bytes(&query(21, "www.example.", RecordType::A, None))).await;
    let answer = fixture.ask(&bytes(&query(22, "c1.", RecordType::A, None))).await;
    assert_eq!(answer.metadata.id, 22, "the local answer comes first");
    assert!(started.elapsed() < PROMPT);

    let failure = fixture.receive(UPSTREAM_TIMEOUT * 2).await.expect("SERVFAIL after the timeout");
    let failure = Message::from_vec(&failure).unwrap();
    assert_eq!((failure.metadata.id, failure.metadata.response_code), (21, ResponseCode::ServFail));
    assert!(started.elapsed() >= UPSTREAM_TIMEOUT);
}

#[tokio::test]
async fn closing_frees_the_port_even_with_a_query_upstream() {
    let mut fixture = Fixture::start().await;
    fixture.send(&bytes(&query(31, "www.example.", RecordType::A, None))).await;
    // Give the loop the time to spawn the forward.
    let _ = fixture.ask(&bytes(&query(32, "c1.", RecordType::A, None))).await;
    fixture.server.take().unwrap().close().await;
    std::net::UdpSocket::bind(fixture.address).expect("the port is free again");
}

#[test]
fn the_receive_buffer_is_enlarged() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    size_receive_buffer(&socket);
    let mut value: libc::c_int = 0;
    let mut length = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and length are valid for writes of the sizes given.
    let status = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut value as *mut libc::c_int).cast(),
            &mut length,
        )
    };
    assert_eq!(status, 0);
    // The kernel reports twice what was set (its bookkeeping overhead).
    assert!(value >= RECEIVE_BUFFER, "SO_RCVBUF is {value}");
}
