//! Restarts, health and graceful shutdown.

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::support::{TestApp, search};

#[tokio::test]
async fn data_survives_a_restart_and_search_catches_up() {
    let app = TestApp::spawn().await;
    let created = app
        .create(
            "kept",
            "Volcano erupts",
            "Lava flowed near the town of Grindavik.",
        )
        .await;
    let data = app.stop().await;

    let app = TestApp::spawn_with(data, |_| {}).await;
    let fetched = app.get("kept").await.unwrap();
    assert_eq!(fetched, created);
    let response = app
        .search_until(search("lava"), |r| r.total_size == 1)
        .await;
    assert_eq!(response.hits.len(), 1);
}

#[tokio::test]
async fn a_deleted_search_index_is_rebuilt_at_startup() {
    let app = TestApp::spawn().await;
    app.create(
        "kept",
        "Volcano erupts",
        "Lava flowed near the town of Grindavik.",
    )
    .await;
    let data = app.stop().await;
    std::fs::remove_dir_all(data.path().join("search")).unwrap();
    let app = TestApp::spawn_with(data, |_| {}).await;
    let response = app
        .search_until(search("lava"), |r| r.total_size == 1)
        .await;
    assert_eq!(response.total_size, 1);
}

#[tokio::test]
async fn a_corrupt_search_index_is_rebuilt_at_startup() {
    let app = TestApp::spawn().await;
    app.create(
        "kept",
        "Volcano erupts",
        "Lava flowed near the town of Grindavik.",
    )
    .await;
    let data = app.stop().await;
    std::fs::write(data.path().join("search").join("meta.json"), b"{ not json").unwrap();
    let app = TestApp::spawn_with(data, |_| {}).await;
    let response = app
        .search_until(search("lava"), |r| r.total_size == 1)
        .await;
    assert_eq!(response.total_size, 1);
}

#[tokio::test]
async fn health_reports_serving_then_not_serving_on_shutdown() {
    let app = TestApp::spawn().await;
    let mut health = HealthClient::new(app.channel.clone());
    for service in [
        "",
        "newsstore.v1.ArticleService",
        "newsstore.v1.EntityService",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    let stopping = tokio::spawn(app.stop());
    let next = watch
        .message()
        .await
        .unwrap()
        .expect("a status before the stream ends");
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    stopping.await.unwrap();
}

#[tokio::test]
async fn a_damaged_data_folder_is_a_clear_startup_error_not_a_panic() {
    let app = TestApp::spawn().await;
    app.create("a1", "Talks", "Officials met in Geneva.").await;
    let data = app.stop().await;
    let store = data.path().join("store");
    // Garbage over the start of every database file, and one truncated.
    for entry in std::fs::read_dir(&store).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let mut bytes = std::fs::read(&path).unwrap();
            let n = bytes.len().min(4096);
            for (i, b) in bytes[..n].iter_mut().enumerate() {
                *b = (i as u8).wrapping_mul(151).wrapping_add(7);
            }
            bytes.truncate((bytes.len() / 2).max(1));
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let config = newsstore::app::Config::new("127.0.0.1:0".parse().unwrap(), data.path().into());
    let built = tokio::spawn(newsstore::app::Application::build(config)).await;
    let error = match built {
        Ok(Err(error)) => format!("{error:#}"),
        Ok(Ok(_)) => panic!("a damaged store must not open"),
        Err(panic) => panic!("opening a damaged store panicked: {panic}"),
    };
    assert!(
        error.contains("restore it from a backup") || error.contains("damaged"),
        "{error}"
    );
}

#[tokio::test]
async fn a_clean_shutdown_finishes_the_search_index_merges() {
    let app = TestApp::spawn().await;
    // One commit, and so one segment, per article: the eighth sets off a merge of all eight.
    for i in 0..8 {
        let id = format!("quake-{i}");
        app.create(
            &id,
            "Earthquake",
            &format!("Tremor number {i} shook the coast."),
        )
        .await;
        app.search_until(search("tremor"), |r| r.total_size == i + 1)
            .await;
    }
    let data = app.stop().await;
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(data.path().join("search").join("meta.json")).unwrap(),
    )
    .unwrap();
    let segments: Vec<u64> = meta["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|segment| segment["max_doc"].as_u64().unwrap())
        .collect();
    assert_eq!(segments, vec![8], "the merge was left unfinished");
}

/// A mistyped --data-dir is refused by every command that works on an existing database,
/// naming the folder, and nothing is created there.
#[test]
fn offline_commands_refuse_a_folder_without_a_database() {
    let dir = super::support::temp_dir();
    let missing = dir.path().join("typo");
    let data = missing.to_str().unwrap();
    let out = dir.path().join("out");
    let commands: [&[&str]; 5] = [
        &["check"],
        &["stats"],
        &["reindex"],
        &["reextract"],
        &["export", "--out", out.to_str().unwrap()],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.extend(["--data-dir", data]);
        let (ok, stdout, stderr) = super::support::run_cli(&args);
        assert!(!ok, "{command:?} succeeded: {stdout}");
        assert!(
            stderr.contains("holds no newsstore database") && stderr.contains("typo"),
            "{command:?}: {stderr}"
        );
        assert!(
            !missing.exists(),
            "{command:?} created {}",
            missing.display()
        );
    }
}
