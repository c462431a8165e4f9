//! The key layout of the one sled tree that holds everything.
//!
//! Every record and index entry lives in a single tree, under a one-byte prefix per key
//! space, so one `apply_batch` updates an article and all of its index entries atomically.
//! Numbers in keys are big-endian so byte order is numeric order. Text parts (ids, name keys,
//! sources) end with a 0x00 separator; none of them may contain 0x00 (ids are validated,
//! name keys are alphanumeric, sources have control characters removed).
//!
//! The `m`, `l` and `r` key spaces are not in sled: the entity indexes hold them in memory
//! (see `store/entity_index/`), with the same keys in the same order.
//!
//! | prefix | key                                   | value                       |
//! |--------|---------------------------------------|-----------------------------|
//! | `a`    | article id                            | article record              |
//! | `e`    | entity id                             | entity record               |
//! | `n`    | name key, 0, entity id                | empty: name and alias index |
//! | `t`    | newest-first time, article id         | empty: all articles by time |
//! | `s`    | source, 0, newest-first time, id      | empty: articles by source   |
//! | `m`    | entity id, 0, newest-first time, id   | in memory: articles by entity |
//! | `l`    | entity id, 0, salience desc, time, id | in memory: by salience there  |
//! | `x`    | article id                            | its entities and saliences  |
//! | `r`    | kind, fewest-articles-last count, id  | in memory: ranking, per kind |
//! | `c`    | sequence number                       | change-log entry            |
//! | `o`    | article id                            | fingerprint of its file     |
//! | `k`    | entity number                         | entity id                   |
//! | `h`    | article id, 0, revision               | a past revision or deletion |
//! | `q`    | request id                            | what the request did        |
//! | `w`    | time recorded, request id             | empty: request ids by age   |
//! | `~`    | name                                  | store metadata              |

use crate::model::{EntityKind, Timestamp};

pub const ARTICLE: u8 = b'a';
pub const ENTITY: u8 = b'e';
pub const NAME: u8 = b'n';
pub const TIME: u8 = b't';
pub const SOURCE: u8 = b's';
pub const MENTION: u8 = b'm';
pub const SALIENCE: u8 = b'l';
pub const ARTICLE_ENTITIES: u8 = b'x';
pub const RANK: u8 = b'r';
pub const CHANGE: u8 = b'c';
pub const META: u8 = b'~';

/// The metadata key holding the layout version of the tree.
pub const META_LAYOUT: &[u8] = b"~layout";
/// The metadata key holding the store's random identity, which derived indexes record so
/// they can tell another store's data from this one's.
pub const META_STORE_ID: &[u8] = b"~store-id";

/// The metadata key naming the cluster log the store follows (cluster mode): a store
/// never applies another log's records.
pub const META_LOG_ID: &[u8] = b"~log-id";
/// The metadata key holding the last log position applied (cluster mode), written in the
/// same batch as the record at that position.
pub const META_LOG_POSITION: &[u8] = b"~log-position";

/// `key` as text for a person: its bytes as UTF-8, control characters (the separators
/// and numbers inside keys) shown as `·`.
pub fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(key).replace(|c: char| c.is_control(), "·")
}

/// The metadata key prefix of each loss accepted at open (`--accept-data-loss`): followed
/// by the big-endian sequence number that had been acknowledged; the value is the one the
/// change log ended at. Sequence numbers continue above the acknowledged one.
pub const META_ACCEPTED_LOSS: &[u8] = b"~accepted-loss:";

/// The key recording a loss accepted up to `acknowledged`.
pub fn accepted_loss(acknowledged: u64) -> Vec<u8> {
    let mut key = META_ACCEPTED_LOSS.to_vec();
    key.extend_from_slice(&acknowledged.to_be_bytes());
    key
}

/// Key space of past revisions and deletion tombstones of articles.
pub const REVISION: u8 = b'h';
/// Key space of idempotency records, by request id.
pub const REQUEST: u8 = b'q';
/// Key space of idempotency records by the time they were made, for expiry.
pub const REQUEST_TIME: u8 = b'w';

/// Prefix of every stored past revision of article `id`.
pub fn revision_prefix(id: &str) -> Vec<u8> {
    with(REVISION, &[id.as_bytes(), &[0]])
}

/// Past revision `revision` of article `id`.
pub fn revision(id: &str, revision: u64) -> Vec<u8> {
    with(REVISION, &[id.as_bytes(), &[0], &revision.to_be_bytes()])
}

/// The revision number at the end of a revision key.
pub fn revision_of_key(key: &[u8]) -> Option<u64> {
    let at = key.len().checked_sub(8)?;
    Some(u64::from_be_bytes(key.get(at..)?.try_into().ok()?))
}

pub fn request(request_id: &str) -> Vec<u8> {
    with(REQUEST, &[request_id.as_bytes()])
}

/// A request id in the by-age index; plain time order, oldest first.
pub fn request_time(time: Timestamp, request_id: &str) -> Vec<u8> {
    let biased = (time.0 as u64) ^ (1 << 63);
    with(
        REQUEST_TIME,
        &[&biased.to_be_bytes(), request_id.as_bytes()],
    )
}

