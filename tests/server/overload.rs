//! Past saturation the server sheds load with RESOURCE_EXHAUSTED instead of queueing,
//! keeps answering health checks, and recovers when the load stops; client deadlines are
//! honoured.

use std::time::Duration;

use newsstore::api::proto;
use tonic::Code;

use super::support::{TestApp, temp_dir};

fn batch(prefix: &str, n: usize) -> proto::BatchCreateArticlesRequest {
    proto::BatchCreateArticlesRequest {
        requests: (0..n)
            .map(|i| proto::CreateArticleRequest {
                article: Some(proto::Article {
                    headline: format!("Story {prefix} {i}"),
                    body: "John Kerry met Sergei Lavrov in Geneva to talk about Syria. ".repeat(20),
                    ..Default::default()
                }),
                article_id: format!("{prefix}-{i}"),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn past_saturation_calls_are_shed_and_health_stays_up() {
    let app = TestApp::spawn_with(temp_dir(), |config| {
        config.max_in_flight = 2;
    })
    .await;
    // Far more heavy calls at once than the server admits.
    let mut load = Vec::new();
    for c in 0..24 {
        let mut client = app.articles();
        load.push(tokio::spawn(async move {
            let status = client
                .batch_create_articles(batch(&format!("c{c}"), 40))
                .await
                .err()?;
            // Shed calls say why and when to retry.
            if status.code() == Code::ResourceExhausted {
                use tonic_types::StatusExt;
                let details = status.get_error_details();
                assert_eq!(
                    details.error_info().map(|i| i.reason.as_str()),
                    Some("OVERLOADED")
                );
                let retry = details.retry_info().and_then(|r| r.retry_delay);
                assert_eq!(retry, Some(Duration::from_millis(500)));
            }
            Some(status.code())
        }));
    }
    // Health checks keep answering meanwhile.
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
    for _ in 0..10 {
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            health.check(tonic_health::pb::HealthCheckRequest::default()),
        )
        .await
        .expect("health answers under load");
        answer.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut codes = Vec::new();
    for task in load {
        codes.push(task.await.unwrap());
    }
    let shed = codes
        .iter()
        .filter(|c| **c == Some(Code::ResourceExhausted))
        .count();
    let served = codes.iter().filter(|c| c.is_none()).count();
    assert!(shed > 0, "some calls are shed: {codes:?}");
    assert!(served > 0, "some calls are served: {codes:?}");
    assert_eq!(shed + served, codes.len(), "{codes:?}");
    // Load over: it serves again.
    app.create("after", "Calm", "Officials met in Geneva.")
        .await;
}

#[tokio::test]
async fn a_client_deadline_is_honoured_by_the_server() {
    let app = TestApp::spawn().await;
    // The deadline travels as the grpc-timeout header only (no client-side timer), so the
    // answer must come from the server giving up.
    let mut request = tonic::Request::new(batch("slow", 300));
    request
        .metadata_mut()
        .insert("grpc-timeout", "5m".parse().unwrap());
    let started = std::time::Instant::now();
    let status = app
        .articles()
        .batch_create_articles(request)
        .await
        .unwrap_err();
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    assert!(
        status.message().to_lowercase().contains("timeout"),
        "{status:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// Read calls take at most 1 MiB: two SearchArticles of 16 MiB of empty `read_mask` paths
/// each are refused (MESSAGE_TOO_LARGE) without the server's memory growing by hundreds of
/// megabytes (before: 49 → 1,050 MB); a mask over 32 paths is refused; a write of 1.1 MiB
/// still goes through under the documented 16 MiB limit.
#[tokio::test]
async fn read_calls_take_small_messages() {
    let data = temp_dir();
    let mut server = super::process::Server::start(data.path(), &["--max-body-bytes", "4194304"]);
    let channel = server.connect().await;
    let pid = server.pid();
    let mut articles = proto::article_service_client::ArticleServiceClient::new(channel)
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20);
    let before = rss(pid);
    let huge = proto::SearchArticlesRequest {
        query: "talks".into(),
        read_mask: Some(prost_types::FieldMask {
            paths: vec![String::new(); 8_000_000],
        }),
        ..Default::default()
    };
    for _ in 0..2 {
        let status = articles.search_articles(huge.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(super::support::reason(&status), "MESSAGE_TOO_LARGE");
    }
    let grown = rss(pid).saturating_sub(before);
    assert!(grown < 100 << 20, "the server grew by {} MiB", grown >> 20);
    let status = articles
        .search_articles(proto::SearchArticlesRequest {
            query: "talks".into(),
            read_mask: Some(prost_types::FieldMask {
                paths: vec!["headline".into(); 33],
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("read_mask"),
        "{}",
        status.message()
    );
    // Writes keep their limit.
    // Over the 1 MiB read limit; lower case, so extraction has little to find.
    let body = "and then it rained again. ".repeat(1100 * 1024 / 26);
    articles
        .create_article(proto::CreateArticleRequest {
            article: Some(proto::Article {
                headline: "Long".into(),
                body,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    server.terminate().await;
}
