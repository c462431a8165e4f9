//! Store tests against a real sled database in a temporary folder.

use std::sync::Arc;

use super::{Content, Store, Write};
use crate::error::Error;
use crate::extract;
use crate::ingest::content_hash;
use crate::model::{ArticleFilter, ArticleInput, ChangeKind, Entity, Timestamp};

fn content(headline: &str, body: &str, published: i64) -> Content {
    let input = ArticleInput {
        headline: headline.into(),
        body: body.into(),
        source: if published % 2 == 0 {
            "Reuters".into()
        } else {
            "AFP".into()
        },
        published: Some(Timestamp(published)),
        ..ArticleInput::default()
    };
    Content {
        extraction: extract::analyze(&input),
        content_hash: content_hash(&input),
        input,
    }
}

const BODIES: [&str; 4] = [
    "Officials from Syria met John Kerry in Geneva. Kerry said talks went well.",
    "Sergei Lavrov flew to Moscow. Lavrov said Russia would reply.",
    "The United Nations met in New York. Officials from Syria and Turkey attended.",
    "Angela Merkel visited Paris, where Merkel met officials from France.",
];

#[test]
fn concurrent_writers_leave_every_index_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), 16 << 20).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..25i64 {
                    let id = format!("t{t}-a{i}");
                    let body = BODIES[((t + i) % 4) as usize];
                    let created = store.write(vec![Write::Create {
                        id: id.clone(),
                        content: content("Headline", body, i * 1000 + t),
                    }]);
                    let article = created
                        .into_iter()
                        .next()
                        .unwrap()
                        .unwrap()
                        .article
                        .unwrap();
                    if i % 3 == 0 {
                        let next = BODIES[((t + i + 1) % 4) as usize];
                        let replaced = store.write(vec![Write::Replace {
                            id: id.clone(),
                            etag: Some(article.etag()),
                            content: content("Changed", next, i * 1000 + t + 500),
                        }]);
                        replaced.into_iter().next().unwrap().unwrap();
                    }
                    if i % 5 == 0 {
                        let deleted = store.write(vec![Write::Delete { id, etag: None }]);
                        deleted.into_iter().next().unwrap().unwrap();
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
    // 100 creates, 36 replaces, 20 deletes: one change each, numbered without gaps.
    let changes = store.changes_after(0, 1000).unwrap();
    assert_eq!(changes.len(), 156);
    assert!(
        changes
            .iter()
            .enumerate()
            .all(|(i, c)| c.seq == i as u64 + 1)
    );
    assert_eq!(
        changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Deleted)
            .count(),
        20
    );
    assert_eq!(store.durable_seq(), 156);

    // Everything survives reopening.
    drop(store);
    let store = Store::open(dir.path(), 16 << 20).unwrap();
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
    assert_eq!(store.last_seq(), 156);
    let all = store
        .list_articles(&ArticleFilter::default(), 1000, None)
        .unwrap();
    assert_eq!(all.items.len(), 80);
    let times: Vec<Timestamp> = all.items.iter().map(|a| a.sort_time()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
}

#[test]
fn stale_etags_and_missing_articles_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 16 << 20).unwrap();
    let first = store
        .write(vec![Write::Create {
            id: "a".into(),
            content: content("H", BODIES[0], 1),
        }])
        .pop()
        .unwrap()
        .unwrap()
        .article
        .unwrap();
    let outcomes = store.write(vec![
        Write::Create {
            id: "a".into(),
            content: content("H", BODIES[1], 2),
        },
        Write::Replace {
            id: "a".into(),
            etag: Some("\"0-stale\"".into()),
            content: content("H", BODIES[1], 2),
        },
        Write::Delete {
            id: "missing".into(),
            etag: None,
        },
        Write::Replace {
            id: "a".into(),
            etag: Some(first.etag()),
            content: content("H2", BODIES[1], 2),
        },
    ]);
    assert!(matches!(outcomes[0], Err(Error::AlreadyExists { .. })));
    assert!(matches!(outcomes[1], Err(Error::EtagMismatch { .. })));
    assert!(matches!(outcomes[2], Err(Error::NotFound { .. })));
    assert_eq!(
        outcomes[3]
            .as_ref()
            .unwrap()
            .article
            .as_ref()
            .unwrap()
            .revision,
        2
    );
    // Failed writes leave no trace in the change log.
    assert_eq!(store.changes_after(0, 10).unwrap().len(), 2);
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
}

#[test]
fn bad_cursors_are_invalid_arguments_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 16 << 20).unwrap();
    for cursor in [
        &b""[..],
        b"short",
        &[0xff; 7],
        &[0, 0, 0, 0, 0, 0, 0, 0, 0xff],
    ] {
        let result = store.list_articles(&ArticleFilter::default(), 10, Some(cursor));
        assert!(
            matches!(result, Err(Error::InvalidArgument { .. })),
            "{cursor:?}"
        );
        let result = store.list_entities(None, "", 10, Some(cursor));
        assert!(result.is_err() || cursor.len() >= 9, "{cursor:?}");
    }
}

fn create(store: &Store, id: &str, headline: &str, body: &str, published: i64) {
    create_with(store, id, content(headline, body, published));
}

/// Creates article `id` from `content`, which must succeed.
fn create_with(store: &Store, id: &str, content: Content) {
    let outcome = store.write(vec![Write::Create {
        id: id.into(),
        content,
    }]);
    outcome.into_iter().next().unwrap().unwrap();
}

