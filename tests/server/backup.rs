//! `newsstore backup` takes a consistent copy from a serving server under concurrent writes;
//! `newsstore restore` brings it back; a damaged backup is refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use newsstore::api::proto;

use super::support::{TestApp, run_cli, search, temp_dir};

#[tokio::test]
async fn a_backup_taken_under_writes_restores_consistently() {
    let app = TestApp::spawn().await;
    for i in 0..30 {
        app.create(
            &format!("before-{i}"),
            "Talks",
            "John Kerry met Sergei Lavrov in Geneva.",
        )
        .await;
    }
    // Writers keep going while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, mut client) = (stop.clone(), app.articles());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let _ = client
                    .create_article(proto::CreateArticleRequest {
                        article: Some(proto::Article {
                            headline: format!("During {i}"),
                            body: "Angela Merkel visited Paris and met officials.".into(),
                            ..Default::default()
                        }),
                        article_id: format!("during-{i}"),
                        ..Default::default()
                    })
                    .await;
                i += 1;
            }
            i
        })
    };
    let dir = temp_dir();
    let file = dir.path().join("news.backup");
    let file_arg = file.to_str().unwrap().to_string();
    let server = app.addr.to_string();
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
        run_cli(&["backup", "--server", &server, "--out", &file_arg])
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let written_during = writer.await.unwrap();
    assert!(ok, "{stderr}");
    assert!(stdout.contains("entries"), "{stdout}");
    assert!(written_during > 0);

    let target = temp_dir();
    let target_arg = target.path().to_str().unwrap();
    let (ok, stdout, stderr) = run_cli(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--data-dir",
        target_arg,
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("restored"), "{stdout}");
    // Restoring over existing data is refused.
    let (ok, _, stderr) = run_cli(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--data-dir",
        target_arg,
    ]);
    assert!(!ok);
    assert!(stderr.contains("not empty"), "{stderr}");

    // The copy is one consistent state: every index agrees with the articles.
    // (In another process: sled lets go of its lock only some time after a drop.)
    let (ok, stdout, stderr) = run_cli(&["check", "--data-dir", target_arg]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("consistent"), "{stdout}");
    // `stats` sets what the data is against what the files take.
    let (ok, stdout, stderr) = run_cli(&["stats", "--data-dir", target_arg]);
    assert!(ok, "{stdout}{stderr}");
    let articles = stdout
        .lines()
        .find(|l| l.starts_with("a "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(articles.is_some_and(|n| n >= 30), "{stdout}");
    assert!(stdout.contains("database files"), "{stdout}");
    let restored = TestApp::spawn_with(target, |_| {}).await;
    for i in 0..30 {
        restored.get(&format!("before-{i}")).await.unwrap();
    }
    restored
        .search_until(search("Kerry"), |r| r.total_size >= 30)
        .await;
    assert!(
        restored
            .articles()
            .search_articles(search("Kerry"))
            .await
            .unwrap()
            .into_inner()
            .total_size
            >= 30
    );

    // A truncated backup is refused, not half restored.
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.path().join("cut.backup");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let elsewhere = temp_dir();
    let (ok, _, stderr) = run_cli(&[
        "restore",
        "--from",
        cut.to_str().unwrap(),
        "--data-dir",
        elsewhere.path().to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("not a usable newsstore backup"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(elsewhere.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "a failed restore left {left:?} behind");
    // So the same folder takes the whole backup at once.
    let (ok, stdout, stderr) = run_cli(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--data-dir",
        elsewhere.path().to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}{stderr}");
}
