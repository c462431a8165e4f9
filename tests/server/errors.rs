//! Bad input gets the right code, a stable reason and a message a person can act on; the
//! server stays up.

use newsstore::api::proto::{self, Article, ArticleFilter};
use prost_types::Timestamp;
use tonic::Code;
use tonic_types::StatusExt;

use super::support::{TestApp, reason};

fn create(article: Article, id: &str) -> proto::CreateArticleRequest {
    proto::CreateArticleRequest {
        article: Some(article),
        article_id: id.into(),
        ..Default::default()
    }
}

fn valid() -> Article {
    Article {
        headline: "Headline".into(),
        body: "Body text.".into(),
        ..Article::default()
    }
}

#[tokio::test]
async fn create_refuses_bad_articles_with_field_violations() {
    let app = TestApp::spawn_with(super::support::temp_dir(), |config| {
        config.limits.max_body_bytes = 1000;
    })
    .await;
    let cases: Vec<(proto::CreateArticleRequest, &str, &str)> = vec![
        (
            proto::CreateArticleRequest {
                article: None,
                article_id: String::new(),
                ..Default::default()
            },
            "REQUIRED_FIELD_MISSING",
            "article",
        ),
        (
            create(
                Article {
                    headline: String::new(),
                    ..valid()
                },
                "",
            ),
            "REQUIRED_FIELD_MISSING",
            "article.headline",
        ),
        (
            create(
                Article {
                    body: " \n ".into(),
                    ..valid()
                },
                "",
            ),
            "REQUIRED_FIELD_MISSING",
            "article.body",
        ),
        (
            create(
                Article {
                    body: "x".repeat(1001),
                    ..valid()
                },
                "",
            ),
            "FIELD_TOO_LARGE",
            "article.body",
        ),
        (
            create(
                Article {
                    headline: "h".repeat(1001),
                    ..valid()
                },
                "",
            ),
            "FIELD_TOO_LARGE",
            "article.headline",
        ),
        (
            create(valid(), "Not Valid!"),
            "INVALID_FIELD_VALUE",
            "article_id",
        ),
        (
            create(
                Article {
                    language: "english".into(),
                    ..valid()
                },
                "",
            ),
            "INVALID_FIELD_VALUE",
            "article.language",
        ),
        (
            create(
                Article {
                    published_time: Some(Timestamp {
                        seconds: 0,
                        nanos: -5,
                    }),
                    ..valid()
                },
                "",
            ),
            "VALUE_OUT_OF_RANGE",
            "article.published_time",
        ),
        (
            create(
                Article {
                    entity_tags: vec![proto::EntityTag {
                        name: "Acme".into(),
                        kind: 42,
                        entity_id: String::new(),
                    }],
                    ..valid()
                },
                "",
            ),
            "INVALID_FIELD_VALUE",
            "article.entity_tags.kind",
        ),
        (
            create(
                Article {
                    entity_tags: vec![proto::EntityTag {
                        name: "Acme".into(),
                        kind: 0,
                        entity_id: String::new(),
                    }],
                    ..valid()
                },
                "",
            ),
            "REQUIRED_FIELD_MISSING",
            "article.entity_tags",
        ),
    ];
    for (request, expected_reason, field) in cases {
        let err = app.articles().create_article(request).await.unwrap_err();
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{field}: {}",
            err.message()
        );
        assert_eq!(reason(&err), expected_reason, "{field}: {}", err.message());
        let details = err.get_error_details();
        let violation = &details
            .bad_request()
            .expect("a BadRequest detail")
            .field_violations[0];
        assert_eq!(violation.field, field);
        assert!(!err.message().is_empty());
    }
}

