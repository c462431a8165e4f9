//! Store tests against a real sled database in a temporary folder.

use std::sync::Arc;

use super::{Content, Store, Write};
use crate::error::Error;
use crate::extract;
use crate::ingest::content_hash;
use crate::model::{ArticleFilter, ArticleInput, ChangeKind, Timestamp};

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
