//! Validation of every request field (ids, bridge names, subnets, ports, protocols,
//! addresses) and which bindings overlap.

use super::*;

fn reason(result: Result<impl fmt::Debug, Error>) -> String {
    result.unwrap_err().to_string()
}

#[test]
fn ids_and_bridges() {
    assert!(NetworkId::parse("0123abcdef").is_ok());
    assert!(ContainerId::parse("web-1_a.b:c/d").is_ok());
    assert_eq!(reason(NetworkId::parse("")), r#"invalid network_id "": must not be empty"#);
    assert!(reason(ContainerId::parse("a b")).contains("' ' is not allowed"));
    assert!(reason(ContainerId::parse(&"x".repeat(257))).contains("at most 256"));
    for good in ["br-0123456789ab", "cnet0", "a", "x.y_z-1"] {
        assert!(BridgeName::parse(good).is_ok(), "{good}");
    }
    for bad in ["", "br-0123456789abc", "eth+", "!eth0", "-j", "a b", "a/b", ".", "..", "a;b"] {
        assert!(BridgeName::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn subnets() {
    let subnet = parse_subnet("172.16.0.0/16").unwrap();
    assert_eq!(subnet.to_string(), "172.16.0.0/16");
    assert_eq!(
        reason(parse_subnet("172.16.1.0/16")),
        r#"invalid subnet "172.16.1.0/16": host bits are set (use 172.16.0.0/16)"#
    );
    assert!(reason(parse_subnet("0.0.0.0/0")).contains("prefix length must be 1-31"));
    assert!(reason(parse_subnet("10.0.0.1/32")).contains("prefix length"));
    assert!(reason(parse_subnet("10.0.0.0")).contains("not an IPv4 CIDR"));
    assert!(reason(parse_subnet("fd00::/64")).contains("IPv6 is not supported"));
    assert!(reason(parse_subnet("10.0.0.0/8 -j ACCEPT")).contains("not an IPv4 CIDR"));
}

#[test]
fn port_requests() {
    let tcp = |ip, port, end, cport, proto| PortRequest::parse(ip, port, end, cport, proto);
    let request = tcp("", 8080, 0, 80, "").unwrap();
    assert_eq!(request.host_ip, Ipv4Addr::UNSPECIFIED);
    assert_eq!((request.host_port, request.protocol), (HostPort::Fixed(8080), Protocol::Tcp));
    assert_eq!(tcp("127.0.0.1", 0, 0, 53, "udp").unwrap().host_port, HostPort::Random);
    assert_eq!(tcp("", 8090, 8092, 80, "tcp").unwrap().host_port, HostPort::Range(8090, 8092));
    assert_eq!(tcp("", 8090, 8090, 80, "tcp").unwrap().host_port, HostPort::Fixed(8090));

    let cases = [
        (tcp("", 70000, 0, 80, "tcp"), r#"invalid host_port "70000": must be 0-65535"#),
        (tcp("", 8080, 0, 0, "tcp"), r#"invalid container_port "0": must be 1-65535"#),
        (tcp("", 8080, 0, 65536, "tcp"), r#"invalid container_port "65536": must be 1-65535"#),
        (tcp("", 8080, 0, 80, "sctp"), r#"invalid protocol "sctp": use tcp or udp"#),
        (tcp("", 8080, 0, 80, "TCP"), r#"invalid protocol "TCP": use tcp or udp"#),
        (tcp("", 8092, 8090, 80, "tcp"), "the range ends before it starts"),
        (tcp("", 0, 8090, 80, "tcp"), "a range needs its first port"),
        (tcp("::", 8080, 0, 80, "tcp"), "IPv6 is not supported"),
        (tcp("localhost", 8080, 0, 80, "tcp"), "not an IPv4 address"),
    ];
    for (result, expected) in cases {
        let message = reason(result);
        assert!(message.contains(expected), "{message} should contain {expected}");
    }
}

#[test]
fn publish_requests() {
    assert!(PublishRequest::parse("c1", "n1", "172.16.1.2", vec![]).is_ok());
    assert!(reason(PublishRequest::parse("c1", "n1", "", vec![])).contains("container_ip"));
    assert!(reason(PublishRequest::parse("c1", "n1", "0.0.0.0", vec![])).contains("address"));
    let many = vec![PortRequest::parse("", 0, 0, 80, "").unwrap(); MAX_MAPPINGS + 1];
    assert!(reason(PublishRequest::parse("c1", "n1", "10.0.0.2", many)).contains("at most"));
}

#[test]
fn overlapping_bindings() {
    let binding = |ip: [u8; 4], port, protocol| Binding {
        host_ip: Ipv4Addr::from(ip),
        host_port: port,
        container_port: 80,
        protocol,
    };
    let all = binding([0, 0, 0, 0], 8080, Protocol::Tcp);
    assert!(all.overlaps(&binding([127, 0, 0, 1], 8080, Protocol::Tcp)));
    assert!(binding([127, 0, 0, 1], 8080, Protocol::Tcp).overlaps(&all));
    assert!(!all.overlaps(&binding([0, 0, 0, 0], 8080, Protocol::Udp)));
    assert!(!all.overlaps(&binding([0, 0, 0, 0], 8081, Protocol::Tcp)));
    let one = binding([127, 0, 0, 1], 8081, Protocol::Tcp);
    assert!(!one.overlaps(&binding([127, 0, 0, 2], 8081, Protocol::Tcp)));
}
