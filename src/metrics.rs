//! Prometheus metrics, served on their own HTTP port (`--metrics-listen`).
//!
//! Calls are counted and timed per method by the call-metrics layer (see
//! `api::call_metrics`; calls shed under overload by `api::overload`), watchers by the change service; the store and index figures are
//! sampled by a background task every few seconds rather than at scrape time, so a scrape
//! is cheap and never scans the store on the caller's clock. The recorder is process-wide
//! (one server per process in production; tests that start several share it).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::search::SearchIndex;
use crate::store::Store;

/// Call latency buckets, in seconds: from well under a millisecond to ten seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// How often store and index figures are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// The process-wide recorder, installed on first use.
fn handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("newsstore_rpc_duration_seconds".into()),
            LATENCY_BUCKETS,
        )
        .context("configuring the metrics histogram")?
        .build_recorder();
    let handle = recorder.handle();
    // Only the first call installs; a racing second one keeps the first's handle.
    if metrics::set_global_recorder(recorder).is_ok() {
        let _ = HANDLE.set(handle);
    }
    HANDLE
        .get()
        .cloned()
        .context("another metrics recorder is installed in this process")
}

/// Records one answered call.
pub fn record_call(method: &str, grpc_status: &str, seconds: f64) {
    let method = method.to_string();
    metrics::counter!("newsstore_rpc_requests_total", "method" => method.clone(), "code" => grpc_status.to_string())
        .increment(1);
    if grpc_status != "0" {
        metrics::counter!("newsstore_rpc_errors_total", "method" => method.clone(), "code" => grpc_status.to_string())
            .increment(1);
    }
    metrics::histogram!("newsstore_rpc_duration_seconds", "method" => method).record(seconds);
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
        metrics::gauge!("newsstore_entities_created").set(entities as f64);
    }
    let last = store.last_seq();
    metrics::gauge!("newsstore_change_log_sequence").set(last as f64);
    metrics::gauge!("newsstore_index_lag_changes")
        .set(last.saturating_sub(search.applied()) as f64);
}
