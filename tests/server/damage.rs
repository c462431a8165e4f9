//! Damage is detected and reported, never silently rolled back or served as if whole: real
//! server processes on stores whose files the test damages.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use newsstore::api::proto::article_service_client::ArticleServiceClient;
use newsstore::api::proto::change_service_client::ChangeServiceClient;
use newsstore::api::proto::{self, Article};
use tonic::transport::Channel;

use super::process::{Server, copy_dir, health_of, wait_for_hits};
use super::support::temp_dir;

fn article(i: usize) -> Article {
    Article {
        headline: format!("Council meets for the {i}th time (marker{i:05}x)"),
        body: format!(
            "Councillors in Leeds discussed item {i} of the budget at length. {}",
            "The meeting ran late into the evening. ".repeat(20)
        ),
        ..Article::default()
    }
}

/// A store with `count` acknowledged creates, left by SIGKILL (no shutdown checkpoint).
async fn killed_store(count: usize) -> (tempfile::TempDir, PathBuf) {
    let data = temp_dir();
    let mut server = Server::start(data.path(), &[]);
    let mut client = ArticleServiceClient::new(server.connect().await);
    for i in 0..count {
        client
            .create_article(proto::CreateArticleRequest {
                article: Some(article(i)),
                article_id: format!("a{i}"),
                ..Default::default()
            })
            .await
            .expect("a create is acknowledged");
    }
    server.kill();
    let path = data.path().to_path_buf();
    (data, path)
}