#[tokio::test]
async fn list_refuses_bad_pages_and_filters() {
    let app = TestApp::spawn().await;
    let list = |request: proto::ListArticlesRequest| {
        let mut client = app.articles();
        async move { client.list_articles(request).await.unwrap_err() }
    };
    let err = list(proto::ListArticlesRequest {
        page_size: -1,
        ..Default::default()
    })
    .await;
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::InvalidArgument, "VALUE_OUT_OF_RANGE")
    );
    let err = list(proto::ListArticlesRequest {
        page_size: 1001,
        ..Default::default()
    })
    .await;
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("1000"), "{}", err.message());
    for token in ["garbage!", "AAAAAAAAAAAAAAAAAAAAAAAA", "AQE"] {
        let err = list(proto::ListArticlesRequest {
            page_token: token.into(),
            ..Default::default()
        })
        .await;
        assert_eq!(
            (err.code(), reason(&err).as_str()),
            (Code::InvalidArgument, "INVALID_PAGE_TOKEN"),
            "{token}"
        );
    }
    let err = list(proto::ListArticlesRequest {
        filter: Some(ArticleFilter {
            published_start_time: Some(Timestamp {
                seconds: 10,
                nanos: 0,
            }),
            published_end_time: Some(Timestamp {
                seconds: 5,
                nanos: 0,
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = list(proto::ListArticlesRequest {
        view: 7,
        ..Default::default()
    })
    .await;
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn oversized_messages_are_refused_and_the_server_stays_up() {
    let app = TestApp::spawn_with(super::support::temp_dir(), |config| {
        config.max_message_bytes = 64 * 1024;
    })
    .await;
    let err = app
        .articles()
        .create_article(create(
            Article {
                body: "word ".repeat(40_000),
                ..valid()
            },
            "",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // Still serving.
    app.create("after", "Still here", "Yes.").await;
}

#[tokio::test]
async fn batches_over_the_limit_are_refused_whole() {
    let app = TestApp::spawn_with(super::support::temp_dir(), |config| {
        config.limits.max_batch = 2;
    })
    .await;
    let err = app
        .articles()
        .batch_create_articles(proto::BatchCreateArticlesRequest {
            requests: vec![
                create(valid(), ""),
                create(valid(), ""),
                create(valid(), ""),
            ],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("at most 2"), "{}", err.message());
    let err = app
        .articles()
        .batch_create_articles(proto::BatchCreateArticlesRequest {
            requests: vec![],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn entity_requests_refuse_bad_arguments() {
    let app = TestApp::spawn().await;
    let mut entities = app.entities();
    let err = entities
        .list_entities(proto::ListEntitiesRequest {
            kind: 99,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::InvalidArgument, "INVALID_FIELD_VALUE")
    );
    let err = entities
        .list_entities(proto::ListEntitiesRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "INVALID_PAGE_TOKEN");
    let err = entities
        .list_entities(proto::ListEntitiesRequest {
            name_prefix: "!!!".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("letter or digit"),
        "{}",
        err.message()
    );
    let err = entities
        .list_related_entities(proto::ListRelatedEntitiesRequest {
            id: "x".into(),
            page_size: 5000,
            kind: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "VALUE_OUT_OF_RANGE");
    let err = entities
        .list_related_entities(proto::ListRelatedEntitiesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "REQUIRED_FIELD_MISSING");
    // A token from one filter does not fit another.
    app.create("a", "Talks", "Officials met in Geneva and Paris and Rome.")
        .await;
    let first = entities
        .list_entities(proto::ListEntitiesRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!first.next_page_token.is_empty());
    let err = entities
        .list_entities(proto::ListEntitiesRequest {
            page_size: 1,
            page_token: first.next_page_token,
            kind: proto::EntityKind::Person as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "INVALID_PAGE_TOKEN");
}

#[tokio::test]
async fn get_and_delete_refuse_empty_ids() {
    let app = TestApp::spawn().await;
    let err = app
        .articles()
        .get_article(proto::GetArticleRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::InvalidArgument, "REQUIRED_FIELD_MISSING")
    );
    let err = app
        .articles()
        .delete_article(proto::DeleteArticleRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = app
        .articles()
        .update_article(proto::UpdateArticleRequest {
            article: Some(Article {
                headline: "No id".into(),
                ..Article::default()
            }),
            update_mask: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = app
        .articles()
        .update_article(proto::UpdateArticleRequest {
            article: Some(Article {
                id: "missing".into(),
                headline: "New".into(),
                ..Article::default()
            }),
            update_mask: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::NotFound, "ARTICLE_NOT_FOUND")
    );
}
