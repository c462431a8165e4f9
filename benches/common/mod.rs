//! What the benchmarks share: the corpus built from the BBC articles, a newsstore server in
//! its own process on a fresh data folder, loading through `BatchCreateArticles`, and the
//! measurements (percentiles, disk, resident memory).

#![allow(dead_code)] // each benchmark uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use newsstore::api::proto::article_service_client::ArticleServiceClient;
use newsstore::api::proto::{self, Article};
use newsstore::extract::document;
use prost_types::Timestamp;
use tonic::transport::Channel;

/// One corpus article.
#[derive(Clone)]
pub struct Doc {
    pub id: String,
    pub headline: String,
    pub body: String,
    pub source: String,
    pub published: i64,
}

/// 2004-01-01T00:00:00Z: the corpus spans 2004 and 2005, like the BBC articles.
pub const START: i64 = 1_072_915_200;
pub const TWO_YEARS: i64 = 2 * 365 * 86_400;

pub fn load_corpus(dir: &Path, wanted: usize) -> Vec<Doc> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read the corpus {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    let originals: Vec<(String, document::Document)> = files
        .iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(path).ok()?;
            let doc = document::parse(&text).ok()?;
            let category = path
                .file_stem()?
                .to_string_lossy()
                .split('_')
                .nth(1)?
                .to_string();
            Some((category, doc))
        })
        .collect();
    assert!(!originals.is_empty(), "no articles in {}", dir.display());
    (0..wanted)
        .map(|i| {
            let (category, doc) = &originals[i % originals.len()];
            // Spread copies over two years, deterministically.
            let published = START + ((i as i64).wrapping_mul(7_919_993)).rem_euclid(TWO_YEARS);
            Doc {
                id: format!("bbc-{i:07}"),
                headline: doc.headline.clone(),
                body: doc.body.clone(),
                source: format!("BBC {category}"),
                published,
            }
        })
        .collect()
}

/// The text of the corpus (headlines and bodies), in bytes: what disk use is measured against.
pub fn raw_text_bytes(docs: &[Doc]) -> u64 {
    docs.iter()
        .map(|d| (d.headline.len() + d.body.len()) as u64)
        .sum()
}

pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

pub fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Peak and current resident memory of a process, in MiB, from /proc.
pub fn memory_mib(pid: u32) -> (f64, f64) {
    let status = proc_status(pid);
    (status_mib(&status, "VmHWM:"), status_mib(&status, "VmRSS:"))
}

/// Resident memory of a process now, in MiB, split the way the kernel counts it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Resident {
    /// Everything resident: the two below plus shared memory.
    pub total: f64,
    /// The heap, stacks and other private memory: what the process allocated.
    pub anon: f64,
    /// Pages of mapped files (the binary, the search index's memory-mapped segments): the
    /// kernel's page cache, counted for the process because it maps them, and dropped by
    /// the kernel under pressure without writing anything.
    pub file: f64,
}

impl Resident {
    pub fn of(pid: u32) -> Resident {
        let status = proc_status(pid);
        Resident {
            total: status_mib(&status, "VmRSS:"),
            anon: status_mib(&status, "RssAnon:"),
            file: status_mib(&status, "RssFile:"),
        }
    }

    /// The larger of each figure.
    pub fn max(self, other: Resident) -> Resident {
        Resident {
            total: self.total.max(other.total),
            anon: self.anon.max(other.anon),
            file: self.file.max(other.file),
        }
    }
}

/// `/proc/<pid>/status`, or nothing once the process is gone.
fn proc_status(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default()
}

/// A `kB` field of `/proc/<pid>/status`, in MiB; 0 when missing.
fn status_mib(status: &str, name: &str) -> f64 {
    status
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    /// Stops the server as an operator would (SIGTERM), waiting for it to exit; returns how
    /// long the shutdown took, in seconds.
    pub fn stop(mut self) -> f64 {
        let started = std::time::Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        started.elapsed().as_secs_f64()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server binary: this build's, or the one `NEWSSTORE_BIN` names, so two builds can be
/// measured by the same harness (alternate them: see docs/bench/README.md).
pub fn server_binary() -> std::path::PathBuf {
    std::env::var_os("NEWSSTORE_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_newsstore").into())
}

/// Starts `newsstore serve` on `data` with `extra` arguments; it is killed when dropped.
pub fn start_server(data: &Path, extra: &[&str]) -> Server {
    let port = free_port();
    let child = Command::new(server_binary())
        .args(["serve", "--no-seed", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("newsstore starts");
    Server { child, port }
}

/// A connection to the server on `port`, if it accepts one now.
pub async fn try_channel(port: u16) -> Option<Channel> {
    Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("an address")
        .connect()
        .await
        .ok()
}

/// A connection to the server on `port`, waiting up to a minute for it to come up.
pub async fn channel(port: u16) -> Channel {
    for _ in 0..600 {
        if let Some(channel) = try_channel(port).await {
            return channel;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("newsstore did not come up");
}

pub async fn connect(port: u16) -> ArticleServiceClient<Channel> {
    ArticleServiceClient::new(channel(port).await)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

/// The corpus article as a newsstore article to create.
pub fn article(doc: &Doc) -> Article {
    Article {
        headline: doc.headline.clone(),
        body: doc.body.clone(),
        source: doc.source.clone(),
        language: "en".into(),
        published_time: Some(Timestamp {
            seconds: doc.published,
            nanos: 0,
        }),
        ..Article::default()
    }
}

/// Loads the corpus; returns seconds taken until acknowledged, and until searchable.
pub async fn ingest(
    client: &ArticleServiceClient<Channel>,
    docs: &[Doc],
    batch: usize,
    loaders: usize,
) -> (f64, f64) {
    let started = Instant::now();
    let chunks: Vec<Vec<Doc>> = docs.chunks(batch).map(<[Doc]>::to_vec).collect();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(chunks));
    let mut tasks = Vec::new();
    for _ in 0..loaders {
        let queue = queue.clone();
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(chunk) = queue.lock().unwrap().pop() else {
                    break;
                };
                let requests = chunk
                    .into_iter()
                    .map(|d| proto::CreateArticleRequest {
                        article: Some(article(&d)),
                        article_id: d.id,
                        ..Default::default()
                    })
                    .collect();
                let response = client
                    .batch_create_articles(proto::BatchCreateArticlesRequest {
                        requests,
                        wait_for_index: false,
                        // A loader needs the outcome, not its own bodies back.
                        view: proto::ArticleView::Basic as i32,
                        ..Default::default()
                    })
                    .await
                    .expect("batch succeeds")
                    .into_inner();
                let failed = response
                    .results
                    .iter()
                    .filter(|r| {
                        matches!(
                            r.outcome,
                            Some(proto::batch_create_articles_result::Outcome::Error(_))
                        )
                    })
                    .count();
                assert_eq!(failed, 0, "items failed to load");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let acknowledged = started.elapsed().as_secs_f64();
    // One write that waits for the index: then everything before it is searchable.
    client
        .clone()
        .create_article(proto::CreateArticleRequest {
            article: Some(Article {
                headline: "Marker".into(),
                body: "Marker.".into(),
                ..Article::default()
            }),
            article_id: "zz-marker".into(),
            wait_for_index: true,
            ..Default::default()
        })
        .await
        .expect("marker written");
    (acknowledged, started.elapsed().as_secs_f64())
}
