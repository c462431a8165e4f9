//! Idempotent retries (AIP-155): what each request id did, written with the write itself.
//!
//! The record goes into the same atomic batch as the change it describes, so after a crash
//! either both exist (a retry replays the record) or neither does (a retry applies the
//! request for the first time); no retry can apply a change twice. It is looked up under the
//! writer lock, so two copies of one request racing each other also apply once. Records
//! hold references, not copies: an article outcome names the id and revision, which the
//! history (see [`super::history`]) keeps. A by-age index (`w`) lets [`Store::compact`]
//! drop expired records without reading the rest.

use serde::{Deserialize, Serialize};

use super::{Store, codec, keys};
use crate::error::{Error, Invalid, Result};
use crate::model::{Entity, RequestTag, Timestamp};

/// What a request did, enough to answer a retry with the first result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Outcome {
    /// Stored revision `revision` of article `id`, with this content (a purge resets
    /// revision numbers, so the number alone could name another article later).
    Article {
        id: String,
        revision: u64,
        seq: u64,
        #[serde(default)]
        content_hash: String,
    },
    /// Deleted article `id`.
    Deleted { id: String, seq: u64 },
    /// Purged article `id` and this many past revisions.
    Purged { id: String, removed: u64, seq: u64 },
    /// An editorial decision; the entity as the decision left it.
    Decision {
        entity: Box<Entity>,
        articles_updated: u64,
        seq: u64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    fingerprint: String,
    time: Timestamp,
    outcome: Outcome,
}

impl Store {
    /// The outcome recorded for `tag`, if it is still kept. A record made for a different
    /// request under the same id is refused.
    pub fn recorded(&self, tag: &RequestTag) -> Result<Option<Outcome>> {
        let Some(record) = self.get::<Record>(&keys::request(&tag.id))? else {
            return Ok(None);
        };
        if self.request_expired(record.time) {
            return Ok(None);
        }
        if record.fingerprint != tag.fingerprint {
            return Err(Error::invalid(
                "request_id",
                Invalid::RequestIdReused,
                format!(
                    "request_id {:?} was already used for a different request; use a new \
                     request_id for each distinct request",
                    tag.id
                ),
            ));
        }
        Ok(Some(record.outcome))
    }

    fn request_expired(&self, time: Timestamp) -> bool {
        let age = Timestamp::now().0.saturating_sub(time.0);
        u128::try_from(age).unwrap_or(0) > self.retention.request_ids.as_nanos()
    }

    /// Adds to `batch` the record that `tag` did `outcome`, replacing an expired record.
    pub(super) fn record(
        &self,
        tag: &RequestTag,
        outcome: Outcome,
        batch: &mut super::Changes,
    ) -> Result<()> {
        if let Some(old) = self.get::<Record>(&keys::request(&tag.id))? {
            batch.remove(keys::request_time(old.time, &tag.id));
        }
        let time = Timestamp::now();
        let record = Record {
            fingerprint: tag.fingerprint.clone(),
            time,
            outcome,
        };
        batch.insert(keys::request(&tag.id), codec::encode(&record)?);
        batch.insert(keys::request_time(time, &tag.id), Vec::new());
        Ok(())
    }

    /// Removes request records older than the retention window; returns how many.
    pub(super) fn expire_requests(&self) -> Result<u64> {
        let retention = i64::try_from(self.retention.request_ids.as_nanos()).unwrap_or(i64::MAX);
        let cutoff = Timestamp(Timestamp::now().0.saturating_sub(retention));
        let mut removed = 0;
        loop {
            // Under the writer lock, so a retry cannot re-record an expired id between the
            // scan and the removal.
            let _writer = self
                .writer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut batch = sled::Batch::default();
            let mut in_batch = 0;
            for key in self.tree.scan_prefix([keys::REQUEST_TIME]).keys() {
                let key = key?;
                let Some((time, id)) = keys::split_request_time(&key) else {
                    continue;
                };
                if time >= cutoff || in_batch == 10_000 {
                    break;
                }
                batch.remove(keys::request(id));
                batch.remove(key.to_vec());
                in_batch += 1;
            }
            if in_batch == 0 {
                return Ok(removed);
            }
            self.tree.apply_batch(batch)?;
            removed += in_batch;
        }
    }
}
