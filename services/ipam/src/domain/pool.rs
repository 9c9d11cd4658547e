//! A pool: one network's subnet, its optional ip-range and its gateway, and the rules of
//! which of its addresses may be handed out (NET-3, NET-4).
//!
//! Exactly three addresses are reserved: the network address, the broadcast address and
//! the gateway. The first address of an ip-range is an ordinary address; that is why
//! Docker's lab gave the first container 172.16.1.0 in 172.16.1.0/16 with range
//! 172.16.1.0/24.

use std::{collections::BTreeSet, net::Ipv4Addr, ops::RangeInclusive};

use ipnet::Ipv4Net;

use super::{
    Error, PoolId,
    cidr::{self, Cidr},
};

/// The longest prefix a pool may have: a /30 holds the gateway and one container.
pub const MAX_PREFIX_LEN: u8 = 30;

/// A validated CreatePool request. Relations between the fields (range inside subnet and
/// so on) are checked by [`Pool::new`], once the subnet is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRequest {
    pub id: PoolId,
    /// None: pick one from the default pools.
    pub subnet: Option<Cidr>,
    pub ip_range: Option<Cidr>,
    pub gateway: Option<Ipv4Addr>,
    /// Prefixes an automatic subnet must not overlap; empty when `subnet` is given.
    pub exclude: Vec<Ipv4Net>,
}

impl PoolRequest {
    /// Parses the request's fields; empty strings mean "not given".
    pub fn parse(
        id: &str,
        subnet: &str,
        ip_range: &str,
        gateway: &str,
        exclude: &[String],
    ) -> Result<Self, Error> {
        let id = PoolId::parse(id)?;
        let subnet = non_empty(subnet).map(|text| Cidr::parse("subnet", text)).transpose()?;
        if let Some(subnet) = &subnet {
            cidr::check_usable(subnet)?;
        }
        let ip_range = non_empty(ip_range).map(|text| Cidr::parse("ip-range", text)).transpose()?;
        let gateway = non_empty(gateway).map(cidr::parse_gateway).transpose()?;
        if subnet.is_none() && (ip_range.is_some() || gateway.is_some()) {
            return Err(Error::MissingSubnet);
        }
        let exclude = if subnet.is_none() { cidr::parse_exclude(exclude)? } else { Vec::new() };
        Ok(Self { id, subnet, ip_range, gateway, exclude })
    }
}

fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    id: PoolId,
    subnet: Cidr,
    ip_range: Option<Cidr>,
    gateway: Ipv4Addr,
    auto_subnet: bool,
    auto_gateway: bool,
}

impl Pool {
    /// Checks the relations Docker checks at `network create`; without a gateway the
    /// first host address becomes the gateway.
    pub fn new(
        id: PoolId,
        subnet: Cidr,
        ip_range: Option<Cidr>,
        gateway: Option<Ipv4Addr>,
        auto_subnet: bool,
    ) -> Result<Self, Error> {
        let network = subnet.network();
        if network.prefix_len() > MAX_PREFIX_LEN {
            return Err(Error::SubnetTooSmall { subnet: subnet.to_string() });
        }
        if let Some(range) = &ip_range {
            let inside = range.prefix_len() >= network.prefix_len()
                && network.contains(&range.network().network());
            if !inside {
                return Err(Error::RangeOutsideSubnet { range: range.to_string() });
            }
        }
        let auto_gateway = gateway.is_none();
        let gateway = gateway.unwrap_or_else(|| first_host(network));
        if !network.contains(&gateway) {
            return Err(Error::GatewayOutsideSubnet { gateway });
        }
        if gateway == network.network() || gateway == network.broadcast() {
            return Err(Error::GatewayUnavailable { gateway });
        }
        Ok(Self { id, subnet, ip_range, gateway, auto_subnet, auto_gateway })
    }

    pub fn id(&self) -> &PoolId {
        &self.id
    }

    /// The subnet exactly as given.
    pub fn subnet(&self) -> &Cidr {
        &self.subnet
    }

    pub fn network(&self) -> Ipv4Net {
        self.subnet.network()
    }

