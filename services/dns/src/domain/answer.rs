//! The DNS side of a local answer: the records and the header flags Docker's resolver
//! sends (DNS-2: TTL 600, flags `qr rd ra`, AA not set), and the header of a forwarded
//! answer, which keeps the upstream's rcode and flags but the client's id, RD and CD.

use hickory_proto::{
    op::{Metadata, ResponseCode},
    rr::{
        Name, RData, Record,
        rdata::{A, PTR},
    },
};

use super::Outcome;

/// TTL of every record the resolver answers itself, as Docker's.
pub const LOCAL_TTL: u32 = 600;

/// The answer records of a local outcome, owned by the name exactly as it was asked.
pub fn local_records(query_name: &Name, outcome: &Outcome) -> Vec<Record> {
    match outcome {
        Outcome::Addresses { addresses, .. } => addresses
            .iter()
            .map(|address| Record::from_rdata(query_name.clone(), LOCAL_TTL, RData::A(A(*address))))
            .collect(),
        Outcome::Pointer { target, .. } => match Name::from_ascii(target) {
            Ok(target) => {
                vec![Record::from_rdata(query_name.clone(), LOCAL_TTL, RData::PTR(PTR(target)))]
            }
            // Names are validated at registration, so this cannot happen; an empty
            // answer is still better than none.
            Err(_) => Vec::new(),
        },
        Outcome::NoData | Outcome::Forward => Vec::new(),
    }
}

/// Header of a local answer: NOERROR, recursion available, not authoritative.
pub fn local_metadata(request: &Metadata) -> Metadata {
    let mut metadata = Metadata::response_from_request(request);
    metadata.recursion_available = true;
    metadata.authoritative = false;
    metadata.response_code = ResponseCode::NoError;
    metadata
}

/// Header of a forwarded answer: the upstream's rcode and AA/AD/RA flags, unchanged; the
/// client's id, opcode, RD and CD. Truncation is decided again when the answer is encoded
/// for the client.
pub fn forwarded_metadata(request: &Metadata, upstream: &Metadata) -> Metadata {
    let mut metadata = Metadata::response_from_request(request);
    metadata.response_code = upstream.response_code;
    metadata.authoritative = upstream.authoritative;
    metadata.authentic_data = upstream.authentic_data;
    metadata.recursion_available = upstream.recursion_available;
    metadata
}

/// Header of the answer when no upstream answered at all.
pub fn failure_metadata(request: &Metadata) -> Metadata {
    let mut metadata = local_metadata(request);
    metadata.response_code = ResponseCode::ServFail;
    metadata
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::op::{MessageType, OpCode};

    use super::*;
    use crate::domain::NetworkId;

    fn request() -> Metadata {
        let mut metadata = Metadata::new(7, MessageType::Query, OpCode::Query);
        metadata.recursion_desired = true;
        metadata
    }

    #[test]
    fn local_answers_are_a_records_with_ttl_600_and_no_aa() {
        let name = Name::from_ascii("CentOS3.").unwrap();
        let outcome = Outcome::Addresses {
            network: NetworkId::parse("n").unwrap(),
            addresses: vec![Ipv4Addr::new(172, 16, 1, 3)],
        };
        let records = local_records(&name, &outcome);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].name, name);
        assert_eq!(records[0].ttl, 600);
        assert_eq!(records[0].data, RData::A(A(Ipv4Addr::new(172, 16, 1, 3))));
        let metadata = local_metadata(&request());
        assert_eq!((metadata.id, metadata.message_type), (7, MessageType::Response));
        assert!(metadata.recursion_desired && metadata.recursion_available);
        assert!(!metadata.authoritative);
        assert_eq!(metadata.response_code, ResponseCode::NoError);
    }

    #[test]
    fn pointers_name_the_container_on_its_network() {
        let name = Name::from_ascii("3.1.16.172.in-addr.arpa.").unwrap();
        let outcome = Outcome::Pointer {
            network: NetworkId::parse("n").unwrap(),
            target: "centos3.vswitch01.".into(),
        };
        let records = local_records(&name, &outcome);
        let target = Name::from_ascii("centos3.vswitch01.").unwrap();
        assert_eq!(records[0].data, RData::PTR(PTR(target)));
        assert_eq!(records[0].ttl, 600);
        assert!(local_records(&name, &Outcome::NoData).is_empty());
    }

    #[test]
    fn forwarded_answers_keep_the_upstream_rcode() {
        let mut upstream = Metadata::new(999, MessageType::Response, OpCode::Query);
        upstream.response_code = ResponseCode::NXDomain;
        upstream.recursion_available = true;
        let metadata = forwarded_metadata(&request(), &upstream);
        assert_eq!(metadata.id, 7);
        assert_eq!(metadata.response_code, ResponseCode::NXDomain);
        assert!(metadata.recursion_desired && metadata.recursion_available);
        assert_eq!(failure_metadata(&request()).response_code, ResponseCode::ServFail);
    }
}
