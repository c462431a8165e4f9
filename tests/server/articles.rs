//! ArticleService: create, get, update, delete, list and batch create.

use newsstore::api::proto::{self, Article, ArticleFilter, ArticleView};
use prost_types::{FieldMask, Timestamp};
use tonic::Code;

use super::support::{TestApp, reason};

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

fn article(headline: &str, body: &str) -> Article {
    Article {
        headline: headline.into(),
        body: body.into(),
        ..Article::default()
    }
}

const BODY: &str = "Hostess cupcakes are back on shelves.\n\n\
                    Chief executive Jane Doe said sales in Chicago doubled.\n\n\
                    \"We are thrilled,\" Doe said.";

#[tokio::test]
async fn create_then_get_returns_every_derived_field() {
    let app = TestApp::spawn().await;
    let mut input = article("Cupcakes return", BODY);
    input.byline = "A Reporter".into();
    input.source = "Reuters".into();
    input.language = "en".into();
    input.published_time = at(1_472_169_600);
    input.tags = vec!["business".into(), "food".into()];
    let created = app
        .articles()
        .create_article(proto::CreateArticleRequest {
            article: Some(input),
            article_id: "cupcakes-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .article
        .unwrap();

    assert_eq!(created.id, "cupcakes-1");
    assert_eq!(created.revision, 1);
    assert_eq!(created.lead, "Hostess cupcakes are back on shelves.");
    assert_eq!(created.paragraphs.len(), 3);
    assert_eq!(created.word_count, 20);
    assert_eq!(created.content_hash.len(), 64);
    assert!(!created.etag.is_empty());
    assert!(created.create_time.is_some() && created.update_time.is_some());
    assert_eq!(created.published_time, at(1_472_169_600));
    let doe = created
        .entities
        .iter()
        .find(|e| e.name == "Jane Doe")
        .expect("Jane Doe extracted");
    assert_eq!(doe.kind, proto::EntityKind::Person as i32);
    assert_eq!(doe.count, 2);
    // Offsets are code points into the body.
    let span = doe.spans[0];
    let chars: Vec<char> = BODY.chars().collect();
    let text: String = chars[span.start as usize..span.end as usize]
        .iter()
        .collect();
    assert_eq!(text, "Jane Doe");
    assert!(created.entities.iter().any(|e| e.name == "Chicago"));
    assert_eq!(created.quotes.len(), 1);
    assert_eq!(created.quotes[0].text, "We are thrilled");
    assert_eq!(created.quotes[0].speaker_name, "Jane Doe");

    let fetched = app.get("cupcakes-1").await.unwrap();
    assert_eq!(fetched, created);

    let basic = app
        .articles()
        .get_article(proto::GetArticleRequest {
            id: "cupcakes-1".into(),
            view: ArticleView::Basic as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .article
        .unwrap();
    assert!(basic.body.is_empty() && basic.paragraphs.is_empty());
    assert_eq!(basic.headline, "Cupcakes return");
    // BASIC keeps who is mentioned and drops where and how.
    assert!(!created.entities.is_empty());
    assert_eq!(basic.entities.len(), created.entities.len());
    assert!(
        basic
            .entities
            .iter()
            .all(|e| e.spans.is_empty() && e.surface_forms.is_empty() && e.count > 0)
    );
}

#[tokio::test]
async fn ids_are_generated_and_unique_ids_are_enforced() {
    let app = TestApp::spawn().await;
    let generated = app.create("", "One", "Body one.").await;
    assert_eq!(generated.id.len(), 36, "a UUID: {}", generated.id);
    app.create("taken", "Two", "Body two.").await;
    let err = app
        .articles()
        .create_article(proto::CreateArticleRequest {
            article: Some(article("Three", "Body three.")),
            article_id: "taken".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(reason(&err), "ARTICLE_ALREADY_EXISTS");
}

#[tokio::test]
async fn update_applies_the_mask_and_refuses_stale_etags() {
    let app = TestApp::spawn().await;
    let original = app
        .create("story", "Old headline", "Old body about Geneva.")
        .await;

    let mut change = Article {
        id: "story".into(),
        headline: "New headline".into(),
        body: "ignored because the mask does not name it".into(),
        etag: original.etag.clone(),
        ..Article::default()
    };
    let updated = app
        .articles()
        .update_article(proto::UpdateArticleRequest {
            article: Some(change.clone()),
            update_mask: Some(FieldMask {
                paths: vec!["headline".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .article
        .unwrap();
    assert_eq!(updated.headline, "New headline");
    assert_eq!(updated.body, "Old body about Geneva.");
    assert_eq!(updated.revision, 2);
    assert_ne!(updated.etag, original.etag);
    assert_eq!(updated.create_time, original.create_time);

    // The first etag is now stale: refused, never silently applied.
    change.headline = "Lost update".into();
    let err = app
        .articles()
        .update_article(proto::UpdateArticleRequest {
            article: Some(change),
            update_mask: Some(FieldMask {
                paths: vec!["headline".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(reason(&err), "ETAG_MISMATCH");
    let current = app.get("story").await.unwrap();
    assert_eq!(current.headline, "New headline");

    // Without a mask, the fields set in the request change; the body re-extracts.
    let rewritten = app
        .articles()
        .update_article(proto::UpdateArticleRequest {
            article: Some(Article {
                id: "story".into(),
                body: "Now about Moscow.".into(),
                ..Article::default()
            }),
            update_mask: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .article
        .unwrap();
    assert_eq!(rewritten.revision, 3);
    assert_eq!(rewritten.headline, "New headline");
    let names: Vec<&str> = rewritten.entities.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["Moscow"]);

    // An update that changes nothing keeps the revision.
    let same = app
        .articles()
        .update_article(proto::UpdateArticleRequest {
            article: Some(Article {
                id: "story".into(),
                body: "Now about Moscow.".into(),
                ..Article::default()
            }),
            update_mask: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .article
        .unwrap();
    assert_eq!(same.revision, 3);
}

#[tokio::test]
async fn update_mask_errors_name_the_path() {
    let app = TestApp::spawn().await;
    app.create("story", "Headline", "Body.").await;
    for (path, fragment) in [("colour", "not a field"), ("entities", "output only")] {
        let err = app
            .articles()
            .update_article(proto::UpdateArticleRequest {
                article: Some(Article {
                    id: "story".into(),
                    ..Article::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec![path.into()],
                }),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{path}");
        assert_eq!(reason(&err), "INVALID_UPDATE_MASK");
        assert!(err.message().contains(fragment), "{}", err.message());
    }
    // Clearing a required field through the mask is refused.
    let err = app
        .articles()
        .update_article(proto::UpdateArticleRequest {
            article: Some(Article {
                id: "story".into(),
                ..Article::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["body".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(reason(&err), "REQUIRED_FIELD_MISSING");
}

#[tokio::test]
async fn delete_removes_and_honours_etags() {
    let app = TestApp::spawn().await;
    let created = app.create("gone", "Headline", "Body text.").await;
    let err = app
        .articles()
        .delete_article(proto::DeleteArticleRequest {
            id: "gone".into(),
            etag: "\"99-deadbeef\"".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    app.articles()
        .delete_article(proto::DeleteArticleRequest {
            id: "gone".into(),
            etag: created.etag,
            ..Default::default()
        })
        .await
        .unwrap();
    let err = app.get("gone").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(reason(&err), "ARTICLE_NOT_FOUND");
    let err = app
        .articles()
        .delete_article(proto::DeleteArticleRequest {
            id: "gone".into(),
            etag: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn list_pages_newest_first_and_filters() {
    let app = TestApp::spawn().await;
    let mut client = app.articles();
    for i in 0..7i64 {
        let mut input = article(
            &format!("Story {i}"),
            if i % 2 == 0 {
                "Officials met in Geneva on Monday."
            } else {
                "Officials met in Moscow on Monday."
            },
        );
        input.published_time = at(1_600_000_000 + i * 86_400);
        input.source = if i < 4 {
            "Reuters".into()
        } else {
            "AFP".into()
        };
        client
            .create_article(proto::CreateArticleRequest {
                article: Some(input),
                article_id: format!("story-{i}"),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    // Pages of three, newest first, no gaps, no repeats.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_articles(proto::ListArticlesRequest {
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.articles.len() <= 3);
        seen.extend(page.articles.into_iter().map(|a| a.id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    let expected: Vec<String> = (0..7).rev().map(|i| format!("story-{i}")).collect();
    assert_eq!(seen, expected);

    let list = |filter: ArticleFilter| {
        let mut client = app.articles();
        async move {
            client
                .list_articles(proto::ListArticlesRequest {
                    filter: Some(filter),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .articles
                .into_iter()
                .map(|a| a.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(ArticleFilter {
            sources: vec!["reuters".into()],
            ..Default::default()
        })
        .await,
        ["story-3", "story-2", "story-1", "story-0"]
    );
    assert_eq!(
        list(ArticleFilter {
            sources: vec!["AFP".into(), "Reuters".into()],
            published_start_time: at(1_600_000_000 + 2 * 86_400),
            published_end_time: at(1_600_000_000 + 5 * 86_400),
            ..Default::default()
        })
        .await,
        ["story-4", "story-3", "story-2"]
    );
    assert_eq!(
        list(ArticleFilter {
            entity_ids: vec!["geneva".into()],
            ..Default::default()
        })
        .await,
        ["story-6", "story-4", "story-2", "story-0"]
    );
    assert_eq!(
        list(ArticleFilter {
            entity_ids: vec!["geneva".into()],
            sources: vec!["afp".into()],
            ..Default::default()
        })
        .await,
        ["story-6", "story-4"]
    );
    assert!(
        list(ArticleFilter {
            entity_ids: vec!["no-such-entity".into()],
            ..Default::default()
        })
        .await
        .is_empty()
    );

    // A token only fits the request it came from.
    let first = client
        .list_articles(proto::ListArticlesRequest {
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let err = client
        .list_articles(proto::ListArticlesRequest {
            page_size: 2,
            page_token: first.next_page_token,
            filter: Some(ArticleFilter {
                sources: vec!["afp".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(reason(&err), "INVALID_PAGE_TOKEN");
}

#[tokio::test]
async fn batch_create_reports_each_item() {
    let app = TestApp::spawn().await;
    app.create("exists", "Already here", "Body.").await;
    let item = |id: &str, headline: &str| proto::CreateArticleRequest {
        article: Some(article(headline, "A body about Paris.")),
        article_id: id.into(),
        ..Default::default()
    };
    let response = app
        .articles()
        .batch_create_articles(proto::BatchCreateArticlesRequest {
            requests: vec![
                item("b-1", "First"),
                item("b-2", ""),
                item("exists", "Clash"),
                item("Bad Id", "Bad"),
                item("b-1", "Duplicate in batch"),
                item("b-3", "Third"),
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    use proto::batch_create_articles_result::Outcome;
    let outcomes: Vec<Result<String, (i32, String)>> = response
        .results
        .into_iter()
        .map(|r| match r.outcome.unwrap() {
            Outcome::Article(a) => Ok(a.id),
            Outcome::Error(e) => Err((e.code, e.reason)),
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            Ok("b-1".to_string()),
            Err((
                Code::InvalidArgument as i32,
                "REQUIRED_FIELD_MISSING".into()
            )),
            Err((Code::AlreadyExists as i32, "ARTICLE_ALREADY_EXISTS".into())),
            Err((Code::InvalidArgument as i32, "INVALID_FIELD_VALUE".into())),
            Err((Code::AlreadyExists as i32, "ARTICLE_ALREADY_EXISTS".into())),
            Ok("b-3".to_string()),
        ]
    );
    let paris = app.entity("paris").await.unwrap();
    assert_eq!(paris.article_count, 2);
}

/// A loader can ask for the BASIC view of what it created: the same outcome, ids, etags and
/// entities, without its bodies sent back. FULL stays the default.
#[tokio::test]
async fn batch_create_returns_the_view_asked_for() {
    let app = TestApp::spawn().await;
    let batch = |ids: [&str; 2], view: i32| proto::BatchCreateArticlesRequest {
        requests: ids
            .iter()
            .map(|id| proto::CreateArticleRequest {
                article: Some(article("Paris talks", "Officials met in Paris on Monday.")),
                article_id: (*id).into(),
                ..Default::default()
            })
            .collect(),
        view,
        ..Default::default()
    };
    let created = |response: proto::BatchCreateArticlesResponse| -> Vec<Article> {
        use proto::batch_create_articles_result::Outcome;
        response
            .results
            .into_iter()
            .map(|r| match r.outcome.unwrap() {
                Outcome::Article(a) => a,
                Outcome::Error(e) => panic!("{e:?}"),
            })
            .collect()
    };
    let basic = app
        .articles()
        .batch_create_articles(batch(["v-1", "v-2"], proto::ArticleView::Basic as i32))
        .await
        .unwrap()
        .into_inner();
    for article in created(basic) {
        assert!(article.body.is_empty() && article.paragraphs.is_empty());
        assert!(!article.etag.is_empty());
        assert!(article.entities.iter().any(|e| e.entity_id == "paris"));
    }
    let full = app
        .articles()
        .batch_create_articles(batch(["v-3", "v-4"], 0))
        .await
        .unwrap()
        .into_inner();
    for article in created(full) {
        assert_eq!(article.body, "Officials met in Paris on Monday.");
    }
    // A retry may ask for another view: the view is not part of what the request id stands
    // for, so the first result comes back instead of REQUEST_ID_REUSED.
    let mut answers = Vec::new();
    for view in [0, proto::ArticleView::Basic as i32] {
        let mut request = batch(["v-7", "v-8"], view);
        request.request_id = "batch-view-retry".into();
        let response = app.articles().batch_create_articles(request).await;
        answers.push(created(response.unwrap().into_inner()));
    }
    let (first, retried) = (&answers[0], &answers[1]);
    assert_eq!(
        retried.iter().map(|a| &a.etag).collect::<Vec<_>>(),
        first.iter().map(|a| &a.etag).collect::<Vec<_>>()
    );
    assert!(retried.iter().all(|a| a.body.is_empty()));
    let err = app
        .articles()
        .batch_create_articles(batch(["v-5", "v-6"], 42))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("ArticleView"), "{}", err.message());
    // Nothing of the refused call was stored.
    let missing = app
        .articles()
        .get_article(proto::GetArticleRequest {
            id: "v-5".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn articles_about_an_entity_list_most_salient_first() {
    let app = TestApp::spawn().await;
    let publish = |id: &'static str, headline: &'static str, body: &'static str, day: i64| {
        let app = &app;
        async move {
            app.articles()
                .create_article(proto::CreateArticleRequest {
                    article: Some(Article {
                        headline: headline.into(),
                        body: body.into(),
                        published_time: Some(prost_types::Timestamp {
                            seconds: 1_700_000_000 + day * 86_400,
                            nanos: 0,
                        }),
                        ..Article::default()
                    }),
                    article_id: id.into(),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
    };
    publish(
        "central",
        "Kerry sets out his plan",
        "John Kerry set out his plan on Monday. Kerry said the plan would work, and Kerry \
         answered questions about it for an hour.",
        1,
    )
    .await;
    publish(
        "passing",
        "Markets rise in Tokyo",
        "Shares rose in Tokyo, Seoul, Sydney and Mumbai as traders in London, Frankfurt and \
         Paris looked on. John Kerry was also in the news.",
        3,
    )
    .await;
    publish(
        "middle",
        "Talks in Geneva",
        "Officials met in Geneva. John Kerry and Sergei Lavrov attended.",
        2,
    )
    .await;
    let list = |order: proto::ListArticlesOrder, page_size: i32, token: String| {
        let app = &app;
        async move {
            app.articles()
                .list_articles(proto::ListArticlesRequest {
                    filter: Some(proto::ArticleFilter {
                        entity_ids: vec!["john-kerry".into()],
                        ..Default::default()
                    }),
                    order: order as i32,
                    page_size,
                    page_token: token,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let newest: Vec<String> = list(proto::ListArticlesOrder::Unspecified, 10, String::new())
        .await
        .articles
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(newest, ["passing", "middle", "central"]);
    // By salience, one article per page: the central story first, the passing mention last,
    // and every article exactly once.
    let mut by_salience = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(proto::ListArticlesOrder::Salience, 1, token).await;
        by_salience.extend(page.articles.into_iter().map(|a| a.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(by_salience, ["central", "middle", "passing"]);

    // Salience order needs an entity, and a token stays with its order.
    let err = app
        .articles()
        .list_articles(proto::ListArticlesRequest {
            order: proto::ListArticlesOrder::Salience as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(reason(&err), "REQUIRED_FIELD_MISSING");
    let first = list(proto::ListArticlesOrder::Salience, 1, String::new()).await;
    let err = app
        .articles()
        .list_articles(proto::ListArticlesRequest {
            filter: Some(proto::ArticleFilter {
                entity_ids: vec!["john-kerry".into()],
                ..Default::default()
            }),
            page_token: first.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "INVALID_PAGE_TOKEN");
}
