//! The index itself: each entity's articles by time and by salience, and the ranking, as
//! sorted lists of 16-byte entries that name articles by number.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use super::{Tally, TallyChange};
use crate::store::keys;

/// One article under one entity. `salience` is the encoded salience of an `l` key (0 in
/// `m`), `time` the newest-first time; the order is that of the key bytes.
#[derive(Debug, Clone, Copy)]
pub(in crate::store) struct Entry {
    pub(in crate::store) time: u64,
    pub(in crate::store) salience: u32,
    pub(in crate::store) article: u32,
}

#[derive(Default)]
pub(in crate::store) struct Postings {
    pub(in crate::store) by_time: Vec<Entry>,
    pub(in crate::store) by_salience: Vec<Entry>,
    pub(in crate::store) tally: Tally,
}

impl Postings {
    pub(in crate::store) fn is_empty(&self) -> bool {
        self.by_time.is_empty() && self.by_salience.is_empty() && self.tally.is_zero()
    }

    pub(in crate::store) fn list(&self, space: u8) -> &Vec<Entry> {
        if space == keys::SALIENCE {
            &self.by_salience
        } else {
            &self.by_time
        }
    }

    pub(in crate::store) fn list_mut(&mut self, space: u8) -> &mut Vec<Entry> {
        if space == keys::SALIENCE {
            &mut self.by_salience
        } else {
            &mut self.by_time
        }
    }
}

#[derive(Default)]
pub(in crate::store) struct Inner {
    pub(in crate::store) entities: HashMap<Box<str>, Postings>,
    pub(in crate::store) ids: ArticleIds,
    pub(in crate::store) entries: usize,
    /// The ranking's keys, whole: one per entity with articles, so a plain set will do.
    pub(in crate::store) ranking: BTreeSet<Box<[u8]>>,
}

/// Article ids by number; entries name articles by number to stay small. Numbers are not
/// reused while the process runs: a deleted article's id stays until the process ends (the
/// snapshot keeps only the ids entries name).
#[derive(Default)]
pub(in crate::store) struct ArticleIds {
    pub(in crate::store) ids: Vec<Box<str>>,
    pub(in crate::store) numbers: HashMap<Box<str>, u32>,
}

impl ArticleIds {
    pub(in crate::store) fn number(&mut self, id: &str) -> Option<u32> {
        if let Some(&n) = self.numbers.get(id) {
            return Some(n);
        }
        let n = u32::try_from(self.ids.len()).ok()?;
        self.ids.push(id.into());
        self.numbers.insert(id.into(), n);
        Some(n)
    }

    pub(in crate::store) fn id(&self, n: u32) -> &str {
        self.ids.get(n as usize).map_or("", |s| s)
    }

    /// How `entry`'s key suffix compares with `bound` (a suffix, maybe partial), bytewise.
    pub(in crate::store) fn compare(&self, space: u8, entry: &Entry, bound: &[u8]) -> Ordering {
        self.suffix(space, entry).as_slice().cmp(bound)
    }

    /// The order of two entries, which is their keys' order.
    pub(in crate::store) fn order(&self, a: &Entry, b: &Entry) -> Ordering {
        (a.salience, a.time)
            .cmp(&(b.salience, b.time))
            .then_with(|| self.id(a.article).cmp(self.id(b.article)))
    }

    pub(in crate::store) fn suffix(&self, space: u8, entry: &Entry) -> Vec<u8> {
        let id = self.id(entry.article);
        let mut suffix = Vec::with_capacity(12 + id.len());
        if space == keys::SALIENCE {
            suffix.extend_from_slice(&entry.salience.to_be_bytes());
        }
        suffix.extend_from_slice(&entry.time.to_be_bytes());
        suffix.extend_from_slice(id.as_bytes());
        suffix
    }
}

