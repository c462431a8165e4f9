//! The writer side of the search index: opening or building it, applying the change log
//! (`catch_up`), rebuilding it from the store, committing what it applied with the
//! sequence in the payload and publishing it to searches, removing purged text from the
//! files (`expunge`), and letting merges finish at shutdown.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Instant;

use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Term};
use tokio::sync::{Notify, watch};

use super::schema::{self, Fields, SCHEMA_VERSION};
use super::searcher::{Snapshots, View};
use super::{SearchIndex, merges};
use crate::error::{Error, Result};
use crate::model::ChangeKind;
use crate::store::Store;

/// Memory tantivy's writer may use before it flushes a segment. One indexing thread: the
/// follower feeds it from one thread, and every further thread holds its own arena.
const WRITER_MEMORY: usize = 16 * 1024 * 1024;
const WRITER_THREADS: usize = 1;

/// What a change gets once shutdown has taken the writer.
fn closed() -> Error {
    Error::ShuttingDown {
        message: "the search index is closing and takes no more changes".into(),
        resume_after: None,
    }
}

/// What every index commit records: the schema, the store and the last change applied.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Commit {
    version: u32,
    store: String,
    seq: u64,
}

impl Commit {
    fn parse(payload: &str) -> Option<Commit> {
        let mut parts = payload.splitn(3, ':');
        Some(Commit {
            version: parts.next()?.parse().ok()?,
            store: parts.next()?.to_string(),
            seq: parts.next()?.parse().ok()?,
        })
    }
}

impl std::fmt::Display for Commit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.version, self.store, self.seq)
    }
}

