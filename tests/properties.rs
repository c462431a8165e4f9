//! Property tests: key encodings keep their order and round-trip, page tokens round-trip
//! and refuse what they did not issue, pagination visits every article exactly once, and
//! no parser panics on any input.

use newsstore::model::{ArticleFilter, ArticleInput, Timestamp};
use newsstore::store::keys;
use proptest::prelude::*;

fn id() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9_-]{0,40}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn newest_first_orders_and_round_trips(a: i64, b: i64) {
        let (ka, kb) = (keys::newest_first(Timestamp(a)), keys::newest_first(Timestamp(b)));
        prop_assert_eq!(a.cmp(&b), kb.cmp(&ka));
        prop_assert_eq!(keys::time_from_newest_first(ka), Timestamp(a));
    }

    #[test]
    fn index_keys_round_trip(time: i64, article in id(), entity in id()) {
        for index in [
            keys::ArticleIndex::Time,
            keys::ArticleIndex::Source("reuters".into()),
            keys::ArticleIndex::Entity(entity.clone()),
        ] {
            let key = index.key(Timestamp(time), &article);
            prop_assert!(key.starts_with(&index.prefix()));
            prop_assert_eq!(
                keys::split_suffix(&key[index.prefix().len()..]),
                Some((Timestamp(time), article.as_str()))
            );
        }
    }

    #[test]
    fn salience_keys_sort_most_salient_first(a in 0.0f32..=1.0, b in 0.0f32..=1.0) {
        if a > b + 1e-6 {
            prop_assert!(keys::salience_desc(a) <= keys::salience_desc(b));
        }
    }

    #[test]
    fn revision_and_request_keys_round_trip(article in id(), r1: u64, r2: u64, t: i64, request in "[!-~]{1,64}") {
        prop_assert_eq!(keys::revision_of_key(&keys::revision(&article, r1)), Some(r1));
        prop_assert_eq!(r1.cmp(&r2), keys::revision(&article, r1).cmp(&keys::revision(&article, r2)));
        prop_assert!(keys::revision(&article, r1).starts_with(&keys::revision_prefix(&article)));
        let key = keys::request_time(Timestamp(t), &request);
        prop_assert_eq!(keys::split_request_time(&key), Some((Timestamp(t), request.as_str())));
    }

    #[test]
    fn parsers_never_panic(text in "\\PC{0,400}") {
        let _ = newsstore::search::query::parse(&text);
        let _ = newsstore::extract::document::parse(&text);
        let _ = newsstore::ninjs::parse(&text);
    }

    #[test]
    fn the_query_parser_survives_its_own_syntax(
        parts in prop::collection::vec(prop_oneof![
            Just("AND"), Just("OR"), Just("NOT"), Just("("), Just(")"), Just("\""),
            Just("-"), Just("*"), Just("entity:"), Just("kind:person"), Just("headline:"),
            Just("kerry"), Just("syria"), Just(" "),
        ], 0..40)
    ) {
        let _ = newsstore::search::query::parse(&parts.concat());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Whatever the page size, following next-page tokens visits every article once, newest
    /// first.
    #[test]
    fn pagination_visits_every_article_once(
        times in prop::collection::vec(0i64..50, 1..40),
        page_size in 1usize..7,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = newsstore::store::Store::open(dir.path(), 8 << 20).unwrap();
        let writes = times
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let input = ArticleInput {
                    headline: format!("Story {i}"),
                    body: "Officials met in Geneva.".into(),
                    source: if i % 2 == 0 { "Reuters".into() } else { "AFP".into() },
                    published: Some(Timestamp(t)),
                    ..ArticleInput::default()
                };
                newsstore::store::Write::Create {
                    id: format!("a{i:03}"),
                    content: newsstore::store::Content {
                        extraction: newsstore::extract::analyze(&input),
                        content_hash: input.content_hash(),
                        input,
                    },
                }
            })
            .collect();
        for outcome in store.write(writes) {
            outcome.unwrap();
        }
        for filter in [
            ArticleFilter::default(),
            ArticleFilter { sources: vec!["reuters".into(), "afp".into()], ..ArticleFilter::default() },
        ] {
            let mut seen = Vec::new();
            let mut cursor: Option<Vec<u8>> = None;
            loop {
                let page = store.list_articles(&filter, page_size, cursor.as_deref()).unwrap();
                prop_assert!(page.items.len() <= page_size);
                seen.extend(page.items.iter().map(|a| (a.sort_time(), a.id.clone())));
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            let mut ids: Vec<&String> = seen.iter().map(|(_, id)| id).collect();
            ids.sort();
            ids.dedup();
            prop_assert_eq!(ids.len(), times.len(), "each article once");
            prop_assert_eq!(seen.len(), times.len());
            prop_assert!(seen.windows(2).all(|w| w[0].0 >= w[1].0), "newest first");
        }
    }
}
