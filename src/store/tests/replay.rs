//! Deciding apart from applying: the change records of a mixed workload, encoded, decoded
//! and applied in order to a fresh store, leave it byte for byte the store that decided
//! them (what replication between machines will rely on).

use super::*;
use crate::model::EntityPatch;
use crate::store::ChangeRecord;

/// Every key and value of the store's tree outside the `~` keys, which each store keeps for
/// itself (its identity, its layout).
fn replicated_keys(store: &Store) -> Vec<(Vec<u8>, Vec<u8>)> {
    store
        .tree
        .iter()
        .map(|entry| entry.unwrap())
        .filter(|(key, _)| key.first() != Some(&crate::store::keys::META))
        .map(|(key, value)| (key.to_vec(), value.to_vec()))
        .collect()
}

/// The entity index as readers see it: its keys, and every entity's counters.
fn entity_index_state(store: &Store) -> (Vec<Vec<u8>>, Vec<String>) {
    let counters = store
        .tree
        .scan_prefix([crate::store::keys::ENTITY])
        .map(|entry| {
            let entity: Entity = crate::store::codec::decode(&entry.unwrap().1).unwrap();
            format!(
                "{} {:?}",
                entity.id,
                store.entity_index.counters(&entity.id)
            )
        })
        .collect();
    (store.entity_index.all_keys(), counters)
}

fn only(outcomes: Vec<crate::error::Result<crate::store::Written>>) -> crate::store::Written {
    outcomes.into_iter().next().unwrap().unwrap()
}

