//! Training: an averaged structured perceptron (Collins, 2002) with Viterbi decoding.
//!
//! Each sentence is decoded with the current weights; where the best sequence differs from
//! the gold one, the gold sequence's features gain and the predicted sequence's features
//! lose. The model keeps the average of the weights over every step, which generalises far
//! better than the last weights. Sentences are visited in a shuffled order that depends only
//! on the seed, so training is reproducible.

use std::collections::HashMap;

use crate::extract::ner::features::SentenceFeatures;
use crate::extract::ner::label::{LABELS, Label};
use crate::extract::ner::model::{FeatureIndex, FeatureTable, Weights, transition_matrix, viterbi};

/// A training sentence: its features and its gold labels.
#[derive(Clone)]
pub struct Example {
    pub features: SentenceFeatures,
    pub gold: Vec<Label>,
    /// The corpus has no MISC (GMB): where `gold` says outside, MISC may be right too. The
    /// sentence then learns towards the best labelling that agrees with `gold` everywhere
    /// else (a latent, partially labelled target), instead of unlearning MISC there.
    pub misc_unlabelled: bool,
}

/// A sentence's features as weight rows (features never seen in training are dropped).
struct Rows {
    rows: Vec<u32>,
    starts: Vec<usize>,
}

pub struct Trainer {
    index: FeatureIndex,
    weights: Vec<f32>,
    /// Sum of `step * change` for every change, to compute the average lazily.
    totals: Vec<f32>,
    transitions: Vec<f32>,
    transition_totals: Vec<f32>,
    step: f32,
    examples: Vec<(Rows, Vec<Label>, bool)>,
}

/// The best labelling under the current weights that agrees with `gold` except that MISC
/// may stand where `gold` says outside.
fn latent_target(
    emissions: &[[f32; LABELS]],
    transitions: &crate::extract::ner::model::Transitions,
    gold: &[Label],
) -> Vec<Label> {
    let begin_misc = Label::begin_of(super::conll::MISC).index();
    let misc = [begin_misc, begin_misc + 1];
    let masked: Vec<[f32; LABELS]> = emissions
        .iter()
        .zip(gold)
        .map(|(scores, &g)| {
            let mut out = [f32::NEG_INFINITY; LABELS];
            out[g.index()] = scores[g.index()];
            if g == Label::O {
                for m in misc {
                    out[m] = scores[m];
                }
            }
            out
        })
        .collect();
    let target = viterbi(&masked, transitions);
    // A gold sequence IOB2 rules out (no path through it) leaves the decoder no choice to
    // make; learn the gold labels then.
    let agrees = target
        .iter()
        .zip(gold)
        .all(|(&t, &g)| t == g || (g == Label::O && misc.contains(&t.index())));
    if agrees { target } else { gold.to_vec() }
}

/// A small deterministic generator (xorshift64*) for the shuffle.
struct Shuffle(u64);

impl Shuffle {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

impl Trainer {
    /// Indexes every feature of the examples.
    ///
    /// Features seen fewer than `min_count` times are left out: a feature of one rare word
    /// in one training sentence mostly memorises that sentence. Leaving out those seen once
    /// or twice kept the cross-validated F1 and raised the out-of-domain one by about two
    /// points (docs/ner.md).
    pub fn new(examples: Vec<Example>, min_count: u32) -> Trainer {
        let mut counts: HashMap<u64, u32> = HashMap::new();
        if min_count > 1 {
            for example in &examples {
                for hash in &example.features.hashes {
                    *counts.entry(*hash).or_default() += 1;
                }
            }
        }
        let mut index = FeatureIndex::default();
        let mut prepared = Vec::with_capacity(examples.len());
        for example in examples {
            let features = &example.features;
            let mut rows = Vec::with_capacity(features.hashes.len());
            let mut starts = vec![0];
            for token in features.starts.windows(2) {
                for hash in &features.hashes[token[0]..token[1]] {
                    if min_count > 1 && counts.get(hash).copied().unwrap_or(0) < min_count {
                        continue;
                    }
                    let next = index.len() as u32;
                    rows.push(*index.entry(*hash).or_insert(next));
                }
                starts.push(rows.len());
            }
            prepared.push((Rows { rows, starts }, example.gold, example.misc_unlabelled));
        }
        let size = index.len() * LABELS;
        Trainer {
            index,
            weights: vec![0.0; size],
            totals: vec![0.0; size],
            transitions: vec![0.0; (LABELS + 1) * LABELS],
            transition_totals: vec![0.0; (LABELS + 1) * LABELS],
            step: 1.0,
            examples: prepared,
        }
    }

