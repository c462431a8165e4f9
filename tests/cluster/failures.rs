//! Failures during writes: the stream leader's NATS server and a newsstore node are killed
//! with SIGKILL while three clients write through three node processes, then restarted,
//! round after round. Every acknowledged write must be on every node afterwards, a retry
//! under the same request id must never apply twice, every node's change feed must be
//! gapless, and the nodes must hold the same state.
//!
//! `cargo test` runs 2 rounds. The long run is
//! `NEWSSTORE_CLUSTER_ROUNDS=30 cargo test --release --test cluster failures -- --nocapture`.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use newsstore::api::proto::article_service_client::ArticleServiceClient;
use newsstore::api::proto::change_service_client::ChangeServiceClient;
use newsstore::api::proto::{
    Article, CreateArticleRequest, GetArticleRequest, WatchChangesRequest,
};
use newsstore::store::Store;
use tonic::Code;
use tonic::transport::Channel;

use crate::nats::NatsCluster;
use crate::node::{at_least, position_of, reason, temp_dir};

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("bound").port()
}

/// A node as its own process, so that it can be killed with SIGKILL.
struct ProcessNode {
    port: u16,
    data: PathBuf,
    urls: String,
    name: String,
    child: Option<Child>,
}

impl ProcessNode {
    fn start(data: &Path, urls: &[String], name: &str) -> ProcessNode {
        let mut node = ProcessNode {
            port: free_port(),
            data: data.to_path_buf(),
            urls: urls.join(","),
            name: name.into(),
            child: None,
        };
        node.restart();
        node
    }

    fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.with_extension("log"))
            .expect("node log");
        let child = Command::new(env!("CARGO_BIN_EXE_newsstore"))
            .args(["serve", "--no-seed", "--index-refresh-ms", "50", "--listen"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.data)
            .args(["--cluster", &self.urls, "--node-name", &self.name])
            .args([
                "--cluster-append-timeout-secs",
                "20",
                "--shutdown-grace-secs",
                "1",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the newsstore binary starts");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("the killed node is reaped");
        }
    }

    /// Stops the node with SIGTERM and waits for it to exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://127.0.0.1:{}", self.port))
            .unwrap()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(30))
            .connect_lazy()
    }

    /// Waits until the node answers calls.
    async fn wait_serving(&self) {
        let mut articles = ArticleServiceClient::new(self.channel());
        for _ in 0..600 {
            let answer = articles
                .get_article(GetArticleRequest {
                    id: "probe".into(),
                    ..Default::default()
                })
                .await;
            if matches!(&answer, Err(status) if status.code() == Code::NotFound) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("node {} did not come up", self.name);
    }
}

impl Drop for ProcessNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the writers had acknowledged, and the highest position an answer carried.
#[derive(Default)]
struct Acknowledged {
    ids: BTreeSet<String>,
    position: u64,
}

