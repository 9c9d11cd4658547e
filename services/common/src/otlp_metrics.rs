//! The metrics of [`crate::metrics`] (and every other metric in the process's Prometheus
//! registry) pushed over OTLP/gRPC, for backends that take OpenTelemetry rather than
//! scrapes. One registry feeds both, so the two views never disagree.
//!
//! On only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`)
//! is set and `OTEL_METRICS_EXPORTER` is not `none`; every
//! `OTEL_METRIC_EXPORT_INTERVAL` milliseconds (default 60000, as the SDKs) the registry
//! is converted: counters to cumulative monotonic sums, gauges to gauges, histograms to
//! cumulative explicit-bucket histograms. The resource is the one traces carry.

use std::{
    sync::OnceLock,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use opentelemetry_proto::tonic::{
    collector::metrics::v1::{
        ExportMetricsServiceRequest, metrics_service_client::MetricsServiceClient,
    },
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value},
    metrics::v1::{
        AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
        ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point::Value,
    },
    resource::v1::Resource,
};
use prometheus::proto::{MetricFamily, MetricType};

/// When the process started exporting: the start of every cumulative series.
static STARTED: OnceLock<u64> = OnceLock::new();

/// Where to push, if metrics are to be pushed at all.
fn endpoint() -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if var("OTEL_METRICS_EXPORTER").is_some_and(|e| e == "none") {
        return None;
    }
    var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
}

/// Whether metrics are pushed, which makes the servers count requests.
pub fn enabled() -> bool {
    STARTED.get().is_some()
}

/// Starts the periodic push for `service` when configured; must run inside the runtime.
pub fn start(service: &str) {
    let Some(endpoint) = endpoint() else { return };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    let interval = std::env::var("OTEL_METRIC_EXPORT_INTERVAL")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .filter(|&ms| ms > 0)
        .map_or(Duration::from_secs(60), Duration::from_millis);
    let _ = STARTED.set(now_nanos());
    let resource = resource(service);
    runtime.spawn(async move {
        let mut client = None;
        let mut ticks = tokio::time::interval(interval);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if client.is_none() {
                client = crate::client::channel(&endpoint).ok().map(MetricsServiceClient::new);
            }
            let Some(client) = client.as_mut() else { continue };
            let request = ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    resource: Some(resource.clone()),
                    scope_metrics: vec![ScopeMetrics {
                        scope: Some(InstrumentationScope {
                            name: "cnet".into(),
                            ..Default::default()
                        }),
                        metrics: convert(&prometheus::gather(), now_nanos()),
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }],
            };
            if let Err(status) = client.export(request).await {
                // Metrics are an aid: a backend that is down must not make noise per tick.
                tracing::debug!(%status, "metrics export failed");
            }
        }
    });
}

/// `service.name` (unless the environment names it) plus `OTEL_RESOURCE_ATTRIBUTES`.
fn resource(service: &str) -> Resource {
    let mut attributes: Vec<KeyValue> = std::env::var("OTEL_RESOURCE_ATTRIBUTES")
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| attribute(key.trim(), value.trim()))
        .collect();
    let named = std::env::var("OTEL_SERVICE_NAME").ok().filter(|n| !n.is_empty());
    attributes.retain(|kv| named.is_none() || kv.key != "service.name");
    if !attributes.iter().any(|kv| kv.key == "service.name") {
        attributes.push(attribute("service.name", &named.unwrap_or(format!("cnet-{service}"))));
    }
    Resource { attributes, ..Default::default() }
}

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) }),
        ..Default::default()
    }
}

fn now_nanos() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
}

/// The OTLP form of Prometheus families observed at `time` (nanoseconds since the epoch).
fn convert(families: &[MetricFamily], time: u64) -> Vec<Metric> {
    let start = STARTED.get().copied().unwrap_or(time);
    let cumulative = AggregationTemporality::Cumulative as i32;
    let mut metrics = Vec::new();
    for family in families {
        let labels = |m: &prometheus::proto::Metric| -> Vec<KeyValue> {
            m.get_label().iter().map(|l| attribute(l.name(), l.value())).collect()
        };
        let number = |m: &prometheus::proto::Metric, value: f64| NumberDataPoint {
            attributes: labels(m),
            start_time_unix_nano: start,
            time_unix_nano: time,
            value: Some(Value::AsDouble(value)),
            ..Default::default()
        };
        let data = match family.get_field_type() {
            MetricType::COUNTER => Data::Sum(Sum {
                data_points: family
                    .get_metric()
                    .iter()
                    .map(|m| number(m, m.get_counter().get_value()))
                    .collect(),
                aggregation_temporality: cumulative,
                is_monotonic: true,
            }),
            MetricType::GAUGE => Data::Gauge(Gauge {
                data_points: family
                    .get_metric()
                    .iter()
                    .map(|m| number(m, m.get_gauge().get_value()))
                    .collect(),
            }),
            MetricType::HISTOGRAM => Data::Histogram(Histogram {
                data_points: family
                    .get_metric()
                    .iter()
                    .map(|m| histogram_point(m, labels(m), start, time))
                    .collect(),
                aggregation_temporality: cumulative,
            }),
            _ => continue,
        };
        metrics.push(Metric {
            name: family.name().to_owned(),
            description: family.help().to_owned(),
            data: Some(data),
            ..Default::default()
        });
    }
    metrics
}

/// Prometheus buckets count everything up to their bound; OTLP's count each interval
/// alone, with one more bucket above the last bound.
fn histogram_point(
    metric: &prometheus::proto::Metric,
    attributes: Vec<KeyValue>,
    start: u64,
    time: u64,
) -> HistogramDataPoint {
    let histogram = metric.get_histogram();
    let mut explicit_bounds = Vec::new();
    let mut bucket_counts = Vec::new();
    let mut below = 0;
    for bucket in histogram.get_bucket() {
        if bucket.upper_bound().is_infinite() {
            continue;
        }
        explicit_bounds.push(bucket.upper_bound());
        bucket_counts.push(bucket.cumulative_count().saturating_sub(below));
        below = bucket.cumulative_count();
    }
    let count = histogram.get_sample_count();
    bucket_counts.push(count.saturating_sub(below));
    HistogramDataPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: time,
        count,
        sum: Some(histogram.get_sample_sum()),
        bucket_counts,
        explicit_bounds,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

    #[test]
    fn counters_become_sums_and_histograms_get_interval_buckets() {
        let registry = Registry::new();
        let counter = IntCounterVec::new(Opts::new("c_total", "c"), &["code"]).unwrap();
        let histogram =
            HistogramVec::new(HistogramOpts::new("h", "h").buckets(vec![1.0, 2.0]), &["m"])
                .unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        registry.register(Box::new(histogram.clone())).unwrap();
        counter.with_label_values(&["Ok"]).inc_by(3);
        for value in [0.5, 1.5, 1.7, 9.0] {
            histogram.with_label_values(&["run"]).observe(value);
        }

        let metrics = convert(&registry.gather(), 42);
        let Some(Data::Sum(sum)) = &metrics[0].data else { panic!("{metrics:?}") };
        assert!(sum.is_monotonic);
        assert_eq!(sum.data_points[0].value, Some(Value::AsDouble(3.0)));
        assert_eq!(sum.data_points[0].attributes[0].key, "code");
        let Some(Data::Histogram(h)) = &metrics[1].data else { panic!("{metrics:?}") };
        let point = &h.data_points[0];
        assert_eq!(point.explicit_bounds, [1.0, 2.0]);
        assert_eq!(point.bucket_counts, [1, 2, 1]);
        assert_eq!((point.count, point.time_unix_nano), (4, 42));
    }
}
