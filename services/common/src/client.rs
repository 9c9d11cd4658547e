//! Connecting to a cnet service. Targets are `unix:///path`, a plain absolute path,
//! `http://host:port` or `tcp://host:port`. Channels connect lazily and reconnect by
//! themselves, so a client outlives restarts of the service it talks to.
//!
//! [`traced_channel`] also carries the caller's trace context to the service (W3C
//! `traceparent` metadata on every request), so that its spans join the caller's trace.

use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::{
    Status,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint, Uri},
};

use crate::telemetry;

#[derive(Debug, thiserror::Error)]
#[error("invalid service address {target:?}: {reason}")]
pub struct AddressError {
    target: String,
    reason: String,
}

/// A lazily connecting channel to `target`.
pub fn channel(target: &str) -> Result<Channel, AddressError> {
    let error = |reason: &str| AddressError { target: target.to_owned(), reason: reason.into() };
    let unix_path =
        target.strip_prefix("unix://").or_else(|| target.starts_with('/').then_some(target));
    if let Some(path) = unix_path {
        if !path.starts_with('/') {
            return Err(error("a unix socket path must be absolute"));
        }
        let path = path.to_owned();
        // The URI is required by the API but unused: the connector ignores it.
        let endpoint =
            Endpoint::from_static("http://cnet.local").connect_timeout(Duration::from_secs(5));
        return Ok(endpoint.connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        })));
    }
    let http = match target.strip_prefix("tcp://") {
        Some(rest) => format!("http://{rest}"),
        None if target.starts_with("http://") || target.starts_with("https://") => {
            target.to_owned()
        }
        None => {
            return Err(error("expected unix:///path, /path, tcp://host:port or http://host:port"));
        }
    };
    let endpoint = Endpoint::from_shared(http).map_err(|e| error(&e.to_string()))?;
    Ok(endpoint.connect_timeout(Duration::from_secs(5)).connect_lazy())
}

/// A channel that propagates the current span's trace context.
pub type TracedChannel = InterceptedService<Channel, PropagateContext>;

/// Like [`channel`], with trace context propagation.
pub fn traced_channel(target: &str) -> Result<TracedChannel, AddressError> {
    Ok(InterceptedService::new(channel(target)?, PropagateContext))
}

/// Writes the current span's context into each request. The client method calls this
/// from within the caller's future, so the current span is the caller's.
#[derive(Debug, Clone, Copy, Default)]
pub struct PropagateContext;

impl Interceptor for PropagateContext {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        telemetry::inject(request.metadata_mut());
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepts_the_documented_forms() {
        for target in [
            "unix:///run/cnet/gateway.sock",
            "/run/cnet/x.sock",
            "tcp://127.0.0.1:1",
            "http://[::1]:7",
        ] {
            assert!(channel(target).is_ok(), "{target}");
        }
        for target in ["unix://relative.sock", "gateway", "ftp://x"] {
            assert!(channel(target).is_err(), "{target}");
        }
    }
}
