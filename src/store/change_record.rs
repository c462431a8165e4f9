//! The change record: a write as decided, before it is applied.
//!
//! Every write takes two steps under the writer lock. *Deciding* reads the store: it checks
//! the preconditions (existence, etag, request id), resolves names to entities, numbers the
//! revision and the change, and reads the clock (`write.rs`, `editorial.rs`). *Applying*
//! takes only what deciding produced, a [`ChangeRecord`], and changes the store: sled's keys
//! and the in-memory entity indexes ([`super::Store::apply`]). Applying reads no clock and
//! decides nothing, so the same records applied in the same order to two stores leave them
//! byte for byte the same (the replay test in `tests/replay.rs`). That is the seam
//! replication needs: one node decides, every node applies the record it decided.
//!
//! A record is logical at the level of keys: the ordered puts and deletes of store keys
//! (entity-index keys among them; applying routes those to memory) and the changes to the
//! entity tallies. Its encoding ([`ChangeRecord::encode`]) is the store's own, like every
//! record in sled: a version byte, then the [`super::codec`] encoding, so the wire format of
//! the API and the format of records evolve apart.
//!
//! What each store keeps for itself is not in records: its identity, layout and accepted
//! losses (the `~` keys), the fingerprints of the seed files it loaded, and the retention's
//! trimming of its change log and of expired request ids, which each store does by its own
//! clock ([`super::Store::compact`]).

use serde::{Deserialize, Serialize};

use super::codec;
use super::entity_index::{IndexChanges, TallyChange, Touched, is_index_key};
use crate::error::{Error, Result};
use crate::model::Article;

/// The encoding's version, its first byte. A change to [`ChangeRecord`] that serde's
/// appended-fields rule cannot express takes the next number, and `decode` keeps reading
/// the older ones.
pub const RECORD_VERSION: u8 = 1;

/// One store key put or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Op {
    Put(
        #[serde(with = "serde_bytes")] Vec<u8>,
        #[serde(with = "serde_bytes")] Vec<u8>,
    ),
    Delete(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// A write's changes as a decider builds them, in the order they were made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Changes {
    ops: Vec<Op>,
    /// Mentions and kind votes this write adds to or takes from entities' tallies.
    tallies: Vec<(String, TallyChange)>,
}

impl Changes {
    pub(super) fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op::Put(key.into(), value.into()));
    }

    pub(super) fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Delete(key.into()));
    }

    /// Counts an article's mentions out of (`old`) and into (`new`) its entities' tallies:
    /// every write that changes an article's mentions calls this with the article before and
    /// after, beside replacing its `m` and `l` keys.
    pub(super) fn tally(&mut self, old: Option<&Article>, new: Option<&Article>) {
        for (article, sign) in [(old, -1), (new, 1)] {
            for mention in article.into_iter().flat_map(|a| &a.derived.mentions) {
                self.tallies.push((
                    mention.entity_id.clone(),
                    TallyChange::of(mention.count, mention.extracted_kind, sign),
                ));
            }
        }
    }

    /// The decided write, numbered: it writes change-log entries `first_seq..=last_seq`.
    pub(super) fn into_record(self, first_seq: u64, last_seq: u64) -> ChangeRecord {
        ChangeRecord {
            first_seq,
            last_seq,
            changes: self,
        }
    }

    /// Splits into sled's batch and the entity index's part, to apply in that order, and
    /// what the batch changes that the writer's caches may hold.
    pub(super) fn split(self) -> (sled::Batch, IndexChanges, Touched) {
        let mut batch = sled::Batch::default();
        let mut index = Vec::new();
        let mut touched = Touched::default();
        for op in self.ops {
            let (key, value) = match op {
                Op::Put(key, value) => (key, Some(value)),
                Op::Delete(key) => (key, None),
            };
            touched.note(&key);
            if is_index_key(&key) {
                index.push((key, value.is_some()));
            } else if let Some(value) = value {
                batch.insert(key, value);
            } else {
                batch.remove(key);
            }
        }
        (batch, IndexChanges::new(index, self.tallies), touched)
    }
}

/// A decided write: everything applying it needs, and nothing that needs the deciding
/// store. It is applied only to a store whose next change is `first_seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    first_seq: u64,
    last_seq: u64,
    changes: Changes,
}

impl ChangeRecord {
    /// The first change-log sequence number the record writes.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// The last change-log sequence number the record writes: an article write writes one,
    /// an editorial decision one per rewritten article and one for itself.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub(super) fn into_changes(self) -> Changes {
        self.changes
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = vec![RECORD_VERSION];
        out.extend(codec::encode(self)?);
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<ChangeRecord> {
        match bytes.split_first() {
            Some((&RECORD_VERSION, rest)) => codec::decode(rest),
            Some((version, _)) => Err(Error::DataLoss(format!(
                "a change record of version {version}, which this build does not know (it \
                 reads version {RECORD_VERSION}); upgrade newsstore to apply it"
            ))),
            None => Err(Error::DataLoss("an empty change record".into())),
        }
    }
}
