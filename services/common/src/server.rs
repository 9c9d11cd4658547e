//! Serving a service's gRPC routes on its Unix socket (mode 0660) and, if configured, on
//! TCP, with grpc.health.v1, server reflection, a per-request deadline, a global
//! concurrency limit and one tracing span per request.

use std::{future::Future, io, os::unix::fs::PermissionsExt, path::Path};

use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::{server::NamedService, service::Routes, transport::Server};
use tonic_health::server::HealthReporter;
use tower::limit::GlobalConcurrencyLimitLayer;

use crate::config::ServerConfig;

/// The sockets a service listens on, bound before the service reports ready so that
/// clients can connect (and wait on health) as early as possible.
pub struct Listeners {
    unix: UnixListener,
    tcp: Option<TcpListener>,
}

impl Listeners {
    pub async fn bind(service: &str, config: &ServerConfig) -> io::Result<Self> {
        let path = config.socket_path(service);
        let unix = bind_unix(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("listen on {}: {e}", path.display())))?;
        let tcp = match config.listen_tcp {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| io::Error::new(e.kind(), format!("listen on {addr}: {e}")))?,
            ),
            None => None,
        };
        tracing::info!(service, socket = %path.display(), tcp = ?config.listen_tcp, "listening");
        Ok(Self { unix, tcp })
    }

    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }
}

fn bind_unix(path: &Path) -> io::Result<UnixListener> {
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

/// Serves `routes` on `listeners` until `shutdown` resolves.
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
    let builder = || {
        Server::builder()
            .timeout(config.request_timeout())
            .trace_fn(|request| tracing::info_span!("grpc", method = %request.uri().path()))
            .layer(limit.clone())
    };
    let unix = builder()
        .add_routes(routes.clone())
        .serve_with_incoming_shutdown(UnixListenerStream::new(listeners.unix), stopped());
    match listeners.tcp {
        Some(tcp) => {
            let tcp = builder()
                .add_routes(routes)
                .serve_with_incoming_shutdown(TcpListenerStream::new(tcp), stopped());
            tokio::try_join!(unix, tcp).map(|_| ())
        }
        None => unix.await,
    }
}