#[test]
fn change_records_applied_in_order_rebuild_the_deciding_store_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 16 << 20).unwrap();
    *store.tap.lock().unwrap() = Some(Vec::new());

    // Creates, three in one call, one of them with a request id.
    let created = store.write_tagged(vec![
        (
            Write::Create {
                id: "a1".into(),
                content: content("Talks", "John Kerry met officials in Geneva.", 1_000),
            },
            tag("r1"),
        ),
        (
            Write::Create {
                id: "a2".into(),
                content: content("Talks", "Secretary Jon Kerry spoke in Geneva.", 2_000),
            },
            None,
        ),
        (
            Write::Create {
                id: "a3".into(),
                content: content("More", BODIES[1], 3_000),
            },
            None,
        ),
    ]);
    let a1 = created[0].as_ref().unwrap().article.clone().unwrap();
    create(&store, "a4", "Paris", BODIES[3], 4_000);
    create(&store, "a5", "UN", BODIES[2], 5_000);
    // A retry of the first create answers from its record and decides nothing.
    let retried = store.write_tagged(vec![(
        Write::Create {
            id: "a1".into(),
            content: content("Talks", "John Kerry met officials in Geneva.", 1_000),
        },
        tag("r1"),
    )]);
    assert!(retried[0].as_ref().unwrap().replayed);
    // An update with the etag, a refused one with a stale etag (no record), a delete.
    let updated = only(store.write_tagged(vec![(
        Write::Replace {
            id: "a1".into(),
            etag: Some(a1.etag()),
            content: content("Talks end", "John Kerry left Geneva for Moscow.", 1_500),
        },
        tag("r2"),
    )]));
    let stale = store.write(vec![Write::Replace {
        id: "a1".into(),
        etag: Some(a1.etag()),
        content: content("Again", BODIES[0], 1_600),
    }]);
    assert!(matches!(stale[0], Err(Error::EtagMismatch { .. })));
    let a4 = store.get_article("a4").unwrap().unwrap();
    only(store.write(vec![Write::Delete {
        id: "a4".into(),
        etag: Some(a4.etag()),
    }]));
    // The deleted id again (its revisions continue), then a purge of another.
    create(&store, "a4", "Paris again", BODIES[3], 4_500);
    only(store.write_tagged(vec![(Write::Purge { id: "a3".into() }, tag("r3"))]));
    // Editorial decisions: a merge, an edit, a block and an unblock.
    store
        .merge_entities("john-kerry", &["jon-kerry".to_string()], tag("r4").as_ref())
        .unwrap();
    store
        .update_entity(
            "geneva",
            EntityPatch {
                description: Some("A city in Switzerland".into()),
                ..EntityPatch::default()
            },
            None,
        )
        .unwrap();
    let blocked = store.set_blocked("moscow", true, None).unwrap();
    assert!(blocked.articles_updated > 0);
    store.set_blocked("moscow", false, None).unwrap();
    // Re-extraction finds the unblocked entity again in the article it left.
    let a1 = store.get_article("a1").unwrap().unwrap();
    let reextracted = only(store.write(vec![Write::Reextract {
        id: "a1".into(),
        etag: a1.etag(),
        content: content("Talks end", "John Kerry left Geneva for Moscow.", 1_500),
    }]));
    assert!(reextracted.seq > updated.seq, "re-extraction wrote nothing");
    assert!(mentioned(&store, "a1").contains(&"moscow".to_string()));
    assert_eq!(store.check().unwrap(), Vec::<String>::new());

    let records = store.tap.lock().unwrap().take().unwrap();
    // One record per decided write, numbered without gaps; none for the retry or the refusal.
    assert_eq!(records.len(), 14);
    assert_eq!(records.first().unwrap().first_seq(), 1);
    for pair in records.windows(2) {
        assert_eq!(pair[1].first_seq(), pair[0].last_seq() + 1);
    }
    assert_eq!(records.last().unwrap().last_seq(), store.last_seq());
    let encoded: Vec<Vec<u8>> = records.iter().map(|r| r.encode().unwrap()).collect();

    // A fresh store, given only the encoded records, in three calls.
    let replica_dir = tempfile::tempdir().unwrap();
    let replica = Store::open(replica_dir.path(), 16 << 20).unwrap();
    let decoded: Vec<ChangeRecord> = encoded
        .iter()
        .map(|bytes| ChangeRecord::decode(bytes).unwrap())
        .collect();
    assert_eq!(decoded, records);
    let mut decoded = decoded.into_iter();
    let first: Vec<_> = decoded.by_ref().take(1).collect();
    replica.apply_records(first).unwrap();
    let second: Vec<_> = decoded.by_ref().take(7).collect();
    replica.apply_records(second).unwrap();
    // A record applied twice, or out of order, is refused and changes nothing.
    let again = ChangeRecord::decode(&encoded[3]).unwrap();
    let refused = replica.apply_records(vec![again]).unwrap_err();
    assert!(
        refused.to_string().contains("cannot follow change 8"),
        "{refused}"
    );
    replica.apply_records(decoded.collect()).unwrap();

    assert_eq!(replica.last_seq(), store.last_seq());
    assert_eq!(replicated_keys(&replica), replicated_keys(&store));
    assert_eq!(entity_index_state(&replica), entity_index_state(&store));
    assert_eq!(replica.check().unwrap(), Vec::<String>::new());
    // The replica answers reads as the original does.
    assert_eq!(
        replica.get_article("a1").unwrap(),
        store.get_article("a1").unwrap()
    );
    assert_eq!(
        replica.get_entity("john-kerry").unwrap(),
        store.get_entity("john-kerry").unwrap()
    );
}

#[test]
fn a_record_of_an_unknown_version_or_damaged_is_refused() {
    let (_dir, store) = store_with(&[]);
    *store.tap.lock().unwrap() = Some(Vec::new());
    create(&store, "a1", "Talks", BODIES[0], 1_000);
    let record = store.tap.lock().unwrap().take().unwrap().remove(0);
    let mut bytes = record.encode().unwrap();
    bytes[0] = 9;
    let newer = ChangeRecord::decode(&bytes).unwrap_err();
    assert!(newer.to_string().contains("version 9"), "{newer}");
    let cut = record.encode().unwrap();
    assert!(ChangeRecord::decode(&cut[..cut.len() / 2]).is_err());
    assert!(ChangeRecord::decode(&[]).is_err());
}
