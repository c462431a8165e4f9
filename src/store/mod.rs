//! The source of truth: articles, entities, their indexes and the change log, in sled.
//!
//! Nothing outside this module knows sled. Everything lives in one tree (see [`keys`]) so
//! that each write — the article, every index entry it touches, the entity records whose
//! counts change, and one change-log entry — is a single atomic batch. Writes are serialised
//! by one lock, which makes sequence numbers gapless and entity resolution race-free; they
//! are acknowledged only once flushed (see [`durability`]). Reads never take the lock.

mod acknowledged;
mod backup;
mod check;
pub mod codec;
mod durability;
mod editorial;
mod entity_index;
mod history;
pub mod keys;
mod quotes;
mod requests;
mod retention;
mod salience;
mod space;
mod writer_cache;

pub use backup::BackupSummary;
pub use editorial::Decision;
pub use history::Revision;
pub use quotes::{QuoteHit, QuotePage};
pub use requests::Outcome;
pub use retention::{Compacted, Retention};
#[cfg(test)]
mod tests;
mod write;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::error::{Error, Invalid, Result};
use crate::model::{
    Article, ArticleFilter, Change, Entity, EntityKind, Related, Timestamp, name_key,
};
use acknowledged::{Acknowledged, Recorded};
use durability::GroupCommit;
use entity_index::{Changes, EntityIndex, MentionTally};
use keys::ArticleIndex;
use space::Space;
use writer_cache::WriterCache;

pub use write::{Content, Write, Written};

/// The tree's key layout version, checked at open so an incompatible build refuses the data
/// instead of misreading it.
/// Layout 2 added the salience index (`l`); layout 3 dropped the all-kinds entity ranking;
/// layout 4 moved the entity index (`m`, `l`) out of sled into memory, layout 5 the ranking
/// (`r`) too; layout 6 moved entities' counters from their records to the entity index. An
/// older database is upgraded at open, one layout at a time.
const LAYOUT_VERSION: u64 = 6;
/// The entity index's snapshot, in the store's folder, written by [`Store::close`].
const ENTITY_INDEX_FILE: &str = "entity-index";
/// A list page examines at most this many index entries, so a filter that matches rarely
/// cannot make one request scan the whole store; the page then ends early with a token.
pub(crate) const MAX_EXAMINED_PER_PAGE: usize = 10_000;
/// A name prefix may match at most this many names.
const MAX_PREFIX_MATCHES: usize = 50_000;

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

