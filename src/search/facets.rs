//! Facet counts: how many matching articles have each entity, source, tag and month.
//!
//! A collector over fast (columnar) fields. Per segment it counts term ordinals in a plain
//! vector (one increment per value of each matching article). Turning ordinals into strings
//! is what costs, so it is done in two phases: each segment proposes its leading values
//! (per entity kind for entities), and the proposals are then counted exactly in every
//! segment by looking their ordinals up. The counts returned are exact; a value could only
//! be missed if it led overall while leading in no single segment, which the generous
//! proposal size makes practically impossible.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::StrColumn;
use tantivy::{DocId, Score, SegmentReader};

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
    /// Keyed by "kind-tag:entity-id".
    pub entities: HashMap<String, u64>,
    pub sources: HashMap<String, u64>,
    pub tags: HashMap<String, u64>,
    pub months: HashMap<String, u64>,
}

pub struct FacetCollector {
    pub selection: FacetSelection,
}

/// The fast fields facets read.
const ENTITY: &str = "entity_facet";
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
            .sorted_ords_to_term_cb(ords.iter().copied(), |term| {
                out.push(String::from_utf8_lossy(term).into_owned());
                Ok(())
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

    /// The ordinal range of the values starting with `prefix`.
    fn prefix_range(&self, prefix: &str) -> std::ops::Range<usize> {
        let mut end = prefix.to_string();
        end.push(char::MAX);
        let bounds = self.column.dictionary().term_bounds_to_ord(
            Bound::Included(prefix.as_bytes()),
            Bound::Excluded(end.as_bytes()),
        );
        let Ok((low, high)) = bounds else {
            return 0..0;
        };
        let low = match low {
            Bound::Included(o) => o as usize,
            Bound::Excluded(o) => o as usize + 1,
            Bound::Unbounded => 0,
        };
        let high = match high {
            Bound::Included(o) => o as usize + 1,
            Bound::Excluded(o) => o as usize,
            Bound::Unbounded => self.counts.len(),
        };
        low.min(self.counts.len())..high.min(self.counts.len()).max(low.min(self.counts.len()))
    }

    /// The values this segment proposes: its `n` leading ones, per kind for entities.
    fn propose(&self, n: usize, by_kind: bool) -> Vec<String> {
        if !by_kind {
            return self.strings(&self.leading(0..self.counts.len(), n));
        }
        let mut out = Vec::new();
        for kind in EntityKind::ALL {
            let range = self.prefix_range(&format!("{}:", kind.tag()));
            out.extend(self.strings(&self.leading(range, n)));
        }
        out
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

/// Exact counts for the values any segment proposes, then the leading `limit` (per kind for
/// entities).
fn merge(counters: &[&Counter], limit: usize, by_kind: bool) -> HashMap<String, u64> {
    let candidates: BTreeSet<String> = counters
        .iter()
        .flat_map(|c| c.propose(proposals(limit), by_kind))
        .collect();
    let mut groups: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for value in candidates {
        let count: u64 = counters.iter().map(|c| c.count_of(&value)).sum();
        let group = if by_kind {
            value.split(':').next().unwrap_or("").to_string()
        } else {
            String::new()
        };
        groups.entry(group).or_default().push((count, value));
    }
    let mut out = HashMap::new();
    for (_, mut values) in groups {
        values.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        out.extend(
            values
                .into_iter()
                .take(limit)
                .map(|(count, value)| (value, count)),
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
        Ok(FacetSegmentCollector {
            counters: SegmentCounters {
                entities: column(self.selection.entities.is_some(), ENTITY)?,
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
            counts.entities = merge(&pick(|s| s.entities.as_ref()), limit, true);
        }
        if let Some(limit) = self.selection.sources {
            counts.sources = merge(&pick(|s| s.sources.as_ref()), limit, false);
        }
        if let Some(limit) = self.selection.tags {
            counts.tags = merge(&pick(|s| s.tags.as_ref()), limit, false);
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
    entities: Option<Counter>,
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
        for counter in [
            &mut counters.entities,
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
