//! A container's registration, validated: the only way to build one is
//! [`Registration::parse`] from plain strings (what gRPC and the store hold), so every
//! registration in memory satisfies the rules documented in dns.proto.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
};

use super::{Error, names};

/// The port of a DNS server given without one.
const DNS_PORT: u16 = 53;

/// A full 64-hex container id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(String);

impl ContainerId {
    pub fn parse(value: &str) -> Result<Self, Error> {
        let valid = value.len() == 64
            && value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(Error::InvalidContainerId { value: value.to_owned() });
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 12-hex short id Docker shows and resolves.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A network id as the gateway gives it. It never contains '/', which keeps it usable
/// in store keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId(String);

impl NetworkId {
    pub fn parse(value: &str) -> Result<Self, Error> {
        let valid = !value.is_empty()
            && value.len() <= 128
            && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            return Err(Error::InvalidNetworkId { value: value.to_owned() });
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A DNS server unknown names are forwarded to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Upstream(pub SocketAddr);

impl Upstream {
    /// "ip" (port 53), "ip:port", "v6" or "[v6]:port".
    pub fn parse(value: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidUpstream { value: value.to_owned(), reason };
        let address = match value.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, DNS_PORT),
            Err(_) => value
                .parse::<SocketAddr>()
                .map_err(|_| invalid("expected an IP address, optionally with :port"))?,
        };
        if address.port() == 0 {
            return Err(invalid("port 0 is not a server"));
        }
        let ip = address.ip();
        if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
            return Err(invalid("not a unicast address"));
        }
        if let SocketAddr::V6(v6) = address
            && v6.scope_id() != 0
        {
            return Err(invalid("scoped IPv6 addresses are not supported"));
        }
        Ok(Self(address))
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// `--link target:alias` on a user-defined network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkAlias {
    pub alias: String,
    pub target: ContainerId,
}

/// A container's attachment to one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub network_id: NetworkId,
    pub network_name: String,
    pub address: Ipv4Addr,
    /// Distinct aliases, in the order given.
    pub aliases: Vec<String>,
    pub internal: bool,
}

/// An endpoint as plain strings, before validation.
#[derive(Debug, Clone, Default)]
pub struct EndpointRequest {
    pub network_id: String,
    pub network_name: String,
    pub address: String,
    pub aliases: Vec<String>,
    pub internal: bool,
}

/// A registration as plain strings, before validation.
#[derive(Debug, Clone, Default)]
pub struct RegistrationRequest {
    pub container_id: String,
    pub name: String,
    pub hostname: String,
    pub netns_path: String,
    pub upstreams: Vec<String>,
    /// (alias, target container id)
    pub link_aliases: Vec<(String, String)>,
    pub endpoints: Vec<EndpointRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub container_id: ContainerId,
    pub name: String,
    /// None when the container has no hostname of its own.
    pub hostname: Option<String>,
    /// Absolute; whether it is a namespace is the listener's business.
    pub netns_path: PathBuf,
    pub upstreams: Vec<Upstream>,
    pub link_aliases: Vec<LinkAlias>,
    pub endpoints: Vec<Endpoint>,
}

impl Registration {
    pub fn parse(request: &RegistrationRequest) -> Result<Self, Error> {
        let container_id = ContainerId::parse(&request.container_id)?;
        // Docker shows names as "/name"; accept that form and keep the bare name.
        let name = request.name.strip_prefix('/').unwrap_or(&request.name);
        names::check_docker_name(name).map_err(|reason| Error::InvalidName {
            field: "container name",
            value: request.name.clone(),
            reason,
        })?;
        let hostname = match request.hostname.as_str() {
            "" => None,
            hostname if names::is_valid_hostname(hostname) => Some(hostname.to_owned()),
            hostname => return Err(Error::InvalidHostname { value: hostname.to_owned() }),
        };
        let netns_path = PathBuf::from(&request.netns_path);
        if !netns_path.is_absolute() {
            return Err(Error::InvalidNetnsPath {
                value: request.netns_path.clone(),
                reason: "must be an absolute path".into(),
            });
        }
        let upstreams = request
            .upstreams
            .iter()
            .map(|value| Upstream::parse(value))
            .collect::<Result<_, _>>()?;
        let link_aliases = request
            .link_aliases
            .iter()
            .map(|(alias, target)| {
                names::check_alias(alias).map_err(|reason| Error::InvalidName {
                    field: "link alias",
                    value: alias.clone(),
                    reason,
                })?;
                Ok(LinkAlias { alias: alias.clone(), target: ContainerId::parse(target)? })
            })
            .collect::<Result<_, Error>>()?;
        let mut endpoints: Vec<Endpoint> = Vec::with_capacity(request.endpoints.len());
        for endpoint in &request.endpoints {
            let endpoint = parse_endpoint(endpoint)?;
            if endpoints.iter().any(|seen| seen.network_id == endpoint.network_id) {
                return Err(Error::DuplicateNetwork { network: endpoint.network_id.to_string() });
            }
            endpoints.push(endpoint);
        }
        Ok(Self {
            container_id,
            name: name.to_owned(),
            hostname,
            netns_path,
            upstreams,
            link_aliases,
            endpoints,
        })
    }

