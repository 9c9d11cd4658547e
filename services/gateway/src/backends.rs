//! Clients of the services the gateway coordinates. Every call the gateway makes is
//! idempotent (keyed by network, container or endpoint id), so a call that finds its
//! service restarting is retried with backoff for a few seconds before giving up. The
//! channels carry the trace context, so the services' spans join the gateway request's trace.

use std::{future::Future, time::Duration};

use cnet_common::client::{AddressError, TracedChannel, traced_channel};
use cnet_proto::{
    bridge::v1::bridge_agent_client::BridgeAgentClient, dns::v1::dns_client::DnsClient,
    hosts::v1::hosts_client::HostsClient, ipam::v1::ipam_client::IpamClient,
    nat::v1::nat_client::NatClient,
};
use tonic::{Code, Status};

#[derive(Clone)]
pub struct Backends {
    pub ipam: IpamClient<TracedChannel>,
    pub bridge: BridgeAgentClient<TracedChannel>,
    pub dns: DnsClient<TracedChannel>,
    pub hosts: HostsClient<TracedChannel>,
    pub nat: NatClient<TracedChannel>,
}

impl Backends {
    /// `address` maps a service name to where it listens.
    pub fn connect(address: impl Fn(&str) -> String) -> Result<Self, AddressError> {
        Ok(Self {
            ipam: IpamClient::new(traced_channel(&address("ipam"))?),
            bridge: BridgeAgentClient::new(traced_channel(&address("bridge"))?),
            dns: DnsClient::new(traced_channel(&address("dns"))?),
            hosts: HostsClient::new(traced_channel(&address("hosts"))?),
            nat: NatClient::new(traced_channel(&address("nat"))?),
        })
    }
}

/// Total time a call keeps retrying while its service is unreachable.
const RETRY_BUDGET: Duration = Duration::from_secs(10);

/// Runs `call` with a clone of `client` and `message` until it succeeds, fails with
/// something other than UNAVAILABLE, or the retry budget is spent. `what` names the step
/// for the error message. A failure of the service itself asks for a drift sweep
/// ([`crate::ops::sweep`]), whoever the caller: an undo that failed leaves something.
pub async fn retry<C, M, T, F, Fut>(
    what: &str,
    client: &C,
    message: M,
    mut call: F,
) -> Result<T, Status>
where
    C: Clone,
    M: Clone,
    F: FnMut(C, M) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(50);
    let status = loop {
        match call(client.clone(), message.clone()).await {
            Ok(response) => return Ok(response.into_inner()),
            Err(status)
                if status.code() == Code::Unavailable && started.elapsed() < RETRY_BUDGET =>
            {
                tracing::debug!(step = what, %status, "service unavailable, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            Err(status) if is_transient(&status) => {
                break Status::unavailable(format!("{what}: {}", status.message()));
            }
            Err(status) => break status,
        }
    };
    crate::ops::sweep::note_failure(status.code());
    Err(status)
}

/// UNAVAILABLE, or a connection that broke under a request (the service was killed):
/// both mean the service may be back in a moment, and every call here is idempotent.
fn is_transient(status: &Status) -> bool {
    use std::error::Error as _;
    status.code() == Code::Unavailable
        || status
            .source()
            .is_some_and(|source| source.downcast_ref::<tonic::transport::Error>().is_some())
}
