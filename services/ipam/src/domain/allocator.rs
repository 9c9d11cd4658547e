//! All pools and their allocations in memory, and the operations on them. The service
//! keeps one [`Allocator`] behind a lock; every method is a complete, synchronous step,
//! so a caller that persists the result afterwards can undo the step with its inverse
//! (`allocate` ↔ `release`, `create_pool` ↔ `delete_pool`, and the `restore_*` methods)
//! if persisting fails.
//!
//! Per pool, the used addresses live in a sorted set: lowest-free-first allocation then
//! walks only the used addresses (NET-4) and never the whole subnet.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
};

use super::{Error, Owner, Pool, PoolId, PoolRequest, cidr, defaults};

/// One address held by one owner in one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub pool_id: PoolId,
    pub owner: Owner,
    pub address: Ipv4Addr,
    /// The pool's prefix length and gateway, which never change for a pool's lifetime.
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    /// The caller asked for exactly this address.
    pub is_static: bool,
}

/// A validated Allocate request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationRequest {
    pub pool_id: PoolId,
    pub owner: Owner,
    /// None: the lowest free address of the range.
    pub address: Option<Ipv4Addr>,
}

impl AllocationRequest {
    /// Parses the request's fields; an empty address means "any".
    pub fn parse(pool_id: &str, owner: &str, address: &str) -> Result<Self, Error> {
        Ok(Self {
            pool_id: PoolId::parse(pool_id)?,
            owner: Owner::parse(owner)?,
            address: (!address.is_empty()).then(|| cidr::parse_address(address)).transpose()?,
        })
    }
}

/// A pool with its counters, as reported to callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSummary {
    pub pool: Pool,
    pub allocated: u64,
    pub free: u64,
}

/// What an idempotent operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// The same request had already been carried out; nothing changed.
    Existing(T),
    Created(T),
}

impl<T> Outcome<T> {
    pub fn into_inner(self) -> T {
        match self {
            Outcome::Existing(value) | Outcome::Created(value) => value,
        }
    }
}

/// A deleted pool together with the allocations that went with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedPool {
    pub pool: Pool,
    pub allocations: Vec<Allocation>,
}

#[derive(Debug, Default)]
pub struct Allocator {
    pools: BTreeMap<PoolId, PoolState>,
}

#[derive(Debug)]
struct PoolState {
    pool: Pool,
    by_owner: BTreeMap<Owner, Allocation>,
    /// Addresses of `by_owner`, as integers, for lowest-free search.
    used: BTreeSet<u32>,
}

impl PoolState {
    fn summary(&self) -> PoolSummary {
        PoolSummary {
            pool: self.pool.clone(),
            allocated: self.by_owner.len() as u64,
            free: self.pool.free(&self.used),
        }
    }
}

impl Allocator {
    /// Creates the pool `request` describes, or returns the existing one if the same
    /// request was made before.
    pub fn create_pool(&mut self, request: &PoolRequest) -> Result<Outcome<Pool>, Error> {
        if let Some(state) = self.pools.get(&request.id) {
            if state.pool.matches(request) {
                return Ok(Outcome::Existing(state.pool.clone()));
            }
            return Err(Error::PoolExists { id: request.id.to_string() });
        }
        let pool = match &request.subnet {
            Some(subnet) => Pool::new(
                request.id.clone(),
                subnet.clone(),
                request.ip_range.clone(),
                request.gateway,
                false,
            )?,
            None => {
                let mut taken: Vec<_> = self.pools.values().map(|s| s.pool.network()).collect();
                taken.extend_from_slice(&request.exclude);
                let network = defaults::first_free(&taken).ok_or(Error::NoDefaultSubnet)?;
                let subnet = cidr::Cidr::parse("subnet", &network.to_string())?;
                Pool::new(request.id.clone(), subnet, None, None, true)?
            }
        };
        self.restore_pool(pool.clone())?;
        Ok(Outcome::Created(pool))
    }

    /// Adds an already validated pool (from the store, or to undo a deletion). Refuses a
    /// pool that overlaps another, as [`Allocator::create_pool`] does.
    pub fn restore_pool(&mut self, pool: Pool) -> Result<(), Error> {
        if self.pools.contains_key(pool.id()) {
            return Err(Error::PoolExists { id: pool.id().to_string() });
        }
        let network = pool.network();
        if let Some(other) = self.pools.values().find(|s| cidr::overlaps(s.pool.network(), network))
        {
            return Err(Error::Overlap {
                subnet: pool.subnet().to_string(),
                other: other.pool.id().to_string(),
                other_subnet: other.pool.subnet().to_string(),
            });
        }
        let state = PoolState { pool, by_owner: BTreeMap::new(), used: BTreeSet::new() };
        self.pools.insert(state.pool.id().clone(), state);
        Ok(())
    }