/// Whether opening failed because another handle (another process, or this one's closing
/// store) still holds the database's file lock.
fn is_locked(err: &sled::Error) -> bool {
    matches!(err, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// One page of a listing and the cursor to continue from.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Opaque position after the last item; `None` on the last page.
    pub next: Option<Vec<u8>>,
}

/// The size of one key space (see [`keys`]).
#[derive(Debug, Clone, Default)]
pub struct KeySpaceSize {
    pub prefix: u8,
    pub entries: u64,
    pub key_bytes: u64,
    pub value_bytes: u64,
}

/// Entities related to one entity, and how much of its history was examined.
#[derive(Debug)]
pub struct RelatedPage {
    pub related: Vec<Related>,
    pub articles_examined: u64,
    pub complete: bool,
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
    /// Opens (creating if needed) the store in `dir`, with `cache_bytes` of page cache,
    /// refusing one that lost acknowledged changes.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Store> {
        Self::open_with(
            dir,
            &OpenOptions {
                cache_bytes,
                ..OpenOptions::default()
            },
        )
    }

    /// Opens (creating if needed) the store in `dir`. A store whose change log ends before
    /// the last acknowledged change (see [`acknowledged`]), or that sled cannot read, is
    /// refused with [`Error::DataLoss`] naming both positions and what to do.
    pub fn open_with(dir: &Path, options: &OpenOptions) -> Result<Store> {
        refuse_on_panic(dir, || Self::open_unguarded(dir, options))
    }

    fn open_unguarded(dir: &Path, options: &OpenOptions) -> Result<Store> {
        /// How long a held lock is waited for before the folder is refused as in use.
        const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
        let config = || {
            sled::Config::new()
                .path(dir)
                .cache_capacity(options.cache_bytes)
                .mode(sled::Mode::HighThroughput)
        };
        // The lock of a process that is exiting, or of a store just dropped in this one
        // (sled's flusher lets go of it a moment after the handle), is waited for briefly;
        // a lock still held after that is a live server, and refused.
        let started = std::time::Instant::now();
        let (db_config, opened) = loop {
            let db_config = config();
            match db_config.open() {
                Err(e) if is_locked(&e) && started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                opened => break (db_config, opened),
            }
        };
        let db = opened.map_err(|e| {
            if is_locked(&e) {
                return Error::Internal(format!(
                    "cannot open the database in {}: another newsstore process (a running \
                     server?) is using it; stop that process first ({e})",
                    dir.display()
                ));
            }
            if let sled::Error::Corruption { .. } = e {
                return Error::DataLoss(format!(
                    "the database in {} is damaged ({e}). Restore the last backup into a \
                     new folder (`newsstore restore`) and start the server on that",
                    dir.display()
                ));
            }
            Error::Internal(format!(
                "cannot open the database in {}: {e}. If the folder is damaged, move it \
                 aside and start again (seeds reload), or restore it from a backup",
                dir.display()
            ))
        })?;
        let tree = db.open_tree("newsstore")?;
        loop {
            let layout = tree.get(keys::META_LAYOUT)?;
            let version = layout
                .as_deref()
                .map(|v| <[u8; 8]>::try_from(v).map(u64::from_be_bytes));
            match version {
                None => {
                    tree.insert(keys::META_LAYOUT, &LAYOUT_VERSION.to_be_bytes())?;
                    break;
                }
                Some(Ok(LAYOUT_VERSION)) => break,
                Some(Ok(1)) => upgrade_from_layout_1(&tree)?,
                Some(Ok(2)) => {
                    drop_key_spaces(&tree, &[&[keys::RANK, keys::RANK_ALL_BEFORE_LAYOUT_3]], 3)?
                }
                Some(Ok(3)) => drop_key_spaces(&tree, &[&[keys::MENTION], &[keys::SALIENCE]], 4)?,
                Some(Ok(4)) => drop_key_spaces(&tree, &[&[keys::RANK]], 5)?,
                Some(Ok(5)) => upgrade_to_layout_6(&tree)?,
                _ => {
                    return Err(Error::Internal(format!(
                        "the database in {} has key layout {:?}, this build reads layout \
                         {LAYOUT_VERSION}; use the matching newsstore version",
                        dir.display(),
                        layout.as_deref().unwrap_or_default()
                    )));
                }
            }
        }
        let mut id = match tree.get(keys::META_STORE_ID)? {
            Some(id) => String::from_utf8_lossy(&id).into_owned(),
            None => {
                let id = uuid::Uuid::now_v7().simple().to_string();
                tree.insert(keys::META_STORE_ID, id.as_bytes())?;
                id
            }
        };
        let logged = match tree.scan_prefix([keys::CHANGE]).next_back() {
            Some(entry) => keys::seq_of_change_key(&entry?.0).unwrap_or(0),
            None => 0,
        };
        // Sequence numbers below an accepted loss's upper end are never used again.
        let mut last = logged.max(
            accepted_losses(&tree)?
                .into_iter()
                .map(|(upto, _)| upto)
                .max()
                .unwrap_or(0),
        );
        let (acknowledged, recorded) = Acknowledged::open(dir)?;
        let witnessed = options
            .witness
            .as_ref()
            .filter(|(store, _)| *store == id)
            .map(|(_, seq)| (*seq, "the search index's last commit"));
        let recorded = match recorded {
            Recorded::Upto(seq) => Some((seq, "the acknowledged-sequence record")),
            Recorded::Nothing => None,
        };
        // The last of equal maxima wins: the record is named before the index.
        if let Some((upto, witness)) = witnessed.into_iter().chain(recorded).max_by_key(|w| w.0)
            && upto > last
        {
            let lost = upto - last;
            if !options.accept_data_loss {
                return Err(Error::DataLoss(format!(
                    "the database in {dir} ends at change {last}, but {witness} says changes \
                     up to {upto} were acknowledged: {lost} acknowledged change(s) are \
                     missing, most likely because the storage engine's log was damaged. \
                     Nothing was served. Restore the last backup into a new folder \
                     (`newsstore restore`) and start the server on that; or, to serve what \
                     is left, start once with --accept-data-loss (sequence numbers then \
                     continue above {upto}, and the search index is rebuilt)",
                    dir = dir.display()
                )));
            }
            tracing::error!(
                ends_at = last,
                acknowledged = upto,
                lost,
                "ACKNOWLEDGED CHANGES ARE MISSING; serving what is left as told \
                 (--accept-data-loss): sequence numbers continue above the acknowledged \
                 one and every derived index is rebuilt"
            );
            id = uuid::Uuid::now_v7().simple().to_string();
            let mut batch = sled::Batch::default();
            batch.insert(keys::META_STORE_ID, id.as_bytes());
            batch.insert(keys::accepted_loss(upto), &last.to_be_bytes());
            tree.apply_batch(batch)?;
            db.flush()?;
            last = upto;
        }
        acknowledged.record(last)?;
        let entity_index = match EntityIndex::load(&dir.join(ENTITY_INDEX_FILE), &id, last) {
            Some(index) => {
                tracing::info!(
                    entries = index.len(),
                    "entity index loaded from its snapshot"
                );
                index
            }
            None => build_entity_index(&tree)?,
        };
        // Everything read back from disk is durable by definition.
        let (durable, _) = watch::channel(last);
        Ok(Store {
            id,
            dir: dir.to_path_buf(),
            db_config,
            db,
            tree,
            writer: Mutex::new(last + 1),
            applied: AtomicU64::new(last),
            commit: GroupCommit::new(last),
            durable,
            acknowledged,
            space: Space::new(dir, options.min_free_bytes),
            retention: Retention::default(),
            entity_index,
            names: WriterCache::default(),
            entity_records: WriterCache::default(),
        })
    }

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

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<()> {
        self.wait_durable(self.last_seq())
    }

    /// Flushes and closes the store, then checkpoints it: opens the closed database once
    /// more, which is when sled 0.34 writes its snapshot of the log, so the next start reads
    /// that snapshot instead of replaying every log segment written since the last start
    /// (after loading 100,000 articles: 0.23 s to the first answer instead of 5 s). A clean
    /// shutdown pays the replay instead of the next start, as a database's shutdown
    /// checkpoint does (7 s after that load); after a crash the next start still replays,
    /// from the last snapshot. It also saves the entity index, which the next start then
    /// loads instead of rebuilding it from every article's entity list; after a crash, it
    /// rebuilds.
    ///
    /// Waits up to `wait` for the other holders of the store to let go and for sled's
    /// background threads to release the file lock; the replay itself is not bounded by it.
    /// Returns whether it checkpointed: if the store is still held, the lock stays taken or
    /// the reopen fails, it has only flushed (and logs why).
    pub fn close(self: std::sync::Arc<Self>, wait: std::time::Duration) -> Result<bool> {
        self.flush()?;
        let deadline = std::time::Instant::now() + wait;
        let pause = std::time::Duration::from_millis(20);
        let mut store = self;
        let store = loop {
            match std::sync::Arc::try_unwrap(store) {
                Ok(store) => break store,
                Err(shared) if std::time::Instant::now() < deadline => {
                    store = shared;
                    std::thread::sleep(pause);
                }
                Err(_) => {
                    tracing::warn!("the store is still in use; closing without a checkpoint");
                    return Ok(false);
                }
            }
        };
        // No write can come now, and a last one that came after the flush above is made
        // durable here: the snapshot is the index as of the last durable change.
        store.flush()?;
        let snapshot = store.dir.join(ENTITY_INDEX_FILE);
        let started = std::time::Instant::now();
        match store
            .entity_index
            .save(&snapshot, &store.id, store.last_seq())
        {
            Ok(()) => tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                "entity index saved"
            ),
            Err(err) => tracing::warn!(
                error = %err,
                "the entity index was not saved; the next start rebuilds it"
            ),
        }
        let config = store.db_config.clone();
        drop(store);
        // Everything is durable by now: the checkpoint only saves the next start some time,
        // so failing it is logged, not an error of the shutdown.
        loop {
            match config.open().and_then(|db| db.flush()) {
                Ok(_) => return Ok(true),
                // sled releases its file lock from background threads after the last
                // handle is dropped.
                Err(err) if is_locked(&err) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(pause);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "no checkpoint; the next start replays the log");
                    return Ok(false);
                }
            }
        }
    }

    /// Applies one write's changes: sled's part atomically, then the entity index's.
    /// Called under the writer lock, so no other write's index changes come between.
    fn apply(&self, changes: Changes) -> Result<()> {
        if let Some(failure) = self.engine_failure() {
            return Err(failure);
        }
        self.space.check()?;
        let (batch, index, touched) = changes.split();
        let applied = self.tree.apply_batch(batch);
        // Applied or not, what the caches knew of these keys may be out of date.
        self.names.forget(&touched.name_keys);
        self.entity_records.forget(&touched.entity_ids);
        applied?;
        self.entity_index.apply(index);
        Ok(())
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

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }

    /// Entries, key bytes and value bytes per key space (a full scan, for `newsstore
    /// stats`): what the data is, to set against what the files take.
    pub fn key_space_sizes(&self) -> Result<Vec<KeySpaceSize>> {
        let mut sizes = std::collections::BTreeMap::<u8, KeySpaceSize>::new();
        for entry in self.tree.iter() {
            let (key, value) = entry?;
            let prefix = key.first().copied().unwrap_or(0);
            let size = sizes.entry(prefix).or_insert_with(|| KeySpaceSize {
                prefix,
                ..KeySpaceSize::default()
            });
            size.entries += 1;
            size.key_bytes += key.len() as u64;
            size.value_bytes += value.len() as u64;
        }
        let mut sizes: Vec<KeySpaceSize> = sizes.into_values().collect();
        sizes.sort_by_key(|s| std::cmp::Reverse(s.key_bytes + s.value_bytes));
        Ok(sizes)
    }

    fn get<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        let read = || {
            self.tree
                .get(key)?
                .map(|bytes| codec::decode(&bytes))
                .transpose()
        };
        read().map_err(|err| err.at_key(&keys::show(key)))
    }

    /// The entities an article mentions with their salience there (the `x` record).
    fn article_entities(&self, article_id: &str) -> Result<ArticleEntities> {
        let record: Option<ArticleEntities> = self.get(&keys::article_entities(article_id))?;
        Ok(record.unwrap_or_default())
    }

    pub fn get_article(&self, id: &str) -> Result<Option<Article>> {
        self.get(&keys::article(id))
    }

    /// The entity's record with its counters, which the entity index holds (see
    /// [`entity_record`]). The two are read apart, so a reader racing a write may see the
    /// record after it with the counters before it, for the microseconds between the
    /// store applying sled's batch and the index's changes, as with any entity-index read.
    pub fn get_entity(&self, id: &str) -> Result<Option<Entity>> {
        let Some(mut entity) = self.get::<Entity>(&keys::entity(id))? else {
            return Ok(None);
        };
        self.count_entity(&mut entity);
        Ok(Some(entity))
    }

    /// Sets an entity's counters from the entity index.
    fn count_entity(&self, entity: &mut Entity) {
        let counters = self.entity_index.counters(&entity.id);
        entity.article_count = counters.articles;
        entity.mention_count = counters.tally.mentions;
        entity.kind_votes = counters.tally.votes;
        entity.last_seen = counters.newest;
        entity.first_seen = counters.oldest;
    }

    /// The ids of the entities `name` denotes: the entity with that id, and every entity
    /// with that canonical name or alias (compared by name key).
    pub fn entities_named(&self, name: &str) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        if !name.is_empty()
            && let Some(entity) = self.resolve_entity(name)?
        {
            ids.push(entity.id);
        }
        let key = name_key(name);
        if key.is_empty() {
            return Ok(ids);
        }
        for id in self.scan_name_index(&key)? {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// The id of the entity with number `code`.
    pub fn entity_id_by_code(&self, code: u64) -> Result<Option<String>> {
        Ok(self
            .tree
            .get(keys::entity_code(code))?
            .map(|id| String::from_utf8_lossy(&id).into_owned()))
    }

    /// One more than the highest entity number assigned so far.
    pub fn next_entity_code(&self) -> Result<u64> {
        Ok(match self.tree.get(keys::META_NEXT_CODE)? {
            Some(bytes) => bytes
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(1),
            None => 1,
        })
    }

    /// Every stored article, in id order (for rebuilding derived indexes).
    pub fn articles(&self) -> impl Iterator<Item = Result<Article>> + '_ {
        self.tree
            .scan_prefix([keys::ARTICLE])
            .map(|entry| codec::decode(&entry?.1))
    }

    /// Up to `limit` articles in id order, after article `after`.
    pub fn articles_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Article>> {
        let low = match after {
            Some(id) => {
                let mut key = keys::article(id);
                key.push(0);
                key
            }
            None => vec![keys::ARTICLE],
        };
        self.tree
            .range(low..keys::prefix_end(&[keys::ARTICLE]))
            .take(limit)
            .map(|entry| codec::decode(&entry?.1))
            .collect()
    }

    /// How many articles are stored (counts keys: for progress reports, not request paths).
    pub fn article_count(&self) -> Result<u64> {
        let mut count = 0;
        for entry in self.tree.scan_prefix([keys::ARTICLE]) {
            entry?;
            count += 1;
        }
        Ok(count)
    }

    /// Change-log entries after `seq`, oldest first, at most `limit`.
    pub fn changes_after(&self, seq: u64, limit: usize) -> Result<Vec<Change>> {
        let start = keys::change(seq.saturating_add(1));
        let end = keys::prefix_end(&[keys::CHANGE]);
        self.tree
            .range(start..end)
            .take(limit)
            .map(|entry| codec::decode(&entry?.1))
            .collect()
    }

    /// Articles matching `filter`, newest first, continuing after `cursor`.
    pub fn list_articles(
        &self,
        filter: &ArticleFilter,
        page_size: usize,
        cursor: Option<&[u8]>,
    ) -> Result<Page<Article>> {
        if let Some(cursor) = cursor
            && keys::split_suffix(cursor).is_none()
        {
            return Err(bad_cursor());
        }
        let indexes = match self.choose_indexes(filter)? {
            Some(indexes) => indexes,
            None => {
                return Ok(Page {
                    items: Vec::new(),
                    next: None,
                });
            }
        };
        // The range of `time + id` suffixes the time filter allows.
        let low_time = match filter.published_end {
            Some(end) => match end.0.checked_sub(1) {
                Some(t) => Some(keys::newest_first(Timestamp(t))),
                None => {
                    return Ok(Page {
                        items: Vec::new(),
                        next: None,
                    });
                }
            },
            None => None,
        };
        let high_time = filter.published_start.map(keys::newest_first);
        let mut iterators: Vec<_> = indexes
            .iter()
            .map(|index| {
                let prefix = index.prefix();
                let mut low = prefix.clone();
                match (low_time, cursor) {
                    (Some(t), Some(c)) if c > t.as_slice() => {
                        low.extend_from_slice(c);
                        low.push(0);
                    }
                    (Some(t), _) => low.extend_from_slice(&t),
                    (None, Some(c)) => {
                        low.extend_from_slice(c);
                        low.push(0);
                    }
                    (None, None) => {}
                }
                let high = match high_time {
                    Some(t) => {
                        let mut bound = prefix.clone();
                        bound.extend_from_slice(&t);
                        keys::prefix_end(&bound)
                    }
                    None => keys::prefix_end(&prefix),
                };
                self.positions(low..high, prefix.len())
            })
            .collect();

        let mut items = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        let mut examined = 0;
        loop {
            let Some(suffix) = merge_next(&mut iterators)? else {
                return Ok(Page { items, next: None });
            };
            if items.len() == page_size || examined == MAX_EXAMINED_PER_PAGE {
                return Ok(Page { items, next: last });
            }
            examined += 1;
            let (time, id) = keys::split_suffix(&suffix)
                .ok_or_else(|| Error::Internal("malformed article index key".into()))?;
            // An entry read just before its article moved in time is stale: the article
            // turns up again under its new entry.
            if let Some(article) = self.get_article(id)?
                && article.sort_time() == time
                && filter.matches(&article)
            {
                items.push(article);
            }
            last = Some(suffix.to_vec());
        }
    }

    /// The indexes to scan for `filter`; `None` when nothing can match.
    fn choose_indexes(&self, filter: &ArticleFilter) -> Result<Option<Vec<ArticleIndex>>> {
        if !filter.entity_ids.is_empty() {
            // Scan the rarest entity; the article check covers the others.
            let mut rarest: Option<Entity> = None;
            for id in &filter.entity_ids {
                let Some(entity) = self.get_entity(id)? else {
                    return Ok(None);
                };
                if rarest
                    .as_ref()
                    .is_none_or(|r| entity.article_count < r.article_count)
                {
                    rarest = Some(entity);
                }
            }
            return Ok(rarest.map(|e| vec![ArticleIndex::Entity(e.id)]));
        }
        if !filter.sources.is_empty() {
            let unique: HashSet<&String> = filter.sources.iter().collect();
            return Ok(Some(
                unique
                    .into_iter()
                    .map(|s| ArticleIndex::Source(s.clone()))
                    .collect(),
            ));
        }
        Ok(Some(vec![ArticleIndex::Time]))
    }

    /// Entities with at least one article, most articles first, optionally of one kind and
    /// with a name or alias starting with `name_prefix`.
    pub fn list_entities(
        &self,
        kind: Option<EntityKind>,
        name_prefix: &str,
        page_size: usize,
        cursor: Option<&[u8]>,
    ) -> Result<Page<Entity>> {
        if let Some(cursor) = cursor
            && (cursor.len() < 9 || std::str::from_utf8(&cursor[8..]).is_err())
        {
            return Err(bad_cursor());
        }
        if !name_prefix.is_empty() {
            return self.list_entities_by_prefix(kind, name_prefix, page_size, cursor);
        }
        let kinds = match kind {
            Some(kind) => vec![kind],
            None => EntityKind::ALL.to_vec(),
        };
        // Positions (`count desc, id`) compare the same way in every kind's ranking, so the
        // listing of all kinds is a merge of the four.
        let mut rankings: Vec<_> = kinds
            .into_iter()
            .map(|kind| {
                let prefix = keys::rank_prefix(kind);
                let mut low = prefix.clone();
                if let Some(cursor) = cursor {
                    low.extend_from_slice(cursor);
                    low.push(0);
                }
                self.positions(low..keys::prefix_end(&prefix), prefix.len())
            })
            .collect();
        let mut items = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        while let Some(position) = merge_next(&mut rankings)? {
            if items.len() == page_size {
                return Ok(Page { items, next: last });
            }
            let id = keys::entity_of_rank_position(&position)
                .ok_or_else(|| Error::Internal("malformed ranking key".into()))?;
            if let Some(entity) = self.get_entity(id)? {
                items.push(entity);
            }
            // The position is the key's: the entity's count may change meanwhile.
            last = Some(position.to_vec());
        }
        Ok(Page { items, next: None })
    }

    fn list_entities_by_prefix(
        &self,
        kind: Option<EntityKind>,
        name_prefix: &str,
        page_size: usize,
        cursor: Option<&[u8]>,
    ) -> Result<Page<Entity>> {
        let key = name_key(name_prefix);
        if key.is_empty() {
            return Err(Error::invalid(
                "name_prefix",
                Invalid::Malformed,
                "name_prefix must contain a letter or digit",
            ));
        }
        let mut ids: HashSet<String> = HashSet::new();
        for (n, entry) in self.tree.scan_prefix(keys::name_prefix(&key)).enumerate() {
            if n == MAX_PREFIX_MATCHES {
                return Err(Error::invalid(
                    "name_prefix",
                    Invalid::OutOfRange,
                    format!(
                        "name_prefix {name_prefix:?} matches more than {MAX_PREFIX_MATCHES} \
                         names; use a longer prefix"
                    ),
                ));
            }
            let (k, _) = entry?;
            if let Some(id) = keys::entity_of_name_key(&k) {
                ids.insert(id.to_string());
            }
        }
        // Ordered like the ranking, so the cursor has the same form.
        let mut ranked: BTreeMap<Vec<u8>, Entity> = BTreeMap::new();
        for id in ids {
            if let Some(entity) = self.get_entity(&id)?
                && entity.article_count > 0
                && kind.is_none_or(|k| k == entity.kind)
            {
                ranked.insert(rank_cursor(&entity), entity);
            }
        }
        let mut items = Vec::new();
        let start = cursor.map(<[u8]>::to_vec);
        for (position, entity) in ranked {
            if start.as_ref().is_some_and(|s| position <= *s) {
                continue;
            }
            if items.len() == page_size {
                let last: &Entity = &items[items.len() - 1];
                return Ok(Page {
                    next: Some(rank_cursor(last)),
                    items,
                });
            }
            items.push(entity);
        }
        Ok(Page { items, next: None })
    }

    /// The entities that share articles with entity `id`, most shared first, looking at its
    /// `max_articles` most recent articles.
    pub fn related_entities(
        &self,
        id: &str,
        kind: Option<EntityKind>,
        limit: usize,
        max_articles: usize,
    ) -> Result<RelatedPage> {
        if self.get_entity(id)?.is_none() {
            return Err(Error::NotFound {
                resource: crate::error::Resource::Entity,
                id: id.to_string(),
            });
        }
        let prefix = ArticleIndex::Entity(id.to_string()).prefix();
        // Per other entity: shared articles, and the sum over them of both saliences'
        // product, which ranks a name central to the same stories above a passing mention.
        let mut shared: HashMap<String, (u64, f64)> = HashMap::new();
        let mut examined = 0u64;
        let mut complete = true;
        for key in self.keys_with_prefix(&prefix) {
            if examined as usize == max_articles {
                complete = false;
                break;
            }
            let key = key?;
            let Some((_, article_id)) = keys::split_suffix(&key[prefix.len()..]) else {
                continue;
            };
            examined += 1;
            let entities = self.article_entities(article_id)?;
            let own = entities
                .iter()
                .find(|(other, ..)| other == id)
                .map_or(0.0, |(_, s, ..)| f64::from(*s));
            for (other, salience, ..) in entities {
                if other != id {
                    let entry = shared.entry(other).or_default();
                    entry.0 += 1;
                    entry.1 += own * f64::from(salience);
                }
            }
        }
        let mut ranked: Vec<(String, (u64, f64))> = shared.into_iter().collect();
        ranked.sort_by(|a, b| {
            b.1.1
                .total_cmp(&a.1.1)
                .then_with(|| b.1.0.cmp(&a.1.0))
                .then_with(|| a.0.cmp(&b.0))
        });
        let mut related = Vec::new();
        for (other, (count, strength)) in ranked {
            if related.len() == limit {
                break;
            }
            if let Some(entity) = self.get_entity(&other)?
                && kind.is_none_or(|k| k == entity.kind)
            {
                related.push(Related {
                    entity,
                    shared_articles: count,
                    strength,
                });
            }
        }
        Ok(RelatedPage {
            related,
            articles_examined: examined,
            complete,
        })
    }

    /// The index keys in `range`, each without its first `skip` bytes (the index's prefix),
    /// as a source for [`merge_next`].
    fn positions(
        &self,
        range: std::ops::Range<Vec<u8>>,
        skip: usize,
    ) -> std::iter::Peekable<impl Iterator<Item = sled::Result<sled::IVec>> + use<>> {
        self.keys_in(range)
            .map(move |key| key.map(|key| key.subslice(skip, key.len() - skip)))
            .peekable()
    }

    /// The keys in `range`, from sled or, for the `m`, `l` and `r` key spaces, from the
    /// entity indexes (see [`EntityIndex::range`]).
    fn keys_in(
        &self,
        range: std::ops::Range<Vec<u8>>,
    ) -> Box<dyn Iterator<Item = sled::Result<sled::IVec>> + Send> {
        match range.start.first() {
            Some(&keys::MENTION | &keys::SALIENCE | &keys::RANK) => {
                Box::new(self.entity_index.range(range).map(|key| Ok(key.into())))
            }
            _ => Box::new(self.tree.range(range).keys()),
        }
    }

    /// The keys of an entity-index prefix (see [`Store::keys_in`]).
    fn keys_with_prefix(
        &self,
        prefix: &[u8],
    ) -> Box<dyn Iterator<Item = sled::Result<sled::IVec>> + Send> {
        self.keys_in(prefix.to_vec()..keys::prefix_end(prefix))
    }
}

