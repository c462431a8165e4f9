//! A full disk: writes are refused with STORAGE_FULL, health says so, reads go on, and
//! writes and indexing resume by themselves once space is freed, with nothing acknowledged
//! lost. On a small tmpfs the test mounts, which needs root; elsewhere it is skipped with a
//! message, unless NEWSSTORE_REQUIRE_MOUNT=1 (set by `.ci/run`) makes that a failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use newsstore::api::proto::article_service_client::ArticleServiceClient;
use newsstore::api::proto::{self, Article};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

use super::process::{Server, health_of, wait_for_hits};
use super::support::temp_dir;

/// A tmpfs of `mib` MiB mounted on a temporary folder, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u64) -> Option<SmallDisk> {
        let dir = temp_dir();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(SmallDisk {
                path: dir.path().to_path_buf(),
                _dir: dir,
            }),
            outcome => {
                let why = match outcome {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
                    Err(err) => err.to_string(),
                };
                let required = std::env::var("NEWSSTORE_REQUIRE_MOUNT").is_ok_and(|v| v == "1");
                assert!(
                    !required,
                    "mounting a small tmpfs is required (NEWSSTORE_REQUIRE_MOUNT=1) but \
                     failed: {why}"
                );
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED full-disk test: cannot mount a tmpfs ({why}); run as root"
                );
                None
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Fills the rest of the disk holding `path` with a file there, until the disk is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5Au8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

/// Text that does not compress, so the disk fills as fast as the bytes sent, in words too
/// long for the search index to keep (so indexing stays cheap).
fn noise(seed: u64, bytes: usize) -> String {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut text = String::with_capacity(bytes + 64);
    while text.len() < bytes {
        for _ in 0..80 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.push(char::from(b'a' + (state >> 59) as u8 % 26));
        }
        text.push(' ');
    }
    text
}

fn article(i: u64) -> Article {
    Article {
        headline: format!("Filler {i}"),
        body: format!("Budget report k{i}q. {}", noise(i, 64 * 1024)),
        ..Article::default()
    }
}

async fn create(client: &mut ArticleServiceClient<Channel>, i: u64) -> Result<(), tonic::Status> {
    client
        .create_article(proto::CreateArticleRequest {
            article: Some(article(i)),
            article_id: format!("f{i}"),
            ..Default::default()
        })
        .await
        .map(|_| ())
}

/// Restarted on `data` with `--min-free-mb min_free_mb`, the server has every article
/// `f{i}` of `ids`.
async fn present_after_restart(data: &Path, min_free_mb: &str, ids: impl IntoIterator<Item = u64>) {
    let mut server = Server::start(data, &["--min-free-mb", min_free_mb]);
    let mut client = ArticleServiceClient::new(server.connect().await);
    assert_present(&mut client, ids).await;
    server.terminate().await;
}