/// Creates articles through node `n` until `stop`, each retried under its request id until
/// it is acknowledged (UNAVAILABLE while the log elects a leader, a refused connection while
/// the node is down): a retry must be answered with the first result, never applied twice.
async fn writer(
    n: usize,
    channel: Channel,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acknowledged>>,
) {
    let mut articles = ArticleServiceClient::new(channel);
    let mut k = 0;
    while !stop.load(Ordering::Acquire) {
        let id = format!("w{n}-{k}");
        let request = CreateArticleRequest {
            article: Some(Article {
                headline: format!("Writer {n} story {k}"),
                body: format!("Angela Merkel and writer {n} met in Bonn, story {k}."),
                ..Article::default()
            }),
            article_id: id.clone(),
            request_id: format!("req-{id}"),
            ..Default::default()
        };
        let started = Instant::now();
        loop {
            match articles.create_article(request.clone()).await {
                Ok(response) => {
                    let mut acked = acked.lock().unwrap();
                    acked.position = acked.position.max(position_of(&response));
                    acked.ids.insert(id.clone());
                    break;
                }
                Err(status) => {
                    assert_ne!(
                        status.code(),
                        Code::AlreadyExists,
                        "a retry of {id} under its request id was applied twice: {status:?}"
                    );
                    assert!(
                        started.elapsed() < Duration::from_secs(90),
                        "{id} was not acknowledged within 90 s: {status:?} ({})",
                        reason(&status)
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        k += 1;
    }
}

/// The server name of the stream's leader, as JetStream reports it.
async fn stream_leader(urls: &[String]) -> String {
    let client = async_nats::connect(urls.to_vec())
        .await
        .expect("NATS connects");
    let js = async_nats::jetstream::new(client);
    for _ in 0..100 {
        if let Ok(mut stream) = js.get_stream("NEWSSTORE").await
            && let Ok(info) = stream.info().await
            && let Some(leader) = info.cluster.as_ref().and_then(|c| c.leader.clone())
        {
            return leader;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the stream has no leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_killed_nats_servers_and_nodes() {
    let Some(mut nats) = NatsCluster::start().await else {
        return;
    };
    let urls = nats.urls();
    let rounds: usize = std::env::var("NEWSSTORE_CLUSTER_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2);
    let folder = temp_dir();
    let mut nodes: Vec<ProcessNode> = (0..3)
        .map(|i| {
            ProcessNode::start(
                &folder.path().join(format!("node{i}")),
                &urls,
                &format!("node{i}"),
            )
        })
        .collect();
    for node in &nodes {
        node.wait_serving().await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let writers: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(n, node)| tokio::spawn(writer(n, node.channel(), stop.clone(), acked.clone())))
        .collect();

    for round in 0..rounds {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // The stream leader's server first: JetStream elects another, writes stall, resume.
        let leader = stream_leader(&urls).await;
        let server: usize = leader
            .trim_start_matches('n')
            .parse()
            .expect("a server name n<i>");
        eprintln!("round {round}: killing NATS server {leader} (the stream leader)");
        nats.kill(server);
        tokio::time::sleep(Duration::from_secs(3)).await;
        nats.start_server(server);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // Then a newsstore node, in the middle of its writes.
        let victim = round % nodes.len();
        eprintln!("round {round}: killing node{victim}");
        nodes[victim].kill();
        tokio::time::sleep(Duration::from_millis(500 + 300 * (round as u64 % 3))).await;
        nodes[victim].restart();
        nodes[victim].wait_serving().await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Release);
    for writer in writers {
        writer.await.expect("writer");
    }
    let (ids, head) = {
        let acked = acked.lock().unwrap();
        (acked.ids.clone(), acked.position)
    };
    assert!(
        ids.len() > 20,
        "only {} writes were acknowledged",
        ids.len()
    );

    // Every acknowledged write is on every node; every change feed is gapless.
    for node in &nodes {
        let mut articles = ArticleServiceClient::new(node.channel());
        for id in &ids {
            articles
                .get_article(at_least(
                    GetArticleRequest {
                        id: id.clone(),
                        ..Default::default()
                    },
                    head,
                ))
                .await
                .unwrap_or_else(|s| panic!("{}: acknowledged {id} is missing: {s:?}", node.name));
        }
        let feed = ChangeServiceClient::new(node.channel())
            .watch_changes(at_least(WatchChangesRequest::default(), head))
            .await
            .expect("watch starts");
        let at = position_of(&feed);
        assert!(at >= head);
        let mut feed = feed.into_inner();
        let mut expected = 1;
        let mut created = BTreeSet::new();
        while let Ok(Some(change)) = tokio::time::timeout(Duration::from_secs(2), feed.message())
            .await
            .unwrap_or(Ok(None))
        {
            assert_eq!(
                change.sequence, expected,
                "{}: the change feed has a gap",
                node.name
            );
            expected += 1;
            created.insert(change.article_id);
        }
        assert!(
            created.is_superset(&ids),
            "{}: the feed misses acknowledged writes",
            node.name
        );
    }

    // Stopped, every node's store holds the same state at the same position.
    let mut digests = Vec::new();
    for node in &mut nodes {
        node.stop();
        let store =
            Store::open(&node.data.join("store"), 16 << 20).expect("the node's store opens");
        digests.push(store.digest().expect("digest"));
    }
    assert!(digests[0].position >= head, "{digests:?}");
    assert!(
        digests.windows(2).all(|w| w[0] == w[1]),
        "the nodes differ: {digests:?}"
    );
    eprintln!(
        "{rounds} rounds: {} acknowledged writes, all on every node; log position {}, change \
         {}; digests equal ({})",
        ids.len(),
        digests[0].position,
        digests[0].last_seq,
        digests[0].sha256
    );
}
