//! Facet counts: how many matching articles have each entity, source, tag and month.
//!
//! A collector over fast (columnar) fields: per segment it counts term ordinals in a plain
//! vector, and only the ordinals that occurred are turned into strings at the end, so the
//! cost is one array increment per value of each matching article.

use std::collections::HashMap;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::StrColumn;
use tantivy::{DocId, Score, SegmentReader};

/// Which facets to count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FacetSelection {
    pub entities: bool,
    pub sources: bool,
    pub tags: bool,
    pub months: bool,
}

/// Counts per value, for each facet asked for.
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
            entities: column(self.selection.entities, ENTITY)?,
            sources: column(self.selection.sources, SOURCE)?,
            tags: column(self.selection.tags, TAG)?,
            months: column(self.selection.months, MONTH)?,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<FacetCounts>) -> tantivy::Result<FacetCounts> {
        let mut total = FacetCounts::default();
        for fruit in fruits {
            for (into, from) in [
                (&mut total.entities, fruit.entities),
                (&mut total.sources, fruit.sources),
                (&mut total.tags, fruit.tags),
                (&mut total.months, fruit.months),
            ] {
                for (value, count) in from {
                    *into.entry(value).or_default() += count;
                }
            }
        }
        Ok(total)
    }
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

    fn harvest(self) -> HashMap<String, u64> {
        let mut out = HashMap::new();
        let wanted = self
            .counts
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(ord, _)| ord as u64);
        // One sequential pass over the dictionary, not one lookup per value.
        let mut counts = self.counts.iter().filter(|c| **c > 0);
        let _ = self
            .column
            .dictionary()
            .sorted_ords_to_term_cb(wanted, |term| {
                if let (Ok(text), Some(&count)) = (std::str::from_utf8(term), counts.next()) {
                    out.insert(text.to_string(), count);
                }
                Ok(())
            });
        out
    }
}

pub struct FacetSegmentCollector {
    entities: Option<Counter>,
    sources: Option<Counter>,
    tags: Option<Counter>,
    months: Option<Counter>,
}

impl SegmentCollector for FacetSegmentCollector {
    type Fruit = FacetCounts;

    fn collect(&mut self, doc: DocId, _: Score) {
        for counter in [
            &mut self.entities,
            &mut self.sources,
            &mut self.tags,
            &mut self.months,
        ]
        .into_iter()
        .flatten()
        {
            counter.collect(doc);
        }
    }

    fn harvest(self) -> FacetCounts {
        let harvest = |counter: Option<Counter>| counter.map(Counter::harvest).unwrap_or_default();
        FacetCounts {
            entities: harvest(self.entities),
            sources: harvest(self.sources),
            tags: harvest(self.tags),
            months: harvest(self.months),
        }
    }
}