/// One step of a k-way merge of sorted index scans: takes the smallest next entry across
/// `sources`; `None` once every one is exhausted.
fn merge_next<I>(sources: &mut [std::iter::Peekable<I>]) -> Result<Option<sled::IVec>>
where
    I: Iterator<Item = sled::Result<sled::IVec>>,
{
    let mut best: Option<(usize, sled::IVec)> = None;
    for (i, source) in sources.iter_mut().enumerate() {
        match source.peek() {
            Some(Ok(entry)) if best.as_ref().is_none_or(|(_, b)| entry < b) => {
                best = Some((i, entry.clone()));
            }
            Some(Ok(_)) | None => {}
            Some(Err(_)) => {
                if let Some(Err(err)) = source.next() {
                    return Err(err.into());
                }
            }
        }
    }
    Ok(best.and_then(|(i, _)| sources[i].next()).transpose()?)
}

/// The position of an entity in the ranking, as a cursor.
fn rank_cursor(entity: &Entity) -> Vec<u8> {
    let mut cursor = (u64::MAX - entity.article_count).to_be_bytes().to_vec();
    cursor.extend_from_slice(entity.id.as_bytes());
    cursor
}

/// Runs `open`, turning a panic inside it into the refusal any other damage gets: sled
/// 0.34 panics on some damaged log records instead of returning an error (the panic's own
/// message is printed by the default hook just before).
fn refuse_on_panic<T>(dir: &Path, open: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(open)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_string());
        Err(Error::DataLoss(format!(
            "the database in {} is damaged: reading it failed inside the storage engine \
             ({why}). Restore the last backup into a new folder (`newsstore restore`) and \
             start the server on that",
            dir.display()
        )))
    })
}

