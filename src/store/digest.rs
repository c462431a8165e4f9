//! A digest of everything a store holds that the cluster log decides, so that two nodes
//! can show they hold the same state at the same position.
//!
//! It covers every key of the tree except what each store keeps for itself (its `~`
//! metadata other than the next entity number, and the `o` fingerprints of the files it
//! loaded), then every key of the in-memory entity index and every entity's counters. Taken
//! under the writer lock, so no write comes between its parts.

use std::sync::PoisonError;

use sha2::{Digest as _, Sha256};

use super::{Store, keys};
use crate::error::Result;
use crate::model::Entity;

/// A store's digest and the position it was taken at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDigest {
    /// The log position (cluster mode) or change-log sequence applied.
    pub position: u64,
    /// The last change-log sequence applied.
    pub last_seq: u64,
    /// SHA-256 of the state, in hex.
    pub sha256: String,
    /// Keys hashed, index entries included.
    pub keys: u64,
}

impl Store {
    /// The digest of the replicated state now.
    pub fn digest(&self) -> Result<StateDigest> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut hash = Sha256::new();
        let mut count = 0u64;
        let mut add = |key: &[u8], value: &[u8]| {
            for part in [key, value] {
                hash.update((part.len() as u64).to_be_bytes());
                hash.update(part);
            }
            count += 1;
        };
        for entry in self.tree.iter() {
            let (key, value) = entry?;
            let node_local = match key.first() {
                Some(&keys::META) => key.as_ref() != keys::META_NEXT_CODE,
                Some(&keys::ORIGIN) => true,
                _ => false,
            };
            if !node_local {
                add(&key, &value);
            }
        }
        for key in self.entity_index.all_keys() {
            add(&key, b"");
        }
        for entry in self.tree.scan_prefix([keys::ENTITY]) {
            let (_, value) = entry?;
            let entity: Entity = super::codec::decode(&value)?;
            let counters = self.entity_index.counters(&entity.id);
            add(entity.id.as_bytes(), format!("{counters:?}").as_bytes());
        }
        Ok(StateDigest {
            position: self.position(),
            last_seq: self.last_seq(),
            sha256: hex::encode(hash.finalize()),
            keys: count,
        })
    }
}
