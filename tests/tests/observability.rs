//! Observability: one `cnet run` is one distributed trace from the CLI across the gateway
//! and every service it drives (collected by an OTLP receiver of the test's own, which also takes
//! the metrics the services push), and each service's Prometheus endpoint counts its
//! requests.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use cnet_tests::{Cluster, eventually};
use opentelemetry_proto::tonic::{
    collector::{
        metrics::v1::{
            ExportMetricsServiceRequest, ExportMetricsServiceResponse,
            metrics_service_server::{MetricsService, MetricsServiceServer},
        },
        trace::v1::{
            ExportTraceServiceRequest, ExportTraceServiceResponse,
            trace_service_server::{TraceService, TraceServiceServer},
        },
    },
    common::v1::{KeyValue, any_value},
    metrics::v1::{metric::Data, number_data_point},
    resource::v1::Resource,
};
use tokio_stream::wrappers::TcpListenerStream;

/// Where the receiver listens, inside the cluster's own network namespace.
const OTLP_ADDR: &str = "127.0.0.1:4317";

/// One received span, reduced to what the assertions need.
#[derive(Debug, Clone)]
struct Seen {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
}

/// One received metric data point: service, metric name, `method` attribute, value.
type Point = (String, String, String, f64);

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Seen>>>,
    points: Arc<Mutex<Vec<Point>>>,
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> String {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(any_value::Value::StringValue(value)) => Some(value.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn service_of(resource: Option<&Resource>) -> String {
    resource.map(|r| string_attribute(&r.attributes, "service.name")).unwrap_or_default()
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut points = self.points.lock().unwrap();
        for resource_metrics in request.into_inner().resource_metrics {
            let service = service_of(resource_metrics.resource.as_ref());
            for metric in resource_metrics.scope_metrics.into_iter().flat_map(|s| s.metrics) {
                let numbers = match metric.data {
                    Some(Data::Sum(sum)) => sum.data_points,
                    Some(Data::Gauge(gauge)) => gauge.data_points,
                    _ => continue,
                };
                for point in numbers {
                    let value = match point.value {
                        Some(number_data_point::Value::AsDouble(v)) => v,
                        Some(number_data_point::Value::AsInt(v)) => v as f64,
                        None => continue,
                    };
                    let method = string_attribute(&point.attributes, "method");
                    points.push((service.clone(), metric.name.clone(), method, value));
                }
            }
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse { partial_success: None }))
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut seen = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = service_of(resource_spans.resource.as_ref());
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                seen.push(Seen {
                    service: service.clone(),
                    name: span.name,
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    parent: span.parent_span_id,
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// Serves OTLP on [`OTLP_ADDR`] in the cluster's network namespace: a thread enters it
/// (setns affects only the calling thread) before making its runtime and listener.
fn start_receiver(cluster: &Cluster) -> Receiver {
    let receiver = Receiver::default();
    let received = receiver.clone();
    let netns = format!("/proc/{}/ns/net", cluster.ns_pid);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let file = std::fs::File::open(&netns).expect("open the cluster's netns");
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        // SAFETY: fd is an open namespace file; only this thread changes namespace.
        assert_eq!(unsafe { libc::setns(fd, libc::CLONE_NEWNET) }, 0, "setns");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(OTLP_ADDR).await.expect("bind OTLP");
            ready_tx.send(()).unwrap();
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(receiver.clone()))
                .add_service(MetricsServiceServer::new(receiver))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await
                .expect("serve OTLP");
        });
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).expect("OTLP receiver started");
    received
}

/// The spans of `trace_id`.
fn trace(spans: &Mutex<Vec<Seen>>, trace_id: &[u8]) -> Vec<Seen> {
    spans.lock().unwrap().iter().filter(|s| s.trace_id == trace_id).cloned().collect()
}

/// What is wrong with `spans` as one tree containing `services`, if anything.
fn tree_problem(spans: &[Seen], services: &[&str]) -> Option<String> {
    let seen: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    let missing: Vec<_> =
        services.iter().filter(|s| !seen.iter().any(|x| x.contains(**s))).collect();
    if !missing.is_empty() {
        return Some(format!("no span from {missing:?}; services seen: {seen:?}"));
    }
    let ids: HashMap<&[u8], &Seen> = spans.iter().map(|s| (s.span_id.as_slice(), s)).collect();
    let roots: Vec<_> =
        spans.iter().filter(|s| !ids.contains_key(s.parent.as_slice())).map(|s| &s.name).collect();
    (roots.len() != 1).then(|| format!("expected one root, found {roots:?}"))
}

