//! Full-text search: a tantivy index that follows the store's change log.
//!
//! The index is derived data. sled stays the source of truth; the index holds what is
//! needed to find, filter, order and count articles, plus their ids, and every hit is
//! re-read from the store before it is returned, so a search never shows an article the
//! store does not have. A background follower applies change-log entries in order and
//! commits at most once per refresh interval, writing the last applied sequence number into
//! the commit payload. After a crash it resumes from that number; an index that is missing,
//! unreadable or built with another schema is rebuilt from the store.
//!
//! Pages of one search are served from one snapshot of the index (kept for
//! [`SNAPSHOT_TTL`]), so writes between pages cause neither duplicates nor gaps.

mod compile;
mod facets;
mod follower;
mod highlight;
mod merges;
pub mod query;
mod schema;
mod stemmer;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tantivy::collector::{Collector, Count, TopDocs};
use tantivy::columnar::StrColumn;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Score, Searcher, SegmentReader, Term,
};
use tokio::sync::{Notify, watch};

use crate::error::{Error, Invalid, Result};
use crate::model::{Article, ArticleFilter, ChangeKind, EntityKind, Timestamp};
use crate::store::Store;
use compile::{Compiler, analyze};
use facets::{FacetCollector, FacetCounts, FacetSelection};
use highlight::Highlighter;
use schema::{Fields, SCHEMA_VERSION};

pub use follower::spawn_follower;

/// Memory tantivy's writer may use before it flushes a segment. One indexing thread: the
/// follower feeds it from one thread, and every further thread holds its own arena.
const WRITER_MEMORY: usize = 16 * 1024 * 1024;
const WRITER_THREADS: usize = 1;
/// The deepest result a search may page to; beyond it, narrow the query.
pub const MAX_SEARCH_DEPTH: usize = 10_000;
/// How long a search's snapshot is kept for its next pages.
pub const SNAPSHOT_TTL: Duration = Duration::from_secs(600);
/// Most snapshots kept at once; the least recently used goes first.
const MAX_SNAPSHOTS: usize = 64;

/// What a change gets once shutdown has taken the writer.
fn closed() -> Error {
    Error::ShuttingDown {
        message: "the search index is closing and takes no more changes".into(),
        resume_after: None,
    }
}

/// The order of hits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SearchOrder {
    Relevance,
    PublishedDesc,
    PublishedAsc,
    /// Relevance times 0.5^(age / half life).
    RelevanceRecency {
        half_life: Duration,
    },
}

/// What a facet counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FacetField {
    Entity,
    Source,
    Tag,
    Month,
}

/// A facet to count, with the most buckets to return (per kind for entities).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FacetRequest {
    pub field: FacetField,
    pub limit: usize,
}

/// How matched words are marked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Highlight {
    pub pre: String,
    pub post: String,
    pub snippet_chars: usize,
}

impl Default for Highlight {
    fn default() -> Self {
        Highlight {
            pre: "<em>".into(),
            post: "</em>".into(),
            snippet_chars: 240,
        }
    }
}

/// Where the next page of a search starts: the snapshot and the offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagePosition {
    pub snapshot: u64,
    pub offset: usize,
}

/// A search request, already validated.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// Query-language text; empty means every article the filter admits.
    pub query: String,
    pub filter: ArticleFilter,
    pub order: SearchOrder,
    pub typo_tolerance: bool,
    pub highlight: Highlight,
    pub facets: Vec<FacetRequest>,
    pub limit: usize,
    pub page: Option<PagePosition>,
}

/// One hit.
#[derive(Debug, Clone)]
pub struct Hit {
    pub article: Article,
    pub score: f32,
    /// Body passage with matched words marked.
    pub snippet: String,
    /// Headline with matched words marked.
    pub headline: String,
}

/// One bucket of a facet.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub value: String,
    pub label: String,
    pub count: u64,
    pub kind: Option<EntityKind>,
}

/// The counts of one facet.
#[derive(Debug, Clone, PartialEq)]
pub struct Facet {
    pub field: FacetField,
    pub buckets: Vec<Bucket>,
}

