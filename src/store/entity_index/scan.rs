//! Lazy scans of the index, read a chunk at a time in key order, as sled's scans are.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::PoisonError;

use super::{EntityIndex, SCAN_CHUNK_MAX};

/// What a scan reads: one entity's `m` or `l` keys, or the ranking.
pub(in crate::store) enum Source {
    Entity {
        space: u8,
        entity: Box<str>,
        /// The keys' common prefix, which the index does not store.
        prefix: Vec<u8>,
    },
    Ranking,
    Nothing,
}

/// A lazy scan, read from the index a chunk at a time. Its bounds are key suffixes after
/// an entity's prefix, or whole ranking keys.
pub(in crate::store) struct Scan {
    pub(in crate::store) index: EntityIndex,
    pub(in crate::store) source: Source,
    pub(in crate::store) low: Bound<Vec<u8>>,
    pub(in crate::store) high: Bound<Vec<u8>>,
    pub(in crate::store) buffer: VecDeque<Vec<u8>>,
    /// Entries to read next time.
    pub(in crate::store) chunk: usize,
    pub(in crate::store) done: bool,
}

impl Iterator for Scan {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if self.buffer.is_empty() && !self.done {
            let inner = self
                .index
                .inner
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let low = self.low.as_ref().map(Vec::as_slice);
            let high = self.high.as_ref().map(Vec::as_slice);
            let chunk: Vec<Vec<u8>> = match &self.source {
                Source::Entity { space, entity, .. } => {
                    inner.read(*space, entity, low, high, self.chunk)
                }
                Source::Ranking => inner
                    .ranking
                    .range::<[u8], _>((low, high))
                    .take(self.chunk)
                    .map(|key| key.to_vec())
                    .collect(),
                Source::Nothing => Vec::new(),
            };
            drop(inner);
            self.done = chunk.len() < self.chunk;
            self.chunk = (self.chunk * 2).min(SCAN_CHUNK_MAX);
            if let Some(last) = chunk.last() {
                self.low = Bound::Excluded(last.clone());
            }
            self.buffer.extend(chunk);
        }
        let found = self.buffer.pop_front()?;
        Some(match &self.source {
            Source::Entity { prefix, .. } => {
                let mut key = prefix.clone();
                key.extend_from_slice(&found);
                key
            }
            _ => found,
        })
    }
}
