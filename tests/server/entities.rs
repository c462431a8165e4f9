//! EntityService, and the entities and quotes extracted from the seed article.

use newsstore::api::proto::{self, Article, EntityKind, MentionOrigin};
use tonic::Code;

use super::support::{TestApp, reason};

const SEED_ID: &str = "000_d5ebef1cd6c2904d";

async fn seed_article(app: &TestApp) -> Article {
    app.articles()
        .get_article(proto::GetArticleRequest {
            id: SEED_ID.into(),
            view: 0,
            ..Default::default()
        })
        .await
        .expect("the seed article is loaded")
        .into_inner()
        .article
        .unwrap()
}

#[tokio::test]
async fn the_seed_article_has_every_entity_a_careful_reader_would_tag_and_no_junk() {
    let app = TestApp::spawn_seeded().await;
    let article = seed_article(&app).await;
    let found: Vec<(String, i32)> = article
        .entities
        .iter()
        .map(|e| (e.name.clone(), e.kind))
        .collect();
    use EntityKind::{Location, Misc, Organization, Person};
    let expected: &[(&str, EntityKind)] = &[
        ("John Kerry", Person),
        ("Sergei Lavrov", Person),
        ("Staffan de Mistura", Person),
        ("Joe Biden", Person),
        ("Bashar al-Assad", Person),
        ("al-Nusra Front", Organization),
        ("al-Qaeda", Organization),
        ("United Nations", Organization),
        ("International Committee of the Red Cross", Organization),
        ("PYD", Organization),
        ("PKK", Organization),
        ("YPG", Organization),
        ("European Union", Organization),
        ("Twitter", Organization),
        ("United States", Location),
        ("Russia", Location),
        ("Syria", Location),
        ("Geneva", Location),
        ("Switzerland", Location),
        ("Aleppo", Location),
        ("Turkey", Location),
        ("Manbij", Location),
        ("Moscow", Location),
        ("Washington", Location),
        ("Damascus", Location),
        ("Daraya", Location),
        ("Europe", Location),
        ("Persian Gulf", Location),
        ("Russian", Misc),
        ("Swiss", Misc),
        ("Syrian", Misc),
        ("Turkish", Misc),
        ("Kurdish", Misc),
        ("Arab", Misc),
    ];
    for (name, kind) in expected {
        assert!(
            found.contains(&(name.to_string(), *kind as i32)),
            "{name} ({kind:?}) missing from {found:?}"
        );
    }
    assert_eq!(
        found.len(),
        expected.len(),
        "unexpected extras in {found:?}"
    );
    for junk in [
        "Image Source",
        "Image",
        "Source",
        "Friday",
        "February",
        "August",
        "July",
        "Teams",
        "Residents",
        "He",
        "We",
        "A",
        "Kerry",
        "Lavrov",
        "Nusra",
        "Independent",
    ] {
        assert!(
            !found.iter().any(|(n, _)| n == junk),
            "junk {junk:?} was tagged"
        );
    }

    // Short forms resolve to the full name, and every mention is counted.
    let kerry = article
        .entities
        .iter()
        .find(|e| e.name == "John Kerry")
        .unwrap();
    assert!(kerry.surface_forms.contains(&"Kerry".to_string()));
    assert_eq!(kerry.count, 14);
    // Titles are kept as descriptions of the entity.
    let record = app.entity("john-kerry").await.unwrap();
    assert_eq!(record.description, "US Secretary of State");
    let lavrov = app.entity("sergei-lavrov").await.unwrap();
    assert_eq!(lavrov.description, "Russian Foreign Minister");
    assert_eq!(kerry.origin, MentionOrigin::Extracted as i32);
    let nusra = article
        .entities
        .iter()
        .find(|e| e.name == "al-Nusra Front")
        .unwrap();
    assert!(nusra.surface_forms.contains(&"Nusra".to_string()));
    // The most salient entities lead, and salience sums to one.
    assert_eq!(article.entities[0].name, "United States");
    let total: f64 = article.entities.iter().map(|e| e.salience).sum();
    assert!((total - 1.0).abs() < 1e-3, "{total}");
}