#[derive(Debug, Clone)]
pub struct SearchResults {
    pub hits: Vec<Hit>,
    pub total: u64,
    pub facets: Vec<Facet>,
    pub next: Option<PagePosition>,
    /// The change-log sequence the searched snapshot reflects.
    pub index_seq: u64,
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

/// A searcher and the change-log sequence it reflects.
#[derive(Clone)]
struct View {
    searcher: Searcher,
    seq: u64,
}

/// Snapshots kept for paging, by generation id.
#[derive(Default)]
struct Snapshots {
    entries: Vec<(u64, Instant, View)>,
}

impl Snapshots {
    fn get(&mut self, generation: u64) -> Option<View> {
        self.entries
            .retain(|(_, used, _)| used.elapsed() < SNAPSHOT_TTL);
        let entry = self.entries.iter_mut().find(|(g, _, _)| *g == generation)?;
        entry.1 = Instant::now();
        Some(entry.2.clone())
    }

    fn keep(&mut self, generation: u64, view: &View) {
        if let Some(entry) = self.entries.iter_mut().find(|(g, _, _)| *g == generation) {
            entry.1 = Instant::now();
            return;
        }
        if self.entries.len() >= MAX_SNAPSHOTS {
            self.entries
                .sort_by_key(|(_, used, _)| std::cmp::Reverse(*used));
            self.entries.truncate(MAX_SNAPSHOTS - 1);
        }
        self.entries
            .push((generation, Instant::now(), view.clone()));
    }
}

pub struct SearchIndex {
    dir: PathBuf,
    /// The store this index follows (recorded in every commit).
    store_id: String,
    reader: IndexReader,
    fields: Fields,
    index: Index,
    /// `None` once [`SearchIndex::finish_merges`] has taken it at shutdown, or for a moment
    /// after a failed step (see [`SearchIndex::catch_up`]).
    writer: Mutex<Option<IndexWriter>>,
    /// [`SearchIndex::finish_merges`] took the writer for good.
    finished: std::sync::atomic::AtomicBool,
    current: RwLock<View>,
    /// The change-log sequence the searchable index reflects.
    applied: AtomicU64,
    applied_tx: watch::Sender<u64>,
    snapshots: Mutex<Snapshots>,
    /// Asks the follower to apply changes now instead of at the end of the interval.
    refresh: Notify,
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

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The change-log sequence number that searches currently reflect.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Follows the change-log sequence that searches reflect.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    /// Asks the follower to apply pending changes now.
    pub fn request_refresh(&self) {
        self.refresh.notify_one();
    }

    /// Waits until searches reflect change `seq`, asking for an early refresh; gives up with
    /// an error after `timeout`.
    pub async fn wait_for(&self, seq: u64, timeout: Duration) -> Result<()> {
        let mut applied = self.applied_tx.subscribe();
        if *applied.borrow() >= seq {
            return Ok(());
        }
        self.request_refresh();
        let waited = tokio::time::timeout(timeout, applied.wait_for(|&a| a >= seq)).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::IndexLagging(format!(
                "the change was stored (sequence {seq}) but the search index has not caught up \
                 within {} s; it will shortly",
                timeout.as_secs()
            ))),
        }
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
            let covered_later = changes[i + 1..]
                .iter()
                .any(|later| later.article_id == change.article_id);
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

    /// Which of the articles `ids` match the parsed `query` in the current view: a saved
    /// query tested against a few articles, as the change feed's percolator does. Costs one
    /// search restricted to those ids, whatever the size of the index.
    pub fn matching(
        &self,
        store: &Store,
        query: &query::Node,
        ids: &[&str],
    ) -> Result<std::collections::HashSet<String>> {
        let view = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let searcher = &view.searcher;
        let resolve = |name: &str| store.entities_named(name);
        let compiled = Compiler::new(&self.fields, searcher, false, &resolve).compile(query)?;
        let id_terms: Vec<(Occur, Box<dyn Query>)> = ids
            .iter()
            .map(|id| {
                let term = Term::from_field_text(self.fields.id, id);
                (
                    Occur::Should,
                    Box::new(TermQuery::new(term, IndexRecordOption::Basic)) as Box<dyn Query>,
                )
            })
            .collect();
        let restricted = BooleanQuery::new(vec![
            (Occur::Must, compiled.query),
            (Occur::Must, Box::new(BooleanQuery::new(id_terms))),
        ]);
        let docs = searcher
            .search(&restricted, &tantivy::collector::DocSetCollector)
            .map_err(|e| Error::internal("matching a saved query", e))?;
        let mut reader = IdReader::new(searcher, self.fields.id);
        let mut matched = std::collections::HashSet::new();
        for address in docs {
            if let Some(id) = reader.id(address)? {
                matched.insert(id);
            }
        }
        Ok(matched)
    }