/// A store in a fresh folder holding `articles` (id, headline, body, publication time).
fn store_with(articles: &[(&str, &str, &str, i64)]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 16 << 20).unwrap();
    for (id, headline, body, published) in articles {
        create(&store, id, headline, body, *published);
    }
    (dir, store)
}

/// Entity `id`'s record as sled holds it, without the counters the entity index adds.
fn stored_record(store: &Store, id: &str) -> Entity {
    super::codec::decode(&store.tree.get(super::keys::entity(id)).unwrap().unwrap()).unwrap()
}

fn mentioned(store: &Store, article: &str) -> Vec<String> {
    let article = store.get_article(article).unwrap().unwrap();
    let mut ids: Vec<String> = article
        .derived
        .mentions
        .iter()
        .map(|m| m.entity_id.clone())
        .collect();
    ids.sort();
    ids
}

#[test]
fn merging_moves_mentions_names_and_counts_to_the_survivor() {
    let (_dir, store) = store_with(&[
        ("a1", "Talks", "John Kerry met officials in Geneva.", 1_000),
        ("a2", "Talks", "Secretary Jon Kerry spoke in Geneva.", 2_000),
        (
            "a3",
            "More",
            "John Kerry and Jon Kerry were both there.",
            3_000,
        ),
    ]);
    let survivor = store.get_entity("john-kerry").unwrap().unwrap();
    let merged = store.get_entity("jon-kerry").unwrap().unwrap();
    assert_eq!((survivor.article_count, merged.article_count), (2, 2));
    let last_seq = store.last_seq();

    let decision = store
        .merge_entities("john-kerry", &["jon-kerry".to_string()], None)
        .unwrap();
    assert_eq!(decision.articles_updated, 2);
    assert_eq!(decision.entity.article_count, 3);
    assert!(decision.entity.aliases.contains(&"Jon Kerry".to_string()));
    assert_eq!(decision.entity.first_seen, Some(Timestamp(1_000)));
    assert_eq!(decision.entity.last_seen, Some(Timestamp(3_000)));
    // The merged id resolves to the survivor; nothing mentions it any more.
    assert_eq!(
        store.resolve_entity("jon-kerry").unwrap().unwrap().id,
        "john-kerry"
    );
    for article in ["a1", "a2", "a3"] {
        let ids = mentioned(&store, article);
        assert!(
            ids.contains(&"john-kerry".to_string()),
            "{article}: {ids:?}"
        );
        assert!(
            !ids.contains(&"jon-kerry".to_string()),
            "{article}: {ids:?}"
        );
    }
    let a3 = store.get_article("a3").unwrap().unwrap();
    let kerry = &a3
        .derived
        .mentions
        .iter()
        .find(|m| m.entity_id == "john-kerry")
        .unwrap();
    assert_eq!(kerry.count, 2, "both mentions folded into one");
    // The change log has the two rewritten articles and the merge.
    let changes = store.changes_after(last_seq, 10).unwrap();
    assert_eq!(changes.len(), 3);
    assert_eq!(changes[2].kind, ChangeKind::EntitiesMerged);
    assert_eq!(changes[2].merged_ids, ["jon-kerry"]);
    assert_eq!(store.check().unwrap(), Vec::<String>::new());

    // New articles that say "Jon Kerry" link to the survivor.
    create(
        &store,
        "a4",
        "Later",
        "Jon Kerry returned to Geneva.",
        4_000,
    );
    assert!(mentioned(&store, "a4").contains(&"john-kerry".to_string()));
    assert_eq!(
        store
            .get_entity("john-kerry")
            .unwrap()
            .unwrap()
            .article_count,
        4
    );
    // A merged entity takes no further decisions.
    let err = store
        .merge_entities("jon-kerry", &["geneva".to_string()], None)
        .unwrap_err();
    assert_eq!(err.reason(), "ENTITY_MERGED");
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
}

#[test]
fn blocking_removes_an_entity_everywhere_and_from_new_articles() {
    let (_dir, store) = store_with(&[
        ("a1", "Talks", "John Kerry met officials in Geneva.", 1_000),
        (
            "a2",
            "Talks",
            "Officials gathered in Geneva on Monday.",
            2_000,
        ),
    ]);
    let decision = store.set_blocked("geneva", true, None).unwrap();
    assert_eq!(decision.articles_updated, 2);
    assert!(decision.entity.blocked);
    assert_eq!(decision.entity.article_count, 0);
    assert!(!mentioned(&store, "a1").contains(&"geneva".to_string()));
    assert!(mentioned(&store, "a2").is_empty());
    let salience: f32 = store
        .get_article("a1")
        .unwrap()
        .unwrap()
        .derived
        .mentions
        .iter()
        .map(|m| m.salience)
        .sum();
    assert!((salience - 1.0).abs() < 1e-4);
    // Blocked names are not tagged in new articles, nor listed.
    create(
        &store,
        "a3",
        "Again",
        "Delegates returned to Geneva.",
        3_000,
    );
    assert!(!mentioned(&store, "a3").contains(&"geneva".to_string()));
    let listed = store.list_entities(None, "", 100, None).unwrap();
    assert!(listed.items.iter().all(|e| e.id != "geneva"));
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
    // Unblocked, the name is tagged again in new articles.
    store.set_blocked("geneva", false, None).unwrap();
    create(
        &store,
        "a4",
        "Again",
        "Delegates returned to Geneva.",
        4_000,
    );
    assert!(mentioned(&store, "a4").contains(&"geneva".to_string()));
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
}

