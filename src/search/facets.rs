//! Facet counts: how many matching articles have each entity, source, tag and month.
//!
//! A collector over fast (columnar) fields, with exact counts:
//!
//! - entities are counted in one array indexed by the entity's number (dense from 1), so a
//!   matching article costs one increment per entity and choosing the leading entities of
//!   each kind is one pass over the array; only those are then looked up in the store;
//! - sources, tags and months are counted per segment by term ordinal, and each segment's
//!   values with a count are named in one sequential pass over its dictionary. Each
//!   segment's proposals are then counted exactly in every segment.

use std::collections::{BTreeSet, HashMap};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DocId, Score, SegmentReader};

use super::schema::split_entity_value;
use crate::model::EntityKind;

/// Which facets to count, and how many values of each to return.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FacetSelection {
    /// Values per entity kind.
    pub entities: Option<usize>,
    pub sources: Option<usize>,
    pub tags: Option<usize>,
    /// Months are few; all of them are returned.
    pub months: bool,
}

/// Exact counts of the leading values of each facet asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FacetCounts {
    /// The leading entities of each kind: (kind, entity number, count).
    pub entities: Vec<(EntityKind, u64, u64)>,
    pub sources: HashMap<String, u64>,
    pub tags: HashMap<String, u64>,
    pub months: HashMap<String, u64>,
}

pub struct FacetCollector {
    pub selection: FacetSelection,
    /// One more than the highest entity number: the size of the entity count array.
    pub entity_codes: u64,
}

/// The fast fields facets read.
const ENTITY: &str = "entity_code";
const SOURCE: &str = "source";
const TAG: &str = "tag";
const MONTH: &str = "month";

/// How many values a segment proposes for a facet returning `limit` of them.
fn proposals(limit: usize) -> usize {
    limit * 4 + 16
}

/// Ordinal counts of one column in one segment.
pub struct Counter {
    column: StrColumn,
    counts: Vec<u64>,
}

impl Counter {
    fn new(column: StrColumn) -> Counter {
        let counts = vec![0; column.num_terms()];
        Counter { column, counts }
    }

    fn collect(&mut self, doc: DocId) {
        for ord in self.column.term_ords(doc) {
            if let Some(count) = self.counts.get_mut(ord as usize) {
                *count += 1;
            }
        }
    }

    /// The strings of `ords` (ascending), in one sequential pass over the dictionary.
    fn strings(&self, ords: &[u64]) -> Vec<String> {
        let mut out = Vec::with_capacity(ords.len());
        let _ = self
            .column
            .dictionary()
            .sorted_ords_to_term_cb(ords, |term| {
                out.push(String::from_utf8_lossy(term).into_owned());
            });
        out
    }

    /// The `n` ordinals in `range` with the highest counts, ascending.
    fn leading(&self, range: std::ops::Range<usize>, n: usize) -> Vec<u64> {
        let mut ranked: Vec<(u64, usize)> = self.counts[range.clone()]
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(i, &count)| (count, range.start + i))
            .collect();
        if ranked.len() > n {
            ranked.select_nth_unstable_by(n, |a, b| b.cmp(a));
            ranked.truncate(n);
        }
        let mut ords: Vec<u64> = ranked.into_iter().map(|(_, ord)| ord as u64).collect();
        ords.sort_unstable();
        ords
    }

    /// The values this segment proposes: its `n` leading ones.
    fn propose(&self, n: usize) -> Vec<String> {
        self.strings(&self.leading(0..self.counts.len(), n))
    }

    /// Every value with a count (for small facets).
    fn all(&self) -> HashMap<String, u64> {
        let ords: Vec<u64> = (0..self.counts.len() as u64)
            .filter(|&ord| self.counts[ord as usize] > 0)
            .collect();
        let strings = self.strings(&ords);
        strings
            .into_iter()
            .zip(&ords)
            .map(|(value, &ord)| (value, self.counts[ord as usize]))
            .collect()
    }

    /// This segment's count of `value`.
    fn count_of(&self, value: &str) -> u64 {
        match self.column.dictionary().term_ord(value) {
            Ok(Some(ord)) => self.counts.get(ord as usize).copied().unwrap_or(0),
            _ => 0,
        }
    }
}

/// Exact counts for the values any segment proposes, then the leading `limit`.
fn merge(counters: &[&Counter], limit: usize) -> HashMap<String, u64> {
    let candidates: BTreeSet<String> = counters
        .iter()
        .flat_map(|c| c.propose(proposals(limit)))
        .collect();
    let mut values: Vec<(u64, String)> = candidates
        .into_iter()
        .map(|value| (counters.iter().map(|c| c.count_of(&value)).sum(), value))
        .collect();
    values.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    values
        .into_iter()
        .take(limit)
        .map(|(count, value)| (value, count))
        .collect()
}

