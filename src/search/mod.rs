//! Full-text search: a tantivy index that follows the store's change log.
//!
//! The index is derived data. sled stays the source of truth; the index holds only what is
//! needed to find articles (tokenised text, filter terms, publication time) plus their ids,
//! and every hit is re-read from the store before it is returned, so a search never shows an
//! article the store does not have. A background follower applies change-log entries in
//! order and commits at most once per refresh interval, writing the last applied sequence
//! number into the commit payload. After a crash it resumes from that number; an index that
//! is missing or unreadable is rebuilt from the store.

mod follower;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use tokio::sync::watch;

use crate::error::{Error, Invalid, Result};
use crate::model::{Article, ArticleFilter, Span};
use crate::store::Store;
use schema::Fields;

pub use follower::spawn_follower;

/// Memory tantivy's writer may use before it flushes a segment.
const WRITER_MEMORY: usize = 64 * 1024 * 1024;
/// The deepest result a search may page to; beyond it, narrow the query.
pub const MAX_SEARCH_DEPTH: usize = 10_000;
/// Snippet length in characters.
const SNIPPET_CHARS: usize = 240;

/// A search request, already validated.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: String,
    pub filter: ArticleFilter,
    pub offset: usize,
    pub limit: usize,
}

/// One hit.
#[derive(Debug, Clone)]
pub struct Hit {
    pub article: Article,
    pub score: f32,
    pub snippet: String,
    /// Matched words in `snippet`, as code-point spans.
    pub highlights: Vec<Span>,
}

#[derive(Debug, Clone)]
pub struct SearchResults {
    pub hits: Vec<Hit>,
    pub total: u64,
    /// Whether hits beyond this page exist.
    pub more: bool,
}

pub struct SearchIndex {
    dir: PathBuf,
    index: Index,
    reader: IndexReader,
    fields: Fields,
    writer: Mutex<IndexWriter>,
    /// The change-log sequence the searchable index reflects.
    applied: AtomicU64,
    applied_tx: watch::Sender<u64>,
}

