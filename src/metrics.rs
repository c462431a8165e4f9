//! Prometheus metrics, served on their own HTTP port (`--metrics-listen`).
//!
//! Calls follow the gRPC ecosystem's names (go-grpc-prometheus and its successors:
//! `grpc_server_started_total`, `grpc_server_handled_total`, `grpc_server_handling_seconds`
//! with `grpc_service`, `grpc_method`, `grpc_type` and `grpc_code` labels, the code by its
//! name as Go spells it), so existing dashboards and alerts work unchanged. They are counted
//! by the call-metrics layer (`api::layers::call_metrics`; calls shed under overload by
//! `api::layers::overload`), watchers by the change service. Process figures are read at
//! scrape time; store and index figures are sampled by a background task every few seconds, so a
//! scrape is cheap and never scans the store on the caller's clock. The recorder is
//! process-wide (one server per process in production; tests that start several share it).
//! Every metric is described in [`METRICS`], which is also the table in docs/operations.md.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::search::SearchIndex;
use crate::store::Store;

/// Unary call latency buckets, in seconds: from well under a millisecond to ten seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// How often store and index figures are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// A metric's kind, for its description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric this server exports besides the `process_*` family: name, kind, help text.
pub const METRICS: &[(&str, Kind, &str)] = &[
    (
        "grpc_server_started_total",
        Kind::Counter,
        "gRPC calls started, by service, method and type (unary, server_stream).",
    ),
    (
        "grpc_server_handled_total",
        Kind::Counter,
        "gRPC calls finished, by service, method, type and code (OK, NotFound, Canceled, ...). \
         A call the caller abandoned is Canceled, not a server error.",
    ),
    (
        "grpc_server_handling_seconds",
        Kind::Histogram,
        "Time to answer a unary call, in seconds. Streams (WatchChanges, ReextractArticles, \
         Backup) last as long as the caller wants and are not in it.",
    ),
    (
        "newsstore_calls_in_flight",
        Kind::Gauge,
        "gRPC calls being answered now, by type; open streams count.",
    ),
    (
        "newsstore_build_info",
        Kind::Gauge,
        "Always 1; the labels say which build is running.",
    ),
    (
        "newsstore_watchers",
        Kind::Gauge,
        "Open WatchChanges streams.",
    ),
    (
        "newsstore_data_loss_total",
        Kind::Counter,
        "Calls that met damaged stored data and answered DATA_LOSS; any is a reason to page.",
    ),
    (
        "newsstore_store_bytes",
        Kind::Gauge,
        "Size of the database files on disk, in bytes.",
    ),
    ("newsstore_articles", Kind::Gauge, "Articles stored."),
    (
        "newsstore_entity_ids_issued",
        Kind::Gauge,
        "Entity ids ever issued (ids are never reused, so merged and blocked ones count).",
    ),
    (
        "newsstore_change_log_sequence",
        Kind::Gauge,
        "Sequence number of the newest change in the change log.",
    ),
    (
        "newsstore_index_lag_changes",
        Kind::Gauge,
        "Changes written but not yet searchable.",
    ),
];

/// The process-wide recorder, installed on first use (concurrent first uses wait for it).
fn handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("grpc_server_handling_seconds".into()),
                    LATENCY_BUCKETS,
                )
                .map_err(|err| format!("configuring the metrics histogram: {err}"))?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder)
                .map_err(|_| "another metrics recorder is installed in this process".to_string())?;
            describe();
            Ok(handle)
        })
        .clone()
        .map_err(|err| anyhow::anyhow!(err))
}

fn describe() {
    for &(name, kind, help) in METRICS {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, metrics::Unit::Seconds, help),
        }
    }
    process().describe();
    metrics::gauge!(
        "newsstore_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "profile" => if cfg!(debug_assertions) { "debug" } else { "release" },
    )
    .set(1.0);
}

/// The `process_*` metrics (CPU seconds, resident memory, open and maximum file
/// descriptors, threads, start time), named as every Prometheus client library names them.
fn process() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// Which call a metric is about: labels from the method's descriptor, never from the
/// caller's path as sent (see `api::layers::call_metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rpc {
    pub service: &'static str,
    pub method: &'static str,
    /// `unary`, `server_stream`, `client_stream` or `bidi_stream`.
    pub kind: &'static str,
}

impl Rpc {
    /// Every path this server does not serve.
    pub const UNKNOWN: Rpc = Rpc {
        service: "unknown",
        method: "unknown",
        kind: "unknown",
    };
}

/// A call came in.
pub fn call_started(rpc: Rpc) {
    metrics::counter!(
        "grpc_server_started_total",
        "grpc_service" => rpc.service,
        "grpc_method" => rpc.method,
        "grpc_type" => rpc.kind,
    )
    .increment(1);
    metrics::gauge!("newsstore_calls_in_flight", "grpc_type" => rpc.kind).increment(1.0);
}

