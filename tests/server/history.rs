//! Revision history: every revision kept, readable, comparable; deletion as a tombstone;
//! purge removing an article everywhere.

use newsstore::api::proto::{self, Article, ChangeKind, TextEditOp};
use tonic::Code;

use super::support::{TestApp, reason, search};

async fn update(app: &TestApp, id: &str, body: &str) -> Article {
    app.update_with(proto::UpdateArticleRequest {
        article: Some(Article {
            id: id.into(),
            body: body.into(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
}

async fn revisions(app: &TestApp, id: &str) -> Result<Vec<proto::ArticleRevision>, tonic::Status> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .articles()
            .list_article_revisions(proto::ListArticleRevisionsRequest {
                article_id: id.into(),
                page_size: 2,
                page_token: token,
                view: proto::ArticleView::Full as i32,
            })
            .await?
            .into_inner();
        all.extend(page.revisions);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        token = page.next_page_token;
    }
}

async fn at(app: &TestApp, id: &str, revision: i64) -> Result<Article, tonic::Status> {
    Ok(app
        .articles()
        .get_article(proto::GetArticleRequest {
            id: id.into(),
            revision,
            ..Default::default()
        })
        .await?
        .into_inner()
        .article
        .unwrap())
}

#[tokio::test]
async fn every_revision_is_kept_readable_and_comparable() {
    let app = TestApp::spawn().await;
    app.create(
        "story",
        "Talks in Geneva",
        "John Kerry met officials in Geneva.\n\nThe talks went on late.",
    )
    .await;
    update(
        &app,
        "story",
        "John Kerry met officials in Geneva.\n\nThe talks ended at midnight.",
    )
    .await;
    let third = update(
        &app,
        "story",
        "John Kerry met officials in Geneva.\n\nThe talks ended at midnight.\n\nSergei Lavrov \
         joined them.",
    )
    .await;
    assert_eq!(third.revision, 3);

    // Newest first, over pages of two.
    let listed = revisions(&app, "story").await.unwrap();
    let numbers: Vec<i64> = listed.iter().map(|r| r.revision).collect();
    assert_eq!(numbers, [3, 2, 1]);
    assert!(listed.iter().all(|r| !r.deleted && r.time.is_some()));
    assert!(
        listed[2]
            .article
            .as_ref()
            .unwrap()
            .body
            .contains("went on late")
    );

    // GetArticle at a revision returns that state, etag and all.
    let first = at(&app, "story", 1).await.unwrap();
    assert_eq!(first.revision, 1);
    assert!(first.body.ends_with("The talks went on late."));
    assert_ne!(first.etag, third.etag);
    assert_eq!(at(&app, "story", 3).await.unwrap().body, third.body);

    // The changed fields between two revisions, with a paragraph diff of the body.
    let changes = app
        .articles()
        .compare_article_revisions(proto::CompareArticleRevisionsRequest {
            article_id: "story".into(),
            from_revision: 1,
            to_revision: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .changes;
    let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields[0], "body");
    assert!(fields.contains(&"entities"), "{fields:?}");
    assert!(!fields.contains(&"headline"));
    let edits: Vec<(i32, &str)> = changes[0]
        .edits
        .iter()
        .map(|e| (e.op, e.text.as_str()))
        .collect();
    assert_eq!(
        edits,
        [
            (
                TextEditOp::Equal as i32,
                "John Kerry met officials in Geneva."
            ),
            (TextEditOp::Delete as i32, "The talks went on late."),
            (TextEditOp::Insert as i32, "The talks ended at midnight."),
            (TextEditOp::Insert as i32, "Sergei Lavrov joined them."),
        ]
    );
    let entities = changes.iter().find(|c| c.field == "entities").unwrap();
    assert!(entities.after.contains("Sergei Lavrov") && !entities.before.contains("Lavrov"));

    // Bad revision numbers are refused clearly.
    let status = at(&app, "story", 9).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason(&status), "REVISION_NOT_FOUND");
    let status = at(&app, "story", -1).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = revisions(&app, "never-was").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn deletion_is_a_tombstone_and_a_new_article_continues_the_numbers() {
    let app = TestApp::spawn().await;
    app.create("gone", "Talks", "John Kerry met officials in Geneva.")
        .await;
    update(&app, "gone", "John Kerry met officials in Oslo.").await;
    app.articles()
        .delete_article(proto::DeleteArticleRequest {
            id: "gone".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(app.get("gone").await.unwrap_err().code(), Code::NotFound);

    let listed = revisions(&app, "gone").await.unwrap();
    let shape: Vec<(i64, bool)> = listed.iter().map(|r| (r.revision, r.deleted)).collect();
    assert_eq!(shape, [(3, true), (2, false), (1, false)]);
    assert!(listed[0].article.is_none());
    // Past revisions stay readable after the delete; the deletion itself is no article.
    assert!(at(&app, "gone", 2).await.unwrap().body.contains("Oslo"));
    let status = at(&app, "gone", 3).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().contains("deletion"),
        "{}",
        status.message()
    );

    // Comparing with "now" needs a current revision.
    let status = app
        .articles()
        .compare_article_revisions(proto::CompareArticleRevisionsRequest {
            article_id: "gone".into(),
            from_revision: 1,
            to_revision: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "ARTICLE_DELETED");

    // The id may be used again; its revisions carry on after the tombstone.
    let again = app
        .create("gone", "Back", "Sergei Lavrov spoke in Moscow.")
        .await;
    assert_eq!(again.revision, 4);
    assert_eq!(revisions(&app, "gone").await.unwrap().len(), 4);
}

#[tokio::test]
async fn purge_removes_an_article_everywhere() {
    let app = TestApp::spawn().await;
    let secret = "Zanzibarquux";
    // One batch, so both share a search-index segment: the purged article's old revision
    // stays in it, marked deleted, unless the purge rewrites the segment.
    let article = |id: &str, body: String| proto::CreateArticleRequest {
        article: Some(Article {
            headline: format!("Story {id}"),
            body,
            ..Default::default()
        }),
        article_id: id.into(),
        ..Default::default()
    };
    app.articles()
        .batch_create_articles(proto::BatchCreateArticlesRequest {
            requests: [
                article(
                    "takedown",
                    format!("John Kerry met {secret} officials in Geneva."),
                ),
                article("keep", "John Kerry met officials in Paris.".into()),
            ]
            .into_iter()
            .chain(
                (0..50)
                    .map(|i| article(&format!("filler-{i}"), format!("Markets rose on day {i}."))),
            )
            .collect(),
            wait_for_index: true,
            ..Default::default()
        })
        .await
        .unwrap();
    update(
        &app,
        "takedown",
        &format!("John Kerry met {secret} officials in Oslo."),
    )
    .await;
    app.search_until(search(secret), |r| r.total_size == 1)
        .await;

    let purged = app
        .articles()
        .purge_article(proto::PurgeArticleRequest {
            id: "takedown".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(purged.revisions_removed, 2);

    // Gone from reads, history, search and the entity index.
    assert_eq!(
        app.get("takedown").await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        revisions(&app, "takedown").await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        at(&app, "takedown", 1).await.unwrap_err().code(),
        Code::NotFound
    );
    let found = app
        .articles()
        .search_articles(search(secret))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.total_size, 0);
    let listed = app
        .articles()
        .list_articles(proto::ListArticlesRequest {
            filter: Some(proto::ArticleFilter {
                entity_ids: vec!["john-kerry".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = listed.articles.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["keep"]);
    assert_eq!(app.entity("john-kerry").await.unwrap().article_count, 1);

    // No segment of the search index still holds the article's terms, deleted or not (a
    // delete alone only marks documents as gone).
    let index = tantivy::Index::open_in_dir(app.data.path().join("search")).unwrap();
    let searcher = index.reader().unwrap().searcher();
    let schema = index.schema();

    for (field, text) in [("id", "takedown"), ("body", "zanzibarquux"), ("id", "keep")] {
        let field = schema.get_field(field).unwrap();
        let held = searcher.segment_readers().iter().any(|segment| {
            let terms = segment.inverted_index(field).unwrap();
            terms.terms().get(text.as_bytes()).unwrap().is_some()
        });
        assert_eq!(held, text == "keep", "the index holding {text:?}");
    }

    // The change feed records the purge by id only.
    let mut stream = app
        .changes()
        .watch_changes(proto::WatchChangesRequest::default())
        .await
        .unwrap()
        .into_inner();
    // 52 creates and an update come first.
    let mut last = None;
    for _ in 0..54 {
        last = stream.message().await.unwrap();
    }
    let last = last.unwrap();
    assert_eq!(
        (last.kind, last.article_id.as_str(), last.article.is_some()),
        (ChangeKind::ArticlePurged as i32, "takedown", false)
    );

    // Purging what is not there is NOT_FOUND.
    let status = app
        .articles()
        .purge_article(proto::PurgeArticleRequest {
            id: "takedown".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

/// Comparing two huge, entirely different bodies is answered within the diff's budget, off
/// the threads that answer other calls: health keeps answering while two such compares run.
/// (Before, a 60,000-paragraph compare took 18 s on the async threads.)
#[tokio::test]
async fn a_huge_compare_is_bounded_and_health_keeps_answering() {
    let app = TestApp::spawn().await;
    let body = |word: &str, step: usize| -> String {
        (0..20_000)
            .map(|i| format!("{word} {}.", i * step % 20_011))
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    app.create("long", "Long", &body("Before", 1)).await;
    update(&app, "long", &body("After", 7)).await;
    let compare = || {
        let mut articles = app.articles();
        async move {
            let started = std::time::Instant::now();
            let answer = articles
                .compare_article_revisions(proto::CompareArticleRevisionsRequest {
                    article_id: "long".into(),
                    from_revision: 1,
                    to_revision: 2,
                })
                .await
                .unwrap()
                .into_inner();
            (answer, started.elapsed())
        }
    };
    let (first, second) = (tokio::spawn(compare()), tokio::spawn(compare()));
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
    for _ in 0..5 {
        tokio::time::timeout(
            std::time::Duration::from_secs(2),
            health.check(tonic_health::pb::HealthCheckRequest::default()),
        )
        .await
        .expect("health answers while compares run")
        .unwrap();
    }
    for task in [first, second] {
        let (answer, took) = task.await.unwrap();
        // Bounded, with room for a slow machine; unbounded this was tens of seconds.
        assert!(took < std::time::Duration::from_secs(30), "{took:?}");
        let body = answer
            .changes
            .iter()
            .find(|c| c.field == "body")
            .expect("the body changed");
        let inserted = body
            .edits
            .iter()
            .filter(|e| e.op == TextEditOp::Insert as i32)
            .count();
        assert_eq!(inserted, 20_000, "every new paragraph is marked inserted");
    }
}
