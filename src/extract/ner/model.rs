//! A trained model: feature weights, label transitions, clusters and gazetteer, and the file
//! they live in.
//!
//! The file is MessagePack (the same encoding the store uses) with a format number first.
//! Weights are stored as 16-bit integers with one scale for the whole table: a quarter of
//! the size of floats, and tagging agrees with the float model on all but a handful of
//! tokens in the development set.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use super::features::{Clusters, Gazetteer, Resources};
use super::label::{LABELS, Label};

/// The file format. Bump it when the layout or the features change meaning.
pub const FORMAT: u32 = 1;

/// Feature hashes are already well mixed: hashing them again would only cost time.
#[derive(Default, Clone, Copy)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub type FeatureIndex = HashMap<u64, u32, BuildHasherDefault<IdentityHasher>>;

/// Feature rows by feature hash, stored inline so a lookup costs one memory access.
pub type FeatureTable = HashMap<u64, [f32; LABELS], BuildHasherDefault<IdentityHasher>>;

/// Label-to-label scores: row `p` is the label before (`LABELS` for the start of a
/// sentence), column the label after. Forbidden IOB2 steps are negative infinity.
pub type Transitions = [[f32; LABELS]; LABELS + 1];

/// Feature weights and transition scores.
#[derive(Debug, Clone, Default)]
pub struct Weights {
    pub table: FeatureTable,
    /// `transitions[p * LABELS + l]`: the score of label `l` after `p`; `p == LABELS` is the
    /// start of a sentence.
    pub transitions: Vec<f32>,
}

impl Weights {
    pub fn row(&self, feature: u64) -> Option<&[f32; LABELS]> {
        self.table.get(&feature)
    }

    /// The transition scores with IOB2's forbidden steps ruled out.
    pub fn transition_matrix(&self) -> Transitions {
        transition_matrix(&self.transitions)
    }
}

/// `scores` (laid out as in [`Weights::transitions`]; empty means all zero) as a matrix with
/// IOB2's forbidden steps set to negative infinity.
pub fn transition_matrix(scores: &[f32]) -> Transitions {
    let mut matrix = [[0f32; LABELS]; LABELS + 1];
    for (p, row) in matrix.iter_mut().enumerate() {
        let previous = (p < LABELS).then(|| Label::from_index(p));
        for (l, cell) in row.iter_mut().enumerate() {
            let label = Label::from_index(l);
            *cell = if label.may_follow(previous) {
                scores.get(p * LABELS + l).copied().unwrap_or(0.0)
            } else {
                f32::NEG_INFINITY
            };
        }
    }
    matrix
}

/// The best label sequence for per-token label scores under `transitions` (which rule out
/// invalid IOB2 sequences with negative infinity).
pub fn viterbi(emissions: &[[f32; LABELS]], transitions: &Transitions) -> Vec<Label> {
    let n = emissions.len();
    if n == 0 {
        return Vec::new();
    }
    let mut best = vec![[f32::NEG_INFINITY; LABELS]; n];
    let mut back = vec![[0u8; LABELS]; n];
    for l in 0..LABELS {
        best[0][l] = emissions[0][l] + transitions[LABELS][l];
    }
    for i in 1..n {
        let before = best[i - 1];
        for l in 0..LABELS {
            let mut top = f32::NEG_INFINITY;
            let mut arg = 0;
            for (p, &score_before) in before.iter().enumerate() {
                let score = score_before + transitions[p][l];
                if score > top {
                    top = score;
                    arg = p;
                }
            }
            best[i][l] = top + emissions[i][l];
            back[i][l] = arg as u8;
        }
    }
    let mut last = 0;
    for l in 1..LABELS {
        if best[n - 1][l] > best[n - 1][last] {
            last = l;
        }
    }
    let mut labels = vec![Label::O; n];
    for i in (0..n).rev() {
        labels[i] = Label::from_index(last);
        last = usize::from(back[i][last]);
    }
    labels
}

/// A model ready to tag.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub weights: Weights,
    pub resources: Resources,
    /// What it was trained on and how well it did, for the model card and `ner info`.
    pub description: String,
}

#[derive(Serialize, Deserialize)]
struct File {
    format: u32,
    description: String,
    labels: Vec<String>,
    scale: f32,
    features: Vec<u64>,
    /// `LABELS` per feature, times `scale`.
    weights: Vec<i16>,
    transitions: Vec<f32>,
    clusters: Vec<(String, [u16; 3])>,
    gazetteer: Vec<(String, u8)>,
}

/// Why a model file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("not a newsstore NER model: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error(
        "model format {found} is not the supported format {FORMAT}; retrain with `newsstore ner train`"
    )]
    Format { found: u32 },
    #[error("the model file is inconsistent: {0}")]
    Inconsistent(&'static str),
}

