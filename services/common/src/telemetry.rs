//! Logging and distributed tracing. Log lines go to stderr (stdout is for machine
//! output), filtered with `RUST_LOG` (default chosen by the service, normally `info`).
//!
//! Spans are also exported over OTLP/gRPC, but only when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set: otherwise no OpenTelemetry layer,
//! exporter or propagator is installed and the cost is that of plain `tracing`. The
//! resource is `service.name = cnet-<service>` unless `OTEL_SERVICE_NAME` or
//! `OTEL_RESOURCE_ATTRIBUTES` say otherwise (the SDK reads both).
//!
//! Services push metrics the same way when the same variables say so
//! ([`crate::otlp_metrics`]).
//!
//! W3C trace context crosses process boundaries through [`inject`] (used by
//! [`crate::client`]) and [`adopt_remote_parent`] (used by [`crate::server`]).

use std::{io::IsTerminal, sync::OnceLock};

use opentelemetry::{
    global,
    propagation::{Extractor, Injector},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, Layer, fmt, layer::SubscriberExt, util::SubscriberInitExt};

/// What the OpenTelemetry layer exports. Independent of `RUST_LOG` so that quieter
/// logs do not cut holes into traces; the transport crates are off because their spans
/// are noise and the exporter's own requests would otherwise trace themselves.
const OTEL_FILTER: &str = "info,h2=off,hyper=off,hyper_util=off,tonic=off,tower=off";

/// Set only when spans are exported; everything else checks it to stay a no-op.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the global subscriber for `service`. Safe to call once per process.
pub fn init(service: &str, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let logs = fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter);
    let traces = tracer_provider(service).map(|provider| {
        let tracer = provider.tracer("cnet");
        global::set_text_map_propagator(TraceContextPropagator::new());
        let _ = PROVIDER.set(provider);
        tracing_opentelemetry::layer().with_tracer(tracer).with_filter(EnvFilter::new(OTEL_FILTER))
    });
    tracing_subscriber::registry().with(logs).with(traces).init();
    tracing::debug!(service, otlp = enabled(), "logging initialised");
}

/// The exporting provider, if the OTLP endpoint is configured. Must run inside the
/// tokio runtime: the exporter's tonic channel spawns its worker there.
fn tracer_provider(service: &str) -> Option<SdkTracerProvider> {
    let configured = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if !configured("OTEL_EXPORTER_OTLP_ENDPOINT")
        && !configured("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    {
        return None;
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder().with_tonic().build() {
        Ok(exporter) => exporter,
        Err(error) => {
            // Tracing is an aid, not a reason to refuse to start.
            eprintln!("cnet-{service}: not exporting traces: {error}");
            return None;
        }
    };
    let mut resource = Resource::builder();
    let named_by_env = configured("OTEL_SERVICE_NAME")
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| a.contains("service.name="));
    if !named_by_env {
        resource = resource.with_service_name(format!("cnet-{service}"));
    }
    let provider = SdkTracerProvider::builder()
        .with_resource(resource.build())
        .with_batch_exporter(exporter)
        .build();
    global::set_tracer_provider(provider.clone());
    Some(provider)
}

/// Whether spans are exported (and context propagated).
pub fn enabled() -> bool {
    PROVIDER.get().is_some()
}

/// Exports what is buffered and stops the exporter; called when a service stops serving.
pub async fn shutdown() {
    if let Some(provider) = PROVIDER.get().cloned() {
        // The batch processor blocks on its own thread while the export runs on tokio.
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }
}

/// Writes the current span's context as `traceparent` into outgoing gRPC metadata.
pub fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    if !enabled() {
        return;
    }
    let context = tracing::Span::current().context();
    global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut MetadataInjector(metadata))
    });
}

/// Makes the `traceparent` of an incoming request the parent of `span` (which must not
/// have been entered yet) and records the trace id in its `trace_id` field, so that log
/// lines inside the request carry it.
pub fn adopt_remote_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    if !enabled() {
        return;
    }
    let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    let _ = span.set_parent(parent);
    let trace_id = span.context().span().span_context().trace_id();
    span.record("trace_id", tracing::field::display(trace_id));
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value),
        ) {
            self.0.insert(key, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}
