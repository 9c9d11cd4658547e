//! A small host built with `ip` inside the test's namespace, Docker-style: bridges with
//! their gateway address, "containers" (namespaces with a veth on a bridge and a default
//! route via the gateway) and an "outside" namespace on a veth of its own (10.99.0.2,
//! host side 10.99.0.1) that plays a remote client and a remote server. FORWARD's
//! policy is chosen per test: DROP as on a Docker host, so only cnet's accepts let
//! traffic through, or ACCEPT, so only cnet's drops stop it.

#![allow(dead_code)]

use std::net::SocketAddr;

use crate::netns::{Netns, sh};

/// The host's address towards the outside namespace, a "non-loopback address of the
/// host".
pub const HOST: &str = "10.99.0.1";
pub const OUTSIDE: &str = "10.99.0.2";

pub fn addr(ip: &str, port: u16) -> SocketAddr {
    format!("{ip}:{port}").parse().expect("socket address")
}

/// The host side: FORWARD policy `policy` (Docker hosts have DROP; ACCEPT shows that
/// cnet's own DROPs isolate), and the outside namespace.
pub fn host(policy: &str) -> Netns {
    sh(&format!("iptables -P FORWARD {policy}"));
    let outside = Netns::new();
    sh(&format!("ip link add vout type veth peer name eth0 netns {}", outside.pid()));
    sh(&format!("ip addr add {HOST}/24 dev vout && ip link set vout up"));
    outside.sh(&format!(
        "ip addr add {OUTSIDE}/24 dev eth0 && ip link set eth0 up && ip route add default via {HOST}"
    ));
    outside
}

/// A bridge with `gateway_cidr` on it, up.
pub fn bridge(name: &str, gateway_cidr: &str) {
    sh(&format!(
        "ip link add {name} type bridge && ip addr add {gateway_cidr} dev {name} && ip link set {name} up"
    ));
}

/// A container on `bridge` with `cidr`, default route via `gateway`; `tag` names its
/// host-side veth ("v<tag>").
pub fn container(tag: &str, bridge: &str, cidr: &str, gateway: &str) -> Netns {
    let netns = Netns::new();
    sh(&format!(
        "ip link add v{tag} type veth peer name eth0 netns {pid} && ip link set v{tag} master {bridge} up",
        pid = netns.pid()
    ));
    netns.sh(&format!(
        "ip addr add {cidr} dev eth0 && ip link set eth0 up && ip route add default via {gateway}"
    ));
    netns
}
