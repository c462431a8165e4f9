//! Word clusters learnt from unlabelled news text.
//!
//! A name the annotated corpus never shows ("Wolverhampton") still gets tagged right if the
//! tagger knows it behaves like names it has seen. The clusters come from how words are
//! used: each word is described by the words around it (two on each side, position by
//! position), weighted by positive pointwise mutual information (with the context
//! distribution smoothed, as Levy, Goldberg and Dagan recommend), squeezed into a short dense
//! vector by a fixed random projection, and grouped by spherical k-means. The fine clusters
//! are then grouped again into middle and coarse ones, giving each word a path of three
//! cluster numbers, in the spirit of Brown clusters' bit-string prefixes.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::extract::ner::features::Clusters;

/// How to learn the clusters.
#[derive(Debug, Clone)]
pub struct Params {
    /// Words seen fewer times get no cluster.
    pub min_count: u64,
    /// At most this many words (the most frequent) are clustered.
    pub max_words: usize,
    /// The most frequent words serve as contexts.
    pub contexts: usize,
    /// Length of the word vectors.
    pub dims: usize,
    /// Cluster counts, coarse to fine.
    pub levels: [usize; 3],
    pub iterations: usize,
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            min_count: 4,
            max_words: 50_000,
            contexts: 2_500,
            dims: 160,
            levels: [64, 256, 1024],
            iterations: 12,
            seed: 2003,
        }
    }
}

