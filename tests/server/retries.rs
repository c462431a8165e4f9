//! Safe retries (AIP-155 request ids) and etag preconditions under concurrent writers.

use std::time::Duration;

use newsstore::api::proto::{self, Article, WatchChangesRequest};
use tonic::Code;

use super::support::{TestApp, reason, temp_dir};

fn create_request(request_id: &str, headline: &str) -> proto::CreateArticleRequest {
    proto::CreateArticleRequest {
        article: Some(Article {
            headline: headline.into(),
            body: "John Kerry met officials in Geneva.".into(),
            ..Default::default()
        }),
        request_id: request_id.into(),
        ..Default::default()
    }
}

/// The changes logged after `after`. Every acknowledged write is in the change log before
/// its answer, so the stream hands over all of them at once; a second without a further
/// event means the backlog is done. (The search index's `index_sequence` would not do: it
/// follows the log a refresh interval behind, more on a loaded machine.)
async fn changes_after(app: &TestApp, after: i64) -> Vec<i64> {
    let mut stream = app
        .changes()
        .watch_changes(WatchChangesRequest {
            after_sequence: after,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut sequences = Vec::new();
    while let Ok(event) = tokio::time::timeout(Duration::from_secs(1), stream.message()).await {
        let event = event
            .expect("the stream stays healthy")
            .expect("the stream stays open");
        sequences.push(event.sequence);
    }
    sequences
}

#[tokio::test]
async fn a_retried_request_returns_the_first_result_and_changes_nothing_twice() {
    let app = TestApp::spawn().await;
    app.create("kerry", "Kerry", "John Kerry met officials in Oslo.")
        .await;
    // A create with a server-generated id: the retry must not make a second article.
    let first = app
        .create_with(create_request("req-create-1", "Talks"))
        .await;
    let retry = app
        .create_with(create_request("req-create-1", "Talks"))
        .await;
    assert_eq!(retry.id, first.id);
    assert_eq!(retry.etag, first.etag);

    // An update with an etag: the retry is not refused by the etag its first attempt
    // made stale, and makes no second revision.
    let update = proto::UpdateArticleRequest {
        article: Some(Article {
            id: first.id.clone(),
            etag: first.etag.clone(),
            headline: "Talks resume".into(),
            ..Default::default()
        }),
        request_id: "req-update-1".into(),
        ..Default::default()
    };
    let updated = app.update_with(update.clone()).await;
    assert_eq!(updated.revision, 2);
    let again = app.update_with(update.clone()).await;
    assert_eq!(again.revision, 2);
    assert_eq!(again.etag, updated.etag);

    // The same id with a different request is refused, not answered with another result.
    let mut different = update.clone();
    different.article.as_mut().unwrap().headline = "Something else".into();
    let status = app.articles().update_article(different).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "REQUEST_ID_REUSED");

    // Across a restart.
    let data = app.stop().await;
    let app = TestApp::spawn_with(data, |_| {}).await;
    let after_restart = app
        .create_with(create_request("req-create-1", "Talks"))
        .await;
    assert_eq!(after_restart.id, first.id);
    assert_eq!(after_restart.revision, 1, "the first result, as it was");
    let again = app.update_with(update).await;
    assert_eq!(again.revision, 2);

    // Deletes and entity decisions too.
    let delete = proto::DeleteArticleRequest {
        id: first.id.clone(),
        etag: updated.etag.clone(),
        request_id: "req-delete-1".into(),
        ..Default::default()
    };
    app.articles().delete_article(delete.clone()).await.unwrap();
    let block = proto::BlockEntityRequest {
        id: "john-kerry".into(),
        request_id: "req-block-1".into(),
    };
    let blocked = app.entities().block_entity(block.clone()).await.unwrap();
    assert_eq!(blocked.get_ref().articles_updated, 1);
    let sequence = *changes_after(&app, 0)
        .await
        .last()
        .expect("changes were logged");
    app.articles().delete_article(delete).await.unwrap();
    let replayed = app.entities().block_entity(block).await.unwrap();
    assert_eq!(replayed.into_inner(), blocked.into_inner());
    // Nothing was written by the retries.
    assert_eq!(changes_after(&app, sequence).await, Vec::<i64>::new());

    let status = app
        .articles()
        .create_article(create_request("has spaces", "Talks"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_retried_batch_applies_only_what_the_first_attempt_did_not() {
    let app = TestApp::spawn().await;
    let batch = |ids: &[&str]| proto::BatchCreateArticlesRequest {
        requests: ids
            .iter()
            .map(|id| proto::CreateArticleRequest {
                article: Some(Article {
                    headline: format!("Story {id}"),
                    body: "Officials met in Geneva.".into(),
                    ..Default::default()
                }),
                article_id: (*id).into(),
                ..Default::default()
            })
            .collect(),
        request_id: "batch-1".into(),
        ..Default::default()
    };
    // "taken" exists, so the first attempt stores b1 and b2 and fails on it.
    app.create("taken", "Taken", "Officials met in Oslo.").await;
    let first = app
        .articles()
        .batch_create_articles(batch(&["b1", "taken", "b2"]))
        .await
        .unwrap()
        .into_inner();
    let outcome = |r: &proto::BatchCreateArticlesResponse| -> Vec<bool> {
        r.results
            .iter()
            .map(|item| {
                matches!(
                    item.outcome,
                    Some(proto::batch_create_articles_result::Outcome::Article(_))
                )
            })
            .collect()
    };
    assert_eq!(outcome(&first), [true, false, true]);
    // The retry returns the stored items' first results instead of ALREADY_EXISTS.
    let retry = app
        .articles()
        .batch_create_articles(batch(&["b1", "taken", "b2"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(outcome(&retry), [true, false, true]);
}

#[tokio::test]
async fn request_ids_expire_after_the_retention_window() {
    let app = TestApp::spawn_with(temp_dir(), |config| {
        config.retention.request_ids = Duration::from_millis(300);
        config.compact_every = Duration::from_millis(100);
    })
    .await;
    let request = proto::DeleteArticleRequest {
        id: "x".into(),
        request_id: "req-old".into(),
        ..Default::default()
    };
    app.create("x", "Talks", "Officials met in Geneva.").await;
    app.articles()
        .delete_article(request.clone())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Forgotten: the retry is a new request, and there is nothing left to delete.
    let status = app.articles().delete_article(request).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn etag_updates_from_many_concurrent_writers_lose_nothing() {
    let app = TestApp::spawn().await;
    app.create("counter", "Counter", "Officials met in Geneva.")
        .await;
    const WRITERS: usize = 8;
    const EACH: usize = 5;
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let client = app.articles();
        tasks.push(tokio::spawn(async move {
            let mut client = client;
            let mut aborted = 0;
            for step in 0..EACH {
                // Read, modify, write with the etag; on ABORTED read again and retry.
                loop {
                    let current = client
                        .get_article(proto::GetArticleRequest {
                            id: "counter".into(),
                            ..Default::default()
                        })
                        .await
                        .unwrap()
                        .into_inner()
                        .article
                        .unwrap();
                    let mut tags = current.tags.clone();
                    tags.push(format!("w{writer}-{step}"));
                    let result = client
                        .update_article(proto::UpdateArticleRequest {
                            article: Some(Article {
                                id: "counter".into(),
                                etag: current.etag,
                                tags,
                                ..Default::default()
                            }),
                            update_mask: Some(prost_types::FieldMask {
                                paths: vec!["tags".into()],
                            }),
                            ..Default::default()
                        })
                        .await;
                    match result {
                        Ok(_) => break,
                        Err(status) if status.code() == Code::Aborted => aborted += 1,
                        Err(status) => panic!("unexpected {status:?}"),
                    }
                }
            }
            aborted
        }));
    }
    let mut aborted = 0;
    for task in tasks {
        aborted += task.await.unwrap();
    }
    let last = app.get("counter").await.unwrap();
    // Every acknowledged update is in the final state: no lost update.
    assert_eq!(last.tags.len(), WRITERS * EACH, "{:?}", last.tags);
    assert_eq!(last.revision, (WRITERS * EACH + 1) as i64);
    assert!(aborted > 0, "the writers did contend");
}

#[tokio::test]
async fn of_many_concurrent_deletes_with_one_etag_exactly_one_wins() {
    let app = TestApp::spawn().await;
    let article = app
        .create("contested", "Talks", "Officials met in Geneva.")
        .await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut client = app.articles();
        let etag = article.etag.clone();
        tasks.push(tokio::spawn(async move {
            client
                .delete_article(proto::DeleteArticleRequest {
                    id: "contested".into(),
                    etag,
                    ..Default::default()
                })
                .await
                .map_err(|status| status.code())
        }));
    }
    let mut codes = Vec::new();
    for task in tasks {
        codes.push(task.await.unwrap().err());
    }
    assert_eq!(codes.iter().filter(|c| c.is_none()).count(), 1, "{codes:?}");
    // The others find it gone (or, if they read it first, stale).
    assert!(
        codes
            .iter()
            .flatten()
            .all(|c| matches!(c, Code::NotFound | Code::Aborted)),
        "{codes:?}"
    );
}