#[test]
fn editors_rename_retype_and_describe_entities() {
    let (_dir, store) =
        store_with(&[("a1", "Talks", "John Kerry met officials in Geneva.", 1_000)]);
    let patch = crate::model::EntityPatch {
        name: Some("John Forbes Kerry".into()),
        description: Some("US Secretary of State".into()),
        external_ids: Some([("wikidata".to_string(), "Q22316".to_string())].into()),
        ..Default::default()
    };
    let decision = store.update_entity("john-kerry", patch, None).unwrap();
    assert_eq!(decision.entity.name, "John Forbes Kerry");
    assert!(decision.entity.aliases.contains(&"John Kerry".to_string()));
    assert!(decision.entity.edited);
    assert_eq!(decision.articles_updated, 1);
    let a1 = store.get_article("a1").unwrap().unwrap();
    assert!(
        a1.derived
            .mentions
            .iter()
            .any(|m| m.name == "John Forbes Kerry")
    );
    // The old name still finds the entity in new articles.
    create(&store, "a2", "Again", "John Kerry flew home.", 2_000);
    assert!(mentioned(&store, "a2").contains(&"john-kerry".to_string()));
    // A changed kind: the ranking follows, and the tagger's guess no longer splits it.
    let retyped = store
        .update_entity(
            "geneva",
            crate::model::EntityPatch {
                kind: Some(crate::model::EntityKind::Organization),
                ..Default::default()
            },
            None,
        )
        .unwrap();
    assert_eq!(retyped.entity.kind, crate::model::EntityKind::Organization);
    create(&store, "a3", "Again", "Officials met in Geneva.", 3_000);
    assert!(mentioned(&store, "a3").contains(&"geneva".to_string()));
    let orgs = store
        .list_entities(Some(crate::model::EntityKind::Organization), "", 10, None)
        .unwrap();
    assert!(orgs.items.iter().any(|e| e.id == "geneva"));
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
    // Bad values are refused with the field named.
    let err = store
        .update_entity(
            "geneva",
            crate::model::EntityPatch {
                external_ids: Some([("wikidata".to_string(), "22316".to_string())].into()),
                ..Default::default()
            },
            None,
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidArgument { ref field, .. } if field == "entity.external_ids")
    );
    assert_eq!(
        store
            .update_entity("nobody", crate::model::EntityPatch::default(), None)
            .unwrap_err()
            .reason(),
        "ENTITY_NOT_FOUND"
    );
}

#[test]
fn related_entities_rank_by_shared_salience_not_just_shared_articles() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 16 << 20).unwrap();
    create(
        &store,
        "a1",
        "Kerry and Lavrov agree",
        "John Kerry and Sergei Lavrov met. Kerry and Lavrov agreed on a plan. Lavrov said \
         Kerry was right, and Kerry thanked Lavrov. The meeting was in Geneva.",
        1_000,
    );
    create(
        &store,
        "a2",
        "Officials meet",
        "Officials from France, Germany, Italy, Spain, Poland and Austria met in Geneva. \
         John Kerry sent a message.",
        2_000,
    );
    let page = store.related_entities("john-kerry", None, 10, 100).unwrap();
    let order: Vec<(&str, u64)> = page
        .related
        .iter()
        .map(|r| (r.entity.id.as_str(), r.shared_articles))
        .collect();
    // Geneva shares more articles, Lavrov the same story's centre.
    assert_eq!(order[0], ("sergei-lavrov", 1), "{order:?}");
    assert!(order.contains(&("geneva", 2)), "{order:?}");
    assert!(
        page.related
            .windows(2)
            .all(|w| w[0].strength >= w[1].strength)
    );
}

/// Marks `store` (whose keys a test has made look like an older layout's) as holding key
/// layout `layout`, closes it and opens it again, which upgrades it; the upgraded store
/// must pass the consistency check.
fn reopen_as_layout(dir: &std::path::Path, store: Store, layout: u64) -> Store {
    store
        .tree
        .insert(super::keys::META_LAYOUT, &layout.to_be_bytes())
        .unwrap();
    assert!(!store.check().unwrap().is_empty());
    store.flush().unwrap();
    drop(store);
    let store = reopen(dir);
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
    store
}

#[test]
fn a_layout_1_database_gains_the_salience_index_at_open() {
    let (dir, store) = store_with(&[
        ("a1", "Talks", "John Kerry met officials in Geneva.", 1_000),
        ("a2", "Talks", "Sergei Lavrov flew to Moscow.", 2_000),
    ]);
    // Make it look like a layout-1 database: its by-time entity index in sled, no salience
    // index anywhere, and entity lists of ids alone (their saliences are in the articles).
    for id in ["a1", "a2"] {
        let article = store.get_article(id).unwrap().unwrap();
        for key in super::mention_index_keys(&article) {
            if key[0] == super::keys::MENTION {
                store.tree.insert(key, Vec::new()).unwrap();
            }
        }
        let ids: Vec<String> = article
            .derived
            .mentions
            .iter()
            .map(|m| m.entity_id.clone())
            .collect();
        let plain = super::codec::encode(&ids).unwrap();
        store
            .tree
            .insert(super::keys::article_entities(id), plain)
            .unwrap();
    }
    let store = reopen_as_layout(dir.path(), store, 1);
    assert_eq!(store.tree.scan_prefix([super::keys::MENTION]).count(), 0);
    let filter = ArticleFilter {
        entity_ids: vec!["john-kerry".into()],
        ..ArticleFilter::default()
    };
    let page = store.list_articles_by_salience(&filter, 10, None).unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, "a1");
}

