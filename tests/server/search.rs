//! SearchArticles: full-text search over the derived tantivy index.

use newsstore::api::proto::{self, ArticleFilter};
use tonic::Code;

use super::support::{TestApp, reason, search};

#[tokio::test]
async fn finds_the_seed_article_by_text_and_by_entity() {
    let app = TestApp::spawn_seeded().await;
    let response = app
        .search_until(search("cessation of hostilities"), |r| !r.hits.is_empty())
        .await;
    assert_eq!(response.total_size, 1);
    let hit = &response.hits[0];
    assert_eq!(hit.article.as_ref().unwrap().id, "000_d5ebef1cd6c2904d");
    assert!(hit.score > 0.0);
    // Matched words are marked, by default with <em>…</em>.
    assert!(
        hit.snippet.contains("<em>cessation</em>"),
        "{:?}",
        hit.snippet
    );
    assert!(
        hit.snippet.contains("<em>hostilities</em>"),
        "{:?}",
        hit.snippet
    );

    // Stemming: "diplomat" finds "diplomats".
    let response = app
        .search_until(search("diplomat"), |r| !r.hits.is_empty())
        .await;
    assert_eq!(response.hits.len(), 1);

    // The entity filter narrows a query to articles that mention the entity.
    let mut request = search("talks");
    request.filter = Some(ArticleFilter {
        entity_ids: vec!["sergei-lavrov".into()],
        ..Default::default()
    });
    let response = app
        .search_until(request.clone(), |r| !r.hits.is_empty())
        .await;
    assert_eq!(response.hits.len(), 1);
    request.filter = Some(ArticleFilter {
        entity_ids: vec!["nobody".into()],
        ..Default::default()
    });
    let response = app
        .articles()
        .search_articles(request)
        .await
        .unwrap()
        .into_inner();
    assert!(response.hits.is_empty());
    assert_eq!(response.total_size, 0);
}

#[tokio::test]
async fn ranks_by_relevance_pages_and_follows_writes() {
    let app = TestApp::spawn().await;
    app.create(
        "weak",
        "Markets",
        "Shares rose. Later, a brief mention of copper.",
    )
    .await;
    app.create(
        "strong",
        "Copper prices soar",
        "Copper rallied as copper demand grew.",
    )
    .await;
    app.create("none", "Football", "The match ended in a draw.")
        .await;
    let response = app
        .search_until(search("copper"), |r| r.total_size == 2)
        .await;
    let ids: Vec<&str> = response
        .hits
        .iter()
        .map(|h| h.article.as_ref().unwrap().id.as_str())
        .collect();
    assert_eq!(ids, ["strong", "weak"]);
    assert!(response.hits[0].score > response.hits[1].score);

    let mut request = search("copper");
    request.page_size = 1;
    let first = app
        .articles()
        .search_articles(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.hits.len(), 1);
    assert!(!first.next_page_token.is_empty());
    request.page_token = first.next_page_token;
    let second = app
        .articles()
        .search_articles(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.hits[0].article.as_ref().unwrap().id, "weak");
    assert!(second.next_page_token.is_empty());

    // Deleted articles disappear from search; updated ones are found by their new text.
    app.articles()
        .delete_article(proto::DeleteArticleRequest {
            id: "strong".into(),
            etag: String::new(),
            ..Default::default()
        })
        .await
        .unwrap();
    let response = app
        .search_until(search("copper"), |r| r.total_size == 1)
        .await;
    assert_eq!(response.hits.len(), 1);
    app.articles()
        .update_article(proto::UpdateArticleRequest {
            article: Some(proto::Article {
                id: "none".into(),
                body: "The match ended in a draw; the trophy was made of copper.".into(),
                ..Default::default()
            }),
            update_mask: None,
            ..Default::default()
        })
        .await
        .unwrap();
    let response = app
        .search_until(search("copper"), |r| r.total_size == 2)
        .await;
    assert_eq!(response.total_size, 2);
}

#[tokio::test]
async fn bad_queries_get_invalid_argument() {
    let app = TestApp::spawn().await;
    for (query, expected) in [
        ("", "REQUIRED_FIELD_MISSING"),
        ("   ", "REQUIRED_FIELD_MISSING"),
        ("headline:(unclosed", "INVALID_QUERY"),
        ("nosuchfield:word", "INVALID_QUERY"),
    ] {
        let err = app
            .articles()
            .search_articles(search(query))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{query:?}");
        assert_eq!(reason(&err), expected, "{query:?}: {}", err.message());
    }
    let long = "word ".repeat(300);
    let err = app
        .articles()
        .search_articles(search(&long))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut request = search("word");
    request.page_size = 101;
    let err = app.articles().search_articles(request).await.unwrap_err();
    assert_eq!(reason(&err), "VALUE_OUT_OF_RANGE");
}