/// The time and request id of a by-age key.
pub fn split_request_time(key: &[u8]) -> Option<(Timestamp, &str)> {
    let biased = u64::from_be_bytes(key.get(1..9)?.try_into().ok()?);
    let id = std::str::from_utf8(key.get(9..)?).ok()?;
    Some((Timestamp((biased ^ (1 << 63)) as i64), id))
}

/// Key space of source-file fingerprints: which file version an article was last loaded from.
pub const ORIGIN: u8 = b'o';
/// Key space of entity numbers: code → entity id.
pub const ENTITY_CODE: u8 = b'k';
/// The metadata key holding the next entity number to assign.
pub const META_NEXT_CODE: &[u8] = b"~next-entity-code";

pub fn entity_code(code: u64) -> Vec<u8> {
    with(ENTITY_CODE, &[&code.to_be_bytes()])
}

pub fn origin(id: &str) -> Vec<u8> {
    with(ORIGIN, &[id.as_bytes()])
}

/// Length of the `newest-first time + id` suffix that every article index key ends with,
/// minus the id.
pub const TIME_LEN: usize = 8;

/// A time encoded so that newer times sort first.
pub fn newest_first(time: Timestamp) -> [u8; 8] {
    let biased = (time.0 as u64) ^ (1 << 63);
    (u64::MAX - biased).to_be_bytes()
}

/// The inverse of [`newest_first`].
pub fn time_from_newest_first(bytes: [u8; 8]) -> Timestamp {
    let biased = u64::MAX - u64::from_be_bytes(bytes);
    Timestamp((biased ^ (1 << 63)) as i64)
}

fn with(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    key.push(prefix);
    for part in parts {
        key.extend_from_slice(part);
    }
    key
}

pub fn article(id: &str) -> Vec<u8> {
    with(ARTICLE, &[id.as_bytes()])
}

pub fn entity(id: &str) -> Vec<u8> {
    with(ENTITY, &[id.as_bytes()])
}

pub fn article_entities(id: &str) -> Vec<u8> {
    with(ARTICLE_ENTITIES, &[id.as_bytes()])
}

/// Prefix of every name-index key for `name_key`.
pub fn name_prefix(name_key: &str) -> Vec<u8> {
    with(NAME, &[name_key.as_bytes()])
}

pub fn name(name_key: &str, entity_id: &str) -> Vec<u8> {
    with(NAME, &[name_key.as_bytes(), &[0], entity_id.as_bytes()])
}

/// The name key of a name-index key (`n`, the name key, 0, the entity id).
pub fn name_key_of(key: &[u8]) -> Option<&str> {
    let rest = key.strip_prefix(&[NAME])?;
    let end = rest.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// The entity id of an entity record's key.
pub fn entity_of_key(key: &[u8]) -> Option<&str> {
    std::str::from_utf8(key.strip_prefix(&[ENTITY])?).ok()
}

/// The entity id at the end of a name-index key.
pub fn entity_of_name_key(key: &[u8]) -> Option<&str> {
    let at = key.iter().rposition(|&b| b == 0)?;
    std::str::from_utf8(&key[at + 1..]).ok()
}

/// The prefix an article index key starts with, before its `time + id` suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArticleIndex {
    Time,
    Source(String),
    Entity(String),
}

impl ArticleIndex {
    pub fn prefix(&self) -> Vec<u8> {
        match self {
            ArticleIndex::Time => vec![TIME],
            ArticleIndex::Source(source) => with(SOURCE, &[source.as_bytes(), &[0]]),
            ArticleIndex::Entity(id) => with(MENTION, &[id.as_bytes(), &[0]]),
        }
    }

    pub fn key(&self, time: Timestamp, id: &str) -> Vec<u8> {
        let mut key = self.prefix();
        key.extend_from_slice(&newest_first(time));
        key.extend_from_slice(id.as_bytes());
        key
    }
}

/// Splits the `time + id` suffix of an article index key.
pub fn split_suffix(suffix: &[u8]) -> Option<(Timestamp, &str)> {
    let time: [u8; 8] = suffix.get(..TIME_LEN)?.try_into().ok()?;
    let id = std::str::from_utf8(&suffix[TIME_LEN..]).ok()?;
    Some((time_from_newest_first(time), id))
}

/// Length of the salience part of a salience-index key.
pub const SALIENCE_LEN: usize = 4;

/// A salience in [0, 1] encoded so that higher saliences sort first.
pub fn salience_desc(salience: f32) -> [u8; 4] {
    // NaN clamps to nothing; treat it as no salience at all.
    let s = if salience.is_nan() {
        0.0
    } else {
        f64::from(salience).clamp(0.0, 1.0)
    };
    (((1.0 - s) * f64::from(u32::MAX)).round() as u32).to_be_bytes()
}

/// Prefix of an entity's articles by salience.
pub fn salience_prefix(entity_id: &str) -> Vec<u8> {
    with(SALIENCE, &[entity_id.as_bytes(), &[0]])
}

