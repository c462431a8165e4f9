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

/// The records of a backup file: (key, value) pairs, as `store/backup.rs` writes them.
fn backup_records(bytes: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut at = b"NEWSSTORE-BACKUP".len() + 4;
    let mut records = Vec::new();
    let take = |at: &mut usize, n: usize| {
        let slice = bytes[*at..*at + n].to_vec();
        *at += n;
        slice
    };
    loop {
        let len = u32::from_be_bytes(take(&mut at, 4).try_into().unwrap());
        if len == u32::MAX {
            return records;
        }
        let key = take(&mut at, len as usize);
        let value_len = u32::from_be_bytes(take(&mut at, 4).try_into().unwrap());
        records.push((key, take(&mut at, value_len as usize)));
    }
}

/// A backup file holding `records`, with a correct count and checksum: what an attacker
/// who can recompute an unkeyed SHA-256 makes.
fn backup_file(records: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    use sha2::Digest;
    let mut out = b"NEWSSTORE-BACKUP".to_vec();
    out.extend(1u32.to_be_bytes());
    for (key, value) in records {
        out.extend((key.len() as u32).to_be_bytes());
        out.extend(key);
        out.extend((value.len() as u32).to_be_bytes());
        out.extend(value);
    }
    out.extend(u32::MAX.to_be_bytes());
    out.extend((records.len() as u64).to_be_bytes());
    let digest = sha2::Sha256::digest(&out);
    out.extend(digest);
    out
}

/// A crafted backup whose article id is a relative path, with its checksum recomputed, is
/// refused by restore (nothing is left behind); so is one announcing a 4 GiB key.
#[tokio::test]
async fn crafted_backups_are_refused() {
    use newsstore::store::{codec, keys};
    let app = TestApp::spawn().await;
    app.create(
        "kerry-visit",
        "Talks",
        "John Kerry met officials in Geneva.",
    )
    .await;
    let dir = temp_dir();
    let file = dir.path().join("news.backup");
    let server = app.addr.to_string();
    let file_arg = file.to_str().unwrap().to_string();
    let (ok, _, stderr) = tokio::task::spawn_blocking(move || {
        run_cli(&["backup", "--server", &server, "--out", &file_arg])
    })
    .await
    .unwrap();
    assert!(ok, "{stderr}");
    let records = backup_records(&std::fs::read(&file).unwrap());

    let evil_id = "./../../pwned/owned";
    let crafted: Vec<(Vec<u8>, Vec<u8>)> = records
        .iter()
        .map(|(key, value)| {
            if key.first() == Some(&keys::ARTICLE) {
                let mut article: newsstore::model::Article = codec::decode(value).unwrap();
                article.id = evil_id.into();
                (keys::article(evil_id), codec::encode(&article).unwrap())
            } else {
                (key.clone(), value.clone())
            }
        })
        .collect();
    let evil = dir.path().join("evil.backup");
    std::fs::write(&evil, backup_file(&crafted)).unwrap();
    let target = dir.path().join("restored");
    let (ok, _, stderr) = run_cli(&[
        "restore",
        "--from",
        evil.to_str().unwrap(),
        "--data-dir",
        target.to_str().unwrap(),
    ]);
    assert!(!ok, "a crafted backup was restored");
    assert!(stderr.contains("article-id rule"), "{stderr}");
    assert!(
        !target.join("store").exists(),
        "a refused restore leaves nothing"
    );

    // A length that announces far more than the file holds is refused without allocating it.
    let mut huge = b"NEWSSTORE-BACKUP".to_vec();
    huge.extend(1u32.to_be_bytes());
    huge.extend((u32::MAX - 1).to_be_bytes());
    huge.extend([0u8; 64]);
    let huge_file = dir.path().join("huge.backup");
    std::fs::write(&huge_file, huge).unwrap();
    let (ok, _, stderr) = run_cli(&[
        "restore",
        "--from",
        huge_file.to_str().unwrap(),
        "--data-dir",
        dir.path().join("restored-2").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("not a usable newsstore backup"), "{stderr}");
}

/// A store that holds an article id breaking the rule (written past the API, as only a
/// damaged or hand-edited store could) is not exported: the export refuses, naming the id,
/// and writes nothing outside its folder; `check` names the id too.
#[test]
fn export_never_turns_a_bad_stored_id_into_a_path() {
    use newsstore::model::ArticleInput;
    use newsstore::store::{Content, Store, Write};
    let dir = temp_dir();
    let data = dir.path().join("data");
    let store = std::sync::Arc::new(Store::open(&data.join("store"), 16 << 20).unwrap());
    let input = ArticleInput {
        headline: "Escaped".into(),
        body: "A body that should never leave the export folder.".into(),
        ..ArticleInput::default()
    };
    let written = store.write(vec![Write::Create {
        id: "../../escaped".into(),
        content: Content {
            extraction: newsstore::extract::analyze(&input),
            content_hash: "x".into(),
            input,
        },
    }]);
    assert!(written[0].is_ok());
    store.close(std::time::Duration::from_secs(5)).unwrap();

    let out = dir.path().join("a").join("b").join("export");
    let (ok, _, stderr) = run_cli(&[
        "export",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("article-id rule"), "{stderr}");
    assert!(!dir.path().join("a").join("escaped.json").exists());
    assert!(!dir.path().join("escaped.json").exists());
    let (ok, stdout, _) = run_cli(&["check", "--data-dir", data.to_str().unwrap()]);
    assert!(!ok);
    assert!(stdout.contains("breaks the article-id rule"), "{stdout}");
}
