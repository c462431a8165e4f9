//! Load benchmark: newsstore under concurrent gRPC clients, every figure next to the health
//! check measured in the same run with the same clients.
//!
//! ```text
//! cargo bench --bench load -- [--articles 100000] [--clients 16] [--seconds 10]
//! cargo bench --bench load -- --chart target/bench/load-10000.json,target/bench/load-100000.json
//! ```
//!
//! One run builds a corpus of `--articles` from the BBC articles in `../shared/data/news`
//! (replicated with unique ids and dates spread over two years), starts newsstore as its own
//! process on a fresh data folder and loads the corpus through `BatchCreateArticles` (the
//! ingest rate counts until everything is searchable: extraction, durable writes and
//! indexing). It then restarts the server (time to the first answered GetArticle) and drives
//! it with `--clients` concurrent clients, each on its own connection, for `--seconds` per
//! workload: the health check, GetArticle by random id, ListArticles by entity,
//! SearchArticles from a fixed query mix, CreateArticle and a 90/10 read/write mix. Last, an
//! overload phase starts the server with a small `--max-in-flight` and drives it far past it
//! while a separate client checks health.
//!
//! Results are printed and written to `target/bench/load-<articles>.json`; `--chart` draws
//! how latency, memory, disk and startup grow across several such files as an SVG.

mod common;

/// The clients share the machine with the server, so they use the server's allocator: with
/// glibc's, decoding GetArticle answers took more CPU than the server spent producing them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use common::{Doc, Resident, Server, connect, dir_size, ingest, load_corpus, memory_mib};
use newsstore::api::proto::article_service_client::ArticleServiceClient;
use newsstore::api::proto::entity_service_client::EntityServiceClient;
use newsstore::api::proto::{self, ArticleFilter, SearchArticlesRequest};
use plotters::prelude::*;
use prost_types::Timestamp;
use serde_json::json;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[derive(Debug, Parser)]
struct Args {
    /// Articles in the corpus.
    #[arg(long, default_value_t = 100_000)]
    articles: usize,
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds per workload.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Folder of BBC articles.
    #[arg(long, default_value = "../shared/data/news")]
    corpus: PathBuf,
    /// Articles per BatchCreateArticles call while loading.
    #[arg(long, default_value_t = 250)]
    batch: usize,
    /// Concurrent loaders.
    #[arg(long, default_value_t = 2)]
    loaders: usize,
    /// Keep the data folder here instead of a temporary one.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Serve the `--data` folder as it is instead of loading it (to measure or profile a
    /// kept corpus again); the ingest figures are then missing.
    #[arg(long, requires = "data")]
    reuse: bool,
    /// Run only these workloads (health always runs first, as the reference).
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// Skip the overload phase.
    #[arg(long)]
    no_overload: bool,
    /// Instead of running, draw the scaling chart from these result files.
    #[arg(long, value_delimiter = ',')]
    chart: Vec<PathBuf>,
    /// Where the chart goes.
    #[arg(long, default_value = "docs/bench/scaling.svg")]
    chart_out: PathBuf,
    // `cargo bench` passes --bench; accept and ignore it.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Health,
    Get,
    /// GetArticle with the BASIC view: the same call without the body, the quotes and the
    /// mentions' spans, which tells the cost of the answer's size from the cost of the call.
    GetBasic,
    ListByEntity,
    Search,
    Create,
    Mixed,
}

impl Workload {
    const ALL: [Workload; 7] = [
        Workload::Health,
        Workload::Get,
        Workload::GetBasic,
        Workload::ListByEntity,
        Workload::Search,
        Workload::Create,
        Workload::Mixed,
    ];

    fn name(self) -> &'static str {
        match self {
            Workload::Health => "health",
            Workload::Get => "get_article",
            Workload::GetBasic => "get_article_basic",
            Workload::ListByEntity => "list_by_entity",
            Workload::Search => "search",
            Workload::Create => "create_article",
            Workload::Mixed => "mixed_90_10",
        }
    }
}

/// One client's connection.
#[derive(Clone)]
struct Conn {
    articles: ArticleServiceClient<Channel>,
    health: HealthClient<Channel>,
}

async fn open(port: u16) -> Conn {
    let channel = common::channel(port).await;
    Conn {
        articles: ArticleServiceClient::new(channel.clone()),
        health: HealthClient::new(channel),
    }
}

