//! Validated values: every field of a request is checked here before it can reach an
//! iptables command line or a socket, so interface names cannot carry iptables
//! wildcards ('+') or options, and addresses are IPv4 only.
//!
//! These types are also the store's records (serde through the same checks), so a
//! corrupt record is refused at load like a bad request.

use std::{fmt, net::Ipv4Addr, str::FromStr};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::Error;

/// Longest id accepted, as in the bridge agent.
pub const MAX_ID_LEN: usize = 256;
/// Most mappings one Publish may carry.
pub const MAX_MAPPINGS: usize = 4096;

fn check_id(field: &'static str, value: &str) -> Result<(), Error> {
    let invalid = |reason: String| Error::invalid(field, value, reason);
    if value.is_empty() {
        return Err(invalid("must not be empty".into()));
    }
    if value.len() > MAX_ID_LEN {
        return Err(invalid(format!("must be at most {MAX_ID_LEN} bytes")));
    }
    match value.chars().find(|c| !(c.is_ascii_alphanumeric() || "_.:/-".contains(*c))) {
        Some(bad) => {
            Err(invalid(format!("{bad:?} is not allowed (use letters, digits and _ . : / -)")))
        }
        None => Ok(()),
    }
}

/// Linux interface names are at most 15 bytes; iptables treats a trailing '+' as a
/// wildcard and a leading '!' as negation, so only a plain alphabet is accepted.
fn check_bridge(value: &str) -> Result<(), Error> {
    let invalid = |reason: &str| Error::invalid("bridge_name", value, reason);
    if value.is_empty() || value.len() > 15 {
        return Err(invalid("must be 1-15 characters"));
    }
    if value == "." || value == ".." {
        return Err(invalid("is not an interface name"));
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        || value.starts_with('-')
    {
        return Err(invalid("use letters, digits and _ . - (not starting with -)"));
    }
    Ok(())
}

macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, Error> {
                $check(value)?;
                Ok(Self(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;

            fn try_from(value: String) -> Result<Self, Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_string!(
    /// The caller's network id.
    NetworkId,
    |value| check_id("network_id", value)
);
checked_string!(
    /// The caller's container id; one publication per container.
    ContainerId,
    |value| check_id("container_id", value)
);
checked_string!(
    /// A bridge interface name safe to put on an iptables command line.
    BridgeName,
    check_bridge
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// Empty means tcp, as in Docker's `-p 8080:80`.
    pub fn parse(value: &str) -> Result<Self, Error> {
        match value {
            "" | "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            _ => Err(Error::invalid("protocol", value, "use tcp or udp")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An IPv4 address field; `allow_empty` maps "" to 0.0.0.0 (every address).
pub fn parse_ipv4(field: &'static str, value: &str, allow_empty: bool) -> Result<Ipv4Addr, Error> {
    if value.is_empty() && allow_empty {
        return Ok(Ipv4Addr::UNSPECIFIED);
    }
    if value.contains(':') {
        return Err(Error::invalid(field, value, "IPv6 is not supported (cnet is IPv4 only)"));
    }
    Ipv4Addr::from_str(value).map_err(|_| Error::invalid(field, value, "not an IPv4 address"))
}

/// A masked IPv4 subnet with prefix length 1-31.
pub fn parse_subnet(value: &str) -> Result<Ipv4Net, Error> {
    if value.contains(':') {
        return Err(Error::invalid("subnet", value, "IPv6 is not supported (cnet is IPv4 only)"));
    }
    let subnet = Ipv4Net::from_str(value)
        .map_err(|_| Error::invalid("subnet", value, "not an IPv4 CIDR such as 172.16.0.0/16"))?;
    if !(1..=31).contains(&subnet.prefix_len()) {
        return Err(Error::invalid("subnet", value, "prefix length must be 1-31"));
    }
    if subnet.addr() != subnet.network() {
        let masked = subnet.trunc();
        return Err(Error::invalid("subnet", value, format!("host bits are set (use {masked})")));
    }
    Ok(subnet)
}

fn parse_port(field: &'static str, value: u32, allow_zero: bool) -> Result<u16, Error> {
    let low = if allow_zero { 0 } else { 1 };
    match u16::try_from(value) {
        Ok(port) if port >= low => Ok(port),
        _ => Err(Error::invalid(field, value, format!("must be {low}-65535"))),
    }
}

/// A network's packet-filter identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: NetworkId,
    pub bridge: BridgeName,
    pub subnet: Ipv4Net,
    pub internal: bool,
}

impl Network {
    pub fn parse(id: &str, bridge: &str, subnet: &str, internal: bool) -> Result<Self, Error> {
        Ok(Network {
            id: NetworkId::parse(id)?,
            bridge: BridgeName::parse(bridge)?,
            subnet: parse_subnet(subnet)?,
            internal,
        })
    }

    /// How this network is described in a conflict message.
    pub fn describe(&self) -> String {
        format!("bridge {}, subnet {}, internal {}", self.bridge, self.subnet, self.internal)
    }
}

/// Which host port a mapping asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostPort {
    /// From the ephemeral range (`-p 80`).
    Random,
    Fixed(u16),
    /// One free port of an inclusive range (`-p 8090-8092:80`).
    Range(u16, u16),
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPort::Random => f.write_str("0"),
            HostPort::Fixed(port) => write!(f, "{port}"),
            HostPort::Range(start, end) => write!(f, "{start}-{end}"),
        }
    }
}

/// One mapping as requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRequest {
    /// 0.0.0.0 means every address.
    pub host_ip: Ipv4Addr,
    pub host_port: HostPort,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortRequest {
    pub fn parse(
        host_ip: &str,
        host_port: u32,
        host_port_end: u32,
        container_port: u32,
        protocol: &str,
    ) -> Result<Self, Error> {
        let host_ip = parse_ipv4("host_ip", host_ip, true)?;
        let start = parse_port("host_port", host_port, true)?;
        let end = parse_port("host_port_end", host_port_end, true)?;
        let host_port = match (start, end) {
            (0, 0) => HostPort::Random,
            (port, 0) => HostPort::Fixed(port),
            (0, _) => return Err(Error::invalid("host_port", 0, "a range needs its first port")),
            (start, end) if end < start => {
                let range = format!("{start}-{end}");
                return Err(Error::invalid(
                    "host_port_end",
                    range,
                    "the range ends before it starts",
                ));
            }
            (start, end) if start == end => HostPort::Fixed(start),
            (start, end) => HostPort::Range(start, end),
        };
        Ok(PortRequest {
            host_ip,
            host_port,
            container_port: parse_port("container_port", container_port, false)?,
            protocol: Protocol::parse(protocol)?,
        })
    }
}

/// One published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Binding {
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl Binding {
    /// Whether both cannot be listened on at once: same protocol and port, and the same
    /// address or one of them every address.
    pub fn overlaps(&self, other: &Binding) -> bool {
        self.protocol == other.protocol
            && self.host_port == other.host_port
            && (self.host_ip == other.host_ip
                || self.host_ip.is_unspecified()
                || other.host_ip.is_unspecified())
    }
}

/// A validated Publish request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRequest {
    pub container: ContainerId,
    pub network: NetworkId,
    pub container_ip: Ipv4Addr,
    pub ports: Vec<PortRequest>,
}

impl PublishRequest {
    pub fn parse(
        container: &str,
        network: &str,
        container_ip: &str,
        ports: Vec<PortRequest>,
    ) -> Result<Self, Error> {
        if ports.len() > MAX_MAPPINGS {
            let reason = format!("at most {MAX_MAPPINGS} mappings per call");
            return Err(Error::invalid("ports", ports.len(), reason));
        }
        let container_ip = parse_ipv4("container_ip", container_ip, false)?;
        if container_ip.is_unspecified() {
            return Err(Error::invalid("container_ip", container_ip, "must be an address"));
        }
        Ok(PublishRequest {
            container: ContainerId::parse(container)?,
            network: NetworkId::parse(network)?,
            container_ip,
            ports,
        })
    }
}

/// A container's published ports: what was asked (to recognise a repeated request) and
/// what was bound, position by position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    pub container: ContainerId,
    pub network: NetworkId,
    pub container_ip: Ipv4Addr,
    pub requests: Vec<PortRequest>,
    pub bindings: Vec<Binding>,
}

impl Publication {
    /// Whether `request` asks for exactly what this publication was made from.
    pub fn answers(&self, request: &PublishRequest) -> bool {
        self.network == request.network
            && self.container_ip == request.container_ip
            && self.requests == request.ports
    }
}

#[cfg(test)]
mod tests;