/// Every loss accepted at open (`--accept-data-loss`): the sequence number acknowledged
/// then, and the one the change log ended at.
pub(crate) fn accepted_losses(tree: &sled::Tree) -> Result<Vec<(u64, u64)>> {
    let mut losses = Vec::new();
    for entry in tree.scan_prefix(keys::META_ACCEPTED_LOSS) {
        let (key, value) = entry?;
        let number = |bytes: &[u8]| <[u8; 8]>::try_from(bytes).ok().map(u64::from_be_bytes);
        if let (Some(upto), Some(ended)) = (
            number(&key[keys::META_ACCEPTED_LOSS.len()..]),
            number(&value),
        ) {
            losses.push((upto, ended));
        }
    }
    Ok(losses)
}

/// Records layout 2, whose salience index (`l`) layout 4 keeps in memory, built at open.
fn upgrade_from_layout_1(tree: &sled::Tree) -> Result<()> {
    tree.insert(keys::META_LAYOUT, &2u64.to_be_bytes())?;
    Ok(())
}

/// Removes every key under each of `prefixes`, then records `layout`: layout 3 dropped the
/// all-kinds entity ranking, layout 4 moved `m` and `l` into memory, layout 5 `r`.
/// Interrupted, it simply runs again at the next open.
fn drop_key_spaces(tree: &sled::Tree, prefixes: &[&[u8]], layout: u64) -> Result<()> {
    tracing::info!(layout, "upgrading the database: dropping key spaces");
    let mut removed = 0u64;
    for prefix in prefixes {
        let mut batch = sled::Batch::default();
        for key in tree.scan_prefix(prefix).keys() {
            batch.remove(key?);
            removed += 1;
            if removed.is_multiple_of(10_000) {
                tree.apply_batch(std::mem::take(&mut batch))?;
            }
        }
        tree.apply_batch(batch)?;
    }
    tree.insert(keys::META_LAYOUT, &layout.to_be_bytes())?;
    tree.flush()?;
    tracing::info!(removed, layout, "database upgraded");
    Ok(())
}