/// What the workloads pick from.
struct Pool {
    ids: Vec<String>,
    entities: Vec<String>,
    queries: Vec<SearchArticlesRequest>,
    docs: Vec<Doc>,
    created: AtomicU64,
    /// Keeps created ids unique when `--reuse` runs again on the same folder.
    run: u32,
}

/// splitmix64: a small, fast, seedable generator; each client has its own.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

async fn call(
    workload: Workload,
    conn: &mut Conn,
    pool: &Pool,
    rng: &mut Rng,
) -> Result<(), tonic::Status> {
    let workload = match workload {
        Workload::Mixed => match rng.below(100) {
            0..50 => Workload::Get,
            50..70 => Workload::ListByEntity,
            70..90 => Workload::Search,
            _ => Workload::Create,
        },
        other => other,
    };
    match workload {
        Workload::Health => {
            conn.health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await?;
        }
        Workload::Get | Workload::GetBasic => {
            let view = if workload == Workload::GetBasic {
                proto::ArticleView::Basic
            } else {
                proto::ArticleView::Unspecified
            };
            conn.articles
                .get_article(proto::GetArticleRequest {
                    id: pool.ids[rng.below(pool.ids.len())].clone(),
                    view: view.into(),
                    ..Default::default()
                })
                .await?;
        }
        Workload::ListByEntity => {
            conn.articles
                .list_articles(proto::ListArticlesRequest {
                    page_size: 20,
                    filter: Some(ArticleFilter {
                        entity_ids: vec![pool.entities[rng.below(pool.entities.len())].clone()],
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await?;
        }
        Workload::Search => {
            let query = pool.queries[rng.below(pool.queries.len())].clone();
            conn.articles.search_articles(query).await?;
        }
        Workload::Create => {
            let n = pool.created.fetch_add(1, Ordering::Relaxed);
            let doc = &pool.docs[n as usize % pool.docs.len()];
            conn.articles
                .create_article(proto::CreateArticleRequest {
                    article: Some(common::article(doc)),
                    article_id: format!("load-{}-{n:08}", pool.run),
                    ..Default::default()
                })
                .await?;
        }
        Workload::Mixed => unreachable!("resolved above"),
    }
    Ok(())
}

/// Latencies and outcomes of one workload.
struct Stats {
    workload: Workload,
    seconds: f64,
    latencies: Vec<Duration>,
    errors: u64,
    shed: u64,
    /// The server's peak resident memory during the workload, each figure on its own.
    resident: Resident,
}

impl Stats {
    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.seconds
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        common::percentile(&self.latencies, q)
    }
}

/// Runs `workload` on every connection at once for `duration`, sampling the resident
/// memory of the server (`pid`) every 50 ms meanwhile: the kernel keeps only the peak of
/// the whole process life, and the issue asks for the peak under one workload.
async fn drive(
    workload: Workload,
    conns: &[Conn],
    pool: &Arc<Pool>,
    duration: Duration,
    pid: u32,
) -> Stats {
    let started = Instant::now();
    let deadline = started + duration;
    let sampler = tokio::spawn(async move {
        let mut peak = Resident::of(pid);
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            peak = peak.max(Resident::of(pid));
        }
        peak
    });
    let mut tasks = Vec::new();
    for (i, conn) in conns.iter().enumerate() {
        let mut conn = conn.clone();
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(i as u64 * 7919 + 1);
            let mut latencies = Vec::new();
            let (mut errors, mut shed) = (0, 0);
            while Instant::now() < deadline {
                let began = Instant::now();
                match call(workload, &mut conn, &pool, &mut rng).await {
                    Ok(()) => latencies.push(began.elapsed()),
                    Err(status) if status.code() == tonic::Code::ResourceExhausted => shed += 1,
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors, shed)
        }));
    }
    let mut stats = Stats {
        workload,
        seconds: 0.0,
        latencies: Vec::new(),
        errors: 0,
        shed: 0,
        resident: Resident::default(),
    };
    for task in tasks {
        let (latencies, errors, shed) = task.await.expect("a client task");
        stats.latencies.extend(latencies);
        stats.errors += errors;
        stats.shed += shed;
    }
    stats.seconds = started.elapsed().as_secs_f64();
    stats.resident = sampler.await.expect("the memory sampler");
    stats.latencies.sort();
    stats
}

