//! Serving a service's gRPC routes on its Unix socket (mode 0660, group `socket_group`
//! if set) and, if configured, on TCP (mutual TLS, or plaintext only with an explicit
//! `insecure` opt-in, which logs a warning), with grpc.health.v1, server reflection, a
//! per-request deadline, a global concurrency limit and one tracing span per request,
//! whose parent is the caller's span when the request carries a W3C `traceparent` (see
//! [`crate::telemetry`]), and, if `metrics_listen` is set, request metrics (see
//! [`crate::metrics`]).

mod starting;

use std::{future::Future, io, os::unix::fs::PermissionsExt, path::Path};

use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::{
    server::NamedService,
    service::Routes,
    transport::{Server, ServerTlsConfig},
};
use tonic_health::server::HealthReporter;
use tower::{limit::GlobalConcurrencyLimitLayer, util::option_layer};

pub use starting::{Serving, Starting};

use crate::{
    config::ServerConfig,
    metrics::{self, MetricsLayer},
    telemetry,
};

/// The sockets a service listens on, bound before the service reports ready so that
/// clients can connect (and wait on health) as early as possible.
pub struct Listeners {
    service: String,
    unix: UnixListener,
    tcp: Option<TcpListener>,
    /// TLS of `tcp`; `None` only with `insecure`.
    tls: Option<ServerTlsConfig>,
    metrics: Option<TcpListener>,
}

impl Listeners {
    /// Binds the sockets. What [`ServerConfig::validate`] refuses (an unknown socket
    /// group, TCP with neither TLS nor `insecure`, unreadable TLS files) fails here too,
    /// with `InvalidInput`, for callers that skip [`crate::service::prepare`].
    pub async fn bind(service: &str, config: &ServerConfig) -> io::Result<Self> {
        config.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let gid =
            config.socket_gid().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = match &config.tls {
            Some(files) => Some(
                crate::tls::server_config(files)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            ),
            None => None,
        };
        let path = config.socket_path(service);
        let unix = bind_unix(&path, gid)
            .map_err(|e| io::Error::new(e.kind(), format!("listen on {}: {e}", path.display())))?;
        let tcp = match config.listen_tcp {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| io::Error::new(e.kind(), format!("listen on {addr}: {e}")))?,
            ),
            None => None,
        };
        let metrics = match config.metrics_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                io::Error::new(e.kind(), format!("listen for metrics on {addr}: {e}"))
            })?),
            None => None,
        };
        if let Some(addr) = config.listen_tcp
            && tls.is_none()
        {
            tracing::warn!(
                service,
                %addr,
                "insecure: serving plaintext gRPC on TCP with no authentication; anyone who \
                 can reach this address controls the service (use [server.tls])"
            );
            if !addr.ip().is_loopback() {
                tracing::warn!(service, %addr, "insecure listener on a non-loopback address");
            }
        }
        tracing::info!(
            service,
            socket = %path.display(),
            socket_gid = ?gid,
            tcp = ?config.listen_tcp,
            tls = tls.is_some(),
            metrics = ?config.metrics_listen,
            "listening"
        );
        Ok(Self { service: service.to_owned(), unix, tcp, tls, metrics })
    }

    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }
}

/// Binds the socket, mode 0660, owned by the service's user and `gid` if given.
fn bind_unix(path: &Path, gid: Option<u32>) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A socket file left by a killed process would make bind fail; nothing else may
    // live at this path, so removing it is safe.
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid))
            .map_err(|e| io::Error::new(e.kind(), format!("set its group to gid {gid}: {e}")))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

/// Health and reflection services every cnet service carries, plus the reporter used to
/// flip health to SERVING once the service is ready.
pub struct Standard {
    pub health: HealthReporter,
    routes: tonic::service::RoutesBuilder,
}

impl Standard {
    pub fn new() -> Self {
        let (health, health_service) = tonic_health::server::health_reporter();
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(cnet_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .expect("cnet descriptors are valid");
        let mut routes = Routes::builder();
        routes.add_service(health_service).add_service(reflection);
        Self { health, routes }
    }

    pub fn add_service<S>(&mut self, service: S) -> &mut Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.routes.add_service(service);
        self
    }

    pub fn routes(self) -> (HealthReporter, Routes) {
        (self.health, self.routes.routes())
    }
}

impl Default for Standard {
    fn default() -> Self {
        Self::new()
    }
}

/// Serves `routes` on `listeners` until `shutdown` resolves, then flushes the traces.
pub async fn serve(
    listeners: Listeners,
    routes: Routes,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let limit = GlobalConcurrencyLimitLayer::new(config.max_concurrent_requests);
    let metrics = listeners.metrics.map(|listener| tokio::spawn(metrics::serve(listener)));
    let metered = (metrics.is_some() || crate::otlp_metrics::enabled())
        .then(|| MetricsLayer::new(&listeners.service));
    let builder = || {
        Server::builder()
            .timeout(config.request_timeout())
            .trace_fn(request_span)
            .layer(option_layer(metered.clone()))
            .layer(limit.clone())
    };
    let unix = builder()
        .add_routes(routes.clone())
        .serve_with_incoming_shutdown(UnixListenerStream::new(listeners.unix), stopped());
    let served = match listeners.tcp {
        Some(tcp) => {
            let mut server = match listeners.tls {
                Some(tls) => builder().tls_config(tls)?,
                None => builder(),
            };
            let tcp = server
                .add_routes(routes)
                .serve_with_incoming_shutdown(TcpListenerStream::new(tcp), stopped());
            tokio::try_join!(unix, tcp).map(|_| ())
        }
        None => unix.await,
    };
    if let Some(task) = metrics {
        task.abort();
    }
    telemetry::shutdown().await;
    served
}

/// The span every request runs in. When traces are exported it is also named after
/// the method (`otel.name`), marked as a server span and parented to the caller's span
/// if the request says which; the fields stay empty otherwise, so logs are unchanged.
fn request_span(request: &http::Request<()>) -> tracing::Span {
    let method = request.uri().path();
    let span = tracing::info_span!(
        "grpc",
        method = %method,
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    if telemetry::enabled() {
        span.record("otel.name", method.trim_start_matches('/'));
        span.record("otel.kind", "server");
        telemetry::adopt_remote_parent(&span, request.headers());
    }
    span
}
