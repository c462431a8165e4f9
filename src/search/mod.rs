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
//!
//! [`SearchIndex`] has two sides, each in a file of its own: `writer.rs` opens or builds
//! the index and applies the change log to it (commit, publish, expunge, rebuild, the
//! merges left at shutdown); `searcher.rs` answers from it (searches, saved queries,
//! paging snapshots). This file holds the struct, the request and result types, and how
//! far the index has got.

mod compile;
mod facets;
mod follower;
mod highlight;
mod merges;
pub mod query;
mod schema;
mod searcher;
mod stemmer;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use tantivy::{Index, IndexReader, IndexWriter};
use tokio::sync::{Notify, watch};

use crate::error::{Error, Result};
use crate::model::{Article, ArticleFilter, EntityKind};
use compile::analyze;
use schema::Fields;
use searcher::{Snapshots, View};

pub use follower::spawn_follower;

/// The deepest result a search may page to; beyond it, narrow the query.
pub const MAX_SEARCH_DEPTH: usize = 10_000;
/// How long a search's snapshot is kept for its next pages.
pub const SNAPSHOT_TTL: Duration = Duration::from_secs(600);

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

/// The search index: its writer (`writer.rs`), the searchable view it publishes, and the
/// snapshots searches page through (`searcher.rs`).
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
}

/// The analysed words of `text`, for tests and tools that need the index's view of text.
pub fn analyzed_words(text: &str) -> Vec<String> {
    analyze(&mut schema::text_analyzer(), text)
}