/// Every article `f{i}` of `ids` is there.
async fn assert_present(
    client: &mut ArticleServiceClient<Channel>,
    ids: impl IntoIterator<Item = u64>,
) {
    for i in ids {
        client
            .get_article(proto::GetArticleRequest {
                id: format!("f{i}"),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|status| panic!("acknowledged f{i} is gone: {status:?}"));
    }
}

async fn wait_for_health(channel: &Channel, service: &str, wanted: ServingStatus) {
    let started = Instant::now();
    while health_of(channel, service).await != wanted as i32 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "health of {service:?} did not turn {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_full_disk_refuses_writes_keeps_reads_and_recovers_by_itself() {
    let Some(disk) = SmallDisk::mount(48) else {
        return;
    };
    let data = disk.path.join("data");
    // Room for the server's own files; this ballast is what the operator frees later.
    let ballast = disk.path.join("ballast");
    {
        let mut file = std::fs::File::create(&ballast).unwrap();
        file.write_all(&vec![1u8; 16 << 20]).unwrap();
    }
    let mut server = Server::start(&data, &["--min-free-mb", "6"]);
    let channel = server.connect().await;
    let mut client = ArticleServiceClient::new(channel.clone());

    // Write until the reserve refuses.
    let mut acknowledged = Vec::new();
    let refusal = loop {
        let i = acknowledged.len() as u64;
        assert!(i < 1_000, "the disk never filled");
        match create(&mut client, i).await {
            Ok(()) => acknowledged.push(i),
            Err(status) => break status,
        }
    };
    assert_eq!(
        refusal.code(),
        tonic::Code::ResourceExhausted,
        "{refusal:?}"
    );
    assert_eq!(super::support::reason(&refusal), "STORAGE_FULL");
    assert!(refusal.message().contains("full"), "{}", refusal.message());
    assert!(!acknowledged.is_empty());

    // Something else takes the last bytes too: health says so, and reads still work.
    fill(&disk.path.join("more-ballast"));
    wait_for_health(&channel, "newsstore.v1.Writes", ServingStatus::NotServing).await;
    assert_eq!(health_of(&channel, "").await, ServingStatus::Serving as i32);
    let last = *acknowledged.last().unwrap();
    let read = client
        .get_article(proto::GetArticleRequest {
            id: format!("f{last}"),
            ..Default::default()
        })
        .await
        .expect("reads go on while the disk is full")
        .into_inner();
    assert_eq!(read.article.unwrap().headline, format!("Filler {last}"));
    client
        .list_articles(proto::ListArticlesRequest::default())
        .await
        .expect("listing goes on while the disk is full");
    client
        .search_articles(proto::SearchArticlesRequest {
            query: "budget".into(),
            ..Default::default()
        })
        .await
        .expect("search goes on while the disk is full");
    let refused = create(&mut client, 5_000).await.unwrap_err();
    assert_eq!(super::support::reason(&refused), "STORAGE_FULL");

    // The operator frees space: writes and indexing resume without a restart.
    std::fs::remove_file(disk.path.join("more-ballast")).unwrap();
    std::fs::remove_file(&ballast).unwrap();
    wait_for_health(&channel, "newsstore.v1.Writes", ServingStatus::Serving).await;
    let started = Instant::now();
    loop {
        match create(&mut client, 6_000).await {
            Ok(()) => break,
            Err(status) => assert!(
                started.elapsed() < Duration::from_secs(10),
                "writes did not resume: {status:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for_hits(&mut client, "k6000q", 1, Duration::from_secs(15)).await;

    // Nothing acknowledged was lost, across a clean restart.
    server.terminate().await;
    let (stopped, stderr) = server.exit(Duration::from_secs(5)).await;
    assert!(stopped, "a clean shutdown: {stderr}");
    present_after_restart(&data, "6", acknowledged.into_iter().chain([6_000])).await;
}

/// A clean shutdown while the disk is full ends, with a message, instead of hanging or
/// failing obscurely; and nothing acknowledged is lost.
#[tokio::test]
async fn a_shutdown_on_a_full_disk_exits_with_a_clear_message() {
    let Some(disk) = SmallDisk::mount(32) else {
        return;
    };
    let data = disk.path.join("data");
    let mut server = Server::start(&data, &["--min-free-mb", "1"]);
    let mut client = ArticleServiceClient::new(server.connect().await);
    for i in 0..5 {
        create(&mut client, i).await.unwrap();
    }
    fill(&disk.path.join("ballast"));
    server.terminate().await;
    let (stopped, stderr) = server.exit(Duration::from_secs(5)).await;
    assert!(stopped, "{stderr}");
    assert!(!stderr.contains("panicked at"), "{stderr}");
    assert!(
        stderr.contains("no checkpoint; the next start replays the log"),
        "the log says what the full disk cost: {stderr}"
    );
    std::fs::remove_file(disk.path.join("ballast")).unwrap();
    present_after_restart(&data, "1", 0..5).await;
}

/// Without a reserve, sled itself meets the full disk and refuses every later write until a
/// restart: the answers and the log say so, health keeps writes NOT_SERVING, and after a
/// restart with space freed nothing acknowledged is lost.
#[tokio::test]
async fn a_storage_engine_that_met_a_full_disk_says_it_needs_a_restart() {
    let Some(disk) = SmallDisk::mount(32) else {
        return;
    };
    let data = disk.path.join("data");
    let mut server = Server::start(&data, &["--min-free-mb", "0"]);
    let channel = server.connect().await;
    let mut client = ArticleServiceClient::new(channel.clone());
    for i in 0..3 {
        create(&mut client, i).await.unwrap();
    }
    fill(&disk.path.join("ballast"));
    let first = create(&mut client, 100).await.unwrap_err();
    assert_eq!(super::support::reason(&first), "STORAGE_FULL", "{first:?}");
    std::fs::remove_file(disk.path.join("ballast")).unwrap();
    let later = create(&mut client, 101).await.unwrap_err();
    assert_eq!(super::support::reason(&later), "STORAGE_FULL", "{later:?}");
    assert!(later.message().contains("restart"), "{}", later.message());
    wait_for_health(&channel, "newsstore.v1.Writes", ServingStatus::NotServing).await;
    server.terminate().await;
    let (_, stderr) = server.exit(Duration::from_secs(5)).await;
    assert!(
        stderr.contains("writes stopped until a restart"),
        "{stderr}"
    );

    let mut server = Server::start(&data, &["--min-free-mb", "0"]);
    let mut client = ArticleServiceClient::new(server.connect().await);
    assert_present(&mut client, 0..3).await;
    create(&mut client, 102)
        .await
        .expect("writes work after the restart");
    server.terminate().await;
}