/// An article in an entity's salience index: most salient first, then newest first.
pub fn salience(entity_id: &str, salience: f32, time: Timestamp, article_id: &str) -> Vec<u8> {
    let mut key = salience_prefix(entity_id);
    key.extend_from_slice(&salience_desc(salience));
    key.extend_from_slice(&newest_first(time));
    key.extend_from_slice(article_id.as_bytes());
    key
}

/// Splits the `salience + time + id` suffix of a salience-index key.
pub fn split_salience_suffix(suffix: &[u8]) -> Option<(Timestamp, &str)> {
    split_suffix(suffix.get(SALIENCE_LEN..)?)
}

pub fn kind_byte(kind: EntityKind) -> u8 {
    match kind {
        EntityKind::Person => 1,
        EntityKind::Organization => 2,
        EntityKind::Location => 3,
        EntityKind::Misc => 4,
    }
}

/// Prefix of the ranking of one kind. There is no ranking of all kinds: a listing of every
/// kind merges the four, which is cheaper than keeping a fifth ranking up to date, since
/// every article moves each of its entities in the ranking (layout 3 dropped it).
pub fn rank_prefix(kind: EntityKind) -> Vec<u8> {
    vec![RANK, kind_byte(kind)]
}

/// The byte of the all-kinds ranking that layouts before 3 kept.
pub const RANK_ALL_BEFORE_LAYOUT_3: u8 = 0;

/// Ranking key: most articles first, then by id.
pub fn rank(kind: EntityKind, article_count: u64, id: &str) -> Vec<u8> {
    let mut key = rank_prefix(kind);
    key.extend_from_slice(&(u64::MAX - article_count).to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// The entity id at the end of a position in a ranking (a ranking key without its prefix).
pub fn entity_of_rank_position(position: &[u8]) -> Option<&str> {
    std::str::from_utf8(position.get(8..)?).ok()
}

pub fn change(seq: u64) -> Vec<u8> {
    with(CHANGE, &[&seq.to_be_bytes()])
}

pub fn seq_of_change_key(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(1..9)?.try_into().ok()?))
}

/// The smallest key greater than every key starting with `prefix`, for range ends.
///
/// Every prefix here starts with a key-space letter below 0xff, so such a key exists.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    vec![u8::MAX]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_sorts_newer_times_first_and_round_trips() {
        let times = [i64::MIN, -5, 0, 1, 1_700_000_000_000_000_000, i64::MAX];
        for pair in times.windows(2) {
            assert!(newest_first(Timestamp(pair[1])) < newest_first(Timestamp(pair[0])));
        }
        for t in times {
            assert_eq!(
                time_from_newest_first(newest_first(Timestamp(t))),
                Timestamp(t)
            );
        }
    }

    #[test]
    fn ranking_puts_most_articles_first() {
        let person = EntityKind::Person;
        assert!(rank(person, 10, "b") < rank(person, 9, "a"));
        assert!(rank(person, 9, "a") < rank(person, 9, "b"));
        assert_eq!(
            entity_of_rank_position(&rank(person, 3, "john-kerry")[2..]),
            Some("john-kerry")
        );
    }

    #[test]
    fn article_index_suffix_round_trips() {
        let index = ArticleIndex::Entity("syria".into());
        let key = index.key(Timestamp(42), "art-1");
        let suffix = &key[index.prefix().len()..];
        assert_eq!(split_suffix(suffix), Some((Timestamp(42), "art-1")));
    }

    #[test]
    fn salience_keys_put_the_most_salient_first_then_the_newest() {
        let high = salience("syria", 0.9, Timestamp(1), "a");
        let low_new = salience("syria", 0.1, Timestamp(5), "b");
        let low_old = salience("syria", 0.1, Timestamp(2), "c");
        assert!(high < low_new && low_new < low_old);
        assert!(salience("syria", f32::NAN, Timestamp(1), "d") > low_old);
        let prefix = salience_prefix("syria");
        assert_eq!(
            split_salience_suffix(&high[prefix.len()..]),
            Some((Timestamp(1), "a"))
        );
    }

    #[test]
    fn revision_and_request_keys_round_trip_in_order() {
        assert!(revision("a", 2) < revision("a", 10));
        assert!(revision("a", u64::MAX) < revision("a-b", 1));
        assert!(revision("a", 3).starts_with(&revision_prefix("a")));
        assert!(!revision("ab", 3).starts_with(&revision_prefix("a")));
        assert_eq!(revision_of_key(&revision("x", 7)), Some(7));
        assert!(request_time(Timestamp(-1), "z") < request_time(Timestamp(1), "a"));
        assert_eq!(
            split_request_time(&request_time(Timestamp(99), "req-1")),
            Some((Timestamp(99), "req-1"))
        );
    }

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end(b"a"), b"b");
        assert_eq!(prefix_end(&[b'a', 0xff]), b"b");
        let prefix = ArticleIndex::Entity("x".into()).key(Timestamp(i64::MIN), "");
        assert!(
            prefix_end(&prefix) > ArticleIndex::Entity("x".into()).key(Timestamp(i64::MIN), "zzz")
        );
    }
}