#[tokio::test]
async fn the_seed_article_quotes_have_their_speakers() {
    let app = TestApp::spawn_seeded().await;
    let article = seed_article(&app).await;
    let speaker_of = |start: &str| {
        article
            .quotes
            .iter()
            .find(|q| q.text.starts_with(start))
            .unwrap_or_else(|| panic!("no quote starting {start:?} in {:?}", article.quotes))
            .speaker_name
            .clone()
    };
    assert_eq!(
        speaker_of("We don't want to have a deal for the sake of the deal"),
        "John Kerry"
    );
    assert_eq!(speaker_of("Teams from both sides"), "John Kerry");
    assert_eq!(speaker_of("achieved clarity"), "John Kerry");
    assert_eq!(speaker_of("We want to have something done"), "John Kerry");
    assert_eq!(speaker_of("Nusra is Al-Qaeda"), "John Kerry");
    assert_eq!(
        speaker_of("We do not support an independent Kurd initiative"),
        "John Kerry"
    );
    assert_eq!(speaker_of("We understand the sensitivities"), "John Kerry");
    assert_eq!(speaker_of("If the remaining details"), "John Kerry");
    assert_eq!(speaker_of("forced the surrender"), "John Kerry");
    assert_eq!(speaker_of("example"), "Sergei Lavrov");
    assert_eq!(
        speaker_of("interested in such an operation"),
        "Sergei Lavrov"
    );
    // Said by an unnamed Twitter user, not by Kerry, who is only mentioned.
    assert_eq!(speaker_of("PYD is PKK"), "");
    let quote = article
        .quotes
        .iter()
        .find(|q| q.text.starts_with("We don't want"))
        .unwrap();
    assert_eq!(quote.speaker_entity_id, "john-kerry");
    let span = quote.span.unwrap();
    let quoted: String = article
        .body
        .chars()
        .skip(span.start as usize)
        .take((span.end - span.start) as usize)
        .collect();
    assert_eq!(quoted, quote.text);
}

#[tokio::test]
async fn entities_are_one_record_across_articles() {
    let app = TestApp::spawn_seeded().await;
    // A later article that only says "Kerry" links to the same entity.
    let later = app
        .create(
            "later",
            "Kerry flies to Moscow",
            "Kerry arrived in Moscow on Tuesday for talks with Lavrov.",
        )
        .await;
    let ids: Vec<&str> = later
        .entities
        .iter()
        .map(|e| e.entity_id.as_str())
        .collect();
    assert!(ids.contains(&"john-kerry"), "{ids:?}");
    assert!(ids.contains(&"sergei-lavrov"), "{ids:?}");
    assert!(ids.contains(&"moscow"), "{ids:?}");

    let kerry = app.entity("john-kerry").await.unwrap();
    assert_eq!(kerry.name, "John Kerry");
    assert_eq!(kerry.kind, EntityKind::Person as i32);
    assert_eq!(kerry.article_count, 2);
    assert_eq!(kerry.mention_count, 14 + 2);
    assert!(kerry.aliases.contains(&"Kerry".to_string()));
    assert!(kerry.first_seen_time.is_some() && kerry.last_seen_time.is_some());

    // Deleting the later article takes its counts back.
    app.articles()
        .delete_article(proto::DeleteArticleRequest {
            id: "later".into(),
            etag: String::new(),
            ..Default::default()
        })
        .await
        .unwrap();
    let kerry = app.entity("john-kerry").await.unwrap();
    assert_eq!(kerry.article_count, 1);
    assert_eq!(kerry.mention_count, 14);
}

#[tokio::test]
async fn list_entities_orders_by_articles_and_filters() {
    let app = TestApp::spawn().await;
    app.create("a1", "Talks", "Officials from Syria met in Geneva.")
        .await;
    app.create("a2", "More talks", "Officials from Syria met in Moscow.")
        .await;
    app.create(
        "a3",
        "Yet more",
        "Officials from Syria and Turkey met in Geneva.",
    )
    .await;

    let list = |kind: EntityKind, prefix: &str, page_size: i32, token: String| {
        let mut client = app.entities();
        let request = proto::ListEntitiesRequest {
            page_size,
            page_token: token,
            kind: kind as i32,
            name_prefix: prefix.into(),
        };
        async move { client.list_entities(request).await.unwrap().into_inner() }
    };
    let all = list(EntityKind::Unspecified, "", 0, String::new()).await;
    let counts: Vec<(String, i64)> = all
        .entities
        .iter()
        .map(|e| (e.name.clone(), e.article_count))
        .collect();
    assert_eq!(
        counts,
        [
            ("Syria".to_string(), 3),
            ("Geneva".to_string(), 2),
            ("Moscow".to_string(), 1),
            ("Turkey".to_string(), 1),
        ]
    );
    // Paging gives the same order.
    let first = list(EntityKind::Unspecified, "", 3, String::new()).await;
    assert_eq!(first.entities.len(), 3);
    let second = list(EntityKind::Unspecified, "", 3, first.next_page_token).await;
    assert_eq!(second.entities.len(), 1);
    assert_eq!(second.entities[0].name, "Turkey");
    assert!(second.next_page_token.is_empty());

    let prefixed = list(EntityKind::Location, "ge", 0, String::new()).await;
    let names: Vec<&str> = prefixed.entities.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["Geneva"]);
    let people = list(EntityKind::Person, "", 0, String::new()).await;
    assert!(people.entities.is_empty());
}

