//! The entity indexes, held in memory instead of in sled: every entity's articles by time
//! (key space `m`) and by salience (`l`), and the entities of each kind by article count
//! (the ranking, `r`).
//!
//! Why: `m` and `l` are about seventeen entries per article each, every one a tiny key, and
//! sled keeps tiny keys expensively. At 100,000 articles they made sled's files 13.8 times
//! the raw text instead of 2.1 times, held 135 MB more resident after opening, and cost a
//! third of the keys of every write. Here an entry is 16 bytes. The ranking is small, but
//! every article moves each of its entities from one ranking key to the next, a removal and
//! an insertion in sled per mention, which cost more store time than the article's other
//! keys together.
//!
//! Each entity's counters live here too, for the same reason (layout 6): its article count
//! and first and last times are its by-time entries' number and ends, and a [`Tally`] sums
//! its mentions and the kinds extraction gave it per article. In its sled record they made
//! every article rewrite the record of every entity it mentions: most of the records sled
//! wrote, and a third of its files.
//!
//! Nothing about the keys changed: writers put `m`, `l` and `r` keys into a change record
//! as before, readers scan them in the same byte order, and page tokens keep their form.
//! Only where they live did. Applying a record sends them here and everything else to sled
//! ([`super::change_record`]); the store
//! applies the sled batch first and these indexes right after, under the writer lock, so a
//! failed write changes neither. They are derived: built from the `t`, `x` (which lists
//! each article's entities with their salience, mention count and kind) and `e` records at
//! open, or loaded from the snapshot the store saved when it last closed, so sled stays
//! the one source of truth.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::{Arc, PoisonError, RwLock};

mod builder;
mod postings;
mod scan;
mod snapshot;
mod tally;

use super::keys;
pub(super) use builder::Builder;
use postings::{Entry, Inner, split_key};
pub(super) use scan::Scan;
use scan::Source;
pub(super) use tally::{Counters, MentionTally, Tally, TallyChange};

/// How many entries a scan copies out at its first read of the index, doubling at each read
/// up to [`SCAN_CHUNK_MAX`]: scans are lazy like sled's, most readers want a page of a few
/// dozen, and a long scan does not hold the lock while its reader works.
const SCAN_CHUNK: usize = 32;
const SCAN_CHUNK_MAX: usize = 1024;

/// The keys of a write that the writer's caches ([`super::writer_cache`]) must forget.
#[derive(Default)]
pub(super) struct Touched {
    pub(super) name_keys: Vec<String>,
    pub(super) entity_ids: Vec<String>,
}

impl Touched {
    pub(super) fn note(&mut self, key: &[u8]) {
        if let Some(name_key) = keys::name_key_of(key) {
            self.name_keys.push(name_key.to_string());
        } else if let Some(id) = keys::entity_of_key(key) {
            self.entity_ids.push(id.to_string());
        }
    }
}

/// The entity-index part of a write, applied with [`EntityIndex::apply`] once sled took
/// the rest.
pub(super) struct IndexChanges {
    keys: Vec<(Vec<u8>, bool)>,
    tallies: Vec<(String, TallyChange)>,
}

impl IndexChanges {
    /// Keys to insert (`true`) or remove, in order, then tally changes.
    pub(super) fn new(keys: Vec<(Vec<u8>, bool)>, tallies: Vec<(String, TallyChange)>) -> Self {
        IndexChanges { keys, tallies }
    }
}

pub(super) fn is_index_key(key: &[u8]) -> bool {
    matches!(
        key.first(),
        Some(&keys::MENTION | &keys::SALIENCE | &keys::RANK)
    )
}

/// The in-memory entity index; cheap to clone (one shared index).
#[derive(Clone, Default)]
pub(super) struct EntityIndex {
    inner: Arc<RwLock<Inner>>,
}

impl EntityIndex {
    /// Applies a write's index changes, in order.
    pub(super) fn apply(&self, changes: IndexChanges) {
        if changes.keys.is_empty() && changes.tallies.is_empty() {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        for (key, insert) in &changes.keys {
            inner.apply(key, *insert);
        }
        for (entity, change) in changes.tallies {
            inner.tally(&entity, change);
        }
    }

    /// An entity's article count, first and last entries and tally.
    pub(super) fn counters(&self, entity: &str) -> Counters {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let Some(postings) = inner.entities.get(entity) else {
            return Counters::default();
        };
        let time = |e: &Entry| keys::time_from_newest_first(e.time.to_be_bytes());
        Counters {
            articles: postings.by_time.len() as u64,
            tally: postings.tally,
            newest: postings.by_time.first().map(time),
            oldest: postings.by_time.last().map(time),
        }
    }

    /// Entries held, over both key spaces.
    pub(super) fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
    }

    /// The keys in `range`, lazily, in order, like a sled range scan. A range of `m` or `l`
    /// keys must lie within one entity's keys (every reader's does: it starts at an entity's
    /// prefix and ends at most at that prefix's end); an end past them counts as their end.
    pub(super) fn range(&self, range: std::ops::Range<Vec<u8>>) -> Scan {
        let source = match range.start.first() {
            // An empty range, which `BTreeSet::range` would refuse.
            _ if range.start >= range.end => Source::Nothing,
            Some(&keys::RANK) => Source::Ranking,
            _ => match split_key(&range.start) {
                Some((space, entity, _)) => Source::Entity {
                    space,
                    entity: entity.into(),
                    prefix: range.start[..entity.len() + 2].to_vec(),
                },
                // A bare prefix with no separator yet: nothing of the form this index holds.
                None => Source::Nothing,
            },
        };
        let (low, high) = match &source {
            Source::Entity { prefix, .. } => (
                range.start[prefix.len()..].to_vec(),
                if range.end.starts_with(prefix) {
                    Bound::Excluded(range.end[prefix.len()..].to_vec())
                } else {
                    Bound::Unbounded
                },
            ),
            _ => (range.start, Bound::Excluded(range.end)),
        };
        Scan {
            index: self.clone(),
            source,
            low: Bound::Included(low),
            high,
            buffer: VecDeque::new(),
            chunk: SCAN_CHUNK,
            done: false,
        }
    }

    /// Every ranking key, in order (for the consistency check).
    pub(super) fn ranking_keys(&self) -> Vec<Vec<u8>> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner.ranking.iter().map(|key| key.to_vec()).collect()
    }

    /// Every `m` and `l` key, in order (for the consistency check).
    pub(super) fn all_keys(&self) -> Vec<Vec<u8>> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let mut all = Vec::with_capacity(inner.entries);
        for (entity, postings) in &inner.entities {
            for space in [keys::MENTION, keys::SALIENCE] {
                for entry in postings.list(space) {
                    let mut key = vec![space];
                    key.extend_from_slice(entity.as_bytes());
                    key.push(0);
                    key.extend_from_slice(&inner.ids.suffix(space, entry));
                    all.push(key);
                }
            }
        }
        all.sort();
        all
    }
}

#[cfg(test)]
mod tests;