#[test]
fn a_layout_3_database_moves_its_entity_indexes_out_of_sled_at_open() {
    let (dir, store) = store_with(&[
        ("a1", "Talks", "John Kerry met officials in Geneva.", 1_000),
        ("a2", "Talks", "John Kerry flew to Moscow.", 2_000),
    ]);
    // Make it look like a layout-3 database, which kept the entity index and the ranking
    // in sled.
    let mut index_keys = Vec::new();
    for id in ["a1", "a2"] {
        let article = store.get_article(id).unwrap().unwrap();
        index_keys.extend(super::mention_index_keys(&article));
    }
    assert!(index_keys.len() >= 4);
    let ranking = store.entity_index.ranking_keys();
    assert!(ranking.len() >= 3);
    for key in index_keys.iter().chain(&ranking) {
        store.tree.insert(key.as_slice(), Vec::new()).unwrap();
    }
    let store = reopen_as_layout(dir.path(), store, 3);
    for space in [
        super::keys::MENTION,
        super::keys::SALIENCE,
        super::keys::RANK,
    ] {
        assert_eq!(store.tree.scan_prefix([space]).count(), 0);
    }
    assert_eq!(
        store.tree.get(super::keys::META_LAYOUT).unwrap().unwrap(),
        super::LAYOUT_VERSION.to_be_bytes()
    );
    index_keys.sort();
    assert_eq!(store.entity_index.all_keys(), index_keys);
    assert_eq!(store.entity_index.ranking_keys(), ranking);
    let filter = ArticleFilter {
        entity_ids: vec!["john-kerry".into()],
        ..ArticleFilter::default()
    };
    let page = store.list_articles(&filter, 10, None).unwrap();
    let ids: Vec<&str> = page.items.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["a2", "a1"]);
}

/// An article whose extraction found exactly one entity, `name`, as `kind`.
fn tagged(name: &str, kind: crate::model::EntityKind, published: i64) -> Content {
    let mut content = content("Report", &format!("{name} was in the news."), published);
    content.extraction.entities = vec![crate::model::ExtractedEntity {
        name: name.into(),
        kind: Some(kind),
        tentative: false,
        entity_id: None,
        surface_forms: vec![name.into()],
        aliases: Vec::new(),
        spans: Vec::new(),
        count: 1,
        salience: 1.0,
        origin: crate::model::MentionOrigin::Extracted,
        titles: Vec::new(),
        description: None,
    }];
    content.extraction.quotes.clear();
    content
}

#[test]
fn a_name_is_one_entity_whose_kind_follows_the_majority_of_its_articles() {
    use crate::model::EntityKind::{Location, Organization, Person};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 16 << 20).unwrap();
    create_with(&store, "a1", tagged("Bank of Atlantis", Location, 1));
    create_with(&store, "a2", tagged("Bank of Atlantis", Organization, 2));
    let entity = store.get_entity("bank-of-atlantis").unwrap().unwrap();
    assert_eq!(
        (entity.article_count, entity.kind),
        (2, Location),
        "a tie keeps the kind"
    );
    create_with(&store, "a3", tagged("Bank of Atlantis", Organization, 3));
    let entity = store.get_entity("bank-of-atlantis").unwrap().unwrap();
    assert_eq!((entity.article_count, entity.kind), (3, Organization));
    assert_eq!(entity.kind_votes, [0, 2, 1, 0]);
    // The ranking follows the kind.
    let orgs = store
        .list_entities(Some(Organization), "", 10, None)
        .unwrap();
    assert!(orgs.items.iter().any(|e| e.id == "bank-of-atlantis"));
    let places = store.list_entities(Some(Location), "", 10, None).unwrap();
    assert!(places.items.iter().all(|e| e.id != "bank-of-atlantis"));
    // Deleting an article takes its vote back.
    for id in ["a2", "a3"] {
        store
            .write(vec![Write::Delete {
                id: id.into(),
                etag: None,
            }])
            .pop()
            .unwrap()
            .unwrap();
    }
    let entity = store.get_entity("bank-of-atlantis").unwrap().unwrap();
    assert_eq!((entity.article_count, entity.kind), (1, Location));
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
    // A single word may name different things: those stay apart by kind.
    create_with(&store, "b1", tagged("Jordan", Location, 4));
    create_with(&store, "b2", tagged("Jordan", Person, 5));
    assert_eq!(store.get_entity("jordan").unwrap().unwrap().kind, Location);
    assert_eq!(
        store.get_entity("jordan-person").unwrap().unwrap().kind,
        Person
    );
}

