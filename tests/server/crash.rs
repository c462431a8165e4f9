//! Crash recovery: a real server process is killed with SIGKILL in the middle of concurrent
//! creates, batch creates, updates and deletes, restarted, and killed again, round after
//! round. Then every acknowledged write must be there with its latest acknowledged content,
//! every index (entity, time, source, full-text) must agree with the articles, and the
//! change feed must have no gaps.
//!
//! `cargo test` runs 3 rounds. The long run is
//! `NEWSSTORE_CRASH_ROUNDS=300 cargo test --release --test server crash -- --nocapture`.

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use newsstore::api::proto::article_service_client::ArticleServiceClient;
use newsstore::api::proto::{self, Article};
use tonic::transport::Channel;

/// The state of one article as the writers saw it.
#[derive(Debug, Clone, Default)]
struct Tracked {
    /// The token of the last acknowledged body, or `None` once deleted.
    live: Option<String>,
    /// Whether a write to it was in flight when the server died.
    uncertain: bool,
    /// Every token its body ever had.
    tokens: Vec<String>,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("bound").port()
}

fn start(data: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_newsstore"))
        .args(["serve", "--no-seed", "--index-refresh-ms", "50", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the newsstore binary starts")
}

async fn connect(port: u16) -> ArticleServiceClient<Channel> {
    for _ in 0..300 {
        if let Ok(channel) = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
        {
            return ArticleServiceClient::new(channel);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not come up on port {port}");
}

/// A word the analyser leaves alone, unique per article and version.
fn token(id: usize, version: usize) -> String {
    format!("k{id}v{version}q")
}

fn article(id: usize, version: usize) -> Article {
    Article {
        headline: format!("Story {id}"),
        body: format!(
            "Officials discussed {} in a long meeting.",
            token(id, version)
        ),
        ..Article::default()
    }
}

/// One writer: creates its articles, updates every third, deletes every fifth, until the
/// server goes away.
async fn writer(
    mut client: ArticleServiceClient<Channel>,
    base: usize,
    state: Arc<Mutex<HashMap<usize, Tracked>>>,
) {
    for i in 0..10_000 {
        let id = base + i;
        let name = format!("a{id}");
        let mark = |tracked: &mut Tracked, live: Option<String>| {
            tracked.live = live;
            tracked.uncertain = false;
        };
        {
            let mut state = state.lock().unwrap();
            let tracked = state.entry(id).or_default();
            tracked.uncertain = true;
            tracked.tokens.push(token(id, 0));
        }
        let created = client
            .create_article(proto::CreateArticleRequest {
                article: Some(article(id, 0)),
                article_id: name.clone(),
                ..Default::default()
            })
            .await;
        if created.is_err() {
            return;
        }
        mark(
            state.lock().unwrap().get_mut(&id).unwrap(),
            Some(token(id, 0)),
        );
        if i % 3 == 0 {
            {
                let mut state = state.lock().unwrap();
                let tracked = state.get_mut(&id).unwrap();
                tracked.uncertain = true;
                tracked.tokens.push(token(id, 1));
            }
            let mut change = article(id, 1);
            change.id = name.clone();
            let updated = client
                .update_article(proto::UpdateArticleRequest {
                    article: Some(change),
                    ..Default::default()
                })
                .await;
            if updated.is_err() {
                return;
            }
            mark(
                state.lock().unwrap().get_mut(&id).unwrap(),
                Some(token(id, 1)),
            );
        }
        if i % 5 == 0 {
            state.lock().unwrap().get_mut(&id).unwrap().uncertain = true;
            let deleted = client
                .delete_article(proto::DeleteArticleRequest {
                    id: name.clone(),
                    ..Default::default()
                })
                .await;
            if deleted.is_err() {
                return;
            }
            mark(state.lock().unwrap().get_mut(&id).unwrap(), None);
        }
    }
}

/// A writer of batches: four new articles per BatchCreateArticles call.
async fn batch_writer(
    mut client: ArticleServiceClient<Channel>,
    base: usize,
    state: Arc<Mutex<HashMap<usize, Tracked>>>,
) {
    for batch in 0..2_500 {
        let ids: Vec<usize> = (0..4).map(|j| base + batch * 4 + j).collect();
        {
            let mut state = state.lock().unwrap();
            for &id in &ids {
                let tracked = state.entry(id).or_default();
                tracked.uncertain = true;
                tracked.tokens.push(token(id, 0));
            }
        }
        let response = client
            .batch_create_articles(proto::BatchCreateArticlesRequest {
                requests: ids
                    .iter()
                    .map(|&id| proto::CreateArticleRequest {
                        article: Some(article(id, 0)),
                        article_id: format!("a{id}"),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .await;
        let Ok(response) = response else {
            return;
        };
        let mut state = state.lock().unwrap();
        for (&id, result) in ids.iter().zip(response.into_inner().results) {
            let tracked = state.get_mut(&id).unwrap();
            if matches!(
                result.outcome,
                Some(proto::batch_create_articles_result::Outcome::Article(_))
            ) {
                tracked.live = Some(token(id, 0));
                tracked.uncertain = false;
            }
        }
    }
}

async fn search_ids(client: &mut ArticleServiceClient<Channel>, word: &str) -> Vec<String> {
    client
        .search_articles(proto::SearchArticlesRequest {
            query: word.into(),
            ..Default::default()
        })
        .await
        .expect("search works after a restart")
        .into_inner()
        .hits
        .into_iter()
        .map(|h| h.article.unwrap().id)
        .collect()
}

#[tokio::test]
async fn the_index_agrees_with_the_store_after_sigkill() {
    let data = super::support::temp_dir();
    let state: Arc<Mutex<HashMap<usize, Tracked>>> = Arc::default();
    let rounds: u64 = std::env::var("NEWSSTORE_CRASH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    let started = std::time::Instant::now();
    for round in 0..rounds {
        let port = free_port();
        let mut child = start(data.path(), port);
        let client = connect(port).await;
        let mut writers: Vec<_> = (0..3)
            .map(|w| {
                tokio::spawn(writer(
                    client.clone(),
                    (round as usize * 4 + w) * 100_000,
                    state.clone(),
                ))
            })
            .collect();
        writers.push(tokio::spawn(batch_writer(
            client.clone(),
            (round as usize * 4 + 3) * 100_000,
            state.clone(),
        )));
        // Kills land at varied moments: early in start-up work, mid-burst, later.
        tokio::time::sleep(Duration::from_millis(300 + (round * 7919) % 1200)).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("the killed server is reaped");
        for writer in writers {
            writer.await.unwrap();
        }
    }

    let port = free_port();
    let mut child = start(data.path(), port);
    let mut client = connect(port).await;
    // A write that waits for the index: once it returns, the index has applied everything
    // before it, the recovery included.
    client
        .create_article(proto::CreateArticleRequest {
            article: Some(Article {
                headline: "Marker".into(),
                body: "Marker.".into(),
                ..Article::default()
            }),
            article_id: "marker".into(),
            wait_for_index: true,
            ..Default::default()
        })
        .await
        .unwrap();

    let state = state.lock().unwrap().clone();
    assert!(
        state.len() > 50,
        "too few writes happened to mean anything: {}",
        state.len()
    );
    let mut checked = 0;
    for (id, tracked) in &state {
        let name = format!("a{id}");
        let stored = client
            .get_article(proto::GetArticleRequest {
                id: name.clone(),
                view: 0,
                ..Default::default()
            })
            .await
            .ok()
            .and_then(|r| r.into_inner().article);
        let stored_token = stored.as_ref().and_then(|a| {
            tracked
                .tokens
                .iter()
                .find(|t| a.body.contains(t.as_str()))
                .cloned()
        });
        if !tracked.uncertain {
            // Every acknowledged write survived.
            assert_eq!(
                stored_token, tracked.live,
                "store disagrees with acknowledged writes for {name}"
            );
        }
        // The index agrees with the store: the current body is found, no older body is.
        for token in &tracked.tokens {
            let found = search_ids(&mut client, token).await;
            let expected: Vec<String> = if Some(token) == stored_token.as_ref() {
                vec![name.clone()]
            } else {
                Vec::new()
            };
            assert_eq!(
                found, expected,
                "search for {token} (article {name}, {tracked:?})"
            );
            checked += 1;
        }
    }
    assert!(checked > 20);

    // The change feed has no gaps: every sequence up to the last, in order.
    let last = client
        .search_articles(proto::SearchArticlesRequest {
            query: "marker".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .index_sequence;
    let mut feed = newsstore::api::proto::change_service_client::ChangeServiceClient::connect(
        format!("http://127.0.0.1:{port}"),
    )
    .await
    .unwrap()
    .watch_changes(proto::WatchChangesRequest::default())
    .await
    .unwrap()
    .into_inner();
    let mut expected = 1;
    while expected <= last {
        let event = feed.message().await.unwrap().unwrap();
        assert_eq!(event.sequence, expected, "the change feed skips or repeats");
        expected += 1;
    }
    drop(feed);
    child.kill().ok();
    child.wait().ok();

    // Every index of the store agrees with the articles (entity, time, source, counts).
    let store = newsstore::store::Store::open(&data.path().join("store"), 16 << 20).unwrap();
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
    eprintln!(
        "crash test: {rounds} SIGKILLs, {} articles written, {checked} searches checked, \
         {last} changes in the feed, {:.0} s",
        state.len(),
        started.elapsed().as_secs_f64()
    );
    child.wait().ok();
}
