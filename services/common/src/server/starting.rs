//! Answering while the service gets ready. A service binds its sockets before it loads
//! its state and reconciles the kernel to it, which can take a while (thousands of
//! containers); meanwhile health answers NOT_SERVING, as orchestrators expect, and every
//! other call waits for the service to open (bounded by the request deadline) instead of
//! finding a socket that accepts connections and says nothing.

use std::{convert::Infallible, future::Future, task::Poll};

use futures::future::BoxFuture;
use tokio::{sync::watch, task::JoinHandle};
use tonic::{server::NamedService, service::Routes};
use tonic_health::{ServingStatus, server::HealthReporter};
use tower::ServiceExt;

use super::{Listeners, Standard, serve};
use crate::config::ServerConfig;

/// A service that serves health and reflection already, and its own calls once
/// [`Starting::ready`] opens them.
pub struct Starting {
    health: HealthReporter,
    services: tonic::service::RoutesBuilder,
    names: Vec<&'static str>,
    open: watch::Sender<Option<Routes>>,
    served: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Starting {
    /// Starts serving `listeners`: health says NOT_SERVING (overall and for every
    /// service) until [`Starting::ready`].
    pub async fn serve(
        listeners: Listeners,
        config: &ServerConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        let (health, routes) = Standard::new().routes();
        health.set_service_status("", ServingStatus::NotServing).await;
        let (open, opened) = watch::channel(None);
        let router = routes.into_axum_router().fallback_service(Opening { routes: opened });
        let routes = Routes::from(router);
        let config = config.clone();
        let served = tokio::spawn(async move { serve(listeners, routes, &config, shutdown).await });
        Self { health, services: Routes::builder(), names: Vec::new(), open, served }
    }

    pub fn add_service<S>(&mut self, service: S) -> &mut Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.services.add_service(service);
        self.names.push(S::NAME);
        self
    }

    /// Opens the added services and serves until the shutdown future given to
    /// [`Starting::serve`] resolves.
    pub async fn ready(self) -> Result<(), tonic::transport::Error> {
        self.open().await.until_shutdown().await
    }

    /// Opens the added services and reports SERVING for them and overall.
    pub async fn open(self) -> Serving {
        let _ = self.open.send(Some(self.services.routes()));
        for name in self.names {
            self.health.set_service_status(name, ServingStatus::Serving).await;
        }
        self.health.set_service_status("", ServingStatus::Serving).await;
        tracing::info!("ready");
        Serving { health: self.health, served: self.served }
    }
}

/// An open service.
pub struct Serving {
    health: HealthReporter,
    served: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Serving {
    /// The health reporter, for services whose health follows more than their own
    /// readiness (the gateway's follows its dependencies).
    pub fn health(&self) -> &HealthReporter {
        &self.health
    }

    pub async fn until_shutdown(self) -> Result<(), tonic::transport::Error> {
        self.served.await.unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()))
    }
}

/// Where calls to the service's own methods wait until it is open.
#[derive(Clone)]
struct Opening {
    routes: watch::Receiver<Option<Routes>>,
}

impl<B> tower::Service<http::Request<B>> for Opening
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let mut routes = self.routes.clone();
        Box::pin(async move {
            let open = routes.wait_for(Option::is_some).await.ok().and_then(|r| r.clone());
            match open {
                Some(routes) => routes.oneshot(request).await,
                None => Ok(tonic::Status::unavailable("the service is stopping").into_http()),
            }
        })
    }
}