/// Entity counts of one segment, indexed by entity number, with each number's kind.
pub struct EntityCounter {
    column: Column<u64>,
    counts: Vec<u32>,
    kinds: Vec<u8>,
}

impl EntityCounter {
    fn collect(&mut self, doc: DocId) {
        for value in self.column.values_for_doc(doc) {
            let (kind, code) = split_entity_value(value);
            let Ok(code) = usize::try_from(code) else {
                continue;
            };
            if code >= self.counts.len() {
                // An entity newer than the count array (created during this search).
                self.counts.resize(code + 1, 0);
                self.kinds.resize(code + 1, 0);
            }
            self.counts[code] += 1;
            self.kinds[code] = kind.map_or(0, |k| k as u8 + 1);
        }
    }
}

/// The leading `limit` entities of each kind over all segments.
fn merge_entities(segments: &[&EntityCounter], limit: usize) -> Vec<(EntityKind, u64, u64)> {
    let size = segments.iter().map(|s| s.counts.len()).max().unwrap_or(0);
    let mut counts = vec![0u64; size];
    let mut kinds = vec![0u8; size];
    for segment in segments {
        for (code, &count) in segment.counts.iter().enumerate() {
            if count > 0 {
                counts[code] += u64::from(count);
                kinds[code] = segment.kinds[code];
            }
        }
    }
    let mut out = Vec::new();
    for (i, kind) in EntityKind::ALL.into_iter().enumerate() {
        let mut ranked: Vec<(u64, usize)> = counts
            .iter()
            .enumerate()
            .filter(|(code, count)| **count > 0 && usize::from(kinds[*code]) == i + 1)
            .map(|(code, &count)| (count, code))
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        out.extend(
            ranked
                .into_iter()
                .take(limit)
                .map(|(count, code)| (kind, code as u64, count)),
        );
    }
    out
}

impl Collector for FacetCollector {
    type Fruit = FacetCounts;
    type Child = FacetSegmentCollector;

    fn for_segment(&self, _: u32, reader: &SegmentReader) -> tantivy::Result<Self::Child> {
        let column = |wanted: bool, name: &str| -> tantivy::Result<Option<Counter>> {
            if !wanted {
                return Ok(None);
            }
            Ok(reader.fast_fields().str(name)?.map(Counter::new))
        };
        let entities = match self.selection.entities {
            Some(_) => {
                let size = usize::try_from(self.entity_codes).unwrap_or(0);
                Some(EntityCounter {
                    column: reader.fast_fields().u64(ENTITY)?,
                    counts: vec![0; size],
                    kinds: vec![0; size],
                })
            }
            None => None,
        };
        Ok(FacetSegmentCollector {
            counters: SegmentCounters {
                entities,
                sources: column(self.selection.sources.is_some(), SOURCE)?,
                tags: column(self.selection.tags.is_some(), TAG)?,
                months: column(self.selection.months, MONTH)?,
            },
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, segments: Vec<SegmentCounters>) -> tantivy::Result<FacetCounts> {
        let pick = |get: fn(&SegmentCounters) -> Option<&Counter>| -> Vec<&Counter> {
            segments.iter().filter_map(get).collect()
        };
        let mut counts = FacetCounts::default();
        if let Some(limit) = self.selection.entities {
            let entities: Vec<&EntityCounter> = segments
                .iter()
                .filter_map(|s| s.entities.as_ref())
                .collect();
            counts.entities = merge_entities(&entities, limit);
        }
        if let Some(limit) = self.selection.sources {
            counts.sources = merge(&pick(|s| s.sources.as_ref()), limit);
        }
        if let Some(limit) = self.selection.tags {
            counts.tags = merge(&pick(|s| s.tags.as_ref()), limit);
        }
        if self.selection.months {
            for counter in pick(|s| s.months.as_ref()) {
                for (month, count) in counter.all() {
                    *counts.months.entry(month).or_default() += count;
                }
            }
        }
        Ok(counts)
    }
}

/// One segment's counters, handed to the merge.
#[derive(Default)]
pub struct SegmentCounters {
    entities: Option<EntityCounter>,
    sources: Option<Counter>,
    tags: Option<Counter>,
    months: Option<Counter>,
}

pub struct FacetSegmentCollector {
    counters: SegmentCounters,
}

impl SegmentCollector for FacetSegmentCollector {
    type Fruit = SegmentCounters;

    fn collect(&mut self, doc: DocId, _: Score) {
        let counters = &mut self.counters;
        if let Some(entities) = &mut counters.entities {
            entities.collect(doc);
        }
        for counter in [
            &mut counters.sources,
            &mut counters.tags,
            &mut counters.months,
        ]
        .into_iter()
        .flatten()
        {
            counter.collect(doc);
        }
    }

    fn harvest(self) -> SegmentCounters {
        self.counters
    }
}
