//! How long the change log and request ids are kept, and the compaction that enforces it.
//!
//! The change log is what watchers and the search index resume from, so it cannot grow for
//! ever, but dropping entries a reader still needs would lose events silently. Compaction
//! therefore never passes the `floor` the caller names (the search index's applied
//! sequence), always keeps the newest entry (the next sequence number is read from it at
//! open), and a reader that asks for a compacted position is told so (OutOfRange with the
//! oldest available sequence) instead of getting a gap.

use std::time::Duration;

use super::{Store, codec, keys};
use crate::error::Result;
use crate::model::{Change, Timestamp};

/// Retention settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many change-log entries.
    pub changes: u64,
    /// Drop change-log entries older than this.
    pub change_age: Duration,
    /// How long a request id is remembered for idempotent retries.
    pub request_ids: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            changes: 10_000_000,
            change_age: Duration::from_secs(30 * 24 * 3600),
            request_ids: Duration::from_secs(24 * 3600),
        }
    }
}

/// What one compaction removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compacted {
    pub changes: u64,
    pub requests: u64,
}

/// Entries removed per batch, so a first compaction of a large log stays incremental.
const CHUNK: usize = 10_000;

impl Store {
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// Sets the retention; call before sharing the store.
    pub fn set_retention(&mut self, retention: Retention) {
        self.retention = retention;
    }

    /// The oldest change-log sequence number still kept (one above the last one written
    /// when the log is empty).
    pub fn oldest_change(&self) -> Result<u64> {
        Ok(match self.tree.scan_prefix([keys::CHANGE]).next() {
            Some(entry) => keys::seq_of_change_key(&entry?.0).unwrap_or(1),
            None => self.last_seq() + 1,
        })
    }

    /// Drops change-log entries beyond the retention, none above `floor`, and expired
    /// request ids.
    pub fn compact(&self, floor: u64) -> Result<Compacted> {
        let last = self.last_seq();
        // The newest entry stays: the next sequence number is read from it at open.
        let floor = floor.min(last.saturating_sub(1));
        let by_count = last.saturating_sub(self.retention.changes);
        let age = i64::try_from(self.retention.change_age.as_nanos()).unwrap_or(i64::MAX);
        let cutoff = Timestamp(Timestamp::now().0.saturating_sub(age));
        let mut removed = 0;
        loop {
            let mut batch = sled::Batch::default();
            let mut in_batch = 0;
            for entry in self.tree.scan_prefix([keys::CHANGE]) {
                let (key, value) = entry?;
                let Some(seq) = keys::seq_of_change_key(&key) else {
                    continue;
                };
                if seq > floor || in_batch == CHUNK {
                    break;
                }
                if seq > by_count {
                    let change: Change = codec::decode(&value)?;
                    if change.time >= cutoff {
                        break;
                    }
                }
                batch.remove(key);
                in_batch += 1;
            }
            if in_batch == 0 {
                break;
            }
            self.tree.apply_batch(batch)?;
            removed += in_batch as u64;
        }
        let requests = self.expire_requests()?;
        if removed > 0 || requests > 0 {
            tracing::info!(
                changes = removed,
                request_ids = requests,
                oldest_change = self.oldest_change()?,
                "compacted the change log"
            );
        }
        Ok(Compacted {
            changes: removed,
            requests,
        })
    }
}
