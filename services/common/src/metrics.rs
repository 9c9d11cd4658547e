//! Request metrics in the Prometheus text format, served on `server.metrics_listen` when
//! it is set (off by default, and then the counting layer is not installed either).
//!
//! - `cnet_grpc_requests_total{service,method,code}`: finished requests by gRPC code,
//! - `cnet_grpc_request_duration_seconds{service,method}`: their latency.

use std::{
    sync::{Arc, LazyLock},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use prometheus::{
    Encoder, HistogramVec, IntCounterVec, TextEncoder, register_histogram_vec,
    register_int_counter_vec,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "cnet_grpc_requests_total",
        "gRPC requests served, by service, method and gRPC status code",
        &["service", "method", "code"]
    )
    .expect("metric is registered once")
});

static LATENCY: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "cnet_grpc_request_duration_seconds",
        "Time to the response headers of a gRPC request, by service and method",
        &["service", "method"],
        // Most calls are local and fast; kernel work (veths, iptables) takes longer.
        vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    )
    .expect("metric is registered once")
});

/// Tower layer counting and timing every request of `service`.
#[derive(Clone)]
pub struct MetricsLayer {
    service: Arc<str>,
}

impl MetricsLayer {
    pub fn new(service: &str) -> Self {
        Self { service: service.into() }
    }
}

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metered { inner, service: self.service.clone() }
    }
}

#[derive(Clone)]
pub struct Metered<S> {
    inner: S,
    service: Arc<str>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Metered<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let service = self.service.clone();
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            // Errors show up as trailers-only responses whose headers hold grpc-status;
            // a success puts it in the trailers, so no status header means OK. (A stream
            // failing after its first message is counted as OK: rare here.)
            let code = match &response {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .map_or(tonic::Code::Ok, |v| tonic::Code::from_bytes(v.as_bytes())),
                Err(_) => tonic::Code::Unavailable,
            };
            // Unknown paths would let any caller grow the label set without bound.
            let method = if code == tonic::Code::Unimplemented { "unknown" } else { &method };
            let code = format!("{code:?}");
            REQUESTS.with_label_values(&[&*service, method, &code]).inc();
            LATENCY
                .with_label_values(&[&*service, method])
                .observe(started.elapsed().as_secs_f64());
            response
        })
    }
}

/// The exposition text of every registered metric.
pub fn render() -> String {
    let mut buffer = Vec::new();
    let _ = TextEncoder::new().encode(&prometheus::gather(), &mut buffer);
    String::from_utf8(buffer).unwrap_or_default()
}

/// Answers every HTTP request on `listener` with the metrics, whatever its path: a
/// scraper is the only client, so a full HTTP server would be dead weight.
pub async fn serve(listener: TcpListener) {
    // Touch the metrics so that a scrape before the first request shows them.
    LazyLock::force(&REQUESTS);
    LazyLock::force(&LATENCY);
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            // E.g. out of file descriptors: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        tokio::spawn(async move {
            let mut request = Vec::new();
            let mut chunk = [0u8; 1024];
            // Read the request head (bounded in size and time), then answer and close.
            let read_head = async {
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16384 {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
            };
            if tokio::time::timeout(Duration::from_secs(5), read_head).await.is_err() {
                return;
            }
            let body = render();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