impl SearchIndex {
    /// Opens the index in `dir`, rebuilding it from `store` when it is missing or unreadable.
    pub fn open(dir: &Path, store: &Store) -> Result<SearchIndex> {
        let fields = Fields::new();
        let opened = std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal("creating the search index folder", e))
            .and_then(|()| Self::open_existing(dir, &fields));
        let (index, applied, rebuild) = match opened {
            Ok(Some((index, applied))) => (index, applied, false),
            Ok(None) => {
                tracing::info!(dir = %dir.display(), "no search index yet; building it from the store");
                (Self::create(dir, &fields)?, 0, true)
            }
            Err(err) => {
                tracing::warn!(dir = %dir.display(), error = %err, "the search index is unreadable; rebuilding it from the store");
                (Self::create(dir, &fields)?, 0, true)
            }
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| Error::internal("opening the search index reader", e))?;
        let writer = index
            .writer(WRITER_MEMORY)
            .map_err(|e| Error::internal("opening the search index writer", e))?;
        let (applied_tx, _) = watch::channel(applied);
        let search = SearchIndex {
            dir: dir.to_path_buf(),
            index,
            reader,
            fields,
            writer: Mutex::new(writer),
            applied: AtomicU64::new(applied),
            applied_tx,
        };
        if rebuild {
            search.rebuild(store)?;
        }
        Ok(search)
    }

    /// Opens an existing index and reads its applied sequence; `None` when there is none.
    fn open_existing(dir: &Path, fields: &Fields) -> Result<Option<(Index, u64)>> {
        if !dir.join("meta.json").exists() {
            return Ok(None);
        }
        let index = Index::open_in_dir(dir).map_err(|e| Error::internal("opening the index", e))?;
        if index.schema() != fields.schema {
            return Err(Error::Internal(
                "the index was built with another schema".into(),
            ));
        }
        schema::register_tokenizers(&index);
        let metas = index
            .load_metas()
            .map_err(|e| Error::internal("reading the index metadata", e))?;
        let applied = match metas.payload.as_deref() {
            None => 0,
            Some(payload) => payload.parse().map_err(|_| {
                Error::Internal(format!(
                    "the index commit payload {payload:?} is not a sequence"
                ))
            })?,
        };
        Ok(Some((index, applied)))
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

    /// Follows the applied sequence number.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    /// Re-indexes every article of the store, logging progress, and commits.
    pub fn rebuild(&self, store: &Store) -> Result<u64> {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        // Everything up to `seq` is in the snapshot below; later changes are replayed by the
        // follower (applying one twice is harmless: documents are replaced by id).
        let seq = store.last_seq();
        writer
            .delete_all_documents()
            .map_err(|e| Error::internal("clearing the search index", e))?;
        let started = std::time::Instant::now();
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
        self.commit(&mut writer, seq)?;
        tracing::info!(
            articles = count,
            seconds = started.elapsed().as_secs_f64(),
            "search index rebuilt"
        );
        Ok(count)
    }

    /// Commits with `seq` as the payload and makes the commit searchable.
    fn commit(&self, writer: &mut IndexWriter, seq: u64) -> Result<()> {
        let mut prepared = writer
            .prepare_commit()
            .map_err(|e| Error::internal("preparing a search index commit", e))?;
        prepared.set_payload(&seq.to_string());
        prepared
            .commit()
            .map_err(|e| Error::internal("committing the search index", e))?;
        self.reader
            .reload()
            .map_err(|e| Error::internal("reloading the search index", e))?;
        self.applied.store(seq, Ordering::Release);
        self.applied_tx.send_replace(seq);
        Ok(())
    }

    /// Applies change-log entries after the applied sequence, up to `limit` of them, and
    /// commits. Returns how many were applied.
    pub fn catch_up(&self, store: &Store, limit: usize) -> Result<usize> {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let from = self.applied();
        let durable = store.durable_seq();
        if durable <= from {
            return Ok(0);
        }
        let mut changes = store.changes_after(from, limit)?;
        changes.retain(|change| change.seq <= durable);
        let Some(last) = changes.last().map(|c| c.seq) else {
            return Ok(0);
        };
        for change in &changes {
            writer.delete_term(Term::from_field_text(self.fields.id, &change.article_id));
            // Index the article as it is now: a later change to it only re-indexes the same
            // content, and a deleted one stays deleted.
            if let Some(article) = store.get_article(&change.article_id)? {
                writer
                    .add_document(self.fields.document(&article))
                    .map_err(|e| Error::internal("indexing an article", e))?;
            }
        }
        self.commit(&mut writer, last)?;
        Ok(changes.len())
    }

    /// Runs a search. Hits are re-read from `store` and re-checked against the filter.
    pub fn search(&self, store: &Store, request: &SearchRequest) -> Result<SearchResults> {
        let searcher = self.reader.searcher();
        let mut parser = QueryParser::for_index(
            &self.index,
            vec![
                self.fields.headline,
                self.fields.lead,
                self.fields.body,
                self.fields.captions,
            ],
        );
        parser.set_field_boost(self.fields.headline, 3.0);
        parser.set_field_boost(self.fields.lead, 1.5);
        parser.set_conjunction_by_default();
        let text_query = parser.parse_query(&request.query).map_err(|e| {
            Error::invalid(
                "query",
                Invalid::Query,
                format!("cannot parse the query: {e}"),
            )
        })?;
        let query = self.with_filter(text_query.box_clone(), &request.filter);

        let limit = request.limit.max(1);
        let (top, total) = searcher
            .search(
                &*query,
                &(
                    TopDocs::with_limit(limit + 1).and_offset(request.offset),
                    Count,
                ),
            )
            .map_err(|e| Error::internal("searching", e))?;
        let more = top.len() > limit;
        let mut body_snippets = SnippetGenerator::create(&searcher, &*text_query, self.fields.body)
            .map_err(|e| Error::internal("preparing snippets", e))?;
        body_snippets.set_max_num_chars(SNIPPET_CHARS);
        let mut headline_snippets =
            SnippetGenerator::create(&searcher, &*text_query, self.fields.headline)
                .map_err(|e| Error::internal("preparing snippets", e))?;
        headline_snippets.set_max_num_chars(SNIPPET_CHARS);

        let mut hits = Vec::with_capacity(limit);
        for (score, address) in top.into_iter().take(limit) {
            let doc: TantivyDocument = searcher
                .doc(address)
                .map_err(|e| Error::internal("reading a search hit", e))?;
            let Some(id) = doc.get_first(self.fields.id).and_then(|v| v.as_str()) else {
                continue;
            };
            // The index may lag the store by one refresh; the store has the last word.
            let Some(article) = store.get_article(id)? else {
                continue;
            };
            if !request.filter.matches(&article) {
                continue;
            }
            // Snippets come from the text paragraphs, so no caption credit shows up in them.
            let paragraphs: Vec<&str> = article
                .derived
                .paragraphs
                .iter()
                .map(|range| range.slice(&article.input.body))
                .collect();
            let mut snippet = body_snippets.snippet(&paragraphs.join("\n\n"));
            if snippet.highlighted().is_empty() {
                let headline = headline_snippets.snippet(&article.input.headline);
                if !headline.highlighted().is_empty() || snippet.fragment().is_empty() {
                    snippet = headline;
                }
            }
            let fragment = snippet.fragment().to_string();
            let highlights = snippet
                .highlighted()
                .iter()
                .map(|range| Span {
                    start: char_offset(&fragment, range.start),
                    end: char_offset(&fragment, range.end),
                })
                .collect();
            hits.push(Hit {
                article,
                score,
                snippet: fragment,
                highlights,
            });
        }
        Ok(SearchResults {
            hits,
            total: total as u64,
            more,
        })
    }

    /// Adds the filter's conditions to a text query.
    fn with_filter(&self, text: Box<dyn Query>, filter: &ArticleFilter) -> Box<dyn Query> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, text)];
        if !filter.sources.is_empty() {
            let any: Vec<(Occur, Box<dyn Query>)> = filter
                .sources
                .iter()
                .map(|s| {
                    let term = Term::from_field_text(self.fields.source, s);
                    (
                        Occur::Should,
                        Box::new(TermQuery::new(term, IndexRecordOption::Basic)) as Box<dyn Query>,
                    )
                })
                .collect();
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(any))));
        }
        for id in &filter.entity_ids {
            let term = Term::from_field_text(self.fields.entity, id);
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
            ));
        }
        if filter.published_start.is_some() || filter.published_end.is_some() {
            use std::ops::Bound;
            let field = self.fields.published;
            let low = filter.published_start.map_or(Bound::Unbounded, |t| {
                Bound::Included(Term::from_field_i64(field, t.0))
            });
            let high = filter.published_end.map_or(Bound::Unbounded, |t| {
                Bound::Excluded(Term::from_field_i64(field, t.0))
            });
            clauses.push((Occur::Must, Box::new(RangeQuery::new(low, high))));
        }
        if clauses.len() == 1 {
            return clauses
                .pop()
                .map_or_else(|| unreachable_query(), |(_, q)| q);
        }
        Box::new(BooleanQuery::new(clauses))
    }
}

/// A query that matches nothing; only reachable if the clause list were empty.
fn unreachable_query() -> Box<dyn Query> {
    Box::new(BooleanQuery::new(Vec::new()))
}

/// Code points before byte offset `byte` of `text`.
fn char_offset(text: &str, byte: usize) -> u32 {
    let byte = byte.min(text.len());
    u32::try_from(text[..byte].chars().count()).unwrap_or(u32::MAX)
}