/// Starts the server and times until it answers a GetArticle for `id`.
async fn start_and_time(data: &Path, extra: &[&str], id: &str) -> (Server, f64) {
    let started = Instant::now();
    let server = common::start_server(data, extra);
    loop {
        if let Some(channel) = common::try_channel(server.port).await {
            let mut client = ArticleServiceClient::new(channel);
            if client
                .get_article(proto::GetArticleRequest {
                    id: id.to_string(),
                    ..Default::default()
                })
                .await
                .is_ok()
            {
                return (server, started.elapsed().as_secs_f64());
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "newsstore did not come up"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn queries() -> Vec<SearchArticlesRequest> {
    let plain = |text: &str| SearchArticlesRequest {
        query: text.into(),
        page_size: 10,
        ..Default::default()
    };
    let mut out: Vec<SearchArticlesRequest> = [
        "election",
        "football",
        "oil prices",
        "\"prime minister\"",
        "blair OR brown",
        "music -award",
        "headline:economy",
        "mobile phone*",
        "chelsea arsenal",
        "film festival",
    ]
    .into_iter()
    .map(plain)
    .collect();
    let mut faceted = plain("government");
    faceted.facets = vec![proto::FacetRequest {
        field: proto::FacetField::Source as i32,
        limit: 10,
    }];
    out.push(faceted);
    let mut recent = plain("technology");
    recent.filter = Some(ArticleFilter {
        published_start_time: Some(Timestamp {
            seconds: common::START + 365 * 86_400,
            nanos: 0,
        }),
        ..Default::default()
    });
    out.push(recent);
    out
}

/// The entities with the most articles, for ListArticles by entity.
async fn top_entities(port: u16) -> Vec<String> {
    EntityServiceClient::new(common::channel(port).await)
        .list_entities(proto::ListEntitiesRequest {
            page_size: 200,
            ..Default::default()
        })
        .await
        .expect("ListEntities works")
        .into_inner()
        .entities
        .into_iter()
        .map(|e| e.id)
        .collect()
}

/// Drives a server with a small in-flight limit far past it while another client checks
/// health; then checks that it serves normally once the load stops.
async fn overload(data: &Path, pool: &Arc<Pool>, seconds: u64) -> serde_json::Value {
    const LIMIT: usize = 4;
    const CLIENTS: usize = 64;
    let (server, _) = start_and_time(data, &["--max-in-flight", "4"], &pool.ids[0]).await;
    let mut conns = Vec::new();
    for _ in 0..CLIENTS {
        conns.push(open(server.port).await);
    }
    let probe = open(server.port).await;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let prober = tokio::spawn(async move {
        let mut health = probe.health;
        let (mut ok, mut failed, mut latencies) = (0u64, 0u64, Vec::new());
        while Instant::now() < deadline {
            let began = Instant::now();
            match health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
            {
                Ok(_) => {
                    ok += 1;
                    latencies.push(began.elapsed());
                }
                Err(_) => failed += 1,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        latencies.sort();
        (ok, failed, latencies)
    });
    let load = drive(
        Workload::Search,
        &conns,
        pool,
        Duration::from_secs(seconds),
        server.child.id(),
    )
    .await;
    let (health_ok, health_failed, health_latencies) = prober.await.expect("the prober");
    // Recovery: the first call after the load must be answered, not shed.
    let mut after = open(server.port).await;
    let recovered = Instant::now();
    let answered = call(Workload::Get, &mut after, pool, &mut Rng(99))
        .await
        .is_ok();
    let recovery_ms = recovered.elapsed().as_secs_f64() * 1e3;
    server.stop();
    let total = load.latencies.len() as u64 + load.shed + load.errors;
    println!(
        "overload: {CLIENTS} searching clients against --max-in-flight {LIMIT} for {seconds} s: \
         {} answered, {} shed with RESOURCE_EXHAUSTED ({:.0} %), {} other errors; health \
         during it: {health_ok} answered, {health_failed} failed, p99 {:.2} ms; after: {}",
        load.latencies.len(),
        load.shed,
        100.0 * load.shed as f64 / total.max(1) as f64,
        load.errors,
        common::percentile(&health_latencies, 0.99),
        if answered {
            format!("GetArticle answered in {recovery_ms:.1} ms")
        } else {
            "GetArticle FAILED".to_string()
        }
    );
    json!({
        "clients": CLIENTS,
        "max_in_flight": LIMIT,
        "seconds": seconds,
        "answered": load.latencies.len(),
        "shed": load.shed,
        "other_errors": load.errors,
        "health_answered": health_ok,
        "health_failed": health_failed,
        "health_p50_ms": common::percentile(&health_latencies, 0.5),
        "health_p99_ms": common::percentile(&health_latencies, 0.99),
        "recovered": answered,
        "first_call_after_ms": recovery_ms,
    })
}

fn main() {
    let args = Args::parse();
    if !args.chart.is_empty() {
        chart(&args.chart, &args.chart_out);
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let docs = load_corpus(&args.corpus, args.articles);
    let raw_bytes = common::raw_text_bytes(&docs);
    println!(
        "corpus: {} articles, {:.1} MiB of text; {} clients, {} s per workload",
        docs.len(),
        raw_bytes as f64 / 1048576.0,
        args.clients,
        args.seconds
    );
    let temp = tempfile::TempDir::new().expect("temp dir");
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());

    // Load.
    let mut loaded = None;
    if !args.reuse {
        let loader = common::start_server(&data, &[]);
        let client = connect(loader.port).await;
        let (acknowledged, searchable) = ingest(&client, &docs, args.batch, args.loaders).await;
        // Until searchable: extraction, durable writes and full-text indexing.
        let ingest_rate = docs.len() as f64 / searchable;
        let acknowledged_rate = docs.len() as f64 / acknowledged;
        let (ingest_peak_mib, _) = memory_mib(loader.child.id());
        println!(
            "ingest: {ingest_rate:.0} articles/s through BatchCreateArticles until all \
             searchable ({searchable:.1} s, extraction, durable writes and indexing); \
             {acknowledged_rate:.0} articles/s until acknowledged ({acknowledged:.1} s); peak \
             RSS {ingest_peak_mib:.0} MiB"
        );
        drop(client);
        let shutdown_seconds = loader.stop();
        println!("shutdown after loading: {shutdown_seconds:.2} s (with the store's checkpoint)");
        loaded = Some(json!({
            "ingest_articles_per_second": ingest_rate,
            "acknowledged_articles_per_second": acknowledged_rate,
            "ingest_seconds": acknowledged,
            "searchable_after_seconds": searchable,
            "ingest_peak_rss_mib": ingest_peak_mib,
            "shutdown_after_load_seconds": shutdown_seconds,
        }));
    }
    let store_bytes = dir_size(&data.join("store"));
    let index_bytes = dir_size(&data.join("search"));
    let disk = dir_size(&data);

    // Restart.
    let (server, restart_seconds) = start_and_time(&data, &[], &docs[0].id).await;
    println!("restart: first GetArticle answered {restart_seconds:.2} s after start");
    let entities = top_entities(server.port).await;

    let pool = Arc::new(Pool {
        ids: docs.iter().map(|d| d.id.clone()).collect(),
        entities,
        queries: queries(),
        docs,
        created: AtomicU64::new(0),
        run: std::process::id(),
    });
    let mut conns = Vec::new();
    for _ in 0..args.clients {
        conns.push(open(server.port).await);
    }
    let duration = Duration::from_secs(args.seconds);
    // Warm the connections and caches a little before measuring.
    drive(
        Workload::Get,
        &conns,
        &pool,
        Duration::from_secs(1),
        server.child.id(),
    )
    .await;
    let mut results = Vec::new();
    for workload in Workload::ALL {
        let wanted = workload == Workload::Health
            || args.workloads.is_empty()
            || args.workloads.iter().any(|w| w == workload.name());
        if wanted {
            results.push(drive(workload, &conns, &pool, duration, server.child.id()).await);
        }
    }
    let (serving_peak_mib, serving_rss_mib) = memory_mib(server.child.id());
    drop(conns);
    server.stop();

    let health = &results[0];
    println!(
        "\n{:<17} {:>9} {:>9} {:>9} {:>9} {:>8} {:>10} {:>10} {:>18}",
        "workload",
        "calls/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "errors",
        "p50/health",
        "tput/health",
        "peak RSS (anon+file) MiB"
    );
    let mut workloads = Vec::new();
    for stats in &results {
        let p50_ratio = stats.quantile_ms(0.5) / health.quantile_ms(0.5);
        let tput_ratio = stats.throughput() / health.throughput();
        println!(
            "{:<17} {:>9.0} {:>9.2} {:>9.2} {:>9.2} {:>8} {:>10.2} {:>10.2} {:>8.0} ({:.0}+{:.0})",
            stats.workload.name(),
            stats.throughput(),
            stats.quantile_ms(0.5),
            stats.quantile_ms(0.99),
            stats.quantile_ms(0.999),
            stats.errors + stats.shed,
            p50_ratio,
            tput_ratio,
            stats.resident.total,
            stats.resident.anon,
            stats.resident.file
        );
        workloads.push(json!({
            "workload": stats.workload.name(),
            "calls": stats.latencies.len(),
            "seconds": stats.seconds,
            "throughput": stats.throughput(),
            "p50_ms": stats.quantile_ms(0.5),
            "p99_ms": stats.quantile_ms(0.99),
            "p999_ms": stats.quantile_ms(0.999),
            "errors": stats.errors,
            "shed": stats.shed,
            "p50_vs_health": p50_ratio,
            "throughput_vs_health": tput_ratio,
            "peak_rss_mib": stats.resident.total,
            "peak_rss_anon_mib": stats.resident.anon,
            "peak_rss_file_mib": stats.resident.file,
        }));
    }
    println!(
        "\nserving: peak RSS {serving_peak_mib:.0} MiB (now {serving_rss_mib:.0} MiB); disk \
         {:.1} MiB = {:.2}× the raw text (store {:.1} MiB, index {:.1} MiB)",
        disk as f64 / 1048576.0,
        disk as f64 / raw_bytes as f64,
        store_bytes as f64 / 1048576.0,
        index_bytes as f64 / 1048576.0
    );
    let mixed = results
        .iter()
        .find(|stats| stats.workload == Workload::Mixed)
        .map(|stats| stats.resident);
    if let Some(mixed) = mixed {
        println!(
            "while serving the 90/10 mix: peak RSS {:.0} MiB; peak of its parts: {:.0} MiB \
             allocated (anonymous), {:.0} MiB of mapped files (the search index's segments, \
             the binary)",
            mixed.total, mixed.anon, mixed.file
        );
    }
    let overload = if args.no_overload {
        serde_json::Value::Null
    } else {
        overload(&data, &pool, args.seconds).await
    };

    let mut report = json!({
        "articles": pool.ids.len(),
        "clients": args.clients,
        "seconds_per_workload": args.seconds,
        "raw_text_bytes": raw_bytes,
        "restart_seconds": restart_seconds,
        "serving_peak_rss_mib": serving_peak_mib,
        "mixed_peak_rss_mib": mixed.map(|m| m.total),
        "mixed_peak_rss_anon_mib": mixed.map(|m| m.anon),
        "mixed_peak_rss_file_mib": mixed.map(|m| m.file),
        "disk_bytes": disk,
        "store_bytes": store_bytes,
        "index_bytes": index_bytes,
        "disk_vs_raw": disk as f64 / raw_bytes as f64,
        "workloads": workloads,
        "overload": overload,
        "machine": machine(),
    });
    if let (Some(serde_json::Value::Object(loaded)), serde_json::Value::Object(report)) =
        (loaded, &mut report)
    {
        report.extend(loaded);
    }
    let out = PathBuf::from(format!("target/bench/load-{}.json", pool.ids.len()));
    std::fs::create_dir_all("target/bench").expect("target/bench");
    std::fs::write(&out, serde_json::to_string_pretty(&report).expect("json")).expect("written");
    println!("results: {}", out.display());
}

/// The CPU model and core count, for the record.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU", str::trim)
        .to_string();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores")
}

/// Draws latency, memory, disk and startup against corpus size from result files.
fn chart(files: &[PathBuf], out: &Path) {
    let mut runs: Vec<serde_json::Value> = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", f.display()));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()))
        })
        .collect();
    runs.sort_by_key(|r| r["articles"].as_u64().unwrap_or(0));
    let articles: Vec<f64> = runs
        .iter()
        .map(|r| r["articles"].as_f64().unwrap_or(0.0))
        .collect();
    let (lo, hi) = (
        articles.first().copied().unwrap_or(1e3) / 2.0,
        articles.last().copied().unwrap_or(1e6) * 2.0,
    );
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).expect("the chart's folder");
    }
    let root = SVGBackend::new(out, (1200, 840)).into_drawing_area();
    root.fill(&WHITE).expect("drawing");
    // Ratios hold across machines, absolute figures do not: the caption names the machine
    // of every run drawn.
    let mut machines: Vec<&str> = Vec::new();
    for machine in runs.iter().filter_map(|r| r["machine"].as_str()) {
        if !machines.contains(&machine) {
            machines.push(machine);
        }
    }
    let root = root
        .titled(
            &format!(
                "newsstore load benchmark, {} clients: {}",
                runs.first()
                    .and_then(|r| r["clients"].as_u64())
                    .unwrap_or(0),
                if machines.is_empty() {
                    "machine not recorded".to_string()
                } else {
                    machines.join("; ")
                }
            ),
            ("sans-serif", 18),
        )
        .expect("the caption");
    let panels = root.split_evenly((2, 2));
    // A run from an older benchmark may lack a figure: its point is left out, not drawn at 0.
    let series = |key: &dyn Fn(&serde_json::Value) -> Option<f64>| -> Vec<(f64, f64)> {
        articles
            .iter()
            .zip(&runs)
            .filter_map(|(&a, r)| key(r).map(|v| (a, v)))
            .collect()
    };

    // Latency per workload.
    let latency: Vec<(&str, Vec<(f64, f64)>)> = Workload::ALL
        .iter()
        .map(|w| {
            let name = w.name();
            (
                name,
                series(&|r| {
                    r["workloads"]
                        .as_array()
                        .and_then(|ws| ws.iter().find(|x| x["workload"] == name))
                        .and_then(|x| x["p50_ms"].as_f64())
                }),
            )
        })
        .collect();
    draw(&panels[0], "p50 latency (ms)", lo, hi, &latency);
    let memory = vec![
        (
            "peak RSS, 90/10 mix",
            series(&|r| r["mixed_peak_rss_mib"].as_f64()),
        ),
        (
            "peak RSS, all workloads",
            series(&|r| r["serving_peak_rss_mib"].as_f64()),
        ),
        (
            "peak RSS, loading",
            series(&|r| r["ingest_peak_rss_mib"].as_f64()),
        ),
    ];
    draw(&panels[1], "memory (MiB)", lo, hi, &memory);
    let mib =
        |key: &'static str| move |r: &serde_json::Value| r[key].as_f64().map(|b| b / 1048576.0);
    let disk = vec![
        ("disk", series(&mib("disk_bytes"))),
        ("store", series(&mib("store_bytes"))),
        ("index", series(&mib("index_bytes"))),
        ("raw text", series(&mib("raw_text_bytes"))),
    ];
    draw(&panels[2], "disk (MiB)", lo, hi, &disk);
    let startup = vec![
        (
            "restart to first answer (s)",
            series(&|r| r["restart_seconds"].as_f64()),
        ),
        (
            "shutdown after loading (s)",
            series(&|r| r["shutdown_after_load_seconds"].as_f64()),
        ),
        (
            "ingest (10³ articles/s)",
            series(&|r| r["ingest_articles_per_second"].as_f64().map(|v| v / 1e3)),
        ),
    ];
    draw(&panels[3], "startup and ingest", lo, hi, &startup);
    root.present().expect("the chart is written");
    println!("chart: {}", out.display());
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One panel: log-scaled corpus size across, log-scaled values up.
fn draw(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    lo: f64,
    hi: f64,
    lines: &[(&str, Vec<(f64, f64)>)],
) {
    let values = lines
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1));
    let (min, max) = values.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (min, max) = if min <= max {
        let (min, max) = ((min / 2.0).max(1e-3), (max * 2.0).max(1e-2));
        // The legend sits in the top left: leave the top 40 % of the panel to it.
        (min, max * (max / min).powf(0.4 / 0.6))
    } else {
        (1e-3, 1.0) // no run has these figures: an empty panel
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d((lo..hi).log_scale(), (min..max).log_scale())
        .expect("a chart");
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .x_desc("articles")
        .x_label_formatter(&|x| thousands(x.round() as u64))
        .y_label_formatter(&|y| match *y {
            y if y >= 10.0 => thousands(y.round() as u64),
            y if y >= 1.0 => format!("{y:.1}"),
            y => format!("{y:.2}"),
        })
        .draw()
        .expect("the mesh");
    for (i, (name, points)) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .expect("a line")
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .expect("points");
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .expect("the legend");
}
