//! Crash recovery of the search index: a real server process is killed with SIGKILL in the
//! middle of a stream of creates, updates and deletes, restarted, and then every article's
//! searchability must agree with the store, and the store with every acknowledged write.

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
    for round in 0..3u64 {
        let port = free_port();
        let mut child = start(data.path(), port);
        let client = connect(port).await;
        let writers: Vec<_> = (0..4)
            .map(|w| {
                tokio::spawn(writer(
                    client.clone(),
                    (round as usize * 4 + w) * 100_000,
                    state.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(800 + round * 300)).await;
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
    child.kill().ok();
    child.wait().ok();
}
