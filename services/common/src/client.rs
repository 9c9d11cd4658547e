//! Connecting to a cnet service. Targets are `unix:///path`, a plain absolute path,
//! `http://host:port` or `tcp://host:port` (plaintext), or `https://host:port` or
//! `tls://host:port` (TLS: the service's certificate is verified against a CA, and the
//! client presents its own certificate, as cnet's TCP listeners require). Channels
//! connect lazily and reconnect by themselves, so a client outlives restarts of the
//! service it talks to.
//!
//! [`channel_with`] takes the TLS settings explicitly (the CLI's `--tlscacert` ...);
//! [`channel`] uses the process's default ones, which a service sets at start from its
//! `[server.client_tls]` (see [`set_default_tls`]), so the gateway's clients of the other
//! services use them without knowing.
//!
//! [`traced_channel`] also carries the caller's trace context to the service (W3C
//! `traceparent` metadata on every request), so that its spans join the caller's trace.

use std::{sync::RwLock, time::Duration};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::{
    Status,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, ClientTlsConfig, Endpoint, Uri},
};

use crate::telemetry;

#[derive(Debug, thiserror::Error)]
#[error("invalid service address {target:?}: {reason}")]
pub struct AddressError {
    target: String,
    reason: String,
}

/// TLS settings [`channel`] uses for `https://` targets.
static DEFAULT_TLS: RwLock<Option<ClientTlsConfig>> = RwLock::new(None);

/// Sets the TLS settings [`channel`] and [`traced_channel`] use for `https://` targets
/// from now on (a service does this at start from `[server.client_tls]`).
pub fn set_default_tls(tls: Option<ClientTlsConfig>) {
    *DEFAULT_TLS.write().unwrap_or_else(|e| e.into_inner()) = tls;
}

fn default_tls() -> Option<ClientTlsConfig> {
    DEFAULT_TLS.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A lazily connecting channel to `target`, with the process's default TLS settings.
pub fn channel(target: &str) -> Result<Channel, AddressError> {
    channel_with(target, default_tls().as_ref())
}

/// A lazily connecting channel to `target`; `tls` is used for `https://` and `tls://`
/// targets, which need it, and ignored for the others.
pub fn channel_with(target: &str, tls: Option<&ClientTlsConfig>) -> Result<Channel, AddressError> {
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
    let (uri, secure) = if let Some(rest) = target.strip_prefix("tcp://") {
        (format!("http://{rest}"), false)
    } else if let Some(rest) = target.strip_prefix("tls://") {
        (format!("https://{rest}"), true)
    } else if target.starts_with("http://") {
        (target.to_owned(), false)
    } else if target.starts_with("https://") {
        (target.to_owned(), true)
    } else {
        return Err(error(
            "expected unix:///path, /path, tcp://host:port, http://host:port, \
             https://host:port or tls://host:port",
        ));
    };
    let mut endpoint = Endpoint::from_shared(uri).map_err(|e| error(&e.to_string()))?;
    if secure {
        let Some(tls) = tls else {
            return Err(error(
                "a TLS target needs a CA certificate to verify the service and a client \
                 certificate ([server.client_tls] ca, cert and key in a service's config; \
                 --tlscacert, --tlscert and --tlskey for the cnet CLI)",
            ));
        };
        endpoint = endpoint.tls_config(tls.clone()).map_err(|e| error(&e.to_string()))?;
    }
    Ok(endpoint.connect_timeout(Duration::from_secs(5)).connect_lazy())
}

/// A channel that propagates the current span's trace context.
pub type TracedChannel = InterceptedService<Channel, PropagateContext>;

/// Like [`channel`], with trace context propagation.
pub fn traced_channel(target: &str) -> Result<TracedChannel, AddressError> {
    Ok(InterceptedService::new(channel(target)?, PropagateContext))
}

/// Like [`channel_with`], with trace context propagation.
pub fn traced_channel_with(
    target: &str,
    tls: Option<&ClientTlsConfig>,
) -> Result<TracedChannel, AddressError> {
    Ok(InterceptedService::new(channel_with(target, tls)?, PropagateContext))
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

    #[tokio::test]
    async fn a_tls_target_without_tls_settings_is_refused() {
        for target in ["https://127.0.0.1:7411", "tls://127.0.0.1:7411"] {
            let error = channel_with(target, None).unwrap_err().to_string();
            assert!(error.contains("needs a CA certificate"), "{error}");
        }
        // Plaintext and Unix targets ignore TLS settings.
        let tls = ClientTlsConfig::new();
        assert!(channel_with("tcp://127.0.0.1:1", Some(&tls)).is_ok());
        assert!(channel_with("unix:///run/cnet/x.sock", Some(&tls)).is_ok());
    }
}
