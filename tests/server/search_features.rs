//! SearchArticles in depth: the query language, filters, orderings, typo tolerance,
//! highlighting, facets, pagination under writes and read-your-writes, on a small corpus
//! whose answers are counted by hand.

use std::collections::BTreeSet;

use newsstore::api::proto::{
    self, Article, ArticleFilter, EntityKind, FacetField, FacetRequest, HighlightOptions,
    SearchArticlesRequest, SearchOrder,
};
use prost_types::{FieldMask, Timestamp};
use tonic::Code;

use super::support::{TestApp, reason};

const DAY: i64 = 86_400;
/// 2016-08-01T00:00:00Z.
const AUGUST: i64 = 1_470_009_600;

struct Doc {
    id: &'static str,
    headline: &'static str,
    body: &'static str,
    source: &'static str,
    tags: &'static [&'static str],
    language: &'static str,
    day: i64,
}

/// The corpus. Entities planted: John Kerry (a1, a2, a5), Sergei Lavrov (a1, a3),
/// Geneva (a1, a2, a4), Moscow (a3, a5).
const CORPUS: &[Doc] = &[
    Doc {
        id: "a1",
        headline: "Ceasefire talks in Geneva",
        body: "John Kerry and Sergei Lavrov held ceasefire talks in Geneva on Friday.",
        source: "Reuters",
        tags: &["diplomacy", "syria"],
        language: "en",
        day: 0,
    },
    Doc {
        id: "a2",
        headline: "Markets calm",
        body: "Traders in Geneva shrugged off the news. John Kerry was not mentioned by traders.",
        source: "AFP",
        tags: &["markets"],
        language: "en-GB",
        day: 3,
    },
    Doc {
        id: "a3",
        headline: "Lavrov speaks in Moscow",
        body: "Sergei Lavrov told reporters in Moscow that a ceasefire was possible.",
        source: "Reuters",
        tags: &["diplomacy"],
        language: "en",
        day: 31,
    },
    Doc {
        id: "a4",
        headline: "Geneva motor show opens",
        body: "The motor show opened in Geneva with electric cars and a sense of optimism.",
        source: "AP",
        tags: &["cars"],
        language: "fr",
        day: 40,
    },
    Doc {
        id: "a5",
        headline: "Kerry lands in Moscow",
        body: "John Kerry arrived in Moscow for talks about the ceasefire in Syria.",
        source: "AFP",
        tags: &["diplomacy", "syria"],
        language: "en",
        day: 62,
    },
];