    /// Every name the container answers to on `endpoint`'s network, lower-cased and
    /// distinct: its name, short id, hostname and the endpoint's aliases (DNS-2).
    pub fn names_on(&self, endpoint: &Endpoint) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        let candidates = [self.name.as_str(), self.container_id.short()]
            .into_iter()
            .chain(self.hostname.as_deref())
            .chain(endpoint.aliases.iter().map(String::as_str));
        for candidate in candidates {
            let name = names::normalise(candidate);
            if !found.contains(&name) {
                found.push(name);
            }
        }
        found
    }
}

fn parse_endpoint(request: &EndpointRequest) -> Result<Endpoint, Error> {
    let network_id = NetworkId::parse(&request.network_id)?;
    names::check_docker_name(&request.network_name).map_err(|reason| Error::InvalidName {
        field: "network name",
        value: request.network_name.clone(),
        reason,
    })?;
    let invalid = |reason| Error::InvalidAddress {
        network: request.network_name.clone(),
        value: request.address.clone(),
        reason,
    };
    let address: Ipv4Addr =
        request.address.parse().map_err(|_| invalid("expected an IPv4 address"))?;
    if address.is_unspecified() || address.is_multicast() || address.is_broadcast() {
        return Err(invalid("not a unicast address"));
    }
    let mut aliases: Vec<String> = Vec::new();
    for alias in &request.aliases {
        names::check_alias(alias).map_err(|reason| Error::InvalidName {
            field: "network alias",
            value: alias.clone(),
            reason,
        })?;
        if !aliases.contains(alias) {
            aliases.push(alias.clone());
        }
    }
    Ok(Endpoint {
        network_id,
        network_name: request.network_name.clone(),
        address,
        aliases,
        internal: request.internal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn request() -> RegistrationRequest {
        RegistrationRequest {
            container_id: ID.into(),
            name: "/web1".into(),
            hostname: "Host1".into(),
            netns_path: "/proc/1/ns/net".into(),
            upstreams: vec!["10.0.0.2".into(), "127.0.0.1:5353".into(), "[::1]:53".into()],
            link_aliases: vec![("db".into(), ID.into())],
            endpoints: vec![EndpointRequest {
                network_id: "net1".into(),
                network_name: "front".into(),
                address: "172.16.1.2".into(),
                aliases: vec!["web".into(), "web".into(), "WWW".into()],
                internal: false,
            }],
        }
    }

    #[test]
    fn parses_a_full_registration() {
        let registration = Registration::parse(&request()).unwrap();
        assert_eq!(registration.name, "web1");
        assert_eq!(registration.container_id.short(), "0123456789ab");
        let upstreams: Vec<String> =
            registration.upstreams.iter().map(ToString::to_string).collect();
        assert_eq!(upstreams, ["10.0.0.2:53", "127.0.0.1:5353", "[::1]:53"]);
        let endpoint = &registration.endpoints[0];
        assert_eq!(endpoint.aliases, ["web", "WWW"]);
        assert_eq!(
            registration.names_on(endpoint),
            ["web1", "0123456789ab", "host1", "web", "www"]
        );
    }

    /// One edit that makes a valid request invalid.
    type Change = fn(&mut RegistrationRequest);

    #[test]
    fn refuses_bad_fields_with_readable_messages() {
        let cases: Vec<(Change, &str)> = vec![
            (|r| r.container_id = "abc".into(), "invalid container id"),
            (|r| r.name = "-x".into(), "invalid container name"),
            (|r| r.hostname = "bad_host".into(), "invalid hostname"),
            (|r| r.netns_path = "ns/net".into(), "must be an absolute path"),
            (|r| r.upstreams = vec!["dns.example".into()], "invalid upstream"),
            (|r| r.upstreams = vec!["0.0.0.0".into()], "not a unicast address"),
            (|r| r.upstreams = vec!["1.1.1.1:0".into()], "port 0"),
            (|r| r.link_aliases = vec![("d b".into(), ID.into())], "invalid link alias"),
            (|r| r.link_aliases = vec![("db".into(), "x".into())], "invalid container id"),
            (|r| r.endpoints[0].network_id = "a/b".into(), "invalid network id"),
            (|r| r.endpoints[0].network_name = "".into(), "invalid network name"),
            (|r| r.endpoints[0].address = "172.16.1.2/16".into(), "expected an IPv4 address"),
            (|r| r.endpoints[0].address = "fd00::2".into(), "expected an IPv4 address"),
            (|r| r.endpoints[0].address = "0.0.0.0".into(), "not a unicast address"),
            (|r| r.endpoints[0].aliases = vec!["a b".into()], "invalid network alias"),
            (|r| r.endpoints.push(r.endpoints[0].clone()), "appears twice"),
        ];
        for (change, expected) in cases {
            let mut request = request();
            change(&mut request);
            let error = Registration::parse(&request).unwrap_err().to_string();
            assert!(error.contains(expected), "{error:?} should contain {expected:?}");
        }
    }
}
