//! Which index segments tantivy merges: its log merge policy, with every merge bounded.
//!
//! Each refresh commits a small segment, and merging them keeps searches from visiting
//! hundreds. But a merge reads every segment it merges through the memory map, and those
//! pages count in the server's resident memory until the merged segments are dropped.
//! Unbounded, the log policy's top level is the whole index: at 100,000 articles the
//! CreateArticle and mixed workloads of the load benchmark set off a merge of all 103,451
//! documents, and the server held 150 MiB of mapped index files beside its 332 MiB of
//! allocations while serving the mix (docs/design/segment-merges.md). So each merge reads at most
//! [`MAX_MERGE_DOCS`] documents, or 1/[`INDEX_SHARE`] of the index's documents when that
//! is more.
//!
//! A fixed bound alone left one segment per 12,500 to 25,000 articles: 40 to 80 at
//! 1,000,000 articles, where a search took 47.8 ms at the median. Letting the bound grow
//! with the index keeps the large segments at about [`INDEX_SHARE`] to twice that many at
//! any size (25 segments in all at 1,000,000 articles, search 31.9 ms), while what one merge
//! maps stays a fixed share of what the server already maps to search.

use std::collections::HashMap;

use tantivy::SegmentMeta;
use tantivy::index::SegmentId;
use tantivy::indexer::{LogMergePolicy, MergeCandidate, MergePolicy};

/// The most documents one merge reads while the index holds under [`INDEX_SHARE`] times as
/// many. About 1 KiB of index per article, so about 25 MiB of mapped files per merge.
pub const MAX_MERGE_DOCS: u32 = 25_000;

/// In a larger index, one merge reads at most this share of its documents (an eighth).
pub const INDEX_SHARE: u32 = 8;

/// Segments smaller than this all count as one level of the log policy. Tantivy's default
/// (10,000) puts every refresh segment in the level of the 10,000 to 16,800-document ones,
/// so eight small segments would merge with them, rewriting large segments for a few new
/// documents.
const MIN_LEVEL_DOCS: u32 = 1_000;

/// The log policy's candidates, each split into merges of at most
/// `max(min_bound, documents / INDEX_SHARE)` documents.
#[derive(Debug)]
pub struct BoundedMerges {
    min_bound: u32,
}

impl BoundedMerges {
    pub fn new(min_bound: u32) -> BoundedMerges {
        BoundedMerges { min_bound }
    }

    /// The most documents one merge may read among `segments`: tantivy passes the segments
    /// no merge is reading, so while one runs the bound is a little lower, never higher.
    fn bound(&self, segments: &[SegmentMeta]) -> u32 {
        let docs: u64 = segments.iter().map(|s| u64::from(s.max_doc())).sum();
        let share = u32::try_from(docs / u64::from(INDEX_SHARE)).unwrap_or(u32::MAX);
        self.min_bound.max(share)
    }
}

impl Default for BoundedMerges {
    fn default() -> BoundedMerges {
        BoundedMerges::new(MAX_MERGE_DOCS)
    }
}

impl MergePolicy for BoundedMerges {
    fn compute_merge_candidates(&self, segments: &[SegmentMeta]) -> Vec<MergeCandidate> {
        let max_docs = self.bound(segments);
        let mut log = LogMergePolicy::default();
        log.set_min_layer_size(MIN_LEVEL_DOCS);
        // A segment over half the bound could only merge with smaller ones, never with its
        // peers: it is finished until the index grows.
        log.set_max_docs_before_merge(max_docs as usize / 2);
        let docs: HashMap<SegmentId, u32> = segments
            .iter()
            .map(|segment| (segment.id(), segment.max_doc()))
            .collect();
        log.compute_merge_candidates(segments)
            .into_iter()
            .flat_map(|candidate| split(candidate, &docs, max_docs))
            .collect()
    }
}