impl SearchIndex {
    /// Opens the index in `dir`, rebuilding it from `store` when it is missing, unreadable,
    /// built with another schema or of another store, or when any of its files cannot be
    /// opened: the index is derived, so whatever keeps it from opening costs a rebuild
    /// (logged), never the server's start.
    pub fn open(dir: &Path, store: &Store) -> Result<SearchIndex> {
        let fields = Fields::new();
        let opened = std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal("creating the search index folder", e))
            .and_then(|()| Self::open_existing(dir, &fields, store))
            .and_then(|existing| {
                existing
                    .map(|(index, applied)| Self::start(dir, index, applied, Fields::new(), store))
                    .transpose()
            });
        let search = match opened {
            Ok(Some(search)) => return Ok(search),
            Ok(None) => {
                tracing::info!(dir = %dir.display(), "no search index yet; building it from the store");
                Self::start(dir, Self::create(dir, &fields)?, 0, fields, store)?
            }
            Err(err) => {
                tracing::warn!(dir = %dir.display(), error = %err, "the search index cannot be used; rebuilding it from the store");
                Self::start(dir, Self::create(dir, &fields)?, 0, fields, store)?
            }
        };
        search.rebuild(store)?;
        Ok(search)
    }

    /// Opens the reader and the writer of `index`, whose last commit applied `applied`.
    fn start(
        dir: &Path,
        index: Index,
        applied: u64,
        fields: Fields,
        store: &Store,
    ) -> Result<SearchIndex> {
        let reader: IndexReader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| Error::internal("opening the search index reader", e))?;
        let (applied_tx, _) = watch::channel(applied);
        let current = RwLock::new(View {
            searcher: reader.searcher(),
            seq: applied,
        });
        let mut search = SearchIndex {
            dir: dir.to_path_buf(),
            store_id: store.id().to_string(),
            reader,
            fields,
            index,
            writer: Mutex::new(None),
            finished: std::sync::atomic::AtomicBool::new(false),
            current,
            applied: AtomicU64::new(applied),
            applied_tx,
            snapshots: Mutex::new(Snapshots::default()),
            refresh: Notify::new(),
        };
        search.writer = Mutex::new(Some(search.new_writer()?));
        Ok(search)
    }

    /// The store id and sequence number the index in `dir` last committed, read from its
    /// metadata without opening it; `None` when there is no readable index. The store takes
    /// it as a witness of how far its change log reached (see `store::OpenOptions`).
    pub fn recorded_position(dir: &Path) -> Option<(String, u64)> {
        let meta = std::fs::read(dir.join("meta.json")).ok()?;
        let meta: serde_json::Value = serde_json::from_slice(&meta).ok()?;
        let commit = Commit::parse(meta.get("payload")?.as_str()?)?;
        Some((commit.store, commit.seq))
    }

    /// Opens an existing index and reads its applied sequence; `None` when there is none.
    /// An index of another schema, of another store, or ahead of the store is refused.
    fn open_existing(dir: &Path, fields: &Fields, store: &Store) -> Result<Option<(Index, u64)>> {
        if !dir.join("meta.json").exists() {
            return Ok(None);
        }
        let index = Index::open_in_dir(dir).map_err(|e| Error::internal("opening the index", e))?;
        schema::register_tokenizers(&index);
        let metas = index
            .load_metas()
            .map_err(|e| Error::internal("reading the index metadata", e))?;
        let payload = metas.payload.unwrap_or_default();
        let Some(commit) = Commit::parse(&payload) else {
            return Err(Error::Internal(format!(
                "the index commit payload {payload:?} is not \"version:store:sequence\""
            )));
        };
        if commit.version != SCHEMA_VERSION || index.schema() != fields.schema {
            return Err(Error::Internal(format!(
                "the index was built with schema version {}, this build uses {SCHEMA_VERSION}",
                commit.version
            )));
        }
        if commit.store != store.id() {
            return Err(Error::Internal(
                "the index was built from another database".into(),
            ));
        }
        if commit.seq > store.last_seq() {
            return Err(Error::Internal(format!(
                "the index has applied change {} but the database ends at {}",
                commit.seq,
                store.last_seq()
            )));
        }
        Ok(Some((index, commit.seq)))
    }

    fn create(dir: &Path, fields: &Fields) -> Result<Index> {
        // Whatever is there is unusable; start from an empty folder.
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .map_err(|e| Error::internal("clearing the search index folder", e))?;
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal("creating the search index folder", e))?;
        let index = Index::create_in_dir(dir, fields.schema.clone())
            .map_err(|e| Error::internal("creating the search index", e))?;
        schema::register_tokenizers(&index);
        Ok(index)
    }

    /// Re-indexes every article of the store, logging progress, and commits.
    pub fn rebuild(&self, store: &Store) -> Result<u64> {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.rebuild_locked(writer.as_mut().ok_or_else(closed)?, store)
    }

    fn rebuild_locked(&self, writer: &mut IndexWriter, store: &Store) -> Result<u64> {
        // Everything up to `seq` is in the snapshot below; later changes are replayed by the
        // follower (applying one twice is harmless: documents are replaced by id).
        let seq = store.last_seq();
        // The index must never run ahead of what a crash would keep.
        store.wait_durable(seq)?;
        writer
            .delete_all_documents()
            .map_err(|e| Error::internal("clearing the search index", e))?;
        let started = Instant::now();
        let mut count = 0u64;
        for article in store.articles() {
            let article = article?;
            writer
                .add_document(self.fields.document(&article))
                .map_err(|e| Error::internal("indexing an article", e))?;
            count += 1;
            if count.is_multiple_of(10_000) {
                tracing::info!(articles = count, "rebuilding the search index");
            }
        }
        self.commit(writer, seq)?;
        tracing::info!(
            articles = count,
            seconds = started.elapsed().as_secs_f64(),
            "search index rebuilt"
        );
        Ok(count)
    }

    /// Commits with `seq` in the payload and makes the commit searchable.
    fn commit(&self, writer: &mut IndexWriter, seq: u64) -> Result<()> {
        self.persist(writer, seq)?;
        self.publish(seq)
    }

    /// Commits with `seq` in the payload.
    fn persist(&self, writer: &mut IndexWriter, seq: u64) -> Result<()> {
        let mut prepared = writer
            .prepare_commit()
            .map_err(|e| Error::internal("preparing a search index commit", e))?;
        prepared.set_payload(
            &Commit {
                version: SCHEMA_VERSION,
                store: self.store_id.clone(),
                seq,
            }
            .to_string(),
        );
        prepared
            .commit()
            .map_err(|e| Error::internal("committing the search index", e))?;
        Ok(())
    }

    /// Makes what is committed searchable, as of change `seq`.
    fn publish(&self, seq: u64) -> Result<()> {
        self.reader
            .reload()
            .map_err(|e| Error::internal("reloading the search index", e))?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = View {
            searcher: self.reader.searcher(),
            seq,
        };
        self.applied.store(seq, Ordering::Release);
        self.applied_tx.send_replace(seq);
        Ok(())
    }

    /// Applies durable change-log entries after the applied sequence, up to `limit` of
    /// them, and commits. Returns how many were applied.
    ///
    /// Articles are indexed as the store has them now, which may include a newer write that
    /// is applied but not yet durable. Indexing that would let a crash leave the index ahead
    /// of the store, so a change whose article has moved on is skipped when a later durable
    /// change in this batch covers it, and otherwise ends the batch until the newer write is
    /// durable.
    ///
    /// A step that fails (a full disk, say) may leave tantivy's writer dead or holding half
    /// a batch, so the writer is replaced by a new one that starts from the last commit, and
    /// the next step retries from there: indexing resumes by itself once the cause is gone.
    pub fn catch_up(&self, store: &Store, limit: usize) -> Result<usize> {
        let mut guard = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() && !self.finished.load(Ordering::Acquire) {
            *guard = Some(self.new_writer()?);
            tracing::info!("the search index writer was opened again");
        }
        let writer = guard.as_mut().ok_or_else(closed)?;
        let outcome = self.catch_up_with(writer, store, limit);
        if outcome.is_err() {
            // Dropping the old writer first releases tantivy's writer lock.
            drop(guard.take());
            match self.new_writer() {
                Ok(writer) => *guard = Some(writer),
                Err(err) => {
                    tracing::warn!(error = %err, "the search index writer cannot be opened again yet")
                }
            }
        }
        outcome
    }

    fn new_writer(&self) -> Result<IndexWriter> {
        let writer = self
            .index
            .writer_with_num_threads(WRITER_THREADS, WRITER_MEMORY)
            .map_err(|e| Error::internal("opening the search index writer", e))?;
        writer.set_merge_policy(Box::new(merges::BoundedMerges::default()));
        Ok(writer)
    }

    fn catch_up_with(
        &self,
        writer: &mut IndexWriter,
        store: &Store,
        limit: usize,
    ) -> Result<usize> {
        let from = self.applied();
        let durable = store.durable_seq();
        if durable <= from {
            return Ok(0);
        }
        let mut changes = store.changes_after(from, limit)?;
        if changes.first().is_some_and(|first| first.seq > from + 1) {
            // The log was compacted past this index (restored from an old copy, say): the
            // missing changes are gone, so start again from the articles themselves.
            tracing::warn!(
                applied = from,
                oldest_change = changes.first().map_or(0, |c| c.seq),
                "the search index is older than the change log; rebuilding it"
            );
            self.rebuild_locked(writer, store)?;
            return Ok(usize::try_from(self.applied().saturating_sub(from)).unwrap_or(0));
        }
        changes.retain(|change| change.seq <= durable);
        // Where each article's last change in the batch is: a change before it is covered
        // later. One pass, where asking each change about the rest of the batch was
        // quadratic in the batch (up to the follower's 5,000 changes).
        let mut last_change: HashMap<&str, usize> = HashMap::with_capacity(changes.len());
        for (i, change) in changes.iter().enumerate() {
            last_change.insert(change.article_id.as_str(), i);
        }
        let mut last = None;
        let mut purged = Vec::new();
        for (i, change) in changes.iter().enumerate() {
            // Entity decisions reach the index through the article entries that follow them.
            if !change.kind.is_article() {
                last = Some(change.seq);
                continue;
            }
            let article = store.get_article(&change.article_id)?;
            let current = match (&article, change.kind) {
                (None, ChangeKind::Deleted | ChangeKind::Purged) => true,
                (Some(article), ChangeKind::Created | ChangeKind::Updated) => {
                    article.revision == change.revision
                }
                _ => false,
            };
            let covered_later = last_change
                .get(change.article_id.as_str())
                .is_some_and(|&at| at > i);
            if !current && !covered_later {
                break;
            }
            if change.kind == ChangeKind::Purged {
                purged.push(change.article_id.clone());
            }
            if current && !covered_later {
                writer.delete_term(Term::from_field_text(self.fields.id, &change.article_id));
                if let Some(article) = &article {
                    writer
                        .add_document(self.fields.document(article))
                        .map_err(|e| Error::internal("indexing an article", e))?;
                }
            }
            last = Some(change.seq);
        }
        let Some(last) = last else {
            return Ok(0);
        };
        // A purge is acknowledged once searches reflect it, so the segments are rewritten
        // before the new sequence is published.
        self.persist(writer, last)?;
        if !purged.is_empty() {
            self.expunge(writer, &purged)?;
        }
        self.publish(last)?;
        Ok(usize::try_from(last - from).unwrap_or(usize::MAX))
    }

    /// Takes the writer, so the index accepts no more changes, and lets the merges it has
    /// running finish on a thread of their own; the receiver hears when they have. For
    /// shutdown, after the follower's last commit.
    ///
    /// Dropping the writer instead abandons a merge half done, and tantivy's merge policy
    /// starts the same merge again at the first commit after the restart, so the work is
    /// done twice and the restarted server pays for it while it serves. The thread is not
    /// joined: when the process exits first, the merge is lost and nothing else, since
    /// tantivy switches to merged segments in one commit.
    pub fn finish_merges(&self) -> std::sync::mpsc::Receiver<Result<()>> {
        let (done, finished) = std::sync::mpsc::channel();
        let writer = {
            let mut slot = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            self.finished.store(true, Ordering::Release);
            slot.take()
        };
        let Some(writer) = writer else {
            let _ = done.send(Ok(()));
            return finished;
        };
        let wait = move || {
            let outcome = writer
                .wait_merging_threads()
                .map_err(|e| Error::internal("finishing the search index merges", e));
            let _ = done.send(outcome);
        };
        if let Err(err) = std::thread::Builder::new()
            .name("index-merges".into())
            .spawn(wait)
        {
            // The closure (and with it the sender and the writer) was dropped: the receiver
            // hears a disconnect, and the writer's drop abandons the merges.
            tracing::warn!(error = %err, "cannot wait for the search index merges");
        }
        finished
    }

    /// Rewrites the segments that still hold documents of the purged `ids` (marked deleted)
    /// and removes the old files, so a purged article's text leaves the index files (a
    /// delete alone only marks it as gone). Segments a background merge holds are left to
    /// it: a merge drops deleted documents too.
    fn expunge(&self, writer: &mut IndexWriter, ids: &[String]) -> Result<()> {
        self.reader
            .reload()
            .map_err(|e| Error::internal("reloading the search index", e))?;
        let searcher = self.reader.searcher();
        let mut segments = Vec::new();
        for reader in searcher.segment_readers() {
            let terms = reader
                .inverted_index(self.fields.id)
                .map_err(|e| Error::internal("reading search index terms", e))?;
            let mut holds = false;
            for id in ids {
                holds |= terms
                    .terms()
                    .get(id.as_bytes())
                    .map_err(|e| Error::internal("reading search index terms", e))?
                    .is_some();
            }
            if holds {
                segments.push(reader.segment_id());
            }
        }
        if !segments.is_empty()
            && let Err(err) = writer.merge(&segments).wait()
        {
            tracing::warn!(error = %err, "a purged article's segment is being merged already; that merge removes it");
        }
        writer
            .garbage_collect_files()
            .wait()
            .map_err(|e| Error::internal("removing old search index files", e))?;
        Ok(())
    }
}
