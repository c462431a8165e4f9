//! Store tests against a real sled database in a temporary folder, one file per subject;
//! the helpers they share are here.

mod editorial;
mod entities;
mod layouts;
mod log;
mod opening;
mod replay;
mod writes;

use std::sync::Arc;

use super::{Content, Store, Write};
use crate::error::Error;
use crate::extract;
use crate::model::{ArticleFilter, ArticleInput, ChangeKind, Entity, Timestamp};

/// The request tag of request id `id`, as a caller with that request id gives it.
pub(super) fn tag(id: &str) -> Option<crate::model::RequestTag> {
    Some(crate::model::RequestTag {
        id: id.into(),
        fingerprint: format!("fingerprint of {id}"),
    })
}

pub(super) fn content(headline: &str, body: &str, published: i64) -> Content {
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
        content_hash: input.content_hash(),
        input,
    }
}

pub(super) const BODIES: [&str; 4] = [
    "Officials from Syria met John Kerry in Geneva. Kerry said talks went well.",
    "Sergei Lavrov flew to Moscow. Lavrov said Russia would reply.",
    "The United Nations met in New York. Officials from Syria and Turkey attended.",
    "Angela Merkel visited Paris, where Merkel met officials from France.",
];

pub(super) fn create(store: &Store, id: &str, headline: &str, body: &str, published: i64) {
    create_with(store, id, content(headline, body, published));
}

/// Creates article `id` from `content`, which must succeed.
pub(super) fn create_with(store: &Store, id: &str, content: Content) {
    let outcome = store.write(vec![Write::Create {
        id: id.into(),
        content,
    }]);
    outcome.into_iter().next().unwrap().unwrap();
}

/// A store in a fresh folder holding `articles` (id, headline, body, publication time).
pub(super) fn store_with(articles: &[(&str, &str, &str, i64)]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 16 << 20).unwrap();
    for (id, headline, body, published) in articles {
        create(&store, id, headline, body, *published);
    }
    (dir, store)
}

/// Entity `id`'s record as sled holds it, without the counters the entity index adds.
pub(super) fn stored_record(store: &Store, id: &str) -> Entity {
    super::codec::decode(&store.tree.get(super::keys::entity(id)).unwrap().unwrap()).unwrap()
}

pub(super) fn mentioned(store: &Store, article: &str) -> Vec<String> {
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

/// Marks `store` (whose keys a test has made look like an older layout's) as holding key
/// layout `layout`, closes it and opens it again, which upgrades it; the upgraded store
/// must pass the consistency check.
pub(super) fn reopen_as_layout(dir: &std::path::Path, store: Store, layout: u64) -> Store {
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

/// An article whose extraction found exactly one entity, `name`, as `kind`.
pub(super) fn tagged(name: &str, kind: crate::model::EntityKind, published: i64) -> Content {
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

/// The log position sled's newest snapshot file covers (its name is `snap.<hex lsn>`).
pub(super) fn snapshot_lsn(dir: &std::path::Path) -> u64 {
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

/// Opens the store in `dir` again once sled's background flusher, which may hold the
/// folder's lock a moment after the drop, lets go of it.
pub(super) fn reopen(dir: &std::path::Path) -> Store {
    (0..250)
        .find_map(|_| {
            Store::open(dir, 16 << 20)
                .inspect_err(|_| std::thread::sleep(std::time::Duration::from_millis(20)))
                .ok()
        })
        .expect("the store reopens")
}
