//! Link-level values: interface names, MAC addresses, MTUs and IPv4 CIDRs, validated the
//! way the kernel would so that bad input is refused before it reaches netlink.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr},
    str::FromStr,
};

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

use super::Invalid;

/// An interface name as the kernel's `dev_valid_name` accepts it: 1 to 15 bytes
/// (IFNAMSIZ minus the NUL), not "." or "..", no '/', ':' or whitespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IfName(String);

impl IfName {
    pub const MAX_LEN: usize = 15;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_ifname(value: &str) -> Result<(), Invalid> {
    if value.is_empty() {
        return Err(Invalid::new("must not be empty"));
    }
    if value.len() > IfName::MAX_LEN {
        return Err(Invalid::new(format!("{value:?} is longer than {} bytes", IfName::MAX_LEN)));
    }
    if value == "." || value == ".." {
        return Err(Invalid::new(format!("{value:?} is not a valid interface name")));
    }
    if let Some(bad) = value.chars().find(|c| *c == '/' || *c == ':' || c.is_whitespace()) {
        return Err(Invalid::new(format!("{bad:?} is not allowed in an interface name")));
    }
    Ok(())
}

impl FromStr for IfName {
    type Err = Invalid;

    fn from_str(value: &str) -> Result<Self, Invalid> {
        check_ifname(value)?;
        Ok(Self(value.to_owned()))
    }
}

impl TryFrom<String> for IfName {
    type Error = Invalid;