    /// The view a search runs on: its page's snapshot, or the current one (kept for later
    /// pages).
    fn view(&self, page: Option<PagePosition>) -> Result<View> {
        let mut snapshots = self
            .snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(page) = page {
            return snapshots.get(page.snapshot).ok_or_else(|| {
                Error::invalid(
                    "page_token",
                    Invalid::PageTokenExpired,
                    "page_token has expired (search pages are kept for ten minutes); run the \
                     search again from the first page",
                )
            });
        }
        let view = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        snapshots.keep(view.searcher.generation().generation_id(), &view);
        Ok(view)
    }

    /// Runs a search. Hits are re-read from `store` and re-checked against the filter.
    pub fn search(&self, store: &Store, request: &SearchRequest) -> Result<SearchResults> {
        let view = self.view(request.page)?;
        let searcher = &view.searcher;
        let resolve = |name: &str| store.entities_named(name);
        let (text_query, highlights) = match query::parse(&request.query)
            .map_err(|e| Error::invalid("query", Invalid::Query, e.to_string()))?
        {
            Some(node) => {
                let compiled =
                    Compiler::new(&self.fields, searcher, request.typo_tolerance, &resolve)
                        .compile(&node)?;
                (compiled.query, compiled.highlights)
            }
            None => (Box::new(AllQuery) as Box<dyn Query>, BTreeMap::new()),
        };
        let query = self.with_filter(text_query, &request.filter);

        let offset = request.page.map_or(0, |p| p.offset);
        let limit = request.limit.max(1);
        let limit_of = |field: FacetField| {
            request
                .facets
                .iter()
                .filter(|f| f.field == field)
                .map(|f| f.limit)
                .max()
        };
        let selection = FacetSelection {
            entities: limit_of(FacetField::Entity),
            sources: limit_of(FacetField::Source),
            tags: limit_of(FacetField::Tag),
            months: limit_of(FacetField::Month).is_some(),
        };
        let entity_codes = if selection.entities.is_some() {
            store.next_entity_code()?
        } else {
            0
        };
        let facets = || FacetCollector {
            selection,
            entity_codes,
        };
        let top = TopDocs::with_limit(limit + 1).and_offset(offset);
        let (top, total, counts) = match request.order {
            SearchOrder::Relevance => run(searcher, &*query, top.order_by_score(), facets())?,
            SearchOrder::PublishedDesc => {
                let (top, total, counts) =
                    run(searcher, &*query, top.tweak_score(by_time), facets())?;
                (
                    top.into_iter().map(|((_, s), d)| (s, d)).collect(),
                    total,
                    counts,
                )
            }
            SearchOrder::PublishedAsc => {
                let tweak = |reader: &SegmentReader| {
                    let time = by_time(reader);
                    move |doc, score| {
                        let (published, score) = time(doc, score);
                        (std::cmp::Reverse(published), score)
                    }
                };
                let (top, total, counts) =
                    run(searcher, &*query, top.tweak_score(tweak), facets())?;
                (
                    top.into_iter().map(|((_, s), d)| (s, d)).collect(),
                    total,
                    counts,
                )
            }
            SearchOrder::RelevanceRecency { half_life } => {
                // Ranked by the logarithm of score × 0.5^(age / half life), which orders the
                // same but cannot underflow to a tie for old articles.
                let now = Timestamp::now().0;
                let half_life = half_life.as_nanos().max(1) as f64;
                let tweak = move |reader: &SegmentReader| {
                    let time = by_time(reader);
                    move |doc, score| {
                        let (published, score) = time(doc, score);
                        let age = now.saturating_sub(published).max(0) as f64;
                        f64::from(score.max(f32::MIN_POSITIVE)).ln()
                            - age / half_life * std::f64::consts::LN_2
                    }
                };
                let (top, total, counts) =
                    run(searcher, &*query, top.tweak_score(tweak), facets())?;
                (
                    top.into_iter()
                        .map(|(key, d)| (key.exp() as f32, d))
                        .collect(),
                    total,
                    counts,
                )
            }
        };
        // The last page within the depth limit has no next page.
        let more = top.len() > limit && offset + limit < MAX_SEARCH_DEPTH;

        let words = |field: Field| highlights.get(&field).cloned().unwrap_or_default();
        let mut body_marker = Highlighter::new(words(self.fields.body), schema::text_analyzer());
        let mut headline_marker =
            Highlighter::new(words(self.fields.headline), schema::text_analyzer());
        let mut ids = IdReader::new(searcher, self.fields.id);
        let mut hits = Vec::with_capacity(limit);
        for (score, address) in top.into_iter().take(limit) {
            let Some(id) = ids.id(address)? else {
                continue;
            };
            // The index may lag the store by one refresh; the store has the last word.
            let Some(article) = store.get_article(&id)? else {
                continue;
            };
            if !request.filter.matches(&article) {
                continue;
            }
            let paragraphs: Vec<&str> = article
                .derived
                .paragraphs
                .iter()
                .map(|range| range.slice(&article.input.body))
                .collect();
            let snippet = body_marker
                .snippet(&paragraphs, &request.highlight)
                .unwrap_or_else(|| lead_snippet(&article, request.highlight.snippet_chars));
            let headline = headline_marker.mark(&article.input.headline, &request.highlight);
            hits.push(Hit {
                article,
                score,
                snippet,
                headline,
            });
        }
        let facets = self.facets(store, &request.facets, counts)?;
        Ok(SearchResults {
            hits,
            total: total as u64,
            facets,
            next: more.then(|| PagePosition {
                snapshot: searcher.generation().generation_id(),
                offset: offset + limit,
            }),
            index_seq: view.seq,
        })
    }

