//! What the proxy carries, for the metrics endpoint: connections (TCP) or flows (UDP) and
//! bytes each way, per published host port. Series appear with a port's first traffic,
//! so publishing a range of a thousand idle ports adds nothing.

use std::sync::LazyLock;

use prometheus::{IntCounter, IntCounterVec, register_int_counter_vec};

static CONNECTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "cnet_nat_proxy_connections_total",
        "Connections (TCP) or flows (UDP) the userland proxy relayed, by host port",
        &["protocol", "port"]
    )
    .expect("metric is registered once")
});

static BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "cnet_nat_proxy_bytes_total",
        "Bytes the userland proxy relayed, by host port and direction (in: to the \
         container, out: from it)",
        &["protocol", "port", "direction"]
    )
    .expect("metric is registered once")
});

/// The counters of one connection or flow.
#[derive(Clone)]
pub struct Traffic {
    pub inbound: IntCounter,
    pub outbound: IntCounter,
}

/// Counts a new connection or flow on `port` and returns its byte counters.
pub fn opened(protocol: &str, port: u16) -> Traffic {
    let port = port.to_string();
    CONNECTIONS.with_label_values(&[protocol, &port]).inc();
    let bytes = |direction| BYTES.with_label_values(&[protocol, &port, direction]);
    Traffic { inbound: bytes("in"), outbound: bytes("out") }
}
