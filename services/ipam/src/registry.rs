//! The service's state: the in-memory [`Allocator`] kept in step with the store.
//!
//! One tokio mutex serialises every mutation from the in-memory change through the
//! flush to disk. Holding it across the flush is deliberate: an address becomes visible
//! to the next request only once it is durable, so neither concurrency nor a crash can
//! hand an address out twice. If persisting fails, the in-memory change is undone with
//! its inverse before the error is returned.
//!
//! The in-memory change and the sled write happen with no await in between; only the
//! flush awaits. A request dropped mid-way (deadline, client gone) therefore leaves
//! memory and disk agreeing, merely not yet flushed.

use tokio::sync::Mutex;

use cnet_common::store::Store;

use crate::{
    Error,
    domain::{
        self, Allocation, AllocationRequest, Allocator, Outcome, Owner, PoolId, PoolRequest,
        PoolSummary,
    },
    metrics,
    store::Records,
};

pub struct Registry {
    allocator: Mutex<Allocator>,
    records: Records,
}

impl Registry {
    /// Loads every pool and allocation from `store`.
    pub async fn open(store: Store) -> Result<Self, Error> {
        let records = Records::open(store)?;
        let allocator = records.load().await?;
        let pools = allocator.pools();
        let allocations: u64 = pools.iter().map(|summary| summary.allocated).sum();
        tracing::info!(pools = pools.len(), allocations, "state loaded");
        pools.iter().for_each(metrics::record);
        Ok(Self { allocator: Mutex::new(allocator), records })
    }

    pub async fn create_pool(&self, request: &PoolRequest) -> Result<PoolSummary, Error> {
        let mut allocator = self.allocator.lock().await;
        if let Outcome::Created(pool) = allocator.create_pool(request)? {
            if let Err(error) = self.records.put_pool(&pool).await {
                log_failed_undo(allocator.delete_pool(pool.id(), true).map(drop));
                return Err(error.into());
            }
            tracing::info!(
                pool = %pool.id(),
                subnet = %pool.subnet(),
                gateway = %pool.gateway(),
                auto_subnet = pool.auto_subnet(),
                "pool created"
            );
        }
        let summary = allocator.pool(&request.id)?;
        metrics::record(&summary);
        Ok(summary)
    }

    pub async fn pool(&self, id: &PoolId) -> Result<PoolSummary, Error> {
        Ok(self.allocator.lock().await.pool(id)?)
    }

    pub async fn pools(&self) -> Vec<PoolSummary> {
        self.allocator.lock().await.pools()
    }

    /// Deletes a pool (and with `force` its allocations); absent pools are fine.
    pub async fn delete_pool(&self, id: &PoolId, force: bool) -> Result<(), Error> {
        let mut allocator = self.allocator.lock().await;
        let Some(removed) = allocator.delete_pool(id, force)? else { return Ok(()) };
        if let Err(error) = self.records.delete_pool(&removed.pool, &removed.allocations).await {
            log_failed_undo(allocator.restore_pool(removed.pool));
            for allocation in removed.allocations {
                let Allocation { pool_id, owner, address, is_static, .. } = allocation;
                log_failed_undo(
                    allocator.restore_allocation(&pool_id, owner, address, is_static).map(drop),
                );
            }
            return Err(error.into());
        }
        tracing::info!(pool = %id, allocations = removed.allocations.len(), "pool deleted");
        metrics::forget(id);
        Ok(())
    }

    pub async fn allocate(&self, request: &AllocationRequest) -> Result<Allocation, Error> {
        let mut allocator = self.allocator.lock().await;
        let allocation = match allocator.allocate(request)? {
            Outcome::Existing(allocation) => return Ok(allocation),
            Outcome::Created(allocation) => allocation,
        };
        if let Err(error) = self.records.put_allocation(&allocation).await {
            allocator.release(&allocation.pool_id, &allocation.owner);
            return Err(error.into());
        }
        tracing::info!(
            pool = %allocation.pool_id,
            owner = %allocation.owner,
            address = %allocation.address,
            is_static = allocation.is_static,
            "address allocated"
        );
        record_pool(&allocator, &allocation.pool_id);
        Ok(allocation)
    }

    /// Releases what `owner` holds in the pool; None if it held nothing.
    pub async fn release(
        &self,
        pool_id: &PoolId,
        owner: &Owner,
    ) -> Result<Option<Allocation>, Error> {
        let mut allocator = self.allocator.lock().await;
        let Some(allocation) = allocator.release(pool_id, owner) else { return Ok(None) };
        if let Err(error) = self.records.delete_allocation(&allocation).await {
            let Allocation { pool_id, owner, address, is_static, .. } = allocation;
            log_failed_undo(
                allocator.restore_allocation(&pool_id, owner, address, is_static).map(drop),
            );
            return Err(error.into());
        }
        tracing::info!(pool = %pool_id, owner = %owner, address = %allocation.address, "address released");
        record_pool(&allocator, pool_id);
        Ok(Some(allocation))
    }

    /// The allocations of one pool, or of all pools when `pool_id` is None.
    pub async fn allocations(&self, pool_id: Option<&PoolId>) -> Result<Vec<Allocation>, Error> {
        Ok(self.allocator.lock().await.allocations(pool_id)?)
    }
}

fn record_pool(allocator: &Allocator, id: &PoolId) {
    if let Ok(summary) = allocator.pool(id) {
        metrics::record(&summary);
    }
}

/// Undoing an in-memory step with its inverse cannot fail while the lock is held; if it
/// ever did, the caller still deserves the store error that caused the undo.
fn log_failed_undo(result: Result<(), domain::Error>) {
    if let Err(error) = result {
        tracing::error!(%error, "undoing an in-memory change failed");
    }
}