/// Articles that tag an entity by id carry no kind of their own; they count for the kind
/// the entity has, so two articles that call it something else do not outvote them.
#[test]
fn articles_without_a_kind_count_for_the_entitys_kind() {
    use crate::model::EntityKind::{Location, Person};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 16 << 20).unwrap();
    create_with(&store, "a1", tagged("Atlas Moreno", Person, 1));
    for (n, id) in ["a2", "a3", "a4"].into_iter().enumerate() {
        let mut by_id = tagged("Atlas Moreno", Person, 2 + n as i64);
        by_id.extraction.entities[0].kind = None;
        by_id.extraction.entities[0].entity_id = Some("atlas-moreno".into());
        create_with(&store, id, by_id);
    }
    create_with(&store, "a5", tagged("Atlas Moreno", Location, 5));
    create_with(&store, "a6", tagged("Atlas Moreno", Location, 6));
    let entity = store.get_entity("atlas-moreno").unwrap().unwrap();
    assert_eq!((entity.article_count, entity.kind), (6, Person));
    let mut votes = [0; 4];
    votes[Person.index()] = 1;
    votes[Location.index()] = 2;
    assert_eq!(entity.kind_votes, votes, "the votes articles cast");
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
}

#[test]
fn a_renamed_entity_keeps_its_old_name_even_with_a_full_alias_list() {
    let (_dir, store) = store_with(&[("a1", "Talks", "John Kerry met officials in Geneva.", 1)]);
    let many: Vec<String> = (0..super::editorial::MAX_ALIASES)
        .map(|i| format!("Alias Number {i}"))
        .collect();
    let patch = |name: Option<&str>, aliases: Option<Vec<String>>| crate::model::EntityPatch {
        name: name.map(str::to_string),
        aliases,
        ..Default::default()
    };
    store
        .update_entity("john-kerry", patch(None, Some(many)), None)
        .unwrap();
    let renamed = store
        .update_entity("john-kerry", patch(Some("John Forbes Kerry"), None), None)
        .unwrap();
    assert_eq!(renamed.entity.aliases[0], "John Kerry");
    assert_eq!(renamed.entity.aliases.len(), 65);
    create(&store, "a2", "Again", "John Kerry flew home.", 2);
    assert!(mentioned(&store, "a2").contains(&"john-kerry".to_string()));
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
}

#[test]
fn compaction_keeps_the_retention_the_floor_and_the_newest_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), 16 << 20).unwrap();
    store.set_retention(super::Retention {
        changes: 4,
        ..super::Retention::default()
    });
    for i in 0..10 {
        create(&store, &format!("a{i}"), "Talks", BODIES[0], i);
    }
    assert_eq!(store.oldest_change().unwrap(), 1);
    // Never past the floor (what the search index has applied).
    store.compact(3).unwrap();
    assert_eq!(store.oldest_change().unwrap(), 4);
    // By count: the newest four stay.
    let compacted = store.compact(u64::MAX).unwrap();
    assert_eq!(compacted.changes, 3);
    assert_eq!(store.oldest_change().unwrap(), 7);
    // By age: everything old goes, except the newest entry, which the next sequence
    // number is read from at open.
    store.set_retention(super::Retention {
        change_age: std::time::Duration::ZERO,
        ..store.retention()
    });
    store.compact(u64::MAX).unwrap();
    assert_eq!(store.oldest_change().unwrap(), 10);
    drop(store);
    let store = Store::open(dir.path(), 16 << 20).unwrap();
    assert_eq!(store.last_seq(), 10);
    create(&store, "after", "Talks", BODIES[1], 11);
    assert_eq!(store.last_seq(), 11);
    assert_eq!(store.changes_after(0, 10).unwrap().len(), 2);
}

/// The entity's first and last seen times follow creates in any order, replacements that
/// move a bound, and deletions, and always agree with the index (`check`).
#[test]
fn entity_bounds_follow_writes_in_any_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 16 << 20).unwrap();
    let body = BODIES[1];
    let one = |write: Write| store.write(vec![write]).pop().unwrap().unwrap();
    let bounds = || {
        let lavrov = store.get_entity("sergei-lavrov").unwrap().unwrap();
        (lavrov.first_seen, lavrov.last_seen, lavrov.article_count)
    };
    for (id, time) in [("b", 2_000), ("a", 1_000), ("c", 3_000)] {
        one(Write::Create {
            id: id.into(),
            content: content("Lavrov", body, time),
        });
    }
    assert_eq!(
        bounds(),
        (Some(Timestamp(1_000)), Some(Timestamp(3_000)), 3)
    );
    // Moving the newest article inside the range narrows the upper bound.
    one(Write::Replace {
        id: "c".into(),
        etag: None,
        content: content("Lavrov", body, 1_500),
    });
    assert_eq!(
        bounds(),
        (Some(Timestamp(1_000)), Some(Timestamp(2_000)), 3)
    );
    // Deleting from the middle keeps both bounds; deleting the oldest moves the lower one.
    one(Write::Delete {
        id: "c".into(),
        etag: None,
    });
    assert_eq!(
        bounds(),
        (Some(Timestamp(1_000)), Some(Timestamp(2_000)), 2)
    );
    one(Write::Delete {
        id: "a".into(),
        etag: None,
    });
    assert_eq!(
        bounds(),
        (Some(Timestamp(2_000)), Some(Timestamp(2_000)), 1)
    );
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
    one(Write::Delete {
        id: "b".into(),
        etag: None,
    });
    assert_eq!(bounds(), (None, None, 0));
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
}