/// SplitMix64: a deterministic stream of pseudo-random numbers from a seed.
fn splitmix(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Learns clusters for the words of `sentences`; `progress` hears what is happening.
pub fn learn(sentences: &[Vec<String>], params: &Params, progress: &dyn Fn(&str)) -> Clusters {
    let (vocabulary, vectors) = word_vectors(sentences, params, progress);
    hierarchy(&vocabulary, vectors, params, progress)
}

/// Clusters words given their vectors (pretrained embeddings, in GloVe's text format: a word
/// and its numbers per line, most frequent words first); at most `params.max_words` of them.
pub fn from_vectors(text: &str, params: &Params, progress: &dyn Fn(&str)) -> Clusters {
    let mut vocabulary = Vec::new();
    let mut vectors = Vec::new();
    for line in text.lines().take(params.max_words) {
        let mut fields = line.split(' ');
        let Some(word) = fields.next() else { continue };
        let mut vector: Vec<f32> = fields.filter_map(|f| f.parse().ok()).collect();
        if vector.is_empty() {
            continue;
        }
        normalize(&mut vector);
        vocabulary.push(word);
        vectors.push(vector);
    }
    progress(&format!(
        "clusters: {} words with vectors",
        vocabulary.len()
    ));
    hierarchy(&vocabulary, vectors, params, progress)
}

/// Clusters of pretrained `vectors` (learnt from far more text, but lower-case), completed by
/// the `news` clusters learnt from our corpora for every word whose lower-case form the
/// vectors lack (names that keep their capitals, rare spellings). The news clusters are
/// numbered after the vectors' at each level, so the two never share a number. Measured
/// against either alone in docs/ner.md.
pub fn combine(mut vectors: Clusters, news: &Clusters, params: &Params) -> Clusters {
    let [coarse, middle, fine] = params.levels.map(|k| k as u16);
    for (word, [c, m, f]) in news {
        if !vectors.contains_key(&word.to_lowercase()) {
            vectors.insert(word.clone(), [c + coarse, m + middle, f + fine]);
        }
    }
    vectors
}

/// Three levels of spherical k-means over `vectors` (one per word of `vocabulary`).
fn hierarchy(
    vocabulary: &[&str],
    vectors: Vec<Vec<f32>>,
    params: &Params,
    progress: &dyn Fn(&str),
) -> Clusters {
    let [coarse, middle, fine] = params.levels;
    let fine_k = fine.min(vectors.len().max(1));
    progress(&format!("clusters: k-means into {fine_k}"));
    let (fine_of_word, fine_centroids) = kmeans(&vectors, fine_k, params, progress);
    let (middle_of_fine, middle_centroids) =
        kmeans(&fine_centroids, middle.min(fine_k), params, progress);
    let (coarse_of_middle, _) = kmeans(
        &middle_centroids,
        coarse.min(middle_centroids.len()),
        params,
        progress,
    );
    vocabulary
        .iter()
        .enumerate()
        .map(|(i, word)| {
            let f = fine_of_word[i];
            let m = middle_of_fine[f];
            let c = coarse_of_middle[m];
            (word.to_string(), [c as u16, m as u16, f as u16])
        })
        .collect()
}

/// The clustered words, most frequent first, and a unit vector for each.
fn word_vectors<'s>(
    sentences: &'s [Vec<String>],
    params: &Params,
    progress: &dyn Fn(&str),
) -> (Vec<&'s str>, Vec<Vec<f32>>) {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for sentence in sentences {
        for word in sentence {
            *counts.entry(word.as_str()).or_default() += 1;
        }
    }
    let mut by_count: Vec<(&str, u64)> = counts.into_iter().collect();
    by_count.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let vocabulary: Vec<&str> = by_count
        .iter()
        .filter(|(_, c)| *c >= params.min_count)
        .take(params.max_words)
        .map(|(w, _)| *w)
        .collect();
    let word_ids: HashMap<&str, usize> = vocabulary
        .iter()
        .enumerate()
        .map(|(i, w)| (*w, i))
        .collect();
    // Context ids: the most frequent words, plus one for "beyond the sentence".
    let context_words = params.contexts.min(vocabulary.len());
    let boundary = context_words;
    let per_position = context_words + 1;
    progress(&format!(
        "clusters: {} words, {} contexts per position",
        vocabulary.len(),
        per_position
    ));

    // Co-occurrence counts, one sparse row per word.
    let mut rows: Vec<HashMap<u32, f32>> = vec![HashMap::new(); vocabulary.len()];
    for sentence in sentences {
        let ids: Vec<Option<usize>> = sentence
            .iter()
            .map(|w| word_ids.get(w.as_str()).copied())
            .collect();
        for (i, id) in ids.iter().enumerate() {
            let Some(id) = id else { continue };
            for (slot, offset) in [-2isize, -1, 1, 2].into_iter().enumerate() {
                let j = i as isize + offset;
                let context = if j < 0 || j >= ids.len() as isize {
                    boundary
                } else {
                    match ids[j as usize] {
                        Some(c) if c < context_words => c,
                        _ => continue,
                    }
                };
                let key = (slot * per_position + context) as u32;
                *rows[*id].entry(key).or_default() += 1.0;
            }
        }
    }

    // In a fixed order from here on: float sums must not depend on hash-map order, or two
    // runs could cluster differently and `ner train` would not reproduce the shipped model.
    let rows: Vec<Vec<(u32, f32)>> = rows
        .into_iter()
        .map(|row| {
            let mut row: Vec<(u32, f32)> = row.into_iter().collect();
            row.sort_unstable_by_key(|&(k, _)| k);
            row
        })
        .collect();

    // Positive PMI with smoothed context probabilities.
    let mut context_totals = vec![0f64; 4 * per_position];
    let mut total = 0f64;
    for row in &rows {
        for &(k, c) in row {
            context_totals[k as usize] += f64::from(c);
            total += f64::from(c);
        }
    }
    let smoothed: Vec<f64> = context_totals.iter().map(|c| c.powf(0.75)).collect();
    let smoothed_total: f64 = smoothed.iter().sum();

    // Each context's random direction: entries of ±1, fixed by the seed.
    let dims = params.dims;
    let direction = |key: u32, d: usize| -> f32 {
        let bits = splitmix(params.seed ^ (u64::from(key) << 20) ^ d as u64);
        if bits & 1 == 0 { 1.0 } else { -1.0 }
    };
    let vectors: Vec<Vec<f32>> = rows
        .par_iter()
        .map(|row| {
            let row_total: f64 = row.iter().map(|&(_, c)| f64::from(c)).sum();
            let mut v = vec![0f32; dims];
            for &(k, c) in row {
                let p_wc = f64::from(c) / total;
                let p_w = row_total / total;
                let p_c = smoothed[k as usize] / smoothed_total;
                let pmi = (p_wc / (p_w * p_c)).ln();
                if pmi > 0.0 {
                    for (d, x) in v.iter_mut().enumerate() {
                        *x += pmi as f32 * direction(k, d);
                    }
                }
            }
            normalize(&mut v);
            v
        })
        .collect();

    (vocabulary, vectors)
}