    pub fn ip_range(&self) -> Option<&Cidr> {
        self.ip_range.as_ref()
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    pub fn auto_subnet(&self) -> bool {
        self.auto_subnet
    }

    pub fn auto_gateway(&self) -> bool {
        self.auto_gateway
    }

    /// Whether `request` would create exactly this pool, so that repeating a CreatePool
    /// is harmless. Compared are the fields as requested, not what was derived from them.
    pub fn matches(&self, request: &PoolRequest) -> bool {
        let subnet = (!self.auto_subnet).then_some(&self.subnet);
        let gateway = (!self.auto_gateway).then_some(self.gateway);
        request.id == self.id
            && request.subnet.as_ref() == subnet
            && request.ip_range == self.ip_range
            && request.gateway == gateway
    }

    pub fn contains(&self, address: Ipv4Addr) -> bool {
        self.network().contains(&address)
    }

    /// Network address, broadcast address or gateway: never handed out.
    pub fn is_reserved(&self, address: Ipv4Addr) -> bool {
        let network = self.network();
        address == network.network() || address == network.broadcast() || address == self.gateway
    }

    /// The addresses automatic allocation draws from, as integers.
    fn range(&self) -> RangeInclusive<u32> {
        let net = self.ip_range.as_ref().map_or_else(|| self.network(), Cidr::network);
        u32::from(net.network())..=u32::from(net.broadcast())
    }

    /// The lowest address of the range that is neither reserved nor in `used`. Walks only
    /// the used addresses inside the range, so the cost grows with the allocations, not
    /// with the size of the subnet.
    pub fn lowest_free(&self, used: &BTreeSet<u32>) -> Option<Ipv4Addr> {
        let range = self.range();
        let end = u64::from(*range.end());
        let mut taken = used.range(range.clone()).copied().peekable();
        // u64 because the candidate may step past 255.255.255.255.
        let mut candidate = u64::from(*range.start());
        while candidate <= end {
            let address = Ipv4Addr::from(candidate as u32);
            if self.is_reserved(address) {
                candidate += 1;
                continue;
            }
            while taken.next_if(|used| u64::from(*used) < candidate).is_some() {}
            if taken.next_if(|used| u64::from(*used) == candidate).is_some() {
                candidate += 1;
                continue;
            }
            return Some(address);
        }
        None
    }

    /// How many addresses automatic allocation could still hand out.
    pub fn free(&self, used: &BTreeSet<u32>) -> u64 {
        let range = self.range();
        let size = u64::from(*range.end()) - u64::from(*range.start()) + 1;
        let network = self.network();
        let reserved = [network.network(), network.broadcast(), self.gateway]
            .into_iter()
            .filter(|address| range.contains(&u32::from(*address)))
            .count() as u64;
        let allocated = used.range(range).count() as u64;
        size - reserved - allocated
    }
}

fn first_host(network: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(network.network()) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(subnet: &str, ip_range: &str, gateway: &str) -> Result<PoolRequest, Error> {
        PoolRequest::parse("net1", subnet, ip_range, gateway, &[])
    }

    /// A pool as a request makes it.
    fn requested(subnet: &str, ip_range: &str, gateway: &str) -> Result<Pool, Error> {
        let request = request(subnet, ip_range, gateway)?;
        Pool::new(request.id, request.subnet.unwrap(), request.ip_range, request.gateway, false)
    }

    /// A pool of any subnet, reserved blocks included (requests refuse those), so that
    /// the arithmetic is tested up to the ends of the address space.
    fn pool(subnet: &str, ip_range: &str, gateway: &str) -> Result<Pool, Error> {
        let subnet = Cidr::parse("subnet", subnet)?;
        let ip_range = non_empty(ip_range).map(|text| Cidr::parse("ip-range", text)).transpose()?;
        let gateway = non_empty(gateway).map(cidr::parse_gateway).transpose()?;
        Pool::new(PoolId::parse("net1")?, subnet, ip_range, gateway, false)
    }

    fn used(addresses: &[&str]) -> BTreeSet<u32> {
        addresses.iter().map(|a| u32::from(a.parse::<Ipv4Addr>().unwrap())).collect()
    }

    #[test]
    fn creation_errors_use_dockers_words() {
        let cases = [
            ("10.123.1.0/24", "", "10.123.2.1", "no matching subnet for gateway 10.123.2.1"),
            ("10.123.1.0/24", "10.123.2.0/24", "", "no matching subnet for range 10.123.2.0/24"),
            ("10.123.1.0/24", "10.123.0.0/16", "", "no matching subnet for range 10.123.0.0/16"),
            ("", "10.123.2.0/24", "", "every ip-range or gateway must have a corresponding subnet"),
            ("", "", "10.123.2.1", "every ip-range or gateway must have a corresponding subnet"),
            (
                "10.123.1.0/33",
                "",
                "",
                "invalid subnet 10.123.1.0/33: invalid CIDR address: 10.123.1.0/33",
            ),
            (
                "10.300.1.0/24",
                "",
                "",
                "invalid subnet 10.300.1.0/24: invalid CIDR address: 10.300.1.0/24",
            ),
            ("foo", "", "", "invalid subnet foo: invalid CIDR address: foo"),
            ("10.123.1.0", "", "", "invalid subnet 10.123.1.0: invalid CIDR address: 10.123.1.0"),
            ("10.123.1.0/24", "bar", "", "invalid ip-range bar: invalid CIDR address: bar"),
            (
                "10.123.1.0/24",
                "",
                "10.123.1.0",
                "failed to allocate gateway (10.123.1.0): Address already in use",
            ),
            (
                "10.123.1.0/24",
                "",
                "10.123.1.255",
                "failed to allocate gateway (10.123.1.255): Address already in use",
            ),
            (
                "10.123.1.0/31",
                "",
                "",
                "subnet 10.123.1.0/31 is too small: a network needs a prefix length of at most /30 to hold a gateway and one container",
            ),
            ("fd00::/64", "", "", "IPv6 subnets are not supported yet: fd00::/64"),
            (
                "224.0.0.0/24",
                "",
                "",
                "subnet 224.0.0.0/24 cannot hold a bridge network: it overlaps 224.0.0.0/4, which is reserved for multicast",
            ),
        ];
        for (subnet, ip_range, gateway, message) in cases {
            let error = requested(subnet, ip_range, gateway).unwrap_err();
            assert_eq!(error.to_string(), message, "{subnet} {ip_range} {gateway}");
        }
    }

    #[test]
    fn gateway_defaults_to_the_first_host() {
        let lab = pool("172.16.1.0/16", "172.16.1.0/24", "172.16.1.1").unwrap();
        assert_eq!(lab.network().to_string(), "172.16.0.0/16");
        assert_eq!(lab.subnet().as_str(), "172.16.1.0/16");
        assert!(!lab.auto_gateway());
        let plain = pool("172.16.1.0/16", "", "").unwrap();
        assert_eq!(plain.gateway(), Ipv4Addr::new(172, 16, 0, 1));
        assert!(plain.auto_gateway());
        assert!(pool("10.0.0.0/30", "", "").is_ok());
    }

    #[test]
    fn lowest_free_skips_only_reserved_and_used() {
        // (subnet, ip-range, gateway, used, expected lowest free)
        let cases = [
            ("172.16.1.0/16", "172.16.1.0/24", "172.16.1.1", &[][..], Some("172.16.1.0")),
            (
                "172.16.1.0/16",
                "172.16.1.0/24",
                "172.16.1.1",
                &["172.16.1.0"][..],
                Some("172.16.1.2"),
            ),
            ("10.123.9.0/29", "", "", &[][..], Some("10.123.9.2")),
            ("10.123.9.0/29", "", "", &["10.123.9.2", "10.123.9.4"][..], Some("10.123.9.3")),
            (
                "10.123.9.0/29",
                "",
                "",
                &["10.123.9.2", "10.123.9.3", "10.123.9.4", "10.123.9.5", "10.123.9.6"][..],
                None,
            ),
            ("10.0.0.0/24", "10.0.0.0/30", "10.0.0.3", &["10.0.0.1", "10.0.0.2"][..], None),
            (
                "10.0.0.0/24",
                "",
                "10.0.0.9",
                &["10.0.0.1", "10.0.0.2", "10.0.0.200"][..],
                Some("10.0.0.3"),
            ),
            ("10.0.0.0/24", "", "", &["10.0.0.250"][..], Some("10.0.0.2")),
            ("255.255.255.252/30", "", "", &["255.255.255.254"][..], None),
        ];
        for (subnet, ip_range, gateway, taken, expected) in cases {
            let pool = pool(subnet, ip_range, gateway).unwrap();
            let expected = expected.map(|a| a.parse::<Ipv4Addr>().unwrap());
            assert_eq!(pool.lowest_free(&used(taken)), expected, "{subnet} {ip_range} {taken:?}");
        }
    }

    #[test]
    fn free_counts_the_range_minus_reserved_and_used() {
        let cases = [
            ("10.123.9.0/29", "", "", &[][..], 5),
            ("10.123.9.0/29", "", "", &["10.123.9.2"][..], 4),
            ("172.16.1.0/16", "172.16.1.0/24", "172.16.1.1", &[][..], 255),
            // A static address outside the range does not use up the range.
            ("172.16.1.0/16", "172.16.1.0/24", "172.16.1.1", &["172.16.2.7"][..], 255),
            ("172.16.1.0/16", "", "", &["172.16.2.7"][..], 65_533 - 1),
            ("10.0.0.0/24", "10.0.0.128/25", "", &[][..], 127),
            ("0.0.0.0/0", "", "", &[][..], (1 << 32) - 3),
        ];
        for (subnet, ip_range, gateway, taken, expected) in cases {
            let pool = pool(subnet, ip_range, gateway).unwrap();
            assert_eq!(pool.free(&used(taken)), expected, "{subnet} {ip_range} {taken:?}");
        }
    }

    #[test]
    fn repeated_requests_match_and_others_do_not() {
        let original = request("172.16.1.0/16", "172.16.1.0/24", "172.16.1.1").unwrap();
        let lab = pool("172.16.1.0/16", "172.16.1.0/24", "172.16.1.1").unwrap();
        assert!(lab.matches(&original));
        for (subnet, ip_range, gateway) in [
            ("172.16.0.0/16", "172.16.1.0/24", "172.16.1.1"),
            ("172.16.1.0/16", "", "172.16.1.1"),
            ("172.16.1.0/16", "172.16.1.0/24", ""),
        ] {
            assert!(!lab.matches(&request(subnet, ip_range, gateway).unwrap()), "{subnet}");
        }
        let defaulted = pool("10.0.0.0/24", "", "").unwrap();
        assert!(defaulted.matches(&request("10.0.0.0/24", "", "").unwrap()));
        assert!(!defaulted.matches(&request("10.0.0.0/24", "", "10.0.0.1").unwrap()));
    }
}