/// The log position sled's newest snapshot file covers (its name is `snap.<hex lsn>`).
fn snapshot_lsn(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let hex = name.strip_prefix("snap.")?;
            u64::from_str_radix(hex.split('.').next()?, 16).ok()
        })
        .max()
        .unwrap_or(0)
}

/// Closing checkpoints: the snapshot then covers every write, so the next open reads it
/// instead of replaying the log. A store still in use closes without one.
#[test]
fn closing_checkpoints_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), 16 << 20).unwrap());
    for i in 0..20 {
        store
            .write(vec![Write::Create {
                id: format!("a{i}"),
                content: content("Headline", BODIES[i % 4], i as i64),
            }])
            .pop()
            .unwrap()
            .unwrap();
    }
    let before = snapshot_lsn(dir.path());
    let held = store.clone();
    let wait = std::time::Duration::from_millis(100);
    assert!(!store.close(wait).unwrap(), "another handle is alive");
    assert_eq!(snapshot_lsn(dir.path()), before);
    assert!(held.close(std::time::Duration::from_secs(10)).unwrap());
    assert!(
        snapshot_lsn(dir.path()) > before,
        "the snapshot moved past the writes"
    );
    // sled may still be releasing its file lock from a background thread.
    let mut tries = 0;
    let store = loop {
        match Store::open(dir.path(), 16 << 20) {
            Ok(store) => break store,
            Err(err) if tries < 250 => {
                tries += 1;
                assert!(
                    err.to_string().contains("another newsstore process"),
                    "{err}"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(err) => panic!("{err}"),
        }
    };
    assert_eq!(store.last_seq(), 20);
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
}

#[test]
fn the_ranking_of_every_kind_merges_the_kinds_page_by_page() {
    use crate::model::EntityKind::{Location, Misc, Organization, Person};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 16 << 20).unwrap();
    let mut n = 0;
    for (name, kind, articles) in [
        ("Ann Lee", Person, 3),
        ("Acme", Organization, 2),
        ("Oslo", Location, 3),
        ("Euro", Misc, 1),
        ("Bob Ray", Person, 2),
    ] {
        for _ in 0..articles {
            n += 1;
            store
                .write(vec![Write::Create {
                    id: format!("a{n}"),
                    content: tagged(name, kind, n),
                }])
                .pop()
                .unwrap()
                .unwrap();
        }
    }
    // Most articles first, ties by id, whatever the kind.
    let expected = ["ann-lee", "oslo", "acme", "bob-ray", "euro"];
    let whole = store.list_entities(None, "", 100, None).unwrap();
    let ids: Vec<&str> = whole.items.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, expected);
    assert!(whole.next.is_none());
    let mut paged = Vec::new();
    let mut cursor: Option<Vec<u8>> = None;
    loop {
        let page = store.list_entities(None, "", 2, cursor.as_deref()).unwrap();
        assert!(page.items.len() <= 2);
        paged.extend(page.items.into_iter().map(|e| e.id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, expected);
    let people = store.list_entities(Some(Person), "", 100, None).unwrap();
    let ids: Vec<&str> = people.items.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["ann-lee", "bob-ray"]);
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
}

#[test]
fn a_layout_2_database_loses_its_all_kinds_ranking_at_open() {
    let (dir, store) = store_with(&[("a1", "Talks", "John Kerry met officials in Geneva.", 1_000)]);
    // Make it look like a layout-2 database, which ranked every kind together too.
    let mut all_kinds = Vec::new();
    for mut key in store.entity_index.ranking_keys() {
        key[1] = super::keys::RANK_ALL_BEFORE_LAYOUT_3;
        all_kinds.push(key);
    }
    assert!(!all_kinds.is_empty());
    for key in all_kinds {
        store.tree.insert(key, Vec::new()).unwrap();
    }
    let store = reopen_as_layout(dir.path(), store, 2);
    assert_eq!(
        store
            .tree
            .scan_prefix([super::keys::RANK, super::keys::RANK_ALL_BEFORE_LAYOUT_3])
            .count(),
        0
    );
    assert_eq!(
        store.tree.get(super::keys::META_LAYOUT).unwrap().unwrap(),
        super::LAYOUT_VERSION.to_be_bytes()
    );
    let listed = store.list_entities(None, "", 10, None).unwrap();
    assert!(listed.items.iter().any(|e| e.id == "john-kerry"));
}

/// Opens the store in `dir` again once sled's background flusher, which may hold the
/// folder's lock a moment after the drop, lets go of it.
fn reopen(dir: &std::path::Path) -> Store {
    (0..250)
        .find_map(|_| {
            Store::open(dir, 16 << 20)
                .inspect_err(|_| std::thread::sleep(std::time::Duration::from_millis(20)))
                .ok()
        })
        .expect("the store reopens")
}