    /// Adds the filter's conditions to a query.
    fn with_filter(&self, query: Box<dyn Query>, filter: &ArticleFilter) -> Box<dyn Query> {
        let fields = &self.fields;
        let any = |field: Field, values: &[String]| -> Box<dyn Query> {
            Box::new(BooleanQuery::new(
                values
                    .iter()
                    .map(|v| (Occur::Should, term_query(field, v)))
                    .collect(),
            ))
        };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, query)];
        if !filter.sources.is_empty() {
            clauses.push((Occur::Must, any(fields.source, &filter.sources)));
        }
        for id in &filter.entity_ids {
            clauses.push((Occur::Must, term_query(fields.entity, id)));
        }
        if !filter.kinds.is_empty() {
            let kinds: Vec<String> = filter.kinds.iter().map(|k| k.tag().to_string()).collect();
            clauses.push((Occur::Must, any(fields.kind, &kinds)));
        }
        if !filter.tags.is_empty() {
            clauses.push((Occur::Must, any(fields.tag, &filter.tags)));
        }
        if !filter.languages.is_empty() {
            clauses.push((Occur::Must, any(fields.language, &filter.languages)));
        }
        if filter.published_start.is_some() || filter.published_end.is_some() {
            use std::ops::Bound;
            let field = fields.published;
            let low = filter.published_start.map_or(Bound::Unbounded, |t| {
                Bound::Included(Term::from_field_i64(field, t.0))
            });
            let high = filter.published_end.map_or(Bound::Unbounded, |t| {
                Bound::Excluded(Term::from_field_i64(field, t.0))
            });
            clauses.push((Occur::Must, Box::new(RangeQuery::new(low, high))));
        }
        if clauses.len() == 1
            && let Some((_, only)) = clauses.pop()
        {
            return only;
        }
        Box::new(BooleanQuery::new(clauses))
    }

    /// Turns raw counts into the requested facets.
    fn facets(
        &self,
        store: &Store,
        requests: &[FacetRequest],
        counts: FacetCounts,
    ) -> Result<Vec<Facet>> {
        let mut out = Vec::with_capacity(requests.len());
        for request in requests {
            let plain = |values: &HashMap<String, u64>, limit: usize| -> Vec<Bucket> {
                let mut buckets: Vec<Bucket> = values
                    .iter()
                    .map(|(value, &count)| Bucket {
                        value: value.clone(),
                        label: value.clone(),
                        count,
                        kind: None,
                    })
                    .collect();
                buckets.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
                buckets.truncate(limit);
                buckets
            };
            let buckets = match request.field {
                FacetField::Source => plain(&counts.sources, request.limit),
                FacetField::Tag => plain(&counts.tags, request.limit),
                FacetField::Month => {
                    let mut buckets = plain(&counts.months, usize::MAX);
                    buckets.sort_by(|a, b| b.value.cmp(&a.value));
                    buckets
                }
                FacetField::Entity => {
                    let mut buckets = Vec::new();
                    for &(kind, code, count) in &counts.entities {
                        let Some(id) = store.entity_id_by_code(code)? else {
                            continue;
                        };
                        let label = store
                            .get_entity(&id)?
                            .map_or_else(|| id.clone(), |e| e.name);
                        buckets.push(Bucket {
                            value: id,
                            label,
                            count,
                            kind: Some(kind),
                        });
                    }
                    buckets.truncate(request.limit * EntityKind::ALL.len());
                    buckets
                }
            };
            out.push(Facet {
                field: request.field,
                buckets,
            });
        }
        Ok(out)
    }
}