/// Splits `candidate` into groups of at least two segments and at most `max_docs`
/// documents, smallest segments first; a segment left alone is not merged.
fn split(
    candidate: MergeCandidate,
    docs: &HashMap<SegmentId, u32>,
    max_docs: u32,
) -> Vec<MergeCandidate> {
    let size = |id: &SegmentId| u64::from(docs.get(id).copied().unwrap_or(u32::MAX));
    let mut ids = candidate.0;
    ids.sort_by_key(size);
    let mut merges = Vec::new();
    let mut group = Vec::new();
    let mut total = 0u64;
    for id in ids {
        let n = size(&id);
        if total + n > u64::from(max_docs) {
            if group.len() >= 2 {
                merges.push(MergeCandidate(std::mem::take(&mut group)));
            }
            group.clear();
            total = 0;
        }
        if n <= u64::from(max_docs) {
            group.push(id);
            total += n;
        }
    }
    if group.len() >= 2 {
        merges.push(MergeCandidate(group));
    }
    merges
}

#[cfg(test)]
mod tests {
    use tantivy::Index;
    use tantivy::schema::{STRING, Schema};

    use super::*;

    fn segments(sizes: &[u32]) -> Vec<SegmentMeta> {
        let mut schema = Schema::builder();
        schema.add_text_field("id", STRING);
        let index = Index::create_in_ram(schema.build());
        sizes
            .iter()
            .map(|&n| index.new_segment_meta(SegmentId::generate_random(), n))
            .collect()
    }

    fn merged_sizes(policy: &BoundedMerges, segments: &[SegmentMeta]) -> Vec<Vec<u32>> {
        let docs: HashMap<SegmentId, u32> =
            segments.iter().map(|s| (s.id(), s.max_doc())).collect();
        let mut merges: Vec<Vec<u32>> = policy
            .compute_merge_candidates(segments)
            .into_iter()
            .map(|c| {
                let mut sizes: Vec<u32> = c.0.iter().map(|id| docs[id]).collect();
                sizes.sort_unstable();
                sizes
            })
            .collect();
        merges.sort();
        merges
    }

    #[test]
    fn small_segments_merge_as_the_log_policy_would() {
        let policy = BoundedMerges::new(25_000);
        let refreshes = segments(&[100; 8]);
        assert_eq!(merged_sizes(&policy, &refreshes), vec![vec![100; 8]]);
        // Seven are not enough for a level.
        assert!(merged_sizes(&policy, &refreshes[..7]).is_empty());
    }

    #[test]
    fn no_merge_reads_more_than_the_bound() {
        let policy = BoundedMerges::new(25_000);
        // Eight segments of 9,000: the log policy would merge all 72,000 documents.
        let merges = merged_sizes(&policy, &segments(&[9_000; 8]));
        assert_eq!(merges, vec![vec![9_000, 9_000]; 4]);
        for merge in &merges {
            assert!(merge.iter().sum::<u32>() <= 25_000);
        }
    }

    #[test]
    fn finished_segments_stay_as_they_are() {
        let policy = BoundedMerges::new(25_000);
        // Over half the bound: no two of them fit in one merge.
        assert!(merged_sizes(&policy, &segments(&[13_000; 10])).is_empty());
        // Refresh segments beside them merge among themselves, not into the large ones.
        let mut sizes = vec![13_000; 10];
        sizes.extend([50; 8]);
        assert_eq!(merged_sizes(&policy, &segments(&sizes)), vec![vec![50; 8]]);
    }

    #[test]
    fn the_bound_grows_with_the_index() {
        let policy = BoundedMerges::new(25_000);
        // 600,000 documents in 24 finished segments of 25,000: the bound is now 75,000,
        // so they are no longer finished and merge three at a time.
        let merges = merged_sizes(&policy, &segments(&[25_000; 24]));
        assert_eq!(merges, vec![vec![25_000; 3]; 8]);
        // Half of them: 300,000 documents, a bound of 37,500; none fits with another.
        assert!(merged_sizes(&policy, &segments(&[25_000; 12])).is_empty());
    }

    #[test]
    fn a_segment_too_large_alone_is_left_out() {
        let docs: HashMap<SegmentId, u32> = segments(&[30_000, 10, 10])
            .iter()
            .map(|s| (s.id(), s.max_doc()))
            .collect();
        let candidate = MergeCandidate(docs.keys().copied().collect());
        let merges = split(candidate, &docs, 25_000);
        assert_eq!(merges.len(), 1);
        assert!(merges[0].0.iter().all(|id| docs[id] == 10));
    }
}
