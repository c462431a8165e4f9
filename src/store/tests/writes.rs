//! Article writes: concurrency, preconditions, cursors, entity bounds, retention.

use super::*;

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

#[test]
fn compaction_keeps_the_retention_the_floor_and_the_newest_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), 16 << 20).unwrap();
    store.set_retention(crate::store::Retention {
        changes: 4,
        ..crate::store::Retention::default()
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
    store.set_retention(crate::store::Retention {
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
