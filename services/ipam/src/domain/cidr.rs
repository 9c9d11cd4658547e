//! Parsing the textual inputs of IPAM: CIDRs kept exactly as typed (NET-1), single
//! addresses, and the lenient `exclude` list of prefixes already used on the host.
//!
//! The parsers are strict where Go's `net.ParseCIDR` is strict (no missing prefix, no
//! `/33`, no octet above 255, no sign or leading zero in the prefix), so that what Docker
//! refuses cnet refuses too. IPv6 gets its own message because it is a missing feature,
//! not a typo.

use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
};

use ipnet::Ipv4Net;

use super::Error;

/// An IPv4 CIDR as the user typed it, host bits included ("172.16.1.0/16").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    text: String,
    net: Ipv4Net,
}

impl Cidr {
    /// Parses `text`; `field` ("subnet", "ip-range") names it in the error.
    pub fn parse(field: &'static str, text: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidCidr { field, value: text.to_owned() };
        let (address, prefix) = text.split_once('/').unwrap_or((text, ""));
        if address.parse::<Ipv6Addr>().is_ok() {
            return Err(Error::Ipv6NotSupported { value: text.to_owned() });
        }
        let address: Ipv4Addr = address.parse().map_err(|_| invalid())?;
        let prefix = parse_prefix(prefix).ok_or_else(invalid)?;
        let net = Ipv4Net::new(address, prefix).map_err(|_| invalid())?;
        Ok(Self { text: text.to_owned(), net })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The masked network ("172.16.0.0/16" for "172.16.1.0/16").
    pub fn network(&self) -> Ipv4Net {
        self.net.trunc()
    }

    pub fn prefix_len(&self) -> u8 {
        self.net.prefix_len()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Blocks no bridge network can use (RFC 6890): the kernel refuses some as interface
/// addresses, and traffic to the others never leaves the host. Docker passes them on to
/// the kernel; cnet refuses them up front with a reason.
const RESERVED: [(&str, &str); 4] = [
    ("0.0.0.0/8", "\"this network\""),
    ("127.0.0.0/8", "loopback"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "future use and broadcast"),
];

/// Refuses a subnet that overlaps a [`RESERVED`] block.
pub fn check_usable(subnet: &Cidr) -> Result<(), Error> {
    for (block, what) in RESERVED {
        let reserved: Ipv4Net = block.parse().expect("a valid CIDR");
        if overlaps(subnet.network(), reserved) {
            return Err(Error::UnusableSubnet {
                subnet: subnet.to_string(),
                block: block.to_owned(),
                what,
            });
        }
    }
    Ok(())
}

/// A prefix length of one or two decimal digits without sign or leading zero, at most 32.
fn parse_prefix(text: &str) -> Option<u8> {
    let digits_only =
        !text.is_empty() && text.len() <= 2 && text.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (text.len() == 2 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok().filter(|prefix| *prefix <= 32)
}

/// A static address, as in `docker run --ip`.
pub fn parse_address(text: &str) -> Result<Ipv4Addr, Error> {
    text.parse().map_err(|_| Error::InvalidAddress { value: text.to_owned() })
}

/// A gateway address, as in `docker network create --gateway`.
pub fn parse_gateway(text: &str) -> Result<Ipv4Addr, Error> {
    if text.parse::<Ipv6Addr>().is_ok() {
        return Err(Error::Ipv6NotSupported { value: text.to_owned() });
    }
    text.parse().map_err(|_| Error::InvalidGateway { value: text.to_owned() })
}

/// Parses the prefixes an automatic subnet must avoid. Callers collect them from host
/// routes and addresses, so entries may be CIDRs with host bits or bare addresses; IPv6
/// entries are skipped because they cannot collide with an IPv4 pool.
pub fn parse_exclude(entries: &[String]) -> Result<Vec<Ipv4Net>, Error> {
    let mut prefixes = Vec::with_capacity(entries.len());
    for entry in entries {
        let invalid = || Error::InvalidExclude { value: entry.clone() };
        let text = entry.trim();
        let (address, prefix) = text.split_once('/').unwrap_or((text, "32"));
        if address.parse::<Ipv6Addr>().is_ok() {
            continue;
        }
        let address: Ipv4Addr = address.parse().map_err(|_| invalid())?;
        let prefix = parse_prefix(prefix).ok_or_else(invalid)?;
        prefixes.push(Ipv4Net::new(address, prefix).map_err(|_| invalid())?.trunc());
    }
    Ok(prefixes)
}

/// Whether two prefixes share at least one address: one contains the other.
pub fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Ipv4Net {
        text.parse().unwrap()
    }

    #[test]
    fn cidrs_keep_their_text_and_mask_the_network() {
        let cases = [
            ("172.16.1.0/16", "172.16.0.0/16", 16),
            ("10.123.9.0/29", "10.123.9.0/29", 29),
            ("10.1.2.3/0", "0.0.0.0/0", 0),
            ("10.1.2.3/32", "10.1.2.3/32", 32),
        ];
        for (text, network, prefix) in cases {
            let cidr = Cidr::parse("subnet", text).unwrap();
            assert_eq!(cidr.as_str(), text);
            assert_eq!(cidr.to_string(), text);
            assert_eq!(cidr.network(), net(network), "{text}");
            assert_eq!(cidr.prefix_len(), prefix, "{text}");
        }
    }

    #[test]
    fn malformed_cidrs_are_refused_with_dockers_words() {
        let cases = [
            ("subnet", "10.0.0.0/33"),
            ("subnet", "10.300.0.0/16"),
            ("subnet", "foo"),
            ("subnet", "10.0.0.0"),
            ("subnet", "10.0.0.0/"),
            ("subnet", "10.0.0.0/+8"),
            ("subnet", "10.0.0.0/08"),
            ("subnet", "10.0.0.0/16/1"),
            ("subnet", " 10.0.0.0/16"),
            ("ip-range", "10.0.0/24"),
        ];
        for (field, text) in cases {
            let error = Cidr::parse(field, text).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("invalid {field} {text}: invalid CIDR address: {text}"),
                "{text}"
            );
        }
    }

    #[test]
    fn ipv6_is_refused_as_unsupported() {
        for text in ["fd00::/64", "fd00::1", "::/0"] {
            let error = Cidr::parse("subnet", text).unwrap_err();
            assert!(error.to_string().starts_with("IPv6 subnets are not supported yet"), "{text}");
        }
        assert!(matches!(parse_gateway("fd00::1"), Err(Error::Ipv6NotSupported { .. })));
    }

    #[test]
    fn addresses_and_gateways() {
        assert_eq!(parse_address("10.1.2.3"), Ok(Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(
            parse_address("300.1.1.1").unwrap_err().to_string(),
            "invalid IPv4 address: 300.1.1.1"
        );
        assert_eq!(
            parse_address("10.1.2.3/24").unwrap_err().to_string(),
            "invalid IPv4 address: 10.1.2.3/24"
        );
        assert_eq!(parse_gateway("10.1.2.1"), Ok(Ipv4Addr::new(10, 1, 2, 1)));
        assert_eq!(
            parse_gateway("10.1.2.300").unwrap_err().to_string(),
            "invalid gateway 10.1.2.300: invalid IPv4 address: 10.1.2.300"
        );
    }

    #[test]
    fn exclude_entries_are_parsed_leniently() {
        let entries: Vec<String> =
            ["172.17.0.1/16", "192.168.1.7", " 10.0.0.0/8 ", "fe80::1/64", "::1"]
                .map(String::from)
                .to_vec();
        assert_eq!(
            parse_exclude(&entries).unwrap(),
            vec![net("172.17.0.0/16"), net("192.168.1.7/32"), net("10.0.0.0/8")]
        );
        for bad in ["", "foo", "10.0.0.0/33", "300.0.0.1"] {
            let error = parse_exclude(&[bad.to_owned()]).unwrap_err();
            assert_eq!(error, Error::InvalidExclude { value: bad.to_owned() });
        }
    }

    #[test]
    fn reserved_blocks_are_unusable() {
        for text in ["224.0.0.0/24", "127.0.0.0/8", "0.0.0.0/0", "10.0.0.0/8", "250.1.0.0/16"] {
            let usable = check_usable(&Cidr::parse("subnet", text).unwrap());
            assert_eq!(usable.is_ok(), text == "10.0.0.0/8", "{text}: {usable:?}");
        }
        let error = check_usable(&Cidr::parse("subnet", "224.0.0.0/24").unwrap()).unwrap_err();
        assert!(error.to_string().contains("reserved for multicast"), "{error}");
    }

    #[test]
    fn overlap_is_subset_superset_or_equal() {
        let cases = [
            ("172.16.0.0/16", "172.16.0.0/16", true),
            ("172.16.0.0/16", "172.16.5.0/24", true),
            ("172.16.5.0/24", "172.16.0.0/12", true),
            ("172.16.0.0/16", "172.17.0.0/16", false),
            ("10.0.0.0/30", "10.0.0.4/30", false),
        ];
        for (a, b, expected) in cases {
            assert_eq!(overlaps(net(a), net(b)), expected, "{a} {b}");
            assert_eq!(overlaps(net(b), net(a)), expected, "{b} {a}");
        }
    }
}