/// Spherical k-means over unit vectors: each point's cluster, and the unit centroids.
fn kmeans(
    points: &[Vec<f32>],
    k: usize,
    params: &Params,
    progress: &dyn Fn(&str),
) -> (Vec<usize>, Vec<Vec<f32>>) {
    if points.is_empty() || k == 0 {
        return (vec![0; points.len()], Vec::new());
    }
    let dims = points[0].len();
    // Start from k distinct points spread evenly over a seeded shuffle.
    let mut order: Vec<usize> = (0..points.len()).collect();
    let mut state = params.seed;
    for i in (1..order.len()).rev() {
        state = splitmix(state);
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let mut centroids: Vec<Vec<f32>> = order[..k].iter().map(|&i| points[i].clone()).collect();
    let mut assignment = vec![usize::MAX; points.len()];
    for iteration in 0..params.iterations {
        let next: Vec<usize> = points
            .par_iter()
            .map(|p| {
                let mut best = (f32::NEG_INFINITY, 0);
                for (c, centroid) in centroids.iter().enumerate() {
                    let dot: f32 = p.iter().zip(centroid).map(|(a, b)| a * b).sum();
                    if dot > best.0 {
                        best = (dot, c);
                    }
                }
                best.1
            })
            .collect();
        let moved = next.iter().zip(&assignment).filter(|(a, b)| a != b).count();
        assignment = next;
        let mut sums = vec![vec![0f32; dims]; k];
        let mut sizes = vec![0usize; k];
        for (p, &c) in points.iter().zip(&assignment) {
            sizes[c] += 1;
            for (s, x) in sums[c].iter_mut().zip(p) {
                *s += x;
            }
        }
        for (c, sum) in sums.into_iter().enumerate() {
            // An emptied cluster keeps its old centroid rather than vanishing.
            if sizes[c] > 0 {
                centroids[c] = sum;
                normalize(&mut centroids[c]);
            }
        }
        if k >= 256 {
            progress(&format!(
                "clusters: k-means {k}, iteration {}, {moved} words moved",
                iteration + 1
            ));
        }
        if moved == 0 {
            break;
        }
    }
    (assignment, centroids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn words_used_alike_get_alike_vectors() {
        let mut sentences: Vec<Vec<String>> = Vec::new();
        let split = |s: String| s.split(' ').map(String::from).collect();
        for (city, team) in [
            ("Paris", "Arsenal"),
            ("Rome", "Chelsea"),
            ("Oslo", "Everton"),
        ] {
            for _ in 0..10 {
                sentences.push(split(format!("he flew to {city} on monday .")));
                sentences.push(split(format!("{team} beat them 2 - 1 .")));
            }
        }
        let params = Params {
            min_count: 2,
            contexts: 50,
            dims: 256,
            ..Params::default()
        };
        let (words, vectors) = word_vectors(&sentences, &params, &|_| {});
        let v = |w: &str| &vectors[words.iter().position(|x| *x == w).unwrap()];
        assert!(cosine(v("Paris"), v("Rome")) > 0.9);
        assert!(cosine(v("Arsenal"), v("Everton")) > 0.9);
        assert!(cosine(v("Paris"), v("Arsenal")) < 0.5);
        // Every word gets a path of three clusters.
        let clusters = learn(
            &sentences,
            &Params {
                levels: [2, 3, 4],
                ..params
            },
            &|_| {},
        );
        assert_eq!(clusters.len(), words.len());
    }

    #[test]
    fn kmeans_separates_clear_groups() {
        let mut points = Vec::new();
        for i in 0..30 {
            let jitter = (i % 5) as f32 * 0.01;
            let mut p = match i % 3 {
                0 => vec![1.0, jitter, 0.0],
                1 => vec![jitter, 1.0, 0.0],
                _ => vec![0.0, jitter, 1.0],
            };
            normalize(&mut p);
            points.push(p);
        }
        let (assignment, centroids) = kmeans(&points, 3, &Params::default(), &|_| {});
        assert_eq!(centroids.len(), 3);
        for i in 0..30 {
            assert_eq!(assignment[i], assignment[i % 3], "point {i}");
        }
        assert_ne!(assignment[0], assignment[1]);
        assert_ne!(assignment[1], assignment[2]);
    }

    #[test]
    fn pretrained_vectors_cluster_alike_words_together() {
        // GloVe's text format: a word and its numbers; a line without numbers is skipped.
        let text = "paris 1.0 0.1 0.0\nrome 0.9 0.12 0.01\narsenal 0.0 1.0 0.1\n\
                    everton 0.02 0.95 0.12\nbroken\nmadrid 0.95 0.05 0.0\n";
        let clusters = from_vectors(
            text,
            &Params {
                levels: [1, 2, 2],
                ..Params::default()
            },
            &|_| {},
        );
        assert_eq!(clusters.len(), 5);
        assert_eq!(clusters["paris"], clusters["rome"]);
        assert_eq!(clusters["paris"], clusters["madrid"]);
        assert_eq!(clusters["arsenal"], clusters["everton"]);
        assert_ne!(clusters["paris"][2], clusters["arsenal"][2]);
        // At most `max_words`, the first lines: the most frequent words.
        let first = from_vectors(
            text,
            &Params {
                max_words: 2,
                levels: [1, 1, 1],
                ..Params::default()
            },
            &|_| {},
        );
        assert_eq!(first.len(), 2);
    }

    #[test]
    fn news_clusters_complete_the_vectors_without_sharing_numbers() {
        let params = Params {
            levels: [2, 4, 8],
            ..Params::default()
        };
        let vectors: Clusters = [("paris".to_string(), [1, 3, 7])].into_iter().collect();
        let news: Clusters = [
            ("Paris".to_string(), [0, 0, 0]),
            ("Kowalczyk".to_string(), [1, 2, 3]),
        ]
        .into_iter()
        .collect();
        let combined = combine(vectors, &news, &params);
        // "Paris" is in the vectors as "paris": the vectors' cluster is used (by the lookup's
        // lower-case fallback), the news one is dropped.
        assert_eq!(combined.get("Paris"), None);
        assert_eq!(combined["paris"], [1, 3, 7]);
        // A word the vectors lack keeps its news cluster, numbered after theirs.
        assert_eq!(combined["Kowalczyk"], [3, 6, 11]);
    }
}