    fn try_from(value: String) -> Result<Self, Invalid> {
        check_ifname(&value)?;
        Ok(Self(value))
    }
}

impl From<IfName> for String {
    fn from(name: IfName) -> String {
        name.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An Ethernet unicast address. Multicast and all-zero addresses are refused because
/// the kernel refuses them as a device address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mac([u8; 6]);

impl Mac {
    /// Builds a MAC from raw bytes; the caller guarantees it is a unicast address.
    pub const fn from_bytes(bytes: [u8; 6]) -> Self {
        Self(bytes)
    }

    /// Docker's container MAC: 02:42 followed by the four IPv4 octets (NET-8).
    pub fn from_ipv4(address: Ipv4Addr) -> Self {
        let [a, b, c, d] = address.octets();
        Self([0x02, 0x42, a, b, c, d])
    }

    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl FromStr for Mac {
    type Err = Invalid;

    fn from_str(value: &str) -> Result<Self, Invalid> {
        let invalid =
            || Invalid::new(format!("{value:?} is not a MAC address like 02:42:ac:10:01:00"));
        let mut bytes = [0u8; 6];
        let mut parts = value.split(':');
        for byte in &mut bytes {
            let part = parts.next().ok_or_else(invalid)?;
            if part.len() != 2 {
                return Err(invalid());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| invalid())?;
        }
        if parts.next().is_some() {
            return Err(invalid());
        }
        if bytes[0] & 1 == 1 {
            return Err(Invalid::new(format!("{value} is a multicast address")));
        }
        if bytes == [0; 6] {
            return Err(Invalid::new("00:00:00:00:00:00 is not a usable address"));
        }
        Ok(Self(bytes))
    }
}

impl TryFrom<String> for Mac {
    type Error = Invalid;

    fn try_from(value: String) -> Result<Self, Invalid> {
        value.parse()
    }
}

impl From<Mac> for String {
    fn from(mac: Mac) -> String {
        mac.to_string()
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

/// A link MTU within what Ethernet devices (bridge, veth) accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Mtu(u32);

impl Mtu {
    pub const DEFAULT: Mtu = Mtu(1500);
    pub const MIN: u32 = 68;
    pub const MAX: u32 = 65535;

    /// The proto convention: 0 means "not given".
    pub fn optional(value: u32) -> Result<Option<Mtu>, Invalid> {
        match value {
            0 => Ok(None),
            value => Mtu::try_from(value).map(Some),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Mtu {
    type Error = Invalid;

    fn try_from(value: u32) -> Result<Self, Invalid> {
        if !(Self::MIN..=Self::MAX).contains(&value) {
            return Err(Invalid::new(format!("{value} is outside {}..={}", Self::MIN, Self::MAX)));
        }
        Ok(Self(value))
    }
}

impl From<Mtu> for u32 {
    fn from(mtu: Mtu) -> u32 {
        mtu.0
    }
}

/// An IPv4 address with its prefix length, host bits kept ("172.16.1.1/16").
pub fn parse_cidr(value: &str) -> Result<Ipv4Net, Invalid> {
    if !value.contains('/') {
        return Err(Invalid::new(format!(
            "{value:?} has no prefix length (expected e.g. 172.16.1.1/16)"
        )));
    }
    match value.parse::<IpNet>() {
        Ok(IpNet::V4(net)) => Ok(net),
        Ok(IpNet::V6(_)) => Err(Invalid::new(format!("{value}: only IPv4 is supported"))),
        Err(_) => Err(Invalid::new(format!("{value:?} is not a CIDR like 172.16.1.1/16"))),
    }
}

pub fn parse_ipv4(value: &str) -> Result<Ipv4Addr, Invalid> {
    match value.parse::<IpAddr>() {
        Ok(IpAddr::V4(address)) => Ok(address),
        Ok(IpAddr::V6(_)) => Err(Invalid::new(format!("{value}: only IPv4 is supported"))),
        Err(_) => Err(Invalid::new(format!("{value:?} is not an IPv4 address"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        for ok in ["eth0", "br-0123456789ab", "veth1234567", "a", "x.y-z_1"] {
            assert!(ok.parse::<IfName>().is_ok(), "{ok}");
        }
        for (bad, part) in [
            ("", "empty"),
            ("0123456789abcdef", "longer than 15"),
            (".", "not a valid"),
            ("..", "not a valid"),
            ("a/b", "'/'"),
            ("a:b", "':'"),
            ("a b", "' '"),
            ("a\tb", "'\\t'"),
        ] {
            let error = bad.parse::<IfName>().unwrap_err();
            assert!(error.0.contains(part), "{bad:?}: {error}");
        }
    }

    #[test]
    fn mac_from_ipv4_follows_docker() {
        assert_eq!(Mac::from_ipv4(Ipv4Addr::new(172, 16, 1, 0)).to_string(), "02:42:ac:10:01:00");
        assert_eq!(Mac::from_ipv4(Ipv4Addr::new(172, 17, 0, 2)).to_string(), "02:42:ac:11:00:02");
    }

    #[test]
    fn macs() {
        let mac: Mac = "02:42:AC:10:01:00".parse().unwrap();
        assert_eq!(mac.to_string(), "02:42:ac:10:01:00");
        for (bad, part) in [
            ("01:00:5e:00:00:01", "multicast"),
            ("00:00:00:00:00:00", "not a usable"),
            ("02:42:ac:10:01", "not a MAC"),
            ("02:42:ac:10:01:00:00", "not a MAC"),
            ("02-42-ac-10-01-00", "not a MAC"),
            ("2:42:ac:10:01:00", "not a MAC"),
            ("zz:42:ac:10:01:00", "not a MAC"),
        ] {
            let error = bad.parse::<Mac>().unwrap_err();
            assert!(error.0.contains(part), "{bad:?}: {error}");
        }
    }

    #[test]
    fn mtus() {
        assert_eq!(Mtu::optional(0).unwrap(), None);
        assert_eq!(Mtu::optional(9000).unwrap(), Some(Mtu(9000)));
        assert!(Mtu::optional(67).unwrap_err().0.contains("outside 68..=65535"));
        assert!(Mtu::optional(65536).is_err());
    }

    #[test]
    fn cidrs_keep_host_bits() {
        let net = parse_cidr("172.16.1.0/16").unwrap();
        assert_eq!(net.addr(), Ipv4Addr::new(172, 16, 1, 0));
        assert_eq!(net.prefix_len(), 16);
        assert!(parse_cidr("172.16.1.1").unwrap_err().0.contains("no prefix length"));
        assert!(parse_cidr("fd00::1/64").unwrap_err().0.contains("only IPv4"));
        assert!(parse_cidr("172.16.1.1/33").unwrap_err().0.contains("not a CIDR"));
        assert!(parse_cidr("300.1.1.1/8").is_err());
        assert!(parse_ipv4("::1").unwrap_err().0.contains("only IPv4"));
        assert!(parse_ipv4("foo").is_err());
    }
}
