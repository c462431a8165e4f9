//! Logs: JSON with `--log-format json`, and a request id on every line of a request,
//! echoed to the caller.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use newsstore::api::proto;
use newsstore::api::proto::article_service_client::ArticleServiceClient;

use super::support::{TestApp, temp_dir};

#[tokio::test]
async fn every_response_carries_its_request_id() {
    let app = TestApp::spawn().await;
    let mut request = tonic::Request::new(proto::GetArticleRequest {
        id: "nope".into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-request-id", "caller-chosen-1".parse().unwrap());
    let status = app.articles().get_article(request).await.unwrap_err();
    assert_eq!(
        status.metadata().get("x-request-id").unwrap(),
        "caller-chosen-1"
    );
    // Without one, the server makes one.
    let response = app
        .articles()
        .list_articles(proto::ListArticlesRequest::default())
        .await
        .unwrap();
    let made = response.metadata().get("x-request-id").unwrap();
    assert_eq!(made.len(), 36, "a UUID: {made:?}");
}

#[tokio::test]
async fn json_logs_carry_the_request_id_on_each_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = temp_dir();
    let mut server = Command::new(env!("CARGO_BIN_EXE_newsstore"))
        .args(["serve", "--no-seed", "--log-format", "json", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data.path())
        .env("RUST_LOG", "info,newsstore=debug")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut client = None;
    for _ in 0..100 {
        if let Ok(c) = ArticleServiceClient::connect(format!("http://127.0.0.1:{port}")).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut client = client.expect("the server starts");
    let mut request = tonic::Request::new(proto::GetArticleRequest {
        id: "nope".into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-request-id", "trace-me-42".parse().unwrap());
    client.get_article(request).await.unwrap_err();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill().unwrap();
    let stderr = server.stderr.take().unwrap();
    server.wait().unwrap();
    let lines: Vec<serde_json::Value> = BufReader::new(stderr)
        .lines()
        .map(|line| serde_json::from_str(&line.unwrap()).expect("every line is JSON"))
        .collect();
    let answered = lines
        .iter()
        .find(|l| l["message"] == "call answered")
        .expect("the call is logged");
    assert_eq!(answered["span"]["request_id"], "trace-me-42");
    assert_eq!(
        answered["span"]["method"],
        "/newsstore.v1.ArticleService/GetArticle"
    );
    assert_eq!(answered["grpc_status"], "5");
    assert!(
        answered.get("fields").is_none(),
        "fields are at the top level: {answered}"
    );
}
