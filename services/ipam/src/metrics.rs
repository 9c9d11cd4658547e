//! Pool gauges for the metrics endpoint, so that an operator can alert before a network
//! runs out of addresses: `cnet_ipam_addresses{pool, state="used"|"free"}`, kept current
//! by every mutation (a scrape never takes the allocator's lock).

use std::sync::LazyLock;

use prometheus::{IntGaugeVec, register_int_gauge_vec};

use crate::domain::{PoolId, PoolSummary};

static ADDRESSES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "cnet_ipam_addresses",
        "Addresses of each pool's ip-range by state: used (allocated) or free (allocatable)",
        &["pool", "state"]
    )
    .expect("metric is registered once")
});

pub fn record(summary: &PoolSummary) {
    let pool = summary.pool.id().to_string();
    let gauge = |state| ADDRESSES.with_label_values(&[pool.as_str(), state]);
    gauge("used").set(i64::try_from(summary.allocated).unwrap_or(i64::MAX));
    gauge("free").set(i64::try_from(summary.free).unwrap_or(i64::MAX));
}

pub fn forget(pool: &PoolId) {
    for state in ["used", "free"] {
        let _ = ADDRESSES.remove_label_values(&[&pool.to_string(), state]);
    }
}
