//! Everything the address management rules refuse. Where Docker 20.10 has a message for
//! the same case the wording follows it, because users compare what cnet prints with
//! what Docker printed (DOCKER_SEMANTICS.md NET-3, NET-9, NET-10, NET-12).

use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidName { kind: &'static str, value: String, reason: &'static str },
    #[error("IPv6 subnets are not supported yet: {value}")]
    Ipv6NotSupported { value: String },
    #[error("invalid {field} {value}: invalid CIDR address: {value}")]
    InvalidCidr { field: &'static str, value: String },
    #[error("invalid gateway {value}: invalid IPv4 address: {value}")]
    InvalidGateway { value: String },
    #[error("invalid IPv4 address: {value}")]
    InvalidAddress { value: String },
    #[error("invalid exclude entry {value:?}: expected an IPv4 CIDR or address")]
    InvalidExclude { value: String },
    #[error(
        "subnet {subnet} cannot hold a bridge network: it overlaps {block}, which is reserved \
         for {what}"
    )]
    UnusableSubnet { subnet: String, block: String, what: &'static str },
    #[error("every ip-range or gateway must have a corresponding subnet")]
    MissingSubnet,
    #[error(
        "subnet {subnet} is too small: a network needs a prefix length of at most /30 to \
         hold a gateway and one container"
    )]
    SubnetTooSmall { subnet: String },
    #[error("no matching subnet for gateway {gateway}")]
    GatewayOutsideSubnet { gateway: Ipv4Addr },
    #[error("no matching subnet for range {range}")]
    RangeOutsideSubnet { range: String },
    #[error("failed to allocate gateway ({gateway}): Address already in use")]
    GatewayUnavailable { gateway: Ipv4Addr },
    #[error(
        "pool overlaps with other one on this address space: {subnet} overlaps pool {other} \
         ({other_subnet})"
    )]
    Overlap { subnet: String, other: String, other_subnet: String },
    #[error("pool {id} already exists with different parameters")]
    PoolExists { id: String },
    #[error("pool {id} not found")]
    PoolNotFound { id: String },
    #[error("pool {id} still has {count} allocations")]
    PoolInUse { id: String, count: usize },
    #[error(
        "could not find an available, non-overlapping IPv4 address pool among the defaults \
         to assign to the network"
    )]
    NoDefaultSubnet,
    #[error("Invalid address {address}: It does not belong to any of this network's subnets")]
    AddressOutsideSubnet { address: Ipv4Addr },
    #[error("failed to allocate {address}: Address already in use")]
    AddressInUse { address: Ipv4Addr },
    #[error("owner {owner} already holds {held} in pool {pool}, not {requested}")]
    OwnerHoldsOther { owner: String, pool: String, held: Ipv4Addr, requested: Ipv4Addr },
    #[error("no available IPv4 addresses on this network's address pools: {id}")]
    PoolExhausted { id: String },
    #[error("owner {owner} already holds an address in pool {pool}")]
    OwnerTaken { owner: String, pool: String },
}
