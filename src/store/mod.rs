//! The source of truth: articles, entities, their indexes and the change log, in sled.
//!
//! Nothing outside this module knows sled. Everything lives in one tree (see [`keys`]) so
//! that each write — the article, every index entry it touches, the entity records whose
//! counts change, and one change-log entry — is a single atomic batch. Writes are serialised
//! by one lock, which makes sequence numbers gapless and entity resolution race-free; they
//! are acknowledged only once flushed (see [`durability`]). Reads never take the lock.

mod acknowledged;
mod backup;
mod change_record;
mod check;
pub mod codec;
mod digest;
mod durability;
mod editorial;
mod entity_index;
mod hashing;
mod history;
pub mod keys;
mod log;
mod migrations;
mod open;
mod quotes;
mod reads;
mod records;
mod requests;
mod resolve;
mod retention;
mod salience;
mod space;
mod writer_cache;

pub use backup::BackupSummary;
pub use change_record::ChangeRecord;
pub use digest::StateDigest;
pub use editorial::Decision;
pub use history::Revision;
pub use log::{Log, Refused};
pub use quotes::{QuoteHit, QuotePage};
pub use reads::{KeySpaceSize, Page, RelatedPage};
use reads::{MAX_EXAMINED_PER_PAGE, bad_cursor};
pub use requests::Outcome;
pub use retention::{Compacted, Retention};
#[cfg(test)]
mod tests;
mod write;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::model::Entity;
use acknowledged::Acknowledged;
use change_record::Changes;
use durability::GroupCommit;
use entity_index::EntityIndex;
use open::accepted_losses;
use records::{
    article_entities_of, article_entities_record, entity_record, mention_index_keys, record_of,
    same_record,
};
use space::Space;
use writer_cache::WriterCache;

pub use write::{Content, Write, Written};

/// The entity index's snapshot, in the store's folder, written by [`Store::close`].
const ENTITY_INDEX_FILE: &str = "entity-index";
impl From<sled::Error> for Error {
    fn from(err: sled::Error) -> Self {
        match err {
            sled::Error::Io(io) => Error::from_io("storage", io),
            sled::Error::Corruption { at, .. } => Error::DataLoss(format!(
                "the database is damaged: a stored record failed its checksum{}; the \
                 operator must restore the last backup",
                at.map(|at| format!(" (at {at})")).unwrap_or_default()
            )),
            other => Error::internal("storage", other),
        }
    }
}

impl From<sled::transaction::TransactionError<Error>> for Error {
    fn from(err: sled::transaction::TransactionError<Error>) -> Self {
        match err {
            sled::transaction::TransactionError::Abort(err) => err,
            sled::transaction::TransactionError::Storage(err) => err.into(),
        }
    }
}

pub struct Store {
    /// Random, fixed at creation: derived indexes record it to recognise their store.
    id: String,
    /// The folder sled keeps its files in; the entity index's snapshot goes there too.
    dir: std::path::PathBuf,
    /// How the database was opened, to open it again for a checkpoint (see [`Store::close`]).
    db_config: sled::Config,
    db: sled::Db,
    tree: sled::Tree,
    /// Serialises writers and holds the next sequence number.
    writer: Mutex<u64>,
    /// The highest sequence number applied (visible to readers, maybe not yet durable).
    applied: AtomicU64,
    commit: GroupCommit,
    /// The durable record, outside sled, of the last acknowledged sequence number.
    acknowledged: Acknowledged,
    /// The free-space reserve writes must leave.
    space: Space,
    /// The highest durable sequence number, for followers such as the search index.
    durable: watch::Sender<u64>,
    retention: Retention,
    /// The `m`, `l` and `r` key spaces, derived from the `t`, `x` and `e` records (or
    /// loaded from the snapshot [`Store::close`] saved).
    entity_index: EntityIndex,
    /// The name index's entries by name key, as the writer resolves names against them.
    names: WriterCache<[String]>,
    /// Entity records by id as stored (`None` for none), as the writer reads them.
    entity_records: WriterCache<Option<Entity>>,
    /// The replicated log writes go through, in cluster mode (see [`log`]).
    log: OnceLock<Arc<dyn Log>>,
    /// The log position applied (`~log-position`), in cluster mode.
    position: AtomicU64,
    /// Follows [`Store::position`], for reads that wait for a consistency token.
    position_watch: watch::Sender<u64>,
    /// Wakes a writer that waits, off the writer lock, for the follower to apply what
    /// another node appended first (see [`log::Reached`]).
    reached: log::Reached,
    /// Every record applied, while a test collects them (see `tests/replay.rs`).
    #[cfg(test)]
    tap: Mutex<Option<Vec<ChangeRecord>>>,
}

