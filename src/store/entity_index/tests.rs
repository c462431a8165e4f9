//! The entity index: applying changes, scans, the builder and the snapshot, each checked
//! against the keys sled would hold.

use super::*;
use crate::model::{EntityKind, Timestamp};
use crate::store::change_record::Changes;
use keys::ArticleIndex;

fn by_time(entity: &str, time: i64, id: &str) -> Vec<u8> {
    ArticleIndex::Entity(entity.into()).key(Timestamp(time), id)
}

fn apply(index: &EntityIndex, keys: &[(Vec<u8>, bool)]) {
    let mut changes = Changes::default();
    for (key, insert) in keys {
        if *insert {
            changes.insert(key.clone(), Vec::new());
        } else {
            changes.remove(key.clone());
        }
    }
    let (batch, index_changes, _) = changes.split();
    assert_eq!(
        format!("{batch:?}"),
        format!("{:?}", sled::Batch::default()),
        "entity-index keys never reach sled"
    );
    index.apply(index_changes);
}

fn scan(index: &EntityIndex, prefix: &[u8]) -> Vec<Vec<u8>> {
    index
        .range(prefix.to_vec()..keys::prefix_end(prefix))
        .collect()
}

#[test]
fn keys_come_back_in_byte_order_like_sled_would_give_them() {
    let index = EntityIndex::default();
    let mut written = vec![
        by_time("kerry", 5, "b"),
        by_time("kerry", 5, "a"),
        by_time("kerry", 9, "c"),
        by_time("kerry", -3, "d"),
        keys::salience("kerry", 0.2, Timestamp(5), "b"),
        keys::salience("kerry", 0.9, Timestamp(1), "a"),
        by_time("lavrov", 5, "a"),
    ];
    apply(
        &index,
        &written
            .iter()
            .map(|k| (k.clone(), true))
            .collect::<Vec<_>>(),
    );
    // Putting a key twice keeps one.
    apply(&index, &[(by_time("kerry", 5, "b"), true)]);
    written.sort();
    assert_eq!(index.all_keys(), written);
    assert_eq!(index.len(), 7);

    let prefix = ArticleIndex::Entity("kerry".into()).prefix();
    let expected: Vec<Vec<u8>> = written
        .iter()
        .filter(|k| k.starts_with(&prefix))
        .cloned()
        .collect();
    assert_eq!(scan(&index, &prefix), expected);
    assert_eq!(expected[0], by_time("kerry", 9, "c"), "newest first");
    let salience = scan(&index, &keys::salience_prefix("kerry"));
    assert_eq!(salience[0], keys::salience("kerry", 0.9, Timestamp(1), "a"));

    // From a cursor (exclusive, the way readers append a 0 byte) to a time bound.
    let mut low = by_time("kerry", 5, "a");
    low.push(0);
    let mut high = prefix.clone();
    high.extend_from_slice(&keys::newest_first(Timestamp(-3)));
    let middle: Vec<Vec<u8>> = index.range(low..high).collect();
    assert_eq!(middle, vec![by_time("kerry", 5, "b")]);

    apply(
        &index,
        &[
            (by_time("kerry", 5, "a"), false),
            (by_time("nobody", 1, "a"), false),
        ],
    );
    assert_eq!(index.len(), 6);
    apply(&index, &[(by_time("lavrov", 5, "a"), false)]);
    assert!(scan(&index, &ArticleIndex::Entity("lavrov".into()).prefix()).is_empty());
    let kerry = index.counters("kerry");
    assert_eq!(kerry.newest, Some(Timestamp(9)));
    assert_eq!(kerry.oldest, Some(Timestamp(-3)));
    apply(&index, &[(by_time("kerry", -3, "d"), false)]);
    assert_eq!(index.counters("kerry").oldest, Some(Timestamp(5)));
}

#[test]
fn a_long_scan_reads_chunk_by_chunk_and_sees_writes_made_meanwhile() {
    let index = EntityIndex::default();
    let count = SCAN_CHUNK * 5 + 7;
    let keys: Vec<(Vec<u8>, bool)> = (0..count)
        .map(|n| (by_time("uk", n as i64, &format!("{n:05}")), true))
        .collect();
    apply(&index, &keys);
    let prefix = ArticleIndex::Entity("uk".into()).prefix();
    let mut scan = index.range(prefix.clone()..keys::prefix_end(&prefix));
    let first: Vec<Vec<u8>> = scan.by_ref().take(SCAN_CHUNK + 1).collect();
    // The oldest article goes while the scan is half way: it is not returned.
    apply(&index, &[(by_time("uk", 0, "00000"), false)]);
    let rest: Vec<Vec<u8>> = scan.collect();
    assert_eq!(first.len() + rest.len(), count - 1);
    let mut all = first;
    all.extend(rest);
    let mut expected: Vec<Vec<u8>> = keys.into_iter().map(|(k, _)| k).collect();
    expected.sort();
    expected.pop();
    assert_eq!(all, expected);
}