impl Model {
    pub fn to_bytes(&self) -> Vec<u8> {
        // Rows in feature order, so the same model always gives the same bytes.
        let mut features: Vec<(u64, &[f32; LABELS])> =
            self.weights.table.iter().map(|(&f, r)| (f, r)).collect();
        features.sort_unstable_by_key(|&(f, _)| f);
        let max = features
            .iter()
            .flat_map(|(_, row)| row.iter())
            .fold(0f32, |m, w| m.max(w.abs()))
            .max(f32::MIN_POSITIVE);
        let scale = max / f32::from(i16::MAX);
        let mut weights = Vec::with_capacity(features.len() * LABELS);
        for (_, row) in &features {
            for w in row.iter() {
                weights.push((w / scale).round() as i16);
            }
        }
        let mut clusters: Vec<(String, [u16; 3])> = self
            .resources
            .clusters
            .iter()
            .map(|(w, c)| (w.clone(), *c))
            .collect();
        clusters.sort_unstable();
        let mut gazetteer: Vec<(String, u8)> = self
            .resources
            .gazetteer
            .names()
            .iter()
            .map(|(n, t)| (n.clone(), *t))
            .collect();
        gazetteer.sort_unstable();
        let file = File {
            format: FORMAT,
            description: self.description.clone(),
            labels: (0..LABELS)
                .map(|l| Label::from_index(l).as_str().to_string())
                .collect(),
            scale,
            features: features.iter().map(|&(f, _)| f).collect(),
            weights,
            transitions: self.weights.transitions.clone(),
            clusters,
            gazetteer,
        };
        // Serialising plain vectors and strings into memory cannot fail.
        rmp_serde::to_vec(&file).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Model, ModelError> {
        let file: File = rmp_serde::from_slice(bytes)?;
        if file.format != FORMAT {
            return Err(ModelError::Format { found: file.format });
        }
        let labels_match = file.labels.len() == LABELS
            && file
                .labels
                .iter()
                .enumerate()
                .all(|(i, l)| Label::parse(l) == Some(Label::from_index(i)));
        if !labels_match {
            return Err(ModelError::Inconsistent("labels differ"));
        }
        if file.weights.len() != file.features.len() * LABELS {
            return Err(ModelError::Inconsistent("weight table size"));
        }
        if file.transitions.len() != (LABELS + 1) * LABELS {
            return Err(ModelError::Inconsistent("transition table size"));
        }
        let mut table = FeatureTable::default();
        table.reserve(file.features.len());
        for (feature, weights) in file.features.iter().zip(file.weights.chunks_exact(LABELS)) {
            let mut row = [0f32; LABELS];
            for (r, &w) in row.iter_mut().zip(weights) {
                *r = f32::from(w) * file.scale;
            }
            table.insert(*feature, row);
        }
        let clusters: Clusters = file.clusters.into_iter().collect();
        let gazetteer = Gazetteer::new(file.gazetteer);
        Ok(Model {
            weights: Weights {
                table,
                transitions: file.transitions,
            },
            resources: Resources {
                clusters,
                gazetteer,
            },
            description: file.description,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viterbi_never_starts_inside_an_entity() {
        let i_per = Label::parse("I-PER").unwrap().index();
        let b_per = Label::parse("B-PER").unwrap().index();
        let mut emissions = [[0f32; LABELS]; 2];
        // Both tokens prefer I-PER, which cannot start a sentence.
        emissions[0][i_per] = 5.0;
        emissions[0][b_per] = 1.0;
        emissions[1][i_per] = 5.0;
        let labels = viterbi(&emissions, &transition_matrix(&[]));
        let tags: Vec<_> = labels.iter().map(|l| l.as_str()).collect();
        assert_eq!(tags, ["B-PER", "I-PER"]);
    }

    #[test]
    fn models_survive_the_file_format() {
        let mut table = FeatureTable::default();
        let (mut a, mut b) = ([0f32; LABELS], [0f32; LABELS]);
        a[1] = 2.5;
        b[3] = -1.25;
        table.insert(42, a);
        table.insert(7, b);
        let model = Model {
            weights: Weights {
                table,
                transitions: vec![0.5; (LABELS + 1) * LABELS],
            },
            resources: Resources {
                clusters: [("Kerry".to_string(), [1, 2, 3])].into_iter().collect(),
                gazetteer: Gazetteer::new([("John Kerry".to_string(), 1)]),
            },
            description: "test".into(),
        };
        let read = Model::from_bytes(&model.to_bytes()).unwrap();
        let row = read.weights.row(42).unwrap();
        assert!((row[1] - 2.5).abs() < 1e-3);
        assert!((read.weights.row(7).unwrap()[3] + 1.25).abs() < 1e-3);
        assert!(read.weights.row(8).is_none());
        assert_eq!(read.resources.clusters["Kerry"], [1, 2, 3]);
        assert_eq!(read.resources.gazetteer.names()["John Kerry"], 1);
        assert_eq!(read.description, "test");
        assert!(matches!(
            Model::from_bytes(b"junk"),
            Err(ModelError::Decode(_))
        ));
    }
}
