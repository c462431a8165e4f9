//! Opening and closing a store: sled's lock, the layout upgrades, the acknowledged-sequence
//! witness that refuses a store which lost acknowledged changes, the entity index (loaded
//! from its snapshot or rebuilt), and the checkpoint at close.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, OnceLock};

use tokio::sync::watch;

use super::acknowledged::{Acknowledged, Recorded};
use super::change_record::Changes;
use super::durability::GroupCommit;
use super::entity_index::{self, EntityIndex, MentionTally};
use super::records::ArticleEntities;
use super::space::Space;
use super::writer_cache::WriterCache;
use super::{ENTITY_INDEX_FILE, OpenOptions, Retention, Store, codec, keys, migrations};
use crate::error::{Error, Result};
use crate::model::Entity;

/// Whether opening failed because another handle (another process, or this one's closing
/// store) still holds the database's file lock.
fn is_locked(err: &sled::Error) -> bool {
    matches!(err, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
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
        migrations::upgrade(&tree, dir)?;
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
        let position = match tree.get(keys::META_LOG_POSITION)? {
            Some(bytes) => u64::from_be_bytes(bytes.as_ref().try_into().map_err(|_| {
                Error::DataLoss("the store's log position (~log-position) is damaged".into())
            })?),
            None => 0,
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
            log: OnceLock::new(),
            position: AtomicU64::new(position),
            position_watch: watch::channel(if position > 0 { position } else { last }).0,
            reached: Default::default(),
            #[cfg(test)]
            tap: Mutex::default(),
        })
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
}

/// Runs `open`, turning a panic inside it into the refusal any other damage gets: sled
/// 0.34 panics on some damaged log records instead of returning an error (the panic's own
/// message is printed by the default hook just before).
pub(super) fn refuse_on_panic<T>(dir: &Path, open: impl FnOnce() -> Result<T>) -> Result<T> {
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