#[tokio::test]
async fn a_store_whose_log_lost_acknowledged_changes_is_refused_not_rolled_back() {
    let (_data, killed) = killed_store(60).await;
    let copy = temp_dir();
    copy_dir(&killed, copy.path());
    // Cut the end of sled's log: the newest acknowledged changes go with it.
    let db = copy.path().join("store").join("db");
    let len = std::fs::metadata(&db).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.set_len(len.saturating_sub(64 * 1024)).unwrap();
    drop(file);

    let (served, stderr) = Server::start(copy.path(), &[])
        .exit(Duration::from_secs(60))
        .await;
    assert!(
        !served,
        "a store that lost acknowledged changes must not serve"
    );
    assert!(
        stderr.contains("changes up to 60 were acknowledged") && stderr.contains("ends at change"),
        "the refusal names both positions: {stderr}"
    );
    assert!(
        stderr.contains("--accept-data-loss") && stderr.contains("restore"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // `check` says the same, and does not call the store consistent.
    let data_dir = copy.path().to_str().unwrap();
    let (ok, _, stderr) = super::support::run_cli(&["check", "--data-dir", data_dir]);
    assert!(!ok);
    assert!(
        stderr.contains("changes up to 60 were acknowledged"),
        "{stderr}"
    );

    // Told to, it serves what is left, and never reuses a lost sequence number.
    let mut server = Server::start(copy.path(), &["--accept-data-loss"]);
    let channel = server.connect().await;
    ArticleServiceClient::new(channel.clone())
        .create_article(proto::CreateArticleRequest {
            article: Some(article(1000)),
            article_id: "after-the-loss".into(),
            ..Default::default()
        })
        .await
        .expect("writes go on after an accepted loss");
    let mut feed = ChangeServiceClient::new(channel)
        .watch_changes(proto::WatchChangesRequest {
            after_sequence: 60,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let sequence = loop {
        let change = tokio::time::timeout(Duration::from_secs(30), feed.message())
            .await
            .expect("the change feed answers")
            .unwrap()
            .expect("the feed goes on");
        if change.article_id == "after-the-loss" {
            break change.sequence;
        }
    };
    assert_eq!(
        sequence, 61,
        "numbering goes on above the last acknowledged change"
    );
    server.terminate().await;
    let (ok, stdout, stderr) = super::support::run_cli(&["check", "--data-dir", data_dir]);
    assert!(
        ok,
        "after an accepted loss the store is consistent: {stdout}{stderr}"
    );
}

/// Other damage to the log's newest records (bytes altered rather than cut) gets the same
/// kind of refusal: an exit with a message, never a served rollback or a panic's backtrace.
#[tokio::test]
async fn altered_log_records_are_refused_with_a_message() {
    let (_data, killed) = killed_store(60).await;
    let len = std::fs::metadata(killed.join("store").join("db"))
        .unwrap()
        .len();
    // Garbage, zeros and one flipped byte, at a few places in the newest 64 KiB.
    let damages: Vec<(u64, Vec<u8>)> = vec![
        (len.saturating_sub(48 * 1024), vec![0xA5; 4096]),
        (len.saturating_sub(40 * 1024), vec![0; 4096]),
        (len.saturating_sub(20 * 1024), vec![0xFF; 1]),
        (
            len.saturating_sub(4 * 1024),
            (0..=255u8).cycle().take(4096).collect(),
        ),
    ];
    for (at, bytes) in damages {
        let copy = temp_dir();
        copy_dir(&killed, copy.path());
        let db = copy.path().join("store").join("db");
        {
            use std::os::unix::fs::FileExt;
            let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
            file.write_all_at(&bytes, at).unwrap();
        }
        let (served, stderr) = Server::start(copy.path(), &[])
            .exit(Duration::from_secs(60))
            .await;
        assert!(!served, "damage at {at} of {len}: the store was served");
        assert!(
            stderr.contains("acknowledged") || stderr.contains("damaged"),
            "damage at {at} of {len}: no clear refusal: {stderr}"
        );
    }
}

/// A store of 1,500 articles, shut down cleanly twice (so sled has written a snapshot and
/// does not read the whole log at open).
async fn checkpointed_store() -> tempfile::TempDir {
    let data = temp_dir();
    let mut server = Server::start(data.path(), &[]);
    let mut client = ArticleServiceClient::new(server.connect().await);
    for batch in 0..30 {
        client
            .batch_create_articles(proto::BatchCreateArticlesRequest {
                requests: (batch * 50..batch * 50 + 50)
                    .map(|i| proto::CreateArticleRequest {
                        article: Some(article(i)),
                        article_id: format!("a{i}"),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .await
            .expect("a batch is acknowledged");
    }
    server.terminate().await;
    let mut server = Server::start(data.path(), &[]);
    server.connect().await;
    server.terminate().await;
    data
}

/// Every page of ListArticles: the number listed, or the error that ended the listing.
async fn list_all(client: &mut ArticleServiceClient<Channel>) -> Result<usize, tonic::Status> {
    let (mut listed, mut token) = (0, String::new());
    loop {
        let page = client
            .list_articles(proto::ListArticlesRequest {
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await?
            .into_inner();
        listed += page.articles.len();
        if page.next_page_token.is_empty() {
            return Ok(listed);
        }
        token = page.next_page_token;
    }
}

/// Damage sled does not meet at open (a region its snapshot lets it skip) is met by the
/// reads that need it: they fail with DATA_LOSS naming the damage, never INTERNAL, and
/// health turns NOT_SERVING.
#[tokio::test]
async fn a_damaged_record_fails_its_reads_with_data_loss_and_health_reports_it() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let data = checkpointed_store().await;
    let mut outcomes = Vec::new();
    // Damage every stored copy of one article's record; where sled reads it at open, the
    // store is refused there instead, so try a few articles.
    for candidate in [700, 100, 1200, 1499, 0, 350, 1000] {
        let copy = temp_dir();
        copy_dir(data.path(), copy.path());
        let db = copy.path().join("store").join("db");
        let mut bytes = std::fs::read(&db).unwrap();
        let marker = format!("marker{candidate:05}x");
        let places: Vec<usize> = bytes
            .windows(marker.len())
            .enumerate()
            .filter(|(_, w)| *w == marker.as_bytes())
            .map(|(at, _)| at)
            .collect();
        assert!(
            !places.is_empty(),
            "the record of a{candidate} is stored as written"
        );
        for &at in &places {
            bytes[at..at + marker.len()].fill(b'#');
        }
        std::fs::write(&db, &bytes).unwrap();
        let mut server = Server::start(copy.path(), &[]);
        let Ok(channel) = server.try_connect().await else {
            outcomes.push(format!("a{candidate}: refused at open"));
            continue;
        };
        assert_eq!(
            health_of(&channel, "").await,
            ServingStatus::Serving as i32,
            "nothing damaged was met yet"
        );
        let mut client = ArticleServiceClient::new(channel.clone());
        let read = client
            .get_article(proto::GetArticleRequest {
                id: format!("a{candidate}"),
                ..Default::default()
            })
            .await;
        let Err(status) = read else {
            outcomes.push(format!("a{candidate}: read back whole"));
            server.kill();
            continue;
        };
        assert_eq!(status.code(), tonic::Code::DataLoss, "{status:?}");
        // Other records still read, and the listing that meets the damage fails the same way.
        let other = if candidate == 0 { 1 } else { candidate - 1 };
        let _ = client
            .get_article(proto::GetArticleRequest {
                id: format!("a{other}"),
                ..Default::default()
            })
            .await
            .map_err(|status| assert_eq!(status.code(), tonic::Code::DataLoss));
        let listed = list_all(&mut client).await;
        assert_eq!(listed.err().map(|s| s.code()), Some(tonic::Code::DataLoss));
        assert_eq!(super::support::reason(&status), "DATA_LOSS");
        assert!(status.message().contains("damaged"), "{}", status.message());
        // Health follows within the monitor's period.
        let started = Instant::now();
        while health_of(&channel, "").await != ServingStatus::NotServing as i32 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "health stayed SERVING"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            health_of(&channel, "newsstore.v1.Storage").await,
            ServingStatus::NotServing as i32
        );
        server.kill();
        let (_, stderr) = server.exit(Duration::from_secs(10)).await;
        assert_eq!(
            stderr.matches("damaged data met").count(),
            1,
            "the damage is logged once, not per read: {stderr}"
        );
        assert!(
            stderr.contains(&format!("a{candidate}")),
            "the log names a record: {stderr}"
        );
        return;
    }
    panic!("no damage left the store servable with a failing read: {outcomes:?}");
}

/// A search-index file gone missing costs a rebuild at start, not the server.
#[tokio::test]
async fn a_missing_search_index_file_is_rebuilt_at_start() {
    let data = temp_dir();
    let mut server = Server::start(data.path(), &[]);
    let mut client = ArticleServiceClient::new(server.connect().await);
    for i in 0..5 {
        client
            .create_article(proto::CreateArticleRequest {
                article: Some(article(i)),
                article_id: format!("a{i}"),
                wait_for_index: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    server.terminate().await;
    let search = data.path().join("search");
    let removed = std::fs::read_dir(&search)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "term"))
        .inspect(|p| std::fs::remove_file(p).unwrap())
        .count();
    assert!(removed > 0, "the index has segment files");

    let mut server = Server::start(data.path(), &[]);
    let mut client = ArticleServiceClient::new(server.connect().await);
    wait_for_hits(&mut client, "councillors", 5, Duration::from_secs(30)).await;
    server.terminate().await;
    let (_, stderr) = server.exit(Duration::from_secs(10)).await;
    assert!(stderr.contains("rebuilding it from the store"), "{stderr}");
}