/// Records layout 6, where an entity's counters are no longer in its record but counted by
/// the entity index from the `x` records, which gained each mention's count and kind: every
/// `x` record is written again from its article, and every entity record without its
/// counters. Interrupted, it simply runs again at the next open.
fn upgrade_to_layout_6(tree: &sled::Tree) -> Result<()> {
    tracing::info!(
        layout = 6,
        "upgrading the database: entity counters move to the entity index"
    );
    let mut rewritten = 0u64;
    let mut batch = sled::Batch::default();
    let mut put = |batch: &mut sled::Batch, key: &[u8], value: Vec<u8>| -> Result<()> {
        batch.insert(key, value);
        rewritten += 1;
        if rewritten.is_multiple_of(10_000) {
            tree.apply_batch(std::mem::take(batch))?;
        }
        Ok(())
    };
    for value in tree.scan_prefix([keys::ARTICLE]).values() {
        let article: Article = codec::decode(&value?)?;
        let key = keys::article_entities(&article.id);
        put(&mut batch, &key, article_entities_record(&article)?)?;
    }
    for entry in tree.scan_prefix([keys::ENTITY]) {
        let (key, value) = entry?;
        let entity: Entity = codec::decode(&value)?;
        put(&mut batch, &key, entity_record(&entity)?)?;
    }
    tree.apply_batch(batch)?;
    tree.insert(keys::META_LAYOUT, &6u64.to_be_bytes())?;
    tree.flush()?;
    tracing::info!(rewritten, layout = 6, "database upgraded");
    Ok(())
}