#[test]
fn built_in_bulk_it_equals_the_index_built_key_by_key() {
    let articles = vec![
        (
            "b".to_string(),
            7i64,
            vec![("kerry".to_string(), 0.5f32), ("geneva".to_string(), 0.5)],
        ),
        ("a".to_string(), 7, vec![("kerry".to_string(), 1.0)]),
        ("c".to_string(), -1, vec![("geneva".to_string(), 0.25)]),
    ];
    let mut one_by_one = Vec::new();
    for (id, time, entities) in &articles {
        for (entity, salience) in entities {
            one_by_one.push((by_time(entity, *time, id), true));
            one_by_one.push((
                keys::salience(entity, *salience, Timestamp(*time), id),
                true,
            ));
        }
    }
    let ranking = vec![
        keys::rank(EntityKind::Person, 2, "kerry"),
        keys::rank(EntityKind::Location, 2, "geneva"),
    ];
    one_by_one.extend(ranking.iter().map(|key| (key.clone(), true)));
    let index = EntityIndex::default();
    apply(&index, &one_by_one);
    let mut builder = Builder::default();
    for (id, time, entities) in articles {
        let tallied = entities
            .into_iter()
            .map(|(entity, salience)| {
                let kind = if entity == "kerry" {
                    EntityKind::Person
                } else {
                    EntityKind::Location
                };
                let tally = MentionTally {
                    count: 2,
                    kind: Some(kind),
                };
                (entity, salience, tally)
            })
            .collect();
        builder.article(&id, keys::newest_first(Timestamp(time)), tallied);
    }
    let built = builder.finish();
    let mut ranked = Changes::default();
    for key in ranking {
        ranked.insert(key, Vec::new());
    }
    built.apply(ranked.split().1);
    assert_eq!(built.all_keys(), index.all_keys());
    assert_eq!(built.ranking_keys(), index.ranking_keys());
    assert_eq!(built.len(), index.len());
    let kerry = built.counters("kerry");
    assert_eq!(kerry.articles, 2);
    let mut votes = [0; 4];
    votes[EntityKind::Person.index()] = 2;
    assert_eq!(kerry.tally, Tally { mentions: 4, votes });
}

#[test]
fn malformed_keys_and_ranges_are_ignored_not_panics() {
    let index = EntityIndex::default();
    apply(
        &index,
        &[
            (vec![keys::MENTION], true),
            (vec![keys::MENTION, b'x', 0, 1], true),
            (vec![keys::SALIENCE, b'x', 0], false),
        ],
    );
    assert_eq!(index.len(), 0);
    assert_eq!(
        index
            .range(vec![keys::MENTION]..vec![keys::MENTION + 1])
            .count(),
        0
    );
    assert_eq!(index.range(Vec::new()..Vec::new()).count(), 0);
}

#[test]
fn a_snapshot_loads_only_for_its_store_and_change_and_only_whole() {
    let index = EntityIndex::default();
    apply(
        &index,
        &[
            (by_time("kerry", 5, "a"), true),
            (keys::salience("kerry", 0.5, Timestamp(5), "a"), true),
            (by_time("geneva", 5, "a"), true),
            (keys::rank(EntityKind::Person, 1, "kerry"), true),
            (keys::rank(EntityKind::Location, 1, "geneva"), true),
        ],
    );
    // An article that was indexed and is gone: its id is not saved.
    apply(&index, &[(by_time("kerry", 6, "gone"), true)]);
    apply(&index, &[(by_time("kerry", 6, "gone"), false)]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("entity-index");
    index.save(&path, "store-1", 42).unwrap();
    let loaded = EntityIndex::load(&path, "store-1", 42).expect("loads");
    let ids = loaded.inner.read().unwrap().ids.ids.len();
    assert_eq!(ids, 1, "only the ids entries name");
    assert_eq!(loaded.all_keys(), index.all_keys());
    assert_eq!(loaded.ranking_keys(), index.ranking_keys());
    assert_eq!(loaded.ranking_keys().len(), 2);
    assert_eq!(loaded.len(), 3);
    assert!(EntityIndex::load(&path, "store-2", 42).is_none());
    assert!(EntityIndex::load(&path, "store-1", 43).is_none());
    assert!(EntityIndex::load(&dir.path().join("missing"), "store-1", 42).is_none());
    let bytes = std::fs::read(&path).unwrap();
    for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        assert!(
            EntityIndex::load(&path, "store-1", 42).is_none(),
            "cut at {cut}"
        );
    }
}

#[test]
fn the_ranking_scans_by_key_and_moves_with_each_write() {
    let index = EntityIndex::default();
    let people = keys::rank_prefix(EntityKind::Person);
    apply(
        &index,
        &[
            (keys::rank(EntityKind::Person, 3, "ann"), true),
            (keys::rank(EntityKind::Person, 1, "bob"), true),
            (keys::rank(EntityKind::Location, 9, "oslo"), true),
        ],
    );
    let scan =
        |low: Vec<u8>| -> Vec<Vec<u8>> { index.range(low..keys::prefix_end(&people)).collect() };
    assert_eq!(
        scan(people.clone()),
        [
            keys::rank(EntityKind::Person, 3, "ann"),
            keys::rank(EntityKind::Person, 1, "bob")
        ]
    );
    // Bob's count goes to 4: one removal and one insertion, as a write makes them.
    apply(
        &index,
        &[
            (keys::rank(EntityKind::Person, 1, "bob"), false),
            (keys::rank(EntityKind::Person, 4, "bob"), true),
        ],
    );
    let mut after_first = keys::rank(EntityKind::Person, 4, "bob");
    assert_eq!(scan(people.clone())[0], after_first);
    after_first.push(0);
    assert_eq!(
        scan(after_first),
        [keys::rank(EntityKind::Person, 3, "ann")]
    );
    assert_eq!(index.ranking_keys().len(), 3);
}
