//! Opening a database written by an older layout migrates it.

use super::*;

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
        for key in crate::store::mention_index_keys(&article) {
            if key[0] == crate::store::keys::MENTION {
                store.tree.insert(key, Vec::new()).unwrap();
            }
        }
        let ids: Vec<String> = article
            .derived
            .mentions
            .iter()
            .map(|m| m.entity_id.clone())
            .collect();
        let plain = crate::store::codec::encode(&ids).unwrap();
        store
            .tree
            .insert(crate::store::keys::article_entities(id), plain)
            .unwrap();
    }
    let store = reopen_as_layout(dir.path(), store, 1);
    assert_eq!(
        store
            .tree
            .scan_prefix([crate::store::keys::MENTION])
            .count(),
        0
    );
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
        index_keys.extend(crate::store::mention_index_keys(&article));
    }
    assert!(index_keys.len() >= 4);
    let ranking = store.entity_index.ranking_keys();
    assert!(ranking.len() >= 3);
    for key in index_keys.iter().chain(&ranking) {
        store.tree.insert(key.as_slice(), Vec::new()).unwrap();
    }
    let store = reopen_as_layout(dir.path(), store, 3);
    for space in [
        crate::store::keys::MENTION,
        crate::store::keys::SALIENCE,
        crate::store::keys::RANK,
    ] {
        assert_eq!(store.tree.scan_prefix([space]).count(), 0);
    }
    assert_layout_current(&store);
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

#[test]
fn a_layout_2_database_loses_its_all_kinds_ranking_at_open() {
    let (dir, store) = store_with(&[("a1", "Talks", "John Kerry met officials in Geneva.", 1_000)]);
    // Make it look like a layout-2 database, which ranked every kind together too.
    let mut all_kinds = Vec::new();
    for mut key in store.entity_index.ranking_keys() {
        key[1] = crate::store::keys::RANK_ALL_BEFORE_LAYOUT_3;
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
            .scan_prefix([
                crate::store::keys::RANK,
                crate::store::keys::RANK_ALL_BEFORE_LAYOUT_3
            ])
            .count(),
        0
    );
    assert_layout_current(&store);
    let listed = store.list_entities(None, "", 10, None).unwrap();
    assert!(listed.items.iter().any(|e| e.id == "john-kerry"));
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
        let key = crate::store::keys::article_entities(id);
        let old = if id == "a1" {
            let weighted: Vec<(String, f32)> = article
                .derived
                .mentions
                .iter()
                .map(|m| (m.entity_id.clone(), m.salience))
                .collect();
            crate::store::codec::encode(&weighted).unwrap()
        } else {
            let plain: Vec<String> = mentioned(&store, id);
            crate::store::codec::encode(&plain).unwrap()
        };
        store.tree.insert(key, old).unwrap();
    }
    store
        .tree
        .insert(
            crate::store::keys::entity("john-kerry"),
            crate::store::codec::encode(&expected).unwrap(),
        )
        .unwrap();
    store
        .tree
        .insert(crate::store::keys::META_LAYOUT, &5u64.to_be_bytes())
        .unwrap();
    store.flush().unwrap();
    drop(store);
    std::fs::remove_file(dir.path().join(crate::store::ENTITY_INDEX_FILE)).ok();
    let store = reopen(dir.path());
    assert_layout_current(&store);
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
    assert_eq!(store.get_entity("john-kerry").unwrap().unwrap(), expected);
    let stored = stored_record(&store, "john-kerry");
    assert_eq!((stored.article_count, stored.first_seen), (0, None));
}

/// The store records the current layout version: every upgrade ran.
fn assert_layout_current(store: &Store) {
    assert_eq!(
        store
            .tree
            .get(crate::store::keys::META_LAYOUT)
            .unwrap()
            .unwrap(),
        crate::store::migrations::LAYOUT_VERSION.to_be_bytes()
    );
}