/// The entity indexes, from the articles' times (`t`) and entities (`x`) and the entity
/// records (`e`).
fn build_entity_index(tree: &sled::Tree) -> Result<EntityIndex> {
    let started = std::time::Instant::now();
    let mut times: HashMap<String, [u8; 8]> = HashMap::new();
    for key in tree.scan_prefix([keys::TIME]).keys() {
        let key = key?;
        if let Some(suffix) = key.get(1..)
            && let Some((time, id)) = keys::split_suffix(suffix)
        {
            times.insert(id.to_string(), keys::newest_first(time));
        }
    }
    let mut builder = entity_index::Builder::default();
    for entry in tree.scan_prefix([keys::ARTICLE_ENTITIES]) {
        let (key, value) = entry?;
        let Some(id) = key.get(1..).and_then(|id| std::str::from_utf8(id).ok()) else {
            continue;
        };
        let Some(time) = times.remove(id) else {
            continue;
        };
        let entities: ArticleEntities = codec::decode(&value)?;
        let entities = entities
            .into_iter()
            .map(|(id, salience, count, kind)| (id, salience, MentionTally { count, kind }))
            .collect();
        builder.article(id, time, entities);
    }
    drop(times);
    let index = builder.finish();
    // The ranking orders entities by article count, which the index now knows.
    let mut ranking = Changes::default();
    for value in tree.scan_prefix([keys::ENTITY]).values() {
        let entity: Entity = codec::decode(&value?)?;
        let articles = index.counters(&entity.id).articles;
        if articles > 0 {
            ranking.insert(keys::rank(entity.kind, articles, &entity.id), Vec::new());
        }
    }
    index.apply(ranking.split().1);
    tracing::info!(
        entries = index.len(),
        seconds = started.elapsed().as_secs_f64(),
        "entity index built"
    );
    Ok(index)
}