/// The entity index saved at close is what the next open uses, but only while it is the
/// index of the store as it is: after a write with no close, the next open rebuilds it.
#[test]
fn the_entity_index_saved_at_close_is_used_only_while_it_is_current() {
    let (dir, store) = store_with(&[
        ("a1", "Talks", "John Kerry met officials in Geneva.", 1_000),
        ("a2", "Talks", "John Kerry flew to Moscow.", 2_000),
    ]);
    let saved = store.entity_index.all_keys();
    let a2_keys: Vec<Vec<u8>> =
        super::mention_index_keys(&store.get_article("a2").unwrap().unwrap()).collect();
    assert!(
        Arc::new(store)
            .close(std::time::Duration::from_secs(10))
            .unwrap()
    );
    assert!(dir.path().join(super::ENTITY_INDEX_FILE).exists());

    // Take a2's entity list out of sled behind the store's back: a rebuilt index would lose
    // a2, the saved one still has it.
    let store = reopen(dir.path());
    store
        .tree
        .remove(super::keys::article_entities("a2"))
        .unwrap();
    store.tree.flush().unwrap();
    drop(store);
    let store = reopen(dir.path());
    assert_eq!(store.entity_index.all_keys(), saved, "loaded, not rebuilt");

    // A write, then no close (as in a crash): the saved index is behind the store.
    create(
        &store,
        "a3",
        "Talks",
        "John Kerry returned to Washington.",
        3_000,
    );
    store.flush().unwrap();
    drop(store);
    let store = reopen(dir.path());
    let keys = store.entity_index.all_keys();
    assert!(
        a2_keys.iter().all(|key| !keys.contains(key)),
        "rebuilt from sled"
    );
    let filter = ArticleFilter {
        entity_ids: vec!["john-kerry".into()],
        ..ArticleFilter::default()
    };
    let ids: Vec<String> = store
        .list_articles(&filter, 10, None)
        .unwrap()
        .items
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, ["a3", "a1"]);

    // A damaged snapshot is rebuilt from sled, not trusted and not a failed open.
    store
        .tree
        .insert(
            super::keys::article_entities("a2"),
            super::article_entities_record(&store.get_article("a2").unwrap().unwrap()).unwrap(),
        )
        .unwrap();
    let keys = store.entity_index.all_keys();
    assert!(
        Arc::new(store)
            .close(std::time::Duration::from_secs(10))
            .unwrap()
    );
    let path = dir.path().join(super::ENTITY_INDEX_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    let store = reopen(dir.path());
    let mut rebuilt = store.entity_index.all_keys();
    rebuilt.sort();
    let mut all = keys;
    all.extend(a2_keys);
    all.sort();
    all.dedup();
    assert_eq!(rebuilt, all);
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
}

/// An entity's counters come from its articles, held by the entity index: a write that
/// only adds to them leaves the entity's record alone, and they are the same after a clean
/// restart (the saved index) and after a crash (rebuilt from the `x` records).
#[test]
fn entity_counters_are_derived_and_survive_every_kind_of_restart() {
    let (dir, store) = store_with(&[("a1", "Talks", "John Kerry met officials in Geneva.", 1_000)]);
    let record = || {
        store
            .tree
            .get(super::keys::entity("john-kerry"))
            .unwrap()
            .unwrap()
    };
    let before = record();
    create(&store, "a2", "Talks", "John Kerry flew to Moscow.", 2_000);
    assert_eq!(
        record(),
        before,
        "a mention alone does not rewrite the record"
    );
    let stored: Entity = super::codec::decode(&before).unwrap();
    assert_eq!((stored.article_count, stored.mention_count), (0, 0));

    let counters = |store: &Store| {
        let e = store.get_entity("john-kerry").unwrap().unwrap();
        (
            e.article_count,
            e.mention_count,
            e.first_seen,
            e.last_seen,
            e.kind_votes,
        )
    };
    let mut votes = [0; 4];
    votes[crate::model::EntityKind::Person.index()] = 2;
    let expected = (2, 2, Some(Timestamp(1_000)), Some(Timestamp(2_000)), votes);
    assert_eq!(counters(&store), expected);

    let close = |store: Store| {
        assert!(
            Arc::new(store)
                .close(std::time::Duration::from_secs(10))
                .unwrap()
        );
    };
    close(store);
    let store = reopen(dir.path());
    assert_eq!(counters(&store), expected, "loaded from the saved index");

    close(store);
    std::fs::remove_file(dir.path().join(super::ENTITY_INDEX_FILE)).unwrap();
    let store = reopen(dir.path());
    assert_eq!(counters(&store), expected, "rebuilt from the x records");
    assert_eq!(store.check().unwrap(), Vec::<String>::new());

    // Taking the article away takes its share away.
    store
        .write(vec![Write::Delete {
            id: "a2".into(),
            etag: None,
        }])
        .pop()
        .unwrap()
        .unwrap();
    votes[crate::model::EntityKind::Person.index()] = 1;
    assert_eq!(
        counters(&store),
        (1, 1, Some(Timestamp(1_000)), Some(Timestamp(1_000)), votes)
    );
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
}

