//! Prometheus metrics on their own port: calls per method and code, latency histograms,
//! store figures, index lag and watchers.

use std::time::Duration;

use newsstore::api::proto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::{TestApp, temp_dir};

async fn scrape(app: &TestApp, path: &str) -> String {
    let mut socket = tokio::net::TcpStream::connect(app.metrics.unwrap())
        .await
        .unwrap();
    socket
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut text = String::new();
    socket.read_to_string(&mut text).await.unwrap();
    text
}

#[tokio::test]
async fn metrics_count_calls_and_sample_the_store() {
    let app = TestApp::spawn_with(temp_dir(), |config| {
        config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    app.create("m1", "Talks", "Officials met in Geneva.").await;
    let _ = app.get("missing").await;
    let _stream = app
        .changes()
        .watch_changes(proto::WatchChangesRequest {
            from_now: true,
            ..Default::default()
        })
        .await
        .unwrap();

    let text = scrape(&app, "/metrics").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for line in [
        "newsstore_rpc_requests_total{method=\"/newsstore.v1.ArticleService/CreateArticle\",code=\"0\"}",
        "newsstore_rpc_errors_total{method=\"/newsstore.v1.ArticleService/GetArticle\",code=\"5\"}",
        "newsstore_rpc_duration_seconds_bucket{method=\"/newsstore.v1.ArticleService/CreateArticle\",le=\"0.005\"}",
        "newsstore_watchers",
    ] {
        assert!(text.contains(line), "missing {line} in:\n{text}");
    }
    // Store figures are sampled every few seconds.
    let mut sampled = false;
    for _ in 0..80 {
        let text = scrape(&app, "/metrics").await;
        if text.contains("newsstore_articles 1")
            && text.contains("newsstore_store_bytes")
            && text.contains("newsstore_index_lag_changes")
        {
            sampled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sampled, "store figures appear");
    assert!(scrape(&app, "/other").await.starts_with("HTTP/1.1 404"));
}

/// A streaming call is counted when it ends, by its final code: a stream the caller hangs up
/// on is CANCELLED (code 1). Before, streams were counted as OK when they started.
#[tokio::test]
async fn a_stream_counts_by_how_it_ended() {
    let app = TestApp::spawn_with(temp_dir(), |config| {
        config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    app.create("s1", "Talks", "Officials met in Geneva.").await;
    let cancelled = "newsstore_rpc_requests_total{method=\"/newsstore.v1.ChangeService/WatchChanges\",code=\"1\"}";
    let mut stream = app
        .changes()
        .watch_changes(proto::WatchChangesRequest {
            after_sequence: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    drop(stream);
    let mut counted = false;
    for _ in 0..50 {
        if scrape(&app, "/metrics").await.contains(cancelled) {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(counted, "the hung-up stream is counted as {cancelled}");
}

/// gRPC-Web callers are counted by their real code too: the trailers that tonic-web turns
/// into a body frame are read before that translation, so a successful call is OK, not
/// CANCELLED.
#[tokio::test]
async fn grpc_web_calls_count_by_their_code() {
    use super::grpc_web::{grpc_web_call, http};
    let app = TestApp::spawn_with(temp_dir(), |config| {
        config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        config.cors_origins = vec!["https://cms.example.com".into()];
    })
    .await;
    app.create("w1", "Talks", "Officials met in Geneva.").await;
    let request = grpc_web_call(
        &app,
        "newsstore.v1.ArticleService/ListArticleRevisions",
        &proto::ListArticleRevisionsRequest {
            article_id: "w1".into(),
            ..Default::default()
        },
    );
    let (status, _, _) = http(&app, request).await;
    assert!(status.contains("200"), "{status}");
    let line = |code: &str| {
        format!(
            "newsstore_rpc_requests_total{{method=\"/newsstore.v1.ArticleService/ListArticleRevisions\",code=\"{code}\"}}"
        )
    };
    let text = scrape(&app, "/metrics").await;
    assert!(
        text.contains(&line("0")),
        "missing {} in:\n{text}",
        line("0")
    );
    assert!(!text.contains(&line("1")), "counted as CANCELLED:\n{text}");
}

/// Made-up paths all count under one label, so callers cannot grow the metrics.
#[tokio::test]
async fn unknown_methods_share_one_label() {
    let app = TestApp::spawn_with(temp_dir(), |config| {
        config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    for i in 0..30 {
        let mut grpc = tonic::client::Grpc::new(app.channel.clone());
        grpc.ready().await.unwrap();
        let codec = tonic_prost::ProstCodec::<proto::GetArticleRequest, proto::Article>::default();
        let path: http::uri::PathAndQuery =
            format!("/made.up.Service{i}/Method{i}").parse().unwrap();
        let answer = grpc
            .unary(
                tonic::Request::new(proto::GetArticleRequest::default()),
                path,
                codec,
            )
            .await;
        assert_eq!(answer.unwrap_err().code(), tonic::Code::Unimplemented);
    }
    let text = scrape(&app, "/metrics").await;
    assert!(
        !text.contains("made.up"),
        "a made-up path became a series:\n{text}"
    );
    assert!(
        text.contains("newsstore_rpc_requests_total{method=\"unknown\",code=\"12\"}"),
        "{text}"
    );
}
