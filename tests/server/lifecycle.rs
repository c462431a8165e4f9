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

/// A data folder a running server holds is refused by every command that would open it,
/// saying a server is using it, instead of blocking or failing obscurely; and a second
/// server on the same folder exits the same way.
#[tokio::test]
async fn commands_refuse_a_folder_a_running_server_holds() {
    let dir = super::support::temp_dir();
    let data = dir.path().join("data");
    let mut server = super::process::Server::start(&data, &[]);
    server.connect().await;
    let data_arg = data.to_str().unwrap().to_string();
    let out = dir.path().join("out").to_str().unwrap().to_string();
    let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/seeds");
    let commands: Vec<Vec<&str>> = vec![
        vec!["check"],
        vec!["stats"],
        vec!["reindex"],
        vec!["reextract"],
        vec!["export", "--out", &out],
        vec!["seed", "--seeds", seeds],
        vec!["import", seeds],
        vec!["serve", "--listen", "127.0.0.1:0", "--no-seed"],
    ];
    for command in commands {
        let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        args.extend(["--data-dir".to_string(), data_arg.clone()]);
        let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || {
            super::support::run_cli(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap();
        assert!(!ok, "{command:?} succeeded: {stdout}");
        assert!(
            stderr.contains("another newsstore process (a running server?) is using it")
                && stderr.contains(&data_arg),
            "{command:?}: {stderr}"
        );
    }
    server.terminate().await;
}

/// Without a terminal, import reports progress as log lines (here after every file), never
/// as a bar redrawn with carriage returns, and no time left is guessed before a rate exists.
#[test]
fn import_logs_progress_when_stderr_is_not_a_terminal() {
    let dir = super::support::temp_dir();
    let data = dir.path().join("data");
    let sources = dir.path().join("sources");
    std::fs::create_dir(&sources).unwrap();
    let files = 12;
    for i in 0..files {
        std::fs::write(
            sources.join(format!("story-{i}.txt")),
            format!("Storm number {i} reaches Lisbon\n\nFishermen in Lisbon stayed ashore."),
        )
        .unwrap();
    }
    let (ok, stdout, stderr) = super::support::run_cli(&[
        "import",
        sources.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--progress-secs",
        "0",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&format!("{files} created")), "{stdout}");
    assert!(!stderr.contains('\r'), "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains(" INFO ") && line.contains("imported "))
        .collect();
    assert!(
        lines
            .iter()
            .any(|line| line.contains(&format!("imported 1/{files} files"))),
        "{stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains(&format!("imported {files}/{files} files"))),
        "{stderr}"
    );
    assert!(
        lines[0].contains("estimating time left"),
        "the first line guesses no time: {stderr}"
    );
}

/// Operator mistakes get one line that names the path or address at fault.
#[test]
fn mistakes_are_one_line_naming_what_is_wrong() {
    let dir = super::support::temp_dir();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (
            &["import", "/nonexistent/news-folder"],
            "/nonexistent/news-folder",
        ),
        (
            &["restore", "--from", "/nonexistent/news.backup"],
            "/nonexistent/news.backup",
        ),
        (
            &[
                "backup",
                "--server",
                "127.0.0.1:1",
                "--out",
                "/tmp/never.backup",
            ],
            "127.0.0.1:1",
        ),
    ];
    for (command, named) in cases {
        let mut args = command.to_vec();
        if command[0] != "backup" {
            args.extend(["--data-dir", data]);
        }
        let (ok, _, stderr) = super::support::run_cli(&args);
        assert!(!ok, "{command:?}");
        assert!(stderr.contains(named), "{command:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{command:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
}

/// Import never opens what is not a regular file: a link to /dev/zero (endless) and a FIFO
/// (which blocks until written) are skipped with a warning, and the rest is imported.
#[tokio::test]
async fn import_skips_devices_and_fifos() {
    let dir = super::support::temp_dir();
    let sources = dir.path().join("sources");
    std::fs::create_dir(&sources).unwrap();
    std::fs::write(
        sources.join("good.txt"),
        "Storm reaches Lisbon\n\nFishermen in Lisbon stayed ashore.",
    )
    .unwrap();
    std::os::unix::fs::symlink("/dev/zero", sources.join("zero.txt")).unwrap();
    let fifo = sources.join("fifo.txt");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let mut import = std::process::Command::new(env!("CARGO_BIN_EXE_newsstore"))
        .args(["import", sources.to_str().unwrap(), "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while import.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            import.kill().unwrap();
            panic!("the import hung on a special file");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let output = import.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("1 created"), "{stdout}");
    for name in ["zero.txt", "fifo.txt"] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(name) && l.contains("not a regular file")),
            "{name}: {stderr}"
        );
    }
}