    pub fn features(&self) -> usize {
        self.index.len()
    }

    /// One pass over the examples in an order drawn from `seed`; returns the share of
    /// tokens tagged wrongly during the pass.
    pub fn epoch(&mut self, seed: u64) -> f64 {
        let mut order: Vec<usize> = (0..self.examples.len()).collect();
        Shuffle(seed.max(1)).shuffle(&mut order);
        let (mut wrong, mut tokens) = (0usize, 0usize);
        let mut emissions = Vec::new();
        for &e in &order {
            let (rows, gold, misc_unlabelled) = &self.examples[e];
            emissions.clear();
            for i in 0..gold.len() {
                let mut scores = [0f32; LABELS];
                for &row in &rows.rows[rows.starts[i]..rows.starts[i + 1]] {
                    let w = &self.weights[row as usize * LABELS..(row as usize + 1) * LABELS];
                    for (s, w) in scores.iter_mut().zip(w) {
                        *s += *w;
                    }
                }
                emissions.push(scores);
            }
            let transitions = transition_matrix(&self.transitions);
            let predicted = viterbi(&emissions, &transitions);
            let target;
            let gold = if *misc_unlabelled {
                target = latent_target(&emissions, &transitions, gold);
                &target
            } else {
                gold
            };
            tokens += gold.len();
            let step = self.step;
            for i in 0..gold.len() {
                let (g, p) = (gold[i], predicted[i]);
                if g != p {
                    wrong += 1;
                    for &row in &rows.rows[rows.starts[i]..rows.starts[i + 1]] {
                        let base = row as usize * LABELS;
                        self.weights[base + g.index()] += 1.0;
                        self.totals[base + g.index()] += step;
                        self.weights[base + p.index()] -= 1.0;
                        self.totals[base + p.index()] -= step;
                    }
                }
                let gp = if i == 0 { None } else { Some(gold[i - 1]) };
                let pp = if i == 0 { None } else { Some(predicted[i - 1]) };
                if (gp, g) != (pp, p) {
                    let gt = gp.map_or(LABELS, Label::index) * LABELS + g.index();
                    let pt = pp.map_or(LABELS, Label::index) * LABELS + p.index();
                    self.transitions[gt] += 1.0;
                    self.transition_totals[gt] += step;
                    self.transitions[pt] -= 1.0;
                    self.transition_totals[pt] -= step;
                }
            }
            self.step += 1.0;
        }
        wrong as f64 / tokens.max(1) as f64
    }