    /// Deletes a pool; with allocations only if `force`. None if there was no such pool.
    pub fn delete_pool(&mut self, id: &PoolId, force: bool) -> Result<Option<RemovedPool>, Error> {
        let Some(state) = self.pools.get(id) else { return Ok(None) };
        if !force && !state.by_owner.is_empty() {
            return Err(Error::PoolInUse { id: id.to_string(), count: state.by_owner.len() });
        }
        let state = self.pools.remove(id).expect("looked up above");
        let mut allocations: Vec<_> = state.by_owner.into_values().collect();
        allocations.sort_by_key(|allocation| allocation.address);
        Ok(Some(RemovedPool { pool: state.pool, allocations }))
    }

    /// Gives `request.owner` an address: the one it already holds, the static one asked
    /// for, or the lowest free one of the range.
    pub fn allocate(&mut self, request: &AllocationRequest) -> Result<Outcome<Allocation>, Error> {
        let state = self.state(&request.pool_id)?;
        if let Some(held) = state.by_owner.get(&request.owner) {
            return match request.address {
                Some(requested) if requested != held.address => Err(Error::OwnerHoldsOther {
                    owner: request.owner.to_string(),
                    pool: request.pool_id.to_string(),
                    held: held.address,
                    requested,
                }),
                _ => Ok(Outcome::Existing(held.clone())),
            };
        }
        let (address, is_static) = match request.address {
            Some(address) => (address, true),
            None => {
                let address = state
                    .pool
                    .lowest_free(&state.used)
                    .ok_or_else(|| Error::PoolExhausted { id: request.pool_id.to_string() })?;
                (address, false)
            }
        };
        let allocation =
            self.restore_allocation(&request.pool_id, request.owner.clone(), address, is_static)?;
        Ok(Outcome::Created(allocation))
    }

    /// Records that `owner` holds `address` (from the store, or to undo a release),
    /// checking everything [`Allocator::allocate`] checks for a static address.
    pub fn restore_allocation(
        &mut self,
        pool_id: &PoolId,
        owner: Owner,
        address: Ipv4Addr,
        is_static: bool,
    ) -> Result<Allocation, Error> {
        let state = self
            .pools
            .get_mut(pool_id)
            .ok_or_else(|| Error::PoolNotFound { id: pool_id.to_string() })?;
        let pool = &state.pool;
        if !pool.contains(address) {
            return Err(Error::AddressOutsideSubnet { address });
        }
        if pool.is_reserved(address) || state.used.contains(&u32::from(address)) {
            return Err(Error::AddressInUse { address });
        }
        if state.by_owner.contains_key(&owner) {
            return Err(Error::OwnerTaken { owner: owner.to_string(), pool: pool_id.to_string() });
        }
        let allocation = Allocation {
            pool_id: pool_id.clone(),
            owner: owner.clone(),
            address,
            prefix_len: pool.network().prefix_len(),
            gateway: pool.gateway(),
            is_static,
        };
        state.used.insert(u32::from(address));
        state.by_owner.insert(owner, allocation.clone());
        Ok(allocation)
    }

    /// Frees what `owner` holds in the pool, if anything; an unknown pool holds nothing.
    pub fn release(&mut self, pool_id: &PoolId, owner: &Owner) -> Option<Allocation> {
        let state = self.pools.get_mut(pool_id)?;
        let allocation = state.by_owner.remove(owner)?;
        state.used.remove(&u32::from(allocation.address));
        Some(allocation)
    }

    pub fn pool(&self, id: &PoolId) -> Result<PoolSummary, Error> {
        Ok(self.state(id)?.summary())
    }

    /// Every pool, ordered by id.
    pub fn pools(&self) -> Vec<PoolSummary> {
        self.pools.values().map(PoolState::summary).collect()
    }

    /// The allocations of one pool, or of every pool when `id` is None, ordered by pool
    /// and address.
    pub fn allocations(&self, id: Option<&PoolId>) -> Result<Vec<Allocation>, Error> {
        let states = match id {
            Some(id) => vec![self.state(id)?],
            None => self.pools.values().collect(),
        };
        let mut allocations = Vec::new();
        for state in states {
            let start = allocations.len();
            allocations.extend(state.by_owner.values().cloned());
            allocations[start..].sort_by_key(|allocation| allocation.address);
        }
        Ok(allocations)
    }

    fn state(&self, id: &PoolId) -> Result<&PoolState, Error> {
        self.pools.get(id).ok_or_else(|| Error::PoolNotFound { id: id.to_string() })
    }
}

#[cfg(test)]
mod tests;