/// A call that [`call_started`] counted was answered with `grpc_status` (the code's number,
/// as in the `grpc-status` header) after `seconds`.
pub fn call_handled(rpc: Rpc, grpc_status: &str, seconds: f64) {
    metrics::gauge!("newsstore_calls_in_flight", "grpc_type" => rpc.kind).decrement(1.0);
    count_handled(rpc, grpc_status);
    if rpc.kind == "unary" {
        metrics::histogram!(
            "grpc_server_handling_seconds",
            "grpc_service" => rpc.service,
            "grpc_method" => rpc.method,
            "grpc_type" => rpc.kind,
        )
        .record(seconds);
    }
}

/// A call refused before it was started (shed under overload): counted as handled only.
pub fn call_shed(rpc: Rpc) {
    count_handled(rpc, "8");
}

fn count_handled(rpc: Rpc, grpc_status: &str) {
    metrics::counter!(
        "grpc_server_handled_total",
        "grpc_service" => rpc.service,
        "grpc_method" => rpc.method,
        "grpc_type" => rpc.kind,
        "grpc_code" => code_name(grpc_status),
    )
    .increment(1);
}

/// A code's name as Go's `codes.Code.String()` writes it, which is what go-grpc-prometheus
/// puts in `grpc_code` and what published dashboards match on ("Canceled", one L).
pub fn code_name(grpc_status: &str) -> &'static str {
    match grpc_status {
        "0" => "OK",
        "1" => "Canceled",
        "2" => "Unknown",
        "3" => "InvalidArgument",
        "4" => "DeadlineExceeded",
        "5" => "NotFound",
        "6" => "AlreadyExists",
        "7" => "PermissionDenied",
        "8" => "ResourceExhausted",
        "9" => "FailedPrecondition",
        "10" => "Aborted",
        "11" => "OutOfRange",
        "12" => "Unimplemented",
        "13" => "Internal",
        "14" => "Unavailable",
        "15" => "DataLoss",
        "16" => "Unauthenticated",
        // Not a code gRPC defines: counted, under one bounded value.
        _ => "Unknown",
    }
}

/// A call met damaged stored data (and answered DATA_LOSS).
pub fn data_loss_met() {
    metrics::counter!("newsstore_data_loss_total").increment(1);
}

/// A change-feed watcher started (+1) or ended (-1).
pub fn watchers(delta: f64) {
    metrics::gauge!("newsstore_watchers").increment(delta);
}

/// Binds the metrics port (and installs the recorder), so a bad address fails at startup.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    handle()?;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))
}

/// Serves `/metrics` from `listener` until `stop` turns true, and samples store figures.
pub fn serve(
    listener: TcpListener,
    store: Arc<Store>,
    search: Arc<SearchIndex>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let handle = handle()?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let mut sample = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tokio::select! {
                () = async { let _ = stop.wait_for(|stop| *stop).await; } => return,
                _ = sample.tick() => {
                    let (store, search) = (store.clone(), search.clone());
                    let _ = tokio::task::spawn_blocking(move || sample_store(&store, &search)).await;
                    handle.run_upkeep();
                }
                accepted = listener.accept() => {
                    let Ok((socket, _)) = accepted else { continue };
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                            let handle = handle.clone();
                            async move { Ok::<_, std::convert::Infallible>(respond(&request, &handle)) }
                        });
                        let io = hyper_util::rt::TokioIo::new(socket);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await;
                    });
                }
            }
        }
    });
    tracing::info!(address = %local, "metrics served at /metrics");
    Ok(task)
}

fn respond<B>(
    request: &hyper::Request<B>,
    handle: &PrometheusHandle,
) -> hyper::Response<http_body_util::Full<hyper::body::Bytes>> {
    let (status, content_type, body) = if request.uri().path() == "/metrics" {
        process().collect();
        (
            hyper::StatusCode::OK,
            "text/plain; version=0.0.4",
            handle.render(),
        )
    } else {
        (
            hyper::StatusCode::NOT_FOUND,
            "text/plain",
            "metrics are at /metrics\n".to_string(),
        )
    };
    let mut response = hyper::Response::new(http_body_util::Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// Store size, counts and index lag. Counting articles walks one key space; it runs here,
/// every few seconds off the request path, not per scrape.
fn sample_store(store: &Store, search: &SearchIndex) {
    if let Ok(bytes) = store.size_on_disk() {
        metrics::gauge!("newsstore_store_bytes").set(bytes as f64);
    }
    if let Ok(articles) = store.article_count() {
        metrics::gauge!("newsstore_articles").set(articles as f64);
    }
    if let Ok(entities) = store.next_entity_code() {
        // Entity numbers are dense and never reused: this counts every entity ever made.
        metrics::gauge!("newsstore_entity_ids_issued").set(entities as f64);
    }
    let last = store.last_seq();
    metrics::gauge!("newsstore_change_log_sequence").set(last as f64);
    metrics::gauge!("newsstore_index_lag_changes")
        .set(last.saturating_sub(search.applied()) as f64);
}