/// The `x` record of an article: per entity it mentions, the entity's id, its salience
/// there, how often the article names it and the kind extraction gave it there. The entity
/// index (entries and tallies) is rebuilt from these small records rather than the
/// articles. Before layout 6 the record held ids and saliences alone (or ids alone).
type ArticleEntities = Vec<(String, f32, u32, Option<EntityKind>)>;

/// The entity-index keys of an article's mentions: per mention, its `m` (by time) and `l`
/// (by salience) entries.
fn mention_index_keys(article: &Article) -> impl Iterator<Item = Vec<u8>> + '_ {
    let time = article.sort_time();
    article.derived.mentions.iter().flat_map(move |mention| {
        [
            ArticleIndex::Entity(mention.entity_id.clone()).key(time, &article.id),
            keys::salience(&mention.entity_id, mention.salience, time, &article.id),
        ]
    })
}

/// What the `x` record of `article` holds.
fn article_entities_of(article: &Article) -> ArticleEntities {
    article
        .derived
        .mentions
        .iter()
        .map(|m| (m.entity_id.clone(), m.salience, m.count, m.extracted_kind))
        .collect()
}

/// The `x` record for `article`.
fn article_entities_record(article: &Article) -> Result<Vec<u8>> {
    codec::encode(&article_entities_of(article))
}