/// Runs `query` with a top-docs collector, the count and the facet counts.
fn run<C>(
    searcher: &Searcher,
    query: &dyn Query,
    top: C,
    facets: FacetCollector,
) -> Result<(C::Fruit, usize, FacetCounts)>
where
    C: Collector,
{
    searcher
        .search(query, &(top, Count, facets))
        .map_err(|e| Error::internal("searching", e))
}

/// The segment-level score tweak that pairs each hit's publication time with its score.
fn by_time(reader: &SegmentReader) -> impl Fn(tantivy::DocId, Score) -> (i64, Score) + use<> {
    let column = reader
        .fast_fields()
        .i64("published")
        .ok()
        .map(|c| c.first_or_default_col(0));
    move |doc, score| (column.as_ref().map_or(0, |c| c.get_val(doc)), score)
}

fn term_query(field: Field, value: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, value),
        IndexRecordOption::Basic,
    ))
}

/// Reads article ids from the fast `id` column, one column per segment.
struct IdReader<'s> {
    searcher: &'s Searcher,
    field: Field,
    columns: HashMap<u32, Option<StrColumn>>,
}

impl<'s> IdReader<'s> {
    fn new(searcher: &'s Searcher, field: Field) -> Self {
        IdReader {
            searcher,
            field,
            columns: HashMap::new(),
        }
    }

    fn id(&mut self, address: DocAddress) -> Result<Option<String>> {
        let (searcher, field) = (self.searcher, self.field);
        let column = match self.columns.entry(address.segment_ord) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let reader = searcher.segment_reader(address.segment_ord);
                let column = reader
                    .fast_fields()
                    .str(searcher.schema().get_field_name(field))
                    .map_err(|e| Error::internal("reading article ids", e))?;
                entry.insert(column)
            }
        };
        let Some(column) = column else {
            return Ok(None);
        };
        let Some(ord) = column.term_ords(address.doc_id).next() else {
            return Ok(None);
        };
        let mut id = String::new();
        let found = column
            .ord_to_str(ord, &mut id)
            .map_err(|e| Error::internal("reading article ids", e))?;
        Ok(found.then_some(id))
    }
}

/// The start of the lead, for hits whose body matched nothing (filter-only searches).
fn lead_snippet(article: &Article, chars: usize) -> String {
    let lead = article.lead();
    let cut = lead
        .char_indices()
        .nth(chars)
        .map_or(lead.len(), |(at, _)| at);
    lead[..cut].to_string()
}

/// The analysed words of `text`, for tests and tools that need the index's view of text.
pub fn analyzed_words(text: &str) -> Vec<String> {
    analyze(&mut schema::text_analyzer(), text)
}