#[test]
fn one_cnet_run_is_one_trace_across_all_services() {
    let cluster = Cluster::bare();
    let receiver = start_receiver(&cluster);
    let spans = receiver.spans.clone();
    let endpoint = format!("http://{OTLP_ADDR}");
    let cluster = cluster.with_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        // Export within a fraction of a second instead of the default 5 s (spans) and
        // 60 s (metrics).
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
    ]);
    cluster.up();
    cluster.cnet(&["network", "create", "--subnet", "10.77.0.0/24", "traced"]).ok();
    cluster.cnet(&["run", "-d", "--name", "web", "--network", "traced", "-p", "8080:80"]).ok();

    let run = eventually("the gateway's RunContainer span", 20, || {
        let spans = spans.lock().unwrap();
        spans.iter().find(|s| s.name.ends_with("ContainerService/RunContainer")).cloned()
    });
    assert_eq!(run.service, "cnet-gateway", "{run:?}");
    assert!(!run.parent.is_empty(), "the CLI's span is the parent: {run:?}");
    let services = [
        "cnet-cli",
        "cnet-gateway",
        "cnet-ipam",
        "cnet-bridge",
        "cnet-dns",
        "cnet-hosts",
        "cnet-nat",
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let spans = trace(&spans, &run.trace_id);
        let Some(problem) = tree_problem(&spans, &services) else { break };
        assert!(Instant::now() < deadline, "{problem}\nspans of the trace: {spans:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The command itself is the root.
    let spans = trace(&spans, &run.trace_id);
    let root = spans.iter().find(|s| s.parent.is_empty()).expect("a root");
    assert_eq!((root.service.as_str(), root.name.as_str()), ("cnet-cli", "cnet run"));
    // Gateway steps are spans of their own, between the request and the backends.
    let steps = [
        "allocate address",
        "create sandbox",
        "create veth pair",
        "publish ports",
        "register names",
    ];
    for step in steps {
        assert!(spans.iter().any(|s| s.name == step), "no {step:?} span in {spans:#?}");
    }

    // The same registry as the Prometheus endpoint, pushed: the run is counted.
    let run_method = "/cnet.gateway.v1.ContainerService/RunContainer";
    eventually("the gateway to push its request counter", 20, || {
        let points = receiver.points.lock().unwrap();
        points
            .iter()
            .any(|(service, name, method, value)| {
                service == "cnet-gateway"
                    && name == "cnet_grpc_requests_total"
                    && method == run_method
                    && *value >= 1.0
            })
            .then_some(())
    });
    eventually("ipam to push its pool gauges", 20, || {
        let points = receiver.points.lock().unwrap();
        points
            .iter()
            .any(|(service, name, ..)| service == "cnet-ipam" && name == "cnet_ipam_addresses")
            .then_some(())
    });
}

/// The value of the sample `name{labels}` in a Prometheus exposition, 0 if absent.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter(|line| labels.iter().all(|(k, v)| line.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

fn scrape(cluster: &Cluster, addr: &str) -> String {
    let script = format!(
        "python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://{addr}/metrics\", timeout=5).read().decode())'"
    );
    cluster.sh(&script).ok()
}

#[test]
fn metrics_count_requests_by_method_and_code() {
    let cluster = Cluster::start_with_env(&[
        ("CNET_GATEWAY__SERVER__METRICS_LISTEN", "127.0.0.1:9411"),
        ("CNET_IPAM__SERVER__METRICS_LISTEN", "127.0.0.1:9412"),
        ("CNET_NAT__SERVER__METRICS_LISTEN", "127.0.0.1:9413"),
        ("CNET_DNS__SERVER__METRICS_LISTEN", "127.0.0.1:9414"),
    ]);
    let requests = "cnet_grpc_requests_total";
    let create =
        [("service", "gateway"), ("method", "/cnet.gateway.v1.NetworkService/CreateNetwork")];
    let before = sample(&scrape(&cluster, "127.0.0.1:9411"), requests, &create);
    cluster.cnet(&["network", "create", "counted"]).ok();
    cluster.cnet(&["network", "create", "counted"]).err();

    let gateway = scrape(&cluster, "127.0.0.1:9411");
    let ok = [create[0], create[1], ("code", "Ok")];
    assert_eq!(sample(&gateway, requests, &ok) - before, 1.0, "{gateway}");
    let conflict = [create[0], create[1], ("code", "AlreadyExists")];
    assert_eq!(sample(&gateway, requests, &conflict), 1.0, "{gateway}");
    let latency = "cnet_grpc_request_duration_seconds_count";
    assert!(sample(&gateway, latency, &create) >= 2.0, "{gateway}");

    // The gateway's calls show up in the ipam service's own endpoint.
    let ipam = scrape(&cluster, "127.0.0.1:9412");
    let pools = [("service", "ipam"), ("code", "Ok")];
    assert!(sample(&ipam, requests, &pools) >= 1.0, "{ipam}");

    // Pool gauges follow allocations: a /29 leaves 5 addresses (.2 to .6) once network,
    // gateway and broadcast are set aside, and a container takes one.
    cluster.cnet(&["network", "create", "--subnet", "10.9.0.0/29", "small"]).ok();
    let pool = cluster.api().network("small").id;
    let addresses = |state| {
        sample(
            &scrape(&cluster, "127.0.0.1:9412"),
            "cnet_ipam_addresses",
            &[("pool", &pool), ("state", state)],
        )
    };
    assert_eq!((addresses("used"), addresses("free")), (0.0, 5.0));
    cluster.cnet(&["run", "-d", "--name", "counted", "--network", "small"]).ok();
    assert_eq!((addresses("used"), addresses("free")), (1.0, 4.0));
    cluster.cnet(&["rm", "-f", "counted"]).ok();
    assert_eq!((addresses("used"), addresses("free")), (0.0, 5.0));

    // The proxy counts connections and bytes per published port.
    let dir = cluster.dir.path().join("www");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "proxied\n").unwrap();
    let serve = ["python3", "-m", "http.server", "80", "--directory", dir.to_str().unwrap()];
    let mut run = vec!["run", "-d", "--name", "web", "-p", "8088:80", "--"];
    run.extend(serve);
    cluster.cnet(&run).ok();
    let fetch = "python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://127.0.0.1:8088/\", timeout=5).read().decode())'";
    let body = eventually("the web server to answer through the proxy", 10, || {
        let fetched = cluster.sh(fetch);
        (fetched.code == 0).then_some(fetched.stdout)
    });
    assert_eq!(body.trim(), "proxied");
    let nat = scrape(&cluster, "127.0.0.1:9413");
    let port = [("protocol", "tcp"), ("port", "8088")];
    assert!(sample(&nat, "cnet_nat_proxy_connections_total", &port) >= 1.0, "{nat}");
    for direction in ["in", "out"] {
        let labels = [port[0], port[1], ("direction", direction)];
        assert!(sample(&nat, "cnet_nat_proxy_bytes_total", &labels) > 0.0, "{direction}: {nat}");
    }

    // The resolver counts queries by source and result.
    cluster.cnet(&["run", "-d", "--name", "asker", "--network", "small"]).ok();
    let dig = ["exec", "asker", "--", "dig", "@127.0.0.11", "+short", "+tries=1"];
    let found = cluster.cnet(&[&dig[..], &["asker"]].concat()).ok();
    assert_eq!(found.trim(), "10.9.0.2");
    cluster.cnet(&[&dig[..], &["elsewhere.test"]].concat()).ok();
    let dns = scrape(&cluster, "127.0.0.1:9414");
    let count = |source, rcode| {
        sample(&dns, "cnet_dns_queries_total", &[("source", source), ("rcode", rcode)])
    };
    // A container's name is answered here; other names go upstream, where nothing
    // listens in this cluster.
    assert!(count("local", "NoError") >= 1.0 && count("upstream", "ServFail") >= 1.0, "{dns}");
}