/// An entity's record as stored: without its counters (article and mention counts, first
/// and last seen, kind votes), which are derived from its articles and held by the entity
/// index. So a write rewrites only the records whose own fields it changes, not the record
/// of every entity its article mentions: at 2,125 articles that was half of what sled wrote
/// and a third of its files.
fn entity_record(entity: &Entity) -> Result<Vec<u8>> {
    codec::encode(&record_of(entity))
}

/// What [`entity_record`] encodes: `entity` with its counters cleared.
fn record_of(entity: &Entity) -> Entity {
    let mut record = entity.clone();
    clear_counters(&mut record);
    record
}

/// Whether `entity` and the `stored` record agree in everything but the counters, that is
/// whether writing `entity` would change its record. Every field is named, so a new one
/// cannot be forgotten here.
fn same_record(entity: &Entity, stored: &Entity) -> bool {
    let Entity {
        id,
        name,
        kind,
        aliases,
        article_count: _,
        mention_count: _,
        first_seen: _,
        last_seen: _,
        code,
        description,
        external_ids,
        merged_into,
        blocked,
        edited,
        kind_votes: _,
    } = entity;
    *id == stored.id
        && *name == stored.name
        && *kind == stored.kind
        && *aliases == stored.aliases
        && *code == stored.code
        && *description == stored.description
        && *external_ids == stored.external_ids
        && *merged_into == stored.merged_into
        && *blocked == stored.blocked
        && *edited == stored.edited
}

/// Zeroes what [`entity_record`] leaves out.
fn clear_counters(entity: &mut Entity) {
    entity.article_count = 0;
    entity.mention_count = 0;
    entity.first_seen = None;
    entity.last_seen = None;
    entity.kind_votes = [0; 4];
}

fn bad_cursor() -> Error {
    Error::invalid(
        "page_token",
        Invalid::PageToken,
        "page_token is not a position this server issued",
    )
}
