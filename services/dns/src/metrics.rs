//! Queries by result for the metrics endpoint: `cnet_dns_queries_total{source, rcode}`,
//! `source` being `local` (a container name, alias or address this resolver knows, or a
//! refusal it made itself) or `upstream` (forwarded; `rcode` is the upstream's, or
//! `ServFail` when every upstream failed). Counted on the hot path, so the usual series
//! are looked up once.

use std::sync::LazyLock;

use hickory_proto::op::ResponseCode;
use prometheus::{IntCounter, IntCounterVec, register_int_counter_vec};

static QUERIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "cnet_dns_queries_total",
        "DNS queries answered, by where the answer came from and its response code",
        &["source", "rcode"]
    )
    .expect("metric is registered once")
});

static LOCAL_NOERROR: LazyLock<IntCounter> = LazyLock::new(|| counter("local", "NoError"));
static LOCAL_NXDOMAIN: LazyLock<IntCounter> = LazyLock::new(|| counter("local", "NXDomain"));
static UPSTREAM_NOERROR: LazyLock<IntCounter> = LazyLock::new(|| counter("upstream", "NoError"));

fn counter(source: &str, rcode: &str) -> IntCounter {
    QUERIES.with_label_values(&[source, rcode])
}

pub fn local(rcode: ResponseCode) {
    match rcode {
        ResponseCode::NoError => LOCAL_NOERROR.inc(),
        ResponseCode::NXDomain => LOCAL_NXDOMAIN.inc(),
        other => counter("local", &format!("{other:?}")).inc(),
    }
}

pub fn upstream(rcode: ResponseCode) {
    match rcode {
        ResponseCode::NoError => UPSTREAM_NOERROR.inc(),
        other => counter("upstream", &format!("{other:?}")).inc(),
    }
}