async fn corpus() -> TestApp {
    let app = TestApp::spawn().await;
    let mut client = app.articles();
    for doc in CORPUS {
        client
            .create_article(proto::CreateArticleRequest {
                article: Some(Article {
                    headline: doc.headline.into(),
                    body: doc.body.into(),
                    source: doc.source.into(),
                    tags: doc.tags.iter().map(|t| t.to_string()).collect(),
                    language: doc.language.into(),
                    published_time: Some(Timestamp {
                        seconds: AUGUST + doc.day * DAY,
                        nanos: 0,
                    }),
                    ..Article::default()
                }),
                article_id: doc.id.into(),
                wait_for_index: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    app
}

async fn ids(app: &TestApp, request: SearchArticlesRequest) -> Vec<String> {
    let response = app
        .articles()
        .search_articles(request)
        .await
        .unwrap()
        .into_inner();
    response
        .hits
        .into_iter()
        .map(|h| h.article.unwrap().id)
        .collect()
}

fn query(text: &str) -> SearchArticlesRequest {
    SearchArticlesRequest {
        query: text.into(),
        page_size: 100,
        ..Default::default()
    }
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

async fn matches(app: &TestApp, text: &str) -> BTreeSet<String> {
    ids(app, query(text)).await.into_iter().collect()
}

#[tokio::test]
async fn boolean_operators_phrases_prefixes_and_stemming() {
    let app = corpus().await;
    assert_eq!(matches(&app, "ceasefire").await, set(&["a1", "a3", "a5"]));
    // Stemming and case folding: "TALK" finds "talks".
    assert_eq!(matches(&app, "TALK").await, set(&["a1", "a5"]));
    assert_eq!(
        matches(&app, "ceasefire AND moscow").await,
        set(&["a3", "a5"])
    );
    assert_eq!(matches(&app, "ceasefire moscow").await, set(&["a3", "a5"]));
    assert_eq!(matches(&app, "motor OR markets").await, set(&["a2", "a4"]));
    assert_eq!(matches(&app, "geneva NOT kerry").await, set(&["a4"]));
    assert_eq!(matches(&app, "geneva -kerry").await, set(&["a4"]));
    assert_eq!(
        matches(&app, "(moscow OR geneva) -ceasefire").await,
        set(&["a2", "a4"])
    );
    assert_eq!(matches(&app, "NOT geneva").await, set(&["a3", "a5"]));
    // Phrases need the words in order, next to each other.
    assert_eq!(matches(&app, "\"motor show\"").await, set(&["a4"]));
    assert_eq!(matches(&app, "\"show motor\"").await, set(&[]));
    assert_eq!(matches(&app, "\"ceasefire talks\"").await, set(&["a1"]));
    assert_eq!(matches(&app, "opti*").await, set(&["a4"]));
    assert_eq!(matches(&app, "cease*").await, set(&["a1", "a3", "a5"]));
}

#[tokio::test]
async fn field_scopes() {
    let app = corpus().await;
    assert_eq!(matches(&app, "headline:moscow").await, set(&["a3", "a5"]));
    assert_eq!(matches(&app, "headline:ceasefire").await, set(&["a1"]));
    assert_eq!(matches(&app, "body:traders").await, set(&["a2"]));
    assert_eq!(matches(&app, "headline:traders").await, set(&[]));
    assert_eq!(matches(&app, "source:reuters").await, set(&["a1", "a3"]));
    assert_eq!(
        matches(&app, "source:(afp OR ap)").await,
        set(&["a2", "a4", "a5"])
    );
    assert_eq!(matches(&app, "tag:syria").await, set(&["a1", "a5"]));
    assert_eq!(
        matches(&app, "language:en").await,
        set(&["a1", "a2", "a3", "a5"])
    );
    assert_eq!(matches(&app, "language:en-gb").await, set(&["a2"]));
    assert_eq!(
        matches(&app, "entity:\"John Kerry\"").await,
        set(&["a1", "a2", "a5"])
    );
    assert_eq!(
        matches(&app, "entity:sergei-lavrov").await,
        set(&["a1", "a3"])
    );
    assert_eq!(
        matches(&app, "entity:Lavrov").await,
        set(&["a1", "a3"]),
        "by alias"
    );
    assert_eq!(matches(&app, "entity:Nobody").await, set(&[]));
    assert_eq!(matches(&app, "kind:person motor").await, set(&[]));
    assert_eq!(
        matches(&app, "entity:\"John Kerry\" -entity:Geneva").await,
        set(&["a5"])
    );
}

#[tokio::test]
async fn headline_matches_outrank_body_matches() {
    let app = corpus().await;
    // "moscow" is in the headline of a3 and a5; only in the body nowhere else; "geneva"
    // is in the headline of a1 and a4 but only in the body of a2.
    let ranked = ids(&app, query("geneva")).await;
    assert_eq!(ranked.len(), 3);
    assert_eq!(ranked.last().map(String::as_str), Some("a2"), "{ranked:?}");
}

#[tokio::test]
async fn filters_combine_with_queries_and_stand_alone() {
    let app = corpus().await;
    let filtered = |query_text: &str, filter: ArticleFilter| SearchArticlesRequest {
        query: query_text.into(),
        filter: Some(filter),
        page_size: 100,
        ..Default::default()
    };
    let window = |from_day: i64, to_day: i64| ArticleFilter {
        published_start_time: Some(Timestamp {
            seconds: AUGUST + from_day * DAY,
            nanos: 0,
        }),
        published_end_time: Some(Timestamp {
            seconds: AUGUST + to_day * DAY,
            nanos: 0,
        }),
        ..Default::default()
    };
    // An empty query with a filter lists the filter's articles.
    let cases: Vec<(&str, ArticleFilter, &[&str])> = vec![
        (
            "ceasefire",
            ArticleFilter {
                sources: vec!["AFP".into()],
                ..Default::default()
            },
            &["a5"],
        ),
        (
            "",
            ArticleFilter {
                tags: vec!["Diplomacy".into()],
                ..Default::default()
            },
            &["a1", "a3", "a5"],
        ),
        (
            "",
            ArticleFilter {
                entity_ids: vec!["john-kerry".into(), "geneva".into()],
                ..Default::default()
            },
            &["a1", "a2"],
        ),
        ("", window(3, 40), &["a2", "a3"]),
        (
            "",
            ArticleFilter {
                languages: vec!["fr".into()],
                ..Default::default()
            },
            &["a4"],
        ),
        (
            "",
            ArticleFilter {
                kinds: vec![EntityKind::Person as i32],
                sources: vec!["reuters".into()],
                ..Default::default()
            },
            &["a1", "a3"],
        ),
    ];
    for (text, filter, expected) in cases {
        let described = format!("{text:?} with {filter:?}");
        let found: BTreeSet<String> = ids(&app, filtered(text, filter))
            .await
            .into_iter()
            .collect();
        assert_eq!(found, set(expected), "{described}");
    }
    // Neither query nor filter is refused.
    let err = app.articles().search_articles(query("")).await.unwrap_err();
    assert_eq!(reason(&err), "REQUIRED_FIELD_MISSING");
}

#[tokio::test]
async fn orders_by_time_and_blends_relevance_with_recency() {
    let app = corpus().await;
    let ordered =
        |order: SearchOrder, half_life: Option<prost_types::Duration>| SearchArticlesRequest {
            query: "ceasefire".into(),
            order: order as i32,
            recency_half_life: half_life,
            page_size: 100,
            ..Default::default()
        };
    assert_eq!(
        ids(&app, ordered(SearchOrder::PublishedDesc, None)).await,
        ["a5", "a3", "a1"]
    );
    assert_eq!(
        ids(&app, ordered(SearchOrder::PublishedAsc, None)).await,
        ["a1", "a3", "a5"]
    );
    // a1 has "ceasefire" in headline and body, so it leads on relevance alone; with a one-day
    // half life, age dominates and the newest comes first.
    let relevance = ids(&app, ordered(SearchOrder::Relevance, None)).await;
    assert_eq!(relevance[0], "a1");
    let recent = ids(
        &app,
        ordered(
            SearchOrder::RelevanceRecency,
            Some(prost_types::Duration {
                seconds: DAY,
                nanos: 0,
            }),
        ),
    )
    .await;
    assert_eq!(recent, ["a5", "a3", "a1"]);
}

#[tokio::test]
async fn typo_tolerance_finds_misspelt_names_only_when_asked() {
    let app = corpus().await;
    assert!(matches(&app, "Lavrof").await.is_empty());
    let mut request = query("Lavrof");
    request.typo_tolerance = true;
    let response = app
        .articles()
        .search_articles(request)
        .await
        .unwrap()
        .into_inner();
    let found: BTreeSet<String> = response
        .hits
        .iter()
        .map(|h| h.article.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(found, set(&["a1", "a3"]));
    // The word actually found is what gets marked.
    let a3 = response
        .hits
        .iter()
        .find(|h| h.article.as_ref().unwrap().id == "a3")
        .unwrap();
    assert!(
        a3.headline_snippet.contains("<em>Lavrov</em>"),
        "{}",
        a3.headline_snippet
    );
    // Phrases stay exact.
    let mut phrase = query("\"Sergei Lavrof\"");
    phrase.typo_tolerance = true;
    assert!(ids(&app, phrase).await.is_empty());
}

#[tokio::test]
async fn highlights_use_the_requested_markers() {
    let app = corpus().await;
    let mut request = query("motor show");
    request.highlight = Some(HighlightOptions {
        pre_tag: "[[".into(),
        post_tag: "]]".into(),
        snippet_chars: 0,
    });
    let response = app
        .articles()
        .search_articles(request)
        .await
        .unwrap()
        .into_inner();
    let hit = &response.hits[0];
    assert_eq!(hit.headline_snippet, "Geneva [[motor]] [[show]] opens");
    assert!(
        hit.snippet.contains("[[motor]] [[show]] opened"),
        "{}",
        hit.snippet
    );
    // Field masks trim the article.
    let mut masked = query("motor");
    masked.read_mask = Some(FieldMask {
        paths: vec!["id".into(), "published_time".into()],
    });
    let response = app
        .articles()
        .search_articles(masked)
        .await
        .unwrap()
        .into_inner();
    let article = response.hits[0].article.as_ref().unwrap();
    assert_eq!(article.id, "a4");
    assert!(article.published_time.is_some());
    assert!(article.headline.is_empty() && article.entities.is_empty());
    // Bad markers and masks are refused.
    let mut bad = query("motor");
    bad.highlight = Some(HighlightOptions {
        pre_tag: "x".repeat(33),
        ..Default::default()
    });
    assert_eq!(
        app.articles()
            .search_articles(bad)
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    let mut bad = query("motor");
    bad.read_mask = Some(FieldMask {
        paths: vec!["colour".into()],
    });
    assert_eq!(
        app.articles()
            .search_articles(bad)
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
}

#[tokio::test]
async fn facets_count_matching_articles() {
    let app = corpus().await;
    let mut request = query("");
    request.filter = Some(ArticleFilter {
        languages: vec!["en".into()],
        ..Default::default()
    });
    request.facets = vec![
        FacetRequest {
            field: FacetField::Source as i32,
            limit: 0,
        },
        FacetRequest {
            field: FacetField::Tag as i32,
            limit: 2,
        },
        FacetRequest {
            field: FacetField::Month as i32,
            limit: 0,
        },
        FacetRequest {
            field: FacetField::Entity as i32,
            limit: 1,
        },
    ];
    let response = app
        .articles()
        .search_articles(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.total_size, 4);
    let buckets = |i: usize| -> Vec<(String, i64)> {
        response.facets[i]
            .buckets
            .iter()
            .map(|b| (b.value.clone(), b.count))
            .collect()
    };
    // a1 reuters, a2 afp, a3 reuters, a5 afp.
    assert_eq!(buckets(0), [("afp".into(), 2), ("reuters".into(), 2)]);
    // diplomacy ×3, syria ×2, markets ×1 (cut by the limit of 2).
    assert_eq!(buckets(1), [("diplomacy".into(), 3), ("syria".into(), 2)]);
    // August: a1, a2; September: a3; October: a5. Newest month first.
    assert_eq!(
        buckets(2),
        [
            ("2016-10".into(), 1),
            ("2016-09".into(), 1),
            ("2016-08".into(), 2)
        ]
    );
    // The top person and the top place among the four.
    let entities = &response.facets[3].buckets;
    let person = entities
        .iter()
        .find(|b| b.kind == EntityKind::Person as i32)
        .unwrap();
    assert_eq!(
        (person.value.as_str(), person.label.as_str(), person.count),
        ("john-kerry", "John Kerry", 3)
    );
    let place = entities
        .iter()
        .find(|b| b.kind == EntityKind::Location as i32)
        .unwrap();
    assert_eq!((place.value.as_str(), place.count), ("geneva", 2));
    assert_eq!(
        entities
            .iter()
            .filter(|b| b.kind == EntityKind::Person as i32)
            .count(),
        1,
        "limit applies per kind"
    );
}

#[tokio::test]
async fn pages_stay_consistent_while_articles_are_added() {
    let app = corpus().await;
    let mut request = query("ceasefire OR geneva OR moscow OR talks");
    request.page_size = 2;
    let first = app
        .articles()
        .search_articles(request.clone())
        .await
        .unwrap()
        .into_inner();
    let total = first.total_size;
    assert_eq!(total, 5);
    let mut seen: Vec<String> = first
        .hits
        .iter()
        .map(|h| h.article.as_ref().unwrap().id.clone())
        .collect();
    // Strongly matching articles arrive between pages.
    for i in 0..5 {
        app.articles()
            .create_article(proto::CreateArticleRequest {
                article: Some(Article {
                    headline: "Ceasefire talks in Geneva and Moscow".into(),
                    body: "Ceasefire talks ceasefire talks Geneva Moscow ceasefire.".into(),
                    ..Article::default()
                }),
                article_id: format!("late-{i}"),
                wait_for_index: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut token = first.next_page_token;
    while !token.is_empty() {
        request.page_token = token;
        let page = app
            .articles()
            .search_articles(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            page.total_size, total,
            "later pages come from the same snapshot"
        );
        seen.extend(
            page.hits
                .iter()
                .map(|h| h.article.as_ref().unwrap().id.clone()),
        );
        token = page.next_page_token;
    }
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "duplicates in {seen:?}");
    assert_eq!(unique, set(&["a1", "a2", "a3", "a4", "a5"]));
    // A fresh search sees the new articles.
    request.page_token = String::new();
    let fresh = app
        .articles()
        .search_articles(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fresh.total_size, 10);
}

#[tokio::test]
async fn writes_can_wait_until_searchable() {
    // A refresh interval of a minute: only the explicit wait can make this pass quickly.
    let app = TestApp::spawn_with(super::support::temp_dir(), |config| {
        config.index_refresh = std::time::Duration::from_secs(60);
    })
    .await;
    let created = app
        .articles()
        .create_article(proto::CreateArticleRequest {
            article: Some(Article {
                headline: "Zanzibar".into(),
                body: "A story about Zanzibar.".into(),
                ..Article::default()
            }),
            article_id: "z".into(),
            wait_for_index: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(created.into_inner().article.unwrap().id, "z");
    let response = app
        .articles()
        .search_articles(query("zanzibar"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.total_size, 1);
    assert!(response.index_sequence >= 1);
    app.articles()
        .delete_article(proto::DeleteArticleRequest {
            id: "z".into(),
            wait_for_index: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let response = app
        .articles()
        .search_articles(query("zanzibar"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.total_size, 0);
}

#[tokio::test]
async fn malformed_queries_say_where_they_broke() {
    let app = corpus().await;
    for (text, fragment) in [
        ("ceasefire AND (moscow", "character 15"),
        ("colour:red", "unknown field \"colour\""),
        ("\"open phrase", "never closed"),
        ("kind:animal", "not a kind"),
        ("a*", "at least 2"),
    ] {
        let err = app
            .articles()
            .search_articles(query(text))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{text}");
        assert_eq!(reason(&err), "INVALID_QUERY", "{text}");
        assert!(
            err.message().contains(fragment),
            "{text}: {}",
            err.message()
        );
    }
    let long = vec!["word"; 40].join(" ");
    let err = app
        .articles()
        .search_articles(query(&long))
        .await
        .unwrap_err();
    assert!(err.message().contains("more than 32"), "{}", err.message());
}

/// The hostile case for typo tolerance: a dictionary of 30,000 words that share a few first
/// letters, and twelve 32-word typo-tolerant queries at once. Each lookup reads only the
/// words within its edit distance, so the twelve end and a plain search is answered in
/// bounded time. (Before, one such query took 10 s on 200 articles and twelve held a plain
/// search for 31 s.)
#[tokio::test]
async fn typo_queries_stay_bounded_on_a_large_dictionary() {
    let app = TestApp::spawn().await;
    let mut client = app.articles();
    let word = |n: usize| {
        // Letters only (the analyser splits on digits), five letters after a common "k".
        let mut n = n;
        let mut text = String::from("k");
        for _ in 0..5 {
            text.push(char::from(b'a' + (n % 26) as u8));
            n /= 26;
        }
        text
    };
    for batch in 0..10 {
        let requests = (0..30)
            .map(|i| {
                let article = batch * 30 + i;
                let body: Vec<String> = (0..100).map(|w| word(article * 100 + w)).collect();
                proto::CreateArticleRequest {
                    article: Some(Article {
                        headline: format!("Dictionary {article}"),
                        body: format!("{}.", body.join(" ")),
                        ..Default::default()
                    }),
                    article_id: format!("d{article}"),
                    ..Default::default()
                }
            })
            .collect();
        client
            .batch_create_articles(proto::BatchCreateArticlesRequest {
                requests,
                wait_for_index: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let hostile: Vec<String> = (0..32).map(|i| format!("kqzx{}", word(i * 7919))).collect();
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let mut client = app.articles();
        let mut request = query(&hostile.join(" OR "));
        request.typo_tolerance = true;
        tasks.push(tokio::spawn(async move {
            client.search_articles(request).await.map(|_| ())
        }));
    }
    let plain = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        client.search_articles(query("Dictionary")),
    )
    .await
    .expect("a plain search is answered while typo queries run")
    .unwrap();
    assert!(!plain.into_inner().hits.is_empty());
    for task in tasks {
        tokio::time::timeout(std::time::Duration::from_secs(60), task)
            .await
            .expect("every typo query ends")
            .unwrap()
            .unwrap();
    }
}