impl Inner {
    /// Inserts or removes one key; keys that are not entity-index keys are ignored.
    pub(in crate::store) fn apply(&mut self, key: &[u8], insert: bool) {
        if key.first() == Some(&keys::RANK) {
            if insert {
                self.ranking.insert(key.into());
            } else {
                self.ranking.remove(key);
            }
            return;
        }
        let Some((space, entity, suffix)) = split_key(key) else {
            return;
        };
        let fixed = if space == keys::SALIENCE { 12 } else { 8 };
        let Some((head, id)) = suffix.split_at_checked(fixed) else {
            return;
        };
        let Ok(id) = std::str::from_utf8(id) else {
            return;
        };
        let (salience, time) = if space == keys::SALIENCE {
            (read_u32(&head[..4]), read_u64(&head[4..]))
        } else {
            (0, read_u64(head))
        };
        let Inner {
            entities,
            ids,
            entries,
            ..
        } = self;
        let article = if insert {
            ids.number(id)
        } else {
            ids.numbers.get(id).copied()
        };
        let Some(article) = article else {
            return;
        };
        let entry = Entry {
            time,
            salience,
            article,
        };
        if insert {
            let list = entities.entry(entity.into()).or_default().list_mut(space);
            let at = list.partition_point(|e| ids.order(e, &entry).is_lt());
            if list.get(at).is_none_or(|e| ids.order(e, &entry).is_ne()) {
                list.insert(at, entry);
                *entries += 1;
            }
            return;
        }
        let Some(postings) = entities.get_mut(entity) else {
            return;
        };
        let list = postings.list_mut(space);
        let at = list.partition_point(|e| ids.order(e, &entry).is_lt());
        if list.get(at).is_some_and(|e| ids.order(e, &entry).is_eq()) {
            list.remove(at);
            *entries -= 1;
            if postings.is_empty() {
                entities.remove(entity);
            }
        }
    }

    /// Adds one mention's change to an entity's tally.
    pub(in crate::store) fn tally(&mut self, entity: &str, change: TallyChange) {
        if let Some(postings) = self.entities.get_mut(entity) {
            postings.tally.add(change);
            if postings.is_empty() {
                self.entities.remove(entity);
            }
        } else if change.mentions > 0 || change.vote.is_some_and(|(_, sign)| sign > 0) {
            let mut postings = Postings::default();
            postings.tally.add(change);
            self.entities.insert(entity.into(), postings);
        }
    }

    /// Up to `limit` suffixes of `entity`'s keys in `space` from `low` up to `high`.
    pub(in crate::store) fn read(
        &self,
        space: u8,
        entity: &str,
        low: Bound<&[u8]>,
        high: Bound<&[u8]>,
        limit: usize,
    ) -> Vec<Vec<u8>> {
        let Some(postings) = self.entities.get(entity) else {
            return Vec::new();
        };
        let ids = &self.ids;
        let list = postings.list(space);
        let start = match low {
            Bound::Included(b) => list.partition_point(|e| ids.compare(space, e, b).is_lt()),
            Bound::Excluded(b) => list.partition_point(|e| ids.compare(space, e, b).is_le()),
            Bound::Unbounded => 0,
        };
        list[start..]
            .iter()
            .take_while(|e| match high {
                Bound::Included(b) => ids.compare(space, e, b).is_le(),
                Bound::Excluded(b) => ids.compare(space, e, b).is_lt(),
                Bound::Unbounded => true,
            })
            .take(limit)
            .map(|e| ids.suffix(space, e))
            .collect()
    }
}

pub(in crate::store) fn read_u64(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_be_bytes).unwrap_or_default()
}

pub(in crate::store) fn read_u64_le(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_le_bytes).unwrap_or_default()
}

pub(in crate::store) fn read_u32_le(bytes: &[u8]) -> u32 {
    bytes.try_into().map(u32::from_le_bytes).unwrap_or_default()
}

pub(in crate::store) fn read_u32(bytes: &[u8]) -> u32 {
    bytes.try_into().map(u32::from_be_bytes).unwrap_or_default()
}

/// The key space, entity id and suffix of an entity-index key.
pub(in crate::store) fn split_key(key: &[u8]) -> Option<(u8, &str, &[u8])> {
    let space = *key.first()?;
    if space != keys::MENTION && space != keys::SALIENCE {
        return None;
    }
    let end = 1 + key.get(1..)?.iter().position(|&b| b == 0)?;
    let entity = std::str::from_utf8(&key[1..end]).ok()?;
    Some((space, entity, &key[end + 1..]))
}