/// How a store is opened.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
    /// Serve a store that ends before the last acknowledged change instead of refusing it:
    /// the lost sequence numbers are never used again, and the store takes a new identity
    /// so that every derived index is rebuilt from what is left.
    pub accept_data_loss: bool,
    /// A position another record (the search index's last commit) saw this store reach:
    /// the store's id then, and the sequence number. A second witness beside the
    /// `acknowledged` file, for stores whose file is missing.
    pub witness: Option<(String, u64)>,
    /// Writes are refused with [`Error::StorageFull`] while the disk has less free space
    /// than this (see [`space`]); 0 turns the check off.
    pub min_free_bytes: u64,
}

impl Store {
    /// The store's identity (random, fixed when it was created).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The fingerprint of the file article `id` was last loaded from, if any.
    pub fn origin(&self, id: &str) -> Result<Option<String>> {
        Ok(self
            .tree
            .get(keys::origin(id))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Records, per `(article id, fingerprint)`, the file the article was loaded from.
    /// Durable with the next flush; losing one only means its file is compared by content
    /// once more.
    pub fn set_origins(&self, origins: &[(String, String)]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (id, fingerprint) in origins {
            batch.insert(keys::origin(id), fingerprint.as_bytes());
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Whether writes are refused for lack of disk space right now (looking at the disk
    /// each time, so the answer turns by itself once space is freed).
    pub fn storage_full(&self) -> bool {
        self.space.full()
    }

    /// Why the storage engine stopped writing, if it did: sled 0.34 keeps the first failed
    /// write to its log (a disk filled past the reserve by something else within one write,
    /// an I/O error) as an error every later write returns, until the process restarts.
    /// Nothing acknowledged is lost; writes need a restart once the cause is fixed.
    pub fn engine_failure(&self) -> Option<Error> {
        let err = self.db_config.global_error().err()?;
        Some(match err {
            sled::Error::Io(io) if crate::error::is_storage_full(&io) => {
                Error::StorageFull(format!(
                    "the storage engine met a full disk and stopped writing ({io}); free \
                     space and restart the server (nothing acknowledged is lost)"
                ))
            }
            other => Error::Internal(format!(
                "the storage engine stopped writing after an I/O error ({other}); restart \
                 the server once the cause is fixed (nothing acknowledged is lost)"
            )),
        })
    }

    /// The highest sequence number written so far.
    pub fn last_seq(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// The highest sequence number known to be on disk.
    pub fn durable_seq(&self) -> u64 {
        *self.durable.borrow()
    }

    /// Follows the highest durable sequence number.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.durable.subscribe()
    }

    /// Blocks until every change up to `seq` is on disk.
    pub fn wait_durable(&self, seq: u64) -> Result<()> {
        let durable = self.commit.wait(
            seq,
            || self.applied.load(Ordering::Acquire),
            |target| {
                self.db.flush()?;
                self.acknowledged.record(target)
            },
        );
        self.space.note(&durable);
        let durable = durable?;
        self.durable.send_if_modified(|current| {
            let newer = durable > *current;
            if newer {
                *current = durable;
            }
            newer
        });
        Ok(())
    }

    /// Waits until change `seq` may be acknowledged to the caller that wrote it. Embedded,
    /// that means on this store's disk. In a cluster the record was in the log on a quorum
    /// before it was applied, which is what an acknowledgement promises there: the node's
    /// own copy is flushed in the background (`cluster::flusher`), and a node that crashes
    /// before that re-applies what it lost from the log, from the position its store kept.
    pub fn settle(&self, seq: u64) -> Result<()> {
        if self.clustered() {
            return Ok(());
        }
        self.wait_durable(seq)
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<()> {
        self.wait_durable(self.last_seq())
    }

    /// Applies a decided write: sled's part atomically (with the log `position` it has, in
    /// cluster mode), then the entity index's. Called under the writer lock (`next_seq` is
    /// what it guards), so no other write comes between, and only with the record that
    /// follows the last one applied.
    fn apply(&self, next_seq: &mut u64, record: ChangeRecord, position: Option<u64>) -> Result<()> {
        if record.first_seq() != *next_seq || record.last_seq() < record.first_seq() {
            return Err(Error::DataLoss(format!(
                "a change record for changes {}..={} cannot follow change {} of this store{}",
                record.first_seq(),
                record.last_seq(),
                next_seq.saturating_sub(1),
                position
                    .map(|p| format!(" (it is record {p} of the cluster log)"))
                    .unwrap_or_default()
            )));
        }
        if let Some(failure) = self.engine_failure() {
            return Err(failure);
        }
        self.space.check()?;
        let last_seq = record.last_seq();
        #[cfg(test)]
        if let Some(tap) = self
            .tap
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_mut()
        {
            tap.push(record.clone());
        }
        let (mut batch, index, touched) = record.into_changes().split();
        if let Some(position) = position {
            batch.insert(keys::META_LOG_POSITION, &position.to_be_bytes());
        }
        let applied = self.tree.apply_batch(batch);
        // Applied or not, what the caches knew of these keys may be out of date.
        self.names.forget(&touched.name_keys);
        self.entity_records.forget(&touched.entity_ids);
        applied?;
        self.entity_index.apply(index);
        *next_seq = last_seq + 1;
        self.applied.store(last_seq, Ordering::Release);
        if let Some(position) = position {
            self.position.store(position, Ordering::Release);
        }
        self.position_watch
            .send_replace(position.unwrap_or(last_seq));
        self.reached.notify();
        Ok(())
    }

    /// Applies records another store decided, in order, then makes them durable with one
    /// flush; returns the last sequence number applied. The first must follow the last
    /// change this store applied. The replay test's way in; a cluster node applies records
    /// with their log positions through [`Store::apply_logged`].
    #[cfg(test)]
    pub fn apply_records(&self, records: Vec<ChangeRecord>) -> Result<u64> {
        let last = {
            let mut next_seq = self
                .writer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for record in records {
                self.apply(&mut next_seq, record, None)?;
            }
            next_seq.saturating_sub(1)
        };
        self.wait_durable(last)?;
        Ok(last)
    }

    /// The ids of the entities the name index lists under exactly `name_key`, in key order,
    /// through the writer's cache.
    fn entity_ids_by_name_key(&self, name_key: &str) -> Result<Arc<[String]>> {
        self.names
            .get_or_load(name_key, || Ok(self.scan_name_index(name_key)?.into()))
    }

    /// Entity `id`'s record as stored, through the writer's cache. Since layout 6 a stored
    /// record has no counters; the writer takes them from the entity index.
    fn entity_record_for_writer(&self, id: &str) -> Result<Arc<Option<Entity>>> {
        self.entity_records
            .get_or_load(id, || Ok(Arc::new(self.get(&keys::entity(id))?)))
    }

    /// The ids the name index lists under exactly `name_key`, in key order, read from sled.
    fn scan_name_index(&self, name_key: &str) -> Result<Vec<String>> {
        let mut exact = keys::name_prefix(name_key);
        exact.push(0);
        let mut ids = Vec::new();
        for entry in self.tree.scan_prefix(&exact) {
            let (k, _) = entry?;
            if let Some(id) = keys::entity_of_name_key(&k) {
                ids.push(id.to_string());
            }
        }
        Ok(ids)
    }
}
