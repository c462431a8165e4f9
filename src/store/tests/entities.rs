//! Entity resolution, kinds, rankings, counters and the entity index.

use super::*;

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
        crate::store::mention_index_keys(&store.get_article("a2").unwrap().unwrap()).collect();
    assert!(
        Arc::new(store)
            .close(std::time::Duration::from_secs(10))
            .unwrap()
    );
    assert!(dir.path().join(crate::store::ENTITY_INDEX_FILE).exists());

    // Take a2's entity list out of sled behind the store's back: a rebuilt index would lose
    // a2, the saved one still has it.
    let store = reopen(dir.path());
    store
        .tree
        .remove(crate::store::keys::article_entities("a2"))
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
            crate::store::keys::article_entities("a2"),
            crate::store::article_entities_record(&store.get_article("a2").unwrap().unwrap())
                .unwrap(),
        )
        .unwrap();
    let keys = store.entity_index.all_keys();
    assert!(
        Arc::new(store)
            .close(std::time::Duration::from_secs(10))
            .unwrap()
    );
    let path = dir.path().join(crate::store::ENTITY_INDEX_FILE);
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
            .get(crate::store::keys::entity("john-kerry"))
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
    let stored: Entity = crate::store::codec::decode(&before).unwrap();
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
    std::fs::remove_file(dir.path().join(crate::store::ENTITY_INDEX_FILE)).unwrap();
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
