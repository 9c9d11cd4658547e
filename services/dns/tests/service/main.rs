//! Service tests as root: the real service (`cnet_dns::run`: gRPC on a Unix socket, sled
//! in a temp dir, the listeners inside real network namespaces) driven by the
//! generated client, each test inside its own throwaway network and mount namespaces.
//! Queries are sent from threads that entered a sandbox, to 127.0.0.11:53 as a
//! container would; unknown names go to fake upstreams on the test's own loopback.
//! Without root, the tests fail; they never skip. `TEST_LOG=1` shows the service's logs.

mod client;
mod forwarding;
mod lifecycle;
mod names;
mod support;

use std::net::Ipv4Addr;

/// What the two fake upstreams answer for "www…" names.
pub const TAG_1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const TAG_2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

pub fn ip(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}
