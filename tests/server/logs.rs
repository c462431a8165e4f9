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
        .args([
            "serve",
            "--no-seed",
            "--log-format",
            "json",
            "--access-log",
            "--listen",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data.path())
        // The access log needs nothing else turned up; the request spans are kept so the
        // line also carries its span.
        .env("RUST_LOG", "warn,newsstore::api::request_span=info")
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
    assert_eq!(answered["target"], "newsstore::access", "{answered}");
    assert_eq!(answered["grpc_code"], "NotFound");
    assert_eq!(answered["request_id"], "trace-me-42");
    assert_eq!(answered["service"], "newsstore.v1.ArticleService");
    assert_eq!(answered["method"], "GetArticle");
    assert!(answered["elapsed_ms"].as_f64().is_some(), "{answered}");
    assert!(
        answered.get("fields").is_none(),
        "fields are at the top level: {answered}"
    );
}

/// Every change made through the API is on the audit trail (target `newsstore::audit`): who
/// (the token's name), what (method and ids), and which request; a refused or failed call
/// is not. The access log stays off unless asked for.
#[tokio::test]
async fn changes_leave_an_audit_trail_naming_the_token() {
    use newsstore::api::proto::entity_service_client::EntityServiceClient;
    let data = temp_dir();
    let mut server = super::process::Server::start_with(
        data.path(),
        &[
            "--log-format",
            "json",
            "--tokens",
            "cms:writer-token-0123456789:write,desk:editor-token-0123456789:editor,\
             ops:admin-token-0123456789:admin",
        ],
        |command| {
            command.env("RUST_LOG", "warn,newsstore::audit=info");
        },
    );
    let channel = server.connect().await;
    let call = |token: &'static str, id: &'static str| {
        let mut request = tonic::Request::new(());
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
            .metadata_mut()
            .insert("x-request-id", id.parse().unwrap());
        request.into_parts().0
    };
    let mut articles = ArticleServiceClient::new(channel.clone());
    let created = articles
        .create_article(tonic::Request::from_parts(
            call("writer-token-0123456789", "req-create"),
            Default::default(),
            super::support::create_request(
                "audited",
                "Merkel in Paris",
                "Angela Merkel visited Paris on Monday.",
            ),
        ))
        .await
        .unwrap()
        .into_inner()
        .article
        .unwrap();
    let person = created
        .entities
        .iter()
        .find(|e| e.name == "Angela Merkel")
        .expect("the person is found")
        .entity_id
        .clone();
    EntityServiceClient::new(channel.clone())
        .block_entity(tonic::Request::from_parts(
            call("editor-token-0123456789", "req-block"),
            Default::default(),
            proto::BlockEntityRequest {
                id: person.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    // Refused (the writer may not purge) and failed (no such article): not on the trail.
    for (token, id) in [
        ("writer-token-0123456789", "audited"),
        ("admin-token-0123456789", "missing"),
    ] {
        articles
            .purge_article(tonic::Request::from_parts(
                call(token, "req-refused"),
                Default::default(),
                proto::PurgeArticleRequest {
                    id: id.into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
    }
    articles
        .purge_article(tonic::Request::from_parts(
            call("admin-token-0123456789", "req-purge"),
            Default::default(),
            proto::PurgeArticleRequest {
                id: "audited".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    server.terminate().await;
    let (_, stderr) = server.exit(Duration::from_secs(5)).await;
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is JSON"))
        .collect();
    let audit: Vec<(String, String, String, String)> = lines
        .iter()
        .filter(|l| l["target"] == "newsstore::audit")
        .map(|l| {
            let field = |name: &str| l[name].as_str().unwrap_or_default().to_string();
            (
                field("token"),
                field("method"),
                field("request_id"),
                field("message"),
            )
        })
        .collect();
    let expected = [
        (
            "cms",
            "CreateArticle",
            "req-create",
            "cms CreateArticle article audited revision 1".to_string(),
        ),
        (
            "desk",
            "BlockEntity",
            "req-block",
            format!("desk BlockEntity entity {person} (1 articles updated)"),
        ),
        (
            "ops",
            "PurgeArticle",
            "req-purge",
            "ops PurgeArticle article audited (2 revisions removed)".to_string(),
        ),
    ];
    let expected: Vec<(String, String, String, String)> = expected
        .into_iter()
        .map(|(a, b, c, d)| (a.into(), b.into(), c.into(), d))
        .collect();
    assert_eq!(audit, expected, "{stderr}");
    assert!(
        !lines.iter().any(|l| l["target"] == "newsstore::access"),
        "the access log is off by default: {stderr}"
    );
}
