//! IPAM's on-disk state in the service's sled store, which is the truth: the in-memory
//! [`Allocator`] is rebuilt from it at start.
//!
//! Layout: table "pools" holds one record per pool under its id; table "allocations"
//! holds one record per allocation under "<pool id>/<owner>", so an allocation costs one
//! small write and never a rewrite of its pool. Pool ids contain no '/', so the prefix
//! "<pool id>/" selects exactly one pool's allocations.
//!
//! Every write is flushed before the caller replies. If the flush fails the write is
//! undone on a best-effort basis, so that memory, disk and the caller's error agree as
//! far as the store still allows.

use std::net::Ipv4Addr;

use cnet_common::store::{Store, StoreError, Table};
use serde::{Deserialize, Serialize};

use crate::{
    Error,
    domain::{self, Allocation, Allocator, Cidr, Owner, Pool, PoolId},
};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PoolRecord {
    id: String,
    /// As typed, host bits included.
    subnet: String,
    ip_range: Option<String>,
    gateway: Ipv4Addr,
    auto_subnet: bool,
    auto_gateway: bool,
}

impl From<&Pool> for PoolRecord {
    fn from(pool: &Pool) -> Self {
        Self {
            id: pool.id().to_string(),
            subnet: pool.subnet().to_string(),
            ip_range: pool.ip_range().map(Cidr::to_string),
            gateway: pool.gateway(),
            auto_subnet: pool.auto_subnet(),
            auto_gateway: pool.auto_gateway(),
        }
    }
}

impl PoolRecord {
    fn into_pool(self) -> Result<Pool, domain::Error> {
        let subnet = Cidr::parse("subnet", &self.subnet)?;
        let ip_range = self.ip_range.map(|text| Cidr::parse("ip-range", &text)).transpose()?;
        let gateway = (!self.auto_gateway).then_some(self.gateway);
        let pool =
            Pool::new(PoolId::parse(&self.id)?, subnet, ip_range, gateway, self.auto_subnet)?;
        if pool.gateway() != self.gateway {
            return Err(domain::Error::GatewayUnavailable { gateway: self.gateway });
        }
        Ok(pool)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AllocationRecord {
    pool_id: String,
    owner: String,
    address: Ipv4Addr,
    is_static: bool,
}

impl From<&Allocation> for AllocationRecord {
    fn from(allocation: &Allocation) -> Self {
        Self {
            pool_id: allocation.pool_id.to_string(),
            owner: allocation.owner.to_string(),
            address: allocation.address,
            is_static: allocation.is_static,
        }
    }
}

fn allocation_key(pool_id: &PoolId, owner: &Owner) -> String {
    format!("{pool_id}/{owner}")
}

/// The pools and allocations tables of one store.
pub struct Records {
    store: Store,
    pools: Table<PoolRecord>,
    allocations: Table<AllocationRecord>,
}

impl Records {
    pub fn open(store: Store) -> Result<Self, StoreError> {
        Ok(Self { pools: store.table("pools")?, allocations: store.table("allocations")?, store })
    }

    /// Rebuilds the in-memory state. A record that contradicts the rules (overlapping
    /// pools, an address held twice) stops the start: guessing which one is right could
    /// hand an address out twice. Allocations of a pool that no longer exists are left
    /// over from an interrupted forced delete and are removed.
    pub async fn load(&self) -> Result<Allocator, Error> {
        let mut allocator = Allocator::default();
        for (key, record) in self.pools.all()? {
            let corrupt = |error: domain::Error| Error::Corrupt {
                key: key.clone(),
                reason: error.to_string(),
            };
            let pool = record.into_pool().map_err(corrupt)?;
            allocator.restore_pool(pool).map_err(corrupt)?;
        }
        let mut orphans = Vec::new();
        for (key, record) in self.allocations.all()? {
            let corrupt = |error: domain::Error| Error::Corrupt {
                key: key.clone(),
                reason: error.to_string(),
            };
            let pool_id = PoolId::parse(&record.pool_id).map_err(corrupt)?;
            let owner = Owner::parse(&record.owner).map_err(corrupt)?;
            if key != allocation_key(&pool_id, &owner) {
                let reason = format!("key does not match pool {pool_id} and owner {owner}");
                return Err(Error::Corrupt { key, reason });
            }
            match allocator.restore_allocation(&pool_id, owner, record.address, record.is_static) {
                Ok(_) => {}
                Err(domain::Error::PoolNotFound { .. }) => orphans.push(key),
                Err(error) => return Err(corrupt(error)),
            }
        }
        if !orphans.is_empty() {
            tracing::warn!(count = orphans.len(), "removing allocations of deleted pools");
            for key in &orphans {
                self.allocations.delete(key)?;
            }
            self.store.flush().await?;
        }
        Ok(allocator)
    }

    pub async fn put_pool(&self, pool: &Pool) -> Result<(), StoreError> {
        let key = pool.id().as_str();
        self.pools.put(key, &PoolRecord::from(pool))?;
        self.flush_or_undo(|| self.pools.delete(key).map(drop)).await
    }

    /// Deletes the allocations before the pool, so that an interruption leaves a pool
    /// with fewer allocations rather than allocations without a pool.
    pub async fn delete_pool(
        &self,
        pool: &Pool,
        allocations: &[Allocation],
    ) -> Result<(), StoreError> {
        let record = PoolRecord::from(pool);
        let restore = || -> Result<(), StoreError> {
            for allocation in allocations {
                let key = allocation_key(&allocation.pool_id, &allocation.owner);
                self.allocations.put(&key, &AllocationRecord::from(allocation))?;
            }
            self.pools.put(pool.id().as_str(), &record)
        };
        let deleted = (|| -> Result<(), StoreError> {
            for allocation in allocations {
                self.allocations.delete(&allocation_key(&allocation.pool_id, &allocation.owner))?;
            }
            self.pools.delete(pool.id().as_str())?;
            Ok(())
        })();
        if let Err(error) = deleted {
            undo(restore);
            return Err(error);
        }
        self.flush_or_undo(restore).await
    }

    pub async fn put_allocation(&self, allocation: &Allocation) -> Result<(), StoreError> {
        let key = allocation_key(&allocation.pool_id, &allocation.owner);
        self.allocations.put(&key, &AllocationRecord::from(allocation))?;
        self.flush_or_undo(|| self.allocations.delete(&key).map(drop)).await
    }

    pub async fn delete_allocation(&self, allocation: &Allocation) -> Result<(), StoreError> {
        let key = allocation_key(&allocation.pool_id, &allocation.owner);
        self.allocations.delete(&key)?;
        self.flush_or_undo(|| self.allocations.put(&key, &AllocationRecord::from(allocation))).await
    }

    async fn flush_or_undo(
        &self,
        restore: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let flushed = self.store.flush().await;
        if flushed.is_err() {
            undo(restore);
        }
        flushed
    }
}

fn undo(restore: impl FnOnce() -> Result<(), StoreError>) {
    if let Err(error) = restore() {
        tracing::error!(%error, "undoing a failed store write failed too");
    }
}