    /// The averaged weights, without rows that averaged to nothing.
    pub fn averaged(&self) -> Weights {
        let average = |w: &[f32], totals: &[f32]| -> Vec<f32> {
            w.iter()
                .zip(totals)
                .map(|(w, t)| w - t / self.step)
                .collect()
        };
        let all = average(&self.weights, &self.totals);
        let mut table = FeatureTable::default();
        for (&feature, &row) in &self.index {
            let weights = &all[row as usize * LABELS..(row as usize + 1) * LABELS];
            if weights.iter().any(|w| w.abs() > 1e-3) {
                let mut copy = [0f32; LABELS];
                copy.copy_from_slice(weights);
                table.insert(feature, copy);
            }
        }
        Weights {
            table,
            transitions: average(&self.transitions, &self.transition_totals),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::ner::features::{self, Resources};

    /// Learns that capitalised words after "Mr" are people, from a handful of sentences.
    #[test]
    fn the_perceptron_learns_a_simple_pattern() {
        let sentences: Vec<(Vec<&str>, Vec<&str>)> = vec![
            (
                vec!["Mr", "Smith", "left", "."],
                vec!["O", "B-PER", "O", "O"],
            ),
            (
                vec!["Mr", "Jones", "spoke", "."],
                vec!["O", "B-PER", "O", "O"],
            ),
            (
                vec!["He", "visited", "Paris", "."],
                vec!["O", "O", "B-LOC", "O"],
            ),
            (
                vec!["They", "visited", "Rome", "."],
                vec!["O", "O", "B-LOC", "O"],
            ),
        ];
        let examples = sentences
            .iter()
            .map(|(words, tags)| Example {
                features: features::document(std::slice::from_ref(words), &Resources::default())
                    .remove(0),
                gold: tags.iter().map(|t| Label::parse(t).unwrap()).collect(),
                misc_unlabelled: false,
            })
            .collect();
        let mut trainer = Trainer::new(examples, 1);
        for epoch in 0..10 {
            trainer.epoch(epoch + 1);
        }
        let weights = trainer.averaged();
        let tag = |words: Vec<&str>| -> Vec<&'static str> {
            let features = features::document(&[words], &Resources::default()).remove(0);
            let emissions: Vec<_> = (0..features.len())
                .map(|i| features::score(features.token(i), &weights))
                .collect();
            viterbi(&emissions, &weights.transition_matrix())
                .into_iter()
                .map(Label::as_str)
                .collect()
        };
        assert_eq!(
            tag(vec!["Mr", "Brown", "left", "."]),
            ["O", "B-PER", "O", "O"]
        );
        assert_eq!(
            tag(vec!["She", "visited", "Oslo", "."]),
            ["O", "O", "B-LOC", "O"]
        );
    }

    fn example(words: &[&str], tags: &[&str], misc_unlabelled: bool) -> Example {
        Example {
            features: features::document(&[words.to_vec()], &Resources::default()).remove(0),
            gold: tags.iter().map(|t| Label::parse(t).unwrap()).collect(),
            misc_unlabelled,
        }
    }

    fn tagged(weights: &Weights, words: Vec<&str>) -> Vec<&'static str> {
        let features = features::document(&[words], &Resources::default()).remove(0);
        let emissions: Vec<_> = (0..features.len())
            .map(|i| features::score(features.token(i), weights))
            .collect();
        viterbi(&emissions, &weights.transition_matrix())
            .into_iter()
            .map(Label::as_str)
            .collect()
    }

    #[test]
    fn a_corpus_without_misc_does_not_unlearn_it() {
        // The MISC-annotated corpus says "German" is MISC once; the corpus without MISC
        // says outside three times. Read as plain labels, the majority would win.
        let mut examples = vec![example(
            &["German", "firms", "grew", "."],
            &["B-MISC", "O", "O", "O"],
            false,
        )];
        for _ in 0..3 {
            examples.push(example(
                &["German", "firms", "grew", "."],
                &["O", "O", "O", "O"],
                true,
            ));
        }
        let mut trainer = Trainer::new(examples, 1);
        for epoch in 1..=5 {
            trainer.epoch(epoch);
        }
        let weights = trainer.averaged();
        assert_eq!(
            tagged(&weights, vec!["German", "firms", "grew", "."]),
            ["B-MISC", "O", "O", "O"]
        );
    }

    #[test]
    fn features_seen_too_rarely_are_left_out() {
        let examples = || {
            vec![
                example(
                    &["Mr", "Jones", "spoke", "."],
                    &["O", "B-PER", "O", "O"],
                    false,
                ),
                example(
                    &["Mr", "Brown", "spoke", "."],
                    &["O", "B-PER", "O", "O"],
                    false,
                ),
            ]
        };
        let all = Trainer::new(examples(), 1).features();
        let shared = Trainer::new(examples(), 2).features();
        assert!(shared > 0 && shared < all, "{shared} of {all}");
    }
}
