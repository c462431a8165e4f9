//! The searcher side of the search index: searches (query, filter, order, paging from a
//! snapshot, highlighting, facets), saved queries tested against a few articles
//! (`matching`), and the snapshots that keep one search's pages on one view of the index.

use std::collections::{BTreeMap, HashMap};
use std::sync::PoisonError;
use std::time::Instant;

use tantivy::collector::{Collector, Count, TopDocs};
use tantivy::columnar::StrColumn;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocAddress, Score, Searcher, SegmentReader, Term};

use super::compile::Compiler;
use super::facets::{FacetCollector, FacetCounts, FacetSelection};
use super::highlight::Highlighter;
use super::{
    Bucket, Facet, FacetField, FacetRequest, Hit, MAX_SEARCH_DEPTH, PagePosition, SNAPSHOT_TTL,
    SearchIndex, SearchOrder, SearchRequest, SearchResults, query, schema,
};
use crate::error::{Error, Invalid, Result};
use crate::model::{Article, ArticleFilter, EntityKind, Timestamp};
use crate::store::Store;

/// Most snapshots kept at once; the least recently used goes first.
const MAX_SNAPSHOTS: usize = 64;

/// A searcher and the change-log sequence it reflects.
#[derive(Clone)]
pub(super) struct View {
    pub(super) searcher: Searcher,
    pub(super) seq: u64,
}

/// Snapshots kept for paging, by generation id.
#[derive(Default)]
pub(super) struct Snapshots {
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

impl SearchIndex {
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
