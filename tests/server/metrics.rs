//! Prometheus metrics on their own port, in the gRPC ecosystem's names: calls started and
//! handled per method, type and code name, unary latency, calls in flight, process and build
//! figures, store figures, index lag and watchers. Every scrape is checked by a strict
//! text-format parser.

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

/// The body of a scrape, checked by a strict Prometheus text-format parser: every family
/// has a `# HELP`, none is named `*_created`.
fn parsed(response: &str) -> String {
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap_or_default()
        .to_string();
    let exposition = openmetrics_parser::prometheus::parse_prometheus(&body)
        .unwrap_or_else(|err| panic!("not valid Prometheus text format ({err:?}):\n{body}"));
    for (name, family) in &exposition.families {
        assert!(
            !family.help.trim().is_empty(),
            "{name} has no # HELP:\n{body}"
        );
        assert!(!name.ends_with("_created"), "{name}");
    }
    body
}

/// Line `name{labels} value` of `text` for a call to `service`/`method`, or None.
fn call_line<'t>(text: &'t str, name: &str, method: &str, rest: &str) -> Option<&'t str> {
    let (service, method) = method.split_once('/').unwrap();
    let prefix =
        format!("{name}{{grpc_service=\"newsstore.v1.{service}\",grpc_method=\"{method}\",{rest}");
    text.lines().find(|line| line.starts_with(&prefix))
}

fn value(line: &str) -> f64 {
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn metrics_follow_the_grpc_conventions_and_sample_the_store() {
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

    let response = scrape(&app, "/metrics").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let text = parsed(&response);
    let create = "ArticleService/CreateArticle";
    let started = call_line(
        &text,
        "grpc_server_started_total",
        create,
        "grpc_type=\"unary\"}",
    );
    assert!(started.is_some_and(|l| value(l) >= 1.0), "{text}");
    let handled = call_line(
        &text,
        "grpc_server_handled_total",
        create,
        "grpc_type=\"unary\",grpc_code=\"OK\"}",
    );
    assert!(handled.is_some_and(|l| value(l) >= 1.0), "{text}");
    let not_found = call_line(
        &text,
        "grpc_server_handled_total",
        "ArticleService/GetArticle",
        "grpc_type=\"unary\",grpc_code=\"NotFound\"}",
    );
    assert!(
        not_found.is_some(),
        "codes are named, not numbered:\n{text}"
    );
    assert!(
        call_line(
            &text,
            "grpc_server_handling_seconds_bucket",
            create,
            "grpc_type=\"unary\",le=\"0.005\"}"
        )
        .is_some(),
        "{text}"
    );
    // The open stream is in flight and started, and never in the unary latency histogram.
    let watch = "ChangeService/WatchChanges";
    assert!(
        call_line(
            &text,
            "grpc_server_started_total",
            watch,
            "grpc_type=\"server_stream\"}"
        )
        .is_some(),
        "{text}"
    );
    assert!(!text.contains(
        "grpc_server_handling_seconds_bucket{grpc_service=\"newsstore.v1.ChangeService\""
    ));
    let in_flight = text
        .lines()
        .find(|l| l.starts_with("newsstore_calls_in_flight{grpc_type=\"server_stream\"}"));
    assert!(in_flight.is_some_and(|l| value(l) >= 1.0), "{text}");
    assert!(text.contains("newsstore_watchers"), "{text}");
    // The process and the build.
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        let line = text.lines().find(|l| l.starts_with(&format!("{name} ")));
        assert!(line.is_some_and(|l| value(l) > 0.0), "{name} in:\n{text}");
    }
    assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
    let build = format!(
        "newsstore_build_info{{version=\"{}\"",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.contains(&build), "{text}");

    // Store figures are sampled every few seconds.
    let mut sampled = false;
    for _ in 0..80 {
        let text = parsed(&scrape(&app, "/metrics").await);
        if text.contains("newsstore_articles 1")
            && text.contains("newsstore_store_bytes")
            && text.contains("newsstore_index_lag_changes")
            && text.contains("newsstore_entity_ids_issued")
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
/// on is Canceled, which no server-error alert matches. Before, streams were counted as OK
/// when they started.
#[tokio::test]
async fn a_stream_counts_by_how_it_ended() {
    let app = TestApp::spawn_with(temp_dir(), |config| {
        config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    app.create("s1", "Talks", "Officials met in Geneva.").await;
    let cancelled = "grpc_server_handled_total{grpc_service=\"newsstore.v1.ChangeService\",grpc_method=\"WatchChanges\",grpc_type=\"server_stream\",grpc_code=\"Canceled\"}";
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
            "grpc_server_handled_total{{grpc_service=\"newsstore.v1.ArticleService\",grpc_method=\"ListArticleRevisions\",grpc_type=\"unary\",grpc_code=\"{code}\"}}"
        )
    };
    let text = scrape(&app, "/metrics").await;
    assert!(
        text.contains(&line("OK")),
        "missing {} in:\n{text}",
        line("OK")
    );
    assert!(
        !text.contains(&line("Canceled")),
        "counted as Canceled:\n{text}"
    );
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
        text.contains(
            "grpc_server_handled_total{grpc_service=\"unknown\",grpc_method=\"unknown\",grpc_type=\"unknown\",grpc_code=\"Unimplemented\"}"
        ),
        "{text}"
    );
}
