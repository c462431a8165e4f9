//! Gaps in the error contract, each provoked against a real server process: what the
//! caller sent wrong gets the caller's code with a reason, and no answer grows with the
//! input.

use newsstore::api::proto::article_service_client::ArticleServiceClient;
use newsstore::api::proto::{self, Article};
use tonic::Code;
use tonic::transport::Channel;

use super::process::Server;
use super::support::{reason, temp_dir};

/// A message that shares GetArticleRequest's field numbers but not its types: field 1 as
/// raw bytes (so it can be invalid UTF-8) and field 2 as bytes where an enum belongs.
#[derive(Clone, PartialEq, prost::Message)]
struct RawGet {
    #[prost(bytes = "vec", tag = "1")]
    id: Vec<u8>,
    #[prost(bytes = "vec", optional, tag = "2")]
    view: Option<Vec<u8>>,
}

async fn raw_get(channel: &Channel, request: RawGet) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<RawGet, proto::GetArticleResponse>::default();
    let path = http::uri::PathAndQuery::from_static("/newsstore.v1.ArticleService/GetArticle");
    grpc.unary(tonic::Request::new(request), path, codec)
        .await
        .expect_err("a malformed request is refused")
}

/// Everything a status carries back, in bytes.
fn size_of(status: &tonic::Status) -> usize {
    status.message().len() + status.details().len()
}

fn article(headline: &str, body: &str) -> Article {
    Article {
        headline: headline.into(),
        body: body.into(),
        ..Article::default()
    }
}

#[tokio::test]
async fn a_request_that_does_not_decode_is_the_callers_fault() {
    let data = temp_dir();
    let mut server = Server::start(data.path(), &[]);
    let channel = server.connect().await;
    let cases = [
        RawGet {
            id: vec![b'a', 0xff, 0xfe, b'b'],
            view: None,
        },
        RawGet {
            id: b"a1".to_vec(),
            view: Some(b"not an enum".to_vec()),
        },
    ];
    for request in cases {
        let status = raw_get(&channel, request).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(reason(&status), "MALFORMED_MESSAGE");
        assert!(
            status.message().contains("not a valid message"),
            "{}",
            status.message()
        );
    }
    // Still serving.
    ArticleServiceClient::new(channel)
        .create_article(proto::CreateArticleRequest {
            article: Some(article("Talks", "Officials met in Geneva.")),
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_resource_exhausted() {
    let data = temp_dir();
    let mut server = Server::start(data.path(), &["--max-message-bytes", "65536"]);
    let mut client = ArticleServiceClient::new(server.connect().await);
    let status = client
        .create_article(proto::CreateArticleRequest {
            article: Some(article("Long", &"word ".repeat(30_000))),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(&status), "MESSAGE_TOO_LARGE");
    assert!(status.message().contains("65536"), "{}", status.message());
}

#[tokio::test]
async fn answers_never_echo_unbounded_input() {
    let data = temp_dir();
    let mut server = Server::start(data.path(), &[]);
    let mut client = ArticleServiceClient::new(server.connect().await);
    let long_id = "x".repeat(10_000);
    let status = client
        .get_article(proto::GetArticleRequest {
            id: long_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(size_of(&status) < 2048, "{} bytes back", size_of(&status));

    let created = client
        .create_article(proto::CreateArticleRequest {
            article: Some(article("Talks", "Officials met in Geneva.")),
            article_id: "a1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .article
        .unwrap();
    let mut change = created.clone();
    change.headline = "New talks".into();
    let status = client
        .update_article(proto::UpdateArticleRequest {
            article: Some(change.clone()),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["p".repeat(100_000)],
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(size_of(&status) < 2048, "{} bytes back", size_of(&status));
    assert!(status.message().contains("pppp"), "{}", status.message());

    change.etag = "e".repeat(50_000);
    let status = client
        .update_article(proto::UpdateArticleRequest {
            article: Some(change),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(size_of(&status) < 2048, "{} bytes back", size_of(&status));
}

#[tokio::test]
async fn a_headline_or_body_of_invisible_characters_is_refused() {
    let data = temp_dir();
    let mut server = Server::start(data.path(), &[]);
    let mut client = ArticleServiceClient::new(server.connect().await);
    for (headline, body, field) in [
        (
            "\u{200B}\u{200B}\u{FEFF}",
            "Officials met.",
            "article.headline",
        ),
        ("Talks", "\u{200B} \u{2060}\u{00AD}\n", "article.body"),
    ] {
        let status = client
            .create_article(proto::CreateArticleRequest {
                article: Some(article(headline, body)),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(field), "{}", status.message());
        assert!(status.message().contains("visible"), "{}", status.message());
    }
}

#[tokio::test]
async fn a_batch_reusing_another_batchs_request_id_fails_whole() {
    let data = temp_dir();
    let mut server = Server::start(data.path(), &[]);
    let mut client = ArticleServiceClient::new(server.connect().await);
    let batch = |ids: &[&str]| proto::BatchCreateArticlesRequest {
        requests: ids
            .iter()
            .map(|id| proto::CreateArticleRequest {
                article: Some(article("Talks", &format!("Officials met about {id}."))),
                article_id: (*id).into(),
                ..Default::default()
            })
            .collect(),
        request_id: "batch-7".into(),
        ..Default::default()
    };
    client.batch_create_articles(batch(&["b1"])).await.unwrap();
    // The same batch again is a retry: answered as before.
    client.batch_create_articles(batch(&["b1"])).await.unwrap();
    let status = client
        .batch_create_articles(batch(&["b2", "b3"]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(reason(&status), "REQUEST_ID_REUSED");
    for id in ["b2", "b3"] {
        let read = client
            .get_article(proto::GetArticleRequest {
                id: id.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(
            read.code(),
            Code::NotFound,
            "nothing of the refused batch is written"
        );
    }
}