#[tokio::test]
async fn related_entities_count_shared_articles() {
    let app = TestApp::spawn().await;
    app.create("a1", "Talks", "Officials from Syria met in Geneva.")
        .await;
    app.create("a2", "More talks", "Officials from Syria met in Moscow.")
        .await;
    app.create(
        "a3",
        "Yet more",
        "Officials from Syria and Turkey met in Geneva.",
    )
    .await;
    let related = app
        .entities()
        .list_related_entities(proto::ListRelatedEntitiesRequest {
            id: "syria".into(),
            page_size: 0,
            kind: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let pairs: Vec<(String, i64)> = related
        .related
        .iter()
        .map(|r| {
            (
                r.entity.as_ref().unwrap().name.clone(),
                r.shared_article_count,
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            ("Geneva".to_string(), 2),
            ("Moscow".to_string(), 1),
            ("Turkey".to_string(), 1),
        ]
    );
    assert_eq!(related.articles_examined, 3);
    assert!(related.complete);

    let err = app
        .entities()
        .list_related_entities(proto::ListRelatedEntitiesRequest {
            id: "atlantis".into(),
            page_size: 0,
            kind: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(reason(&err), "ENTITY_NOT_FOUND");
}

#[tokio::test]
async fn client_entity_tags_are_kept_beside_extracted_ones() {
    let app = TestApp::spawn().await;
    let created = app
        .articles()
        .create_article(proto::CreateArticleRequest {
            article: Some(Article {
                headline: "Widget maker grows".into(),
                body: "Acme Widgets opened a plant in Geneva. Acme Widgets hired 300.".into(),
                entity_tags: vec![
                    proto::EntityTag {
                        name: "Acme Widgets".into(),
                        kind: EntityKind::Organization as i32,
                        entity_id: String::new(),
                    },
                    proto::EntityTag {
                        name: "Geneva".into(),
                        kind: EntityKind::Location as i32,
                        entity_id: String::new(),
                    },
                ],
                ..Article::default()
            }),
            article_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .article
        .unwrap();
    let acme = created
        .entities
        .iter()
        .find(|e| e.name == "Acme Widgets")
        .expect("tag kept");
    assert_eq!(acme.kind, EntityKind::Organization as i32);
    assert_eq!(acme.spans.len(), 2);
    let geneva = created
        .entities
        .iter()
        .find(|e| e.name == "Geneva")
        .unwrap();
    assert_eq!(geneva.origin, MentionOrigin::ExtractedAndClient as i32);
    assert_eq!(created.entity_tags.len(), 2);

    // A tag naming an entity that does not exist is refused.
    let err = app
        .articles()
        .create_article(proto::CreateArticleRequest {
            article: Some(Article {
                headline: "H".into(),
                body: "B.".into(),
                entity_tags: vec![proto::EntityTag {
                    name: String::new(),
                    kind: 0,
                    entity_id: "no-such-entity".into(),
                }],
                ..Article::default()
            }),
            article_id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("no-such-entity"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn get_entity_errors() {
    let app = TestApp::spawn().await;
    let err = app
        .entities()
        .get_entity(proto::GetEntityRequest { id: String::new() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = app.entity("nobody").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn quotes_are_listed_by_speaker_newest_first_across_pages() {
    let app = TestApp::spawn_seeded().await;
    let seed = seed_article(&app).await;
    let kerry_in_seed = seed
        .quotes
        .iter()
        .filter(|q| q.speaker_entity_id == "john-kerry")
        .count();
    assert!(kerry_in_seed >= 9);
    // A newer article with one more Kerry quote: it comes first.
    app.articles()
        .create_article(proto::CreateArticleRequest {
            article: Some(Article {
                headline: "Kerry in Oslo".into(),
                body: "John Kerry arrived in Oslo.\n\n\"The talks go on,\" Kerry said.".into(),
                published_time: Some(prost_types::Timestamp {
                    seconds: 4_000_000_000,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            article_id: "oslo".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut texts = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = app
            .entities()
            .list_quotes(proto::ListQuotesRequest {
                speaker_id: "john-kerry".into(),
                page_size: 4,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.quotes.len() <= 4);
        for quote in &page.quotes {
            assert_eq!(
                quote.quote.as_ref().unwrap().speaker_entity_id,
                "john-kerry"
            );
            texts.push((
                quote.article_id.clone(),
                quote.quote.as_ref().unwrap().text.clone(),
            ));
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(texts.len(), kerry_in_seed + 1, "{texts:?}");
    assert_eq!(
        texts[0],
        ("oslo".to_string(), "The talks go on".to_string())
    );
    assert!(texts[1..].iter().all(|(article, _)| article == SEED_ID));
    assert!(pages >= 3);

    let mut entities = app.entities();
    let unknown = entities
        .list_quotes(proto::ListQuotesRequest {
            speaker_id: "nobody".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let bad_token = entities
        .list_quotes(proto::ListQuotesRequest {
            speaker_id: "john-kerry".into(),
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&bad_token), "INVALID_PAGE_TOKEN");
    let other_speaker = entities
        .list_quotes(proto::ListQuotesRequest {
            speaker_id: "sergei-lavrov".into(),
            page_token: token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&other_speaker), "INVALID_PAGE_TOKEN");
}