/// A layout-5 database kept each entity's counters in its record and ids and saliences
/// alone in the `x` records (or ids alone, from before saliences): opening it writes both
/// kinds of record again, and the counters are what the articles say.
#[test]
fn a_layout_5_database_moves_entity_counters_to_the_entity_index_at_open() {
    let (dir, store) = store_with(&[
        ("a1", "Talks", "John Kerry met officials in Geneva.", 1_000),
        ("a2", "Talks", "John Kerry flew to Moscow.", 2_000),
    ]);
    let expected = store.get_entity("john-kerry").unwrap().unwrap();
    assert_eq!(expected.article_count, 2);
    // The records as layout 5 wrote them.
    for id in ["a1", "a2"] {
        let article = store.get_article(id).unwrap().unwrap();
        let key = super::keys::article_entities(id);
        let old = if id == "a1" {
            let weighted: Vec<(String, f32)> = article
                .derived
                .mentions
                .iter()
                .map(|m| (m.entity_id.clone(), m.salience))
                .collect();
            super::codec::encode(&weighted).unwrap()
        } else {
            let plain: Vec<String> = mentioned(&store, id);
            super::codec::encode(&plain).unwrap()
        };
        store.tree.insert(key, old).unwrap();
    }
    store
        .tree
        .insert(
            super::keys::entity("john-kerry"),
            super::codec::encode(&expected).unwrap(),
        )
        .unwrap();
    store
        .tree
        .insert(super::keys::META_LAYOUT, &5u64.to_be_bytes())
        .unwrap();
    store.flush().unwrap();
    drop(store);
    std::fs::remove_file(dir.path().join(super::ENTITY_INDEX_FILE)).ok();
    let store = reopen(dir.path());
    assert_eq!(
        store.tree.get(super::keys::META_LAYOUT).unwrap().unwrap(),
        super::LAYOUT_VERSION.to_be_bytes()
    );
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
    assert_eq!(store.get_entity("john-kerry").unwrap().unwrap(), expected);
    let stored = stored_record(&store, "john-kerry");
    assert_eq!((stored.article_count, stored.first_seen), (0, None));
}

#[test]
fn the_writer_never_writes_from_an_entity_record_an_editor_changed_since_it_was_read() {
    // a2 leaves john-kerry's record in the writer's cache without writing it.
    let (_dir, store) = store_with(&[
        ("a1", "Talks", "John Kerry met officials in Geneva.", 1_000),
        ("a2", "Talks", "John Kerry flew to Moscow.", 2_000),
    ]);
    let patch = crate::model::EntityPatch {
        description: Some("US Secretary of State".into()),
        ..Default::default()
    };
    store.update_entity("john-kerry", patch, None).unwrap();
    // a3 gives the entity a new alias, so the writer writes its record.
    create(
        &store,
        "a3",
        "Talks",
        "John Kerry flew to Paris. Kerry said the talks went well.",
        3_000,
    );
    let record = stored_record(&store, "john-kerry");
    assert!(
        record.aliases.contains(&"Kerry".to_string()),
        "a3 wrote the record: {record:?}"
    );
    assert_eq!(record.description, "US Secretary of State", "{record:?}");
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
}

#[test]
fn a_store_behind_its_witness_is_refused_and_an_accepted_loss_never_reuses_a_number() {
    use super::OpenOptions;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 16 << 20).unwrap();
    create(&store, "a1", "Talks", BODIES[0], 1);
    create(&store, "a2", "Talks", BODIES[1], 2);
    store.flush().unwrap();
    let (id, last) = (store.id().to_string(), store.last_seq());
    drop(store);

    // The search index (another store's, or one behind) does not count against it.
    for witness in [("another-store".to_string(), last + 5), (id.clone(), last)] {
        let options = OpenOptions {
            cache_bytes: 16 << 20,
            witness: Some(witness),
            ..OpenOptions::default()
        };
        drop(Store::open_with(dir.path(), &options).unwrap());
    }
    let behind = OpenOptions {
        cache_bytes: 16 << 20,
        witness: Some((id.clone(), last + 3)),
        ..OpenOptions::default()
    };
    let refused = Store::open_with(dir.path(), &behind).err().unwrap();
    let message = refused.to_string();
    assert!(matches!(refused, Error::DataLoss(_)), "{message}");
    assert!(
        message.contains(&format!("ends at change {last}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("up to {}", last + 3)),
        "{message}"
    );

    let accepting = OpenOptions {
        accept_data_loss: true,
        ..behind
    };
    let store = Store::open_with(dir.path(), &accepting).unwrap();
    assert_ne!(
        store.id(),
        id,
        "derived indexes must not take it for the old store"
    );
    assert_eq!(store.last_seq(), last + 3);
    create(&store, "a3", "Talks", BODIES[2], 3);
    assert_eq!(
        store.last_seq(),
        last + 4,
        "numbering goes on above the loss"
    );
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
    store.flush().unwrap();
    drop(store);
    // The loss is recorded: the next plain open neither refuses nor renumbers.
    let store = Store::open(dir.path(), 16 << 20).unwrap();
    assert_eq!(store.last_seq(), last + 4);
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
}

#[test]
fn the_acknowledged_record_follows_every_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 16 << 20).unwrap();
    create(&store, "a1", "Talks", BODIES[0], 1);
    store.flush().unwrap();
    let recorded = std::fs::read_to_string(dir.path().join(super::acknowledged::FILE)).unwrap();
    assert!(
        recorded.starts_with(&format!("{:020} ", store.last_seq())),
        "{recorded:?}"
    );
}

#[test]
fn a_panic_while_opening_is_a_refusal_that_names_the_folder() {
    let dir = std::path::Path::new("/data/newsstore/store");
    let refused = super::refuse_on_panic(dir, || -> crate::error::Result<()> {
        panic!("tried to serialize Uninitialized")
    })
    .unwrap_err();
    let message = refused.to_string();
    assert!(matches!(refused, Error::DataLoss(_)), "{message}");
    assert!(
        message.contains("/data/newsstore/store is damaged"),
        "{message}"
    );
    assert!(
        message.contains("tried to serialize Uninitialized"),
        "{message}"
    );
    assert!(message.contains("Restore the last backup"), "{message}");
}
