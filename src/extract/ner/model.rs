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

/// Weight rows by feature, and label-to-label transition scores.
#[derive(Debug, Clone, Default)]
pub struct Weights {
    pub index: FeatureIndex,
    /// `LABELS` weights per row.
    pub rows: Vec<f32>,
    /// `transitions[p * LABELS + l]`: the score of label `l` after `p`; `p == LABELS` is the
    /// start of a sentence.
    pub transitions: Vec<f32>,
}

impl Weights {
    pub fn row(&self, feature: u64) -> Option<&[f32]> {
        let row = *self.index.get(&feature)? as usize;
        Some(&self.rows[row * LABELS..(row + 1) * LABELS])
    }

    pub fn transition(&self, previous: Option<Label>, label: Label) -> f32 {
        let p = previous.map_or(LABELS, Label::index);
        // An empty table (a default model) scores every transition alike.
        self.transitions
            .get(p * LABELS + label.index())
            .copied()
            .unwrap_or(0.0)
    }
}

/// The best label sequence for per-token label scores, allowing only valid IOB2 sequences.
pub fn viterbi(
    emissions: &[[f32; LABELS]],
    transition: impl Fn(Option<Label>, Label) -> f32,
) -> Vec<Label> {
    let n = emissions.len();
    if n == 0 {
        return Vec::new();
    }
    let mut best = vec![[f32::NEG_INFINITY; LABELS]; n];
    let mut back = vec![[0u8; LABELS]; n];
    for l in 0..LABELS {
        let label = Label::from_index(l);
        if label.may_follow(None) {
            best[0][l] = emissions[0][l] + transition(None, label);
        }
    }
    for i in 1..n {
        let before = best[i - 1];
        for l in 0..LABELS {
            let label = Label::from_index(l);
            let mut top = f32::NEG_INFINITY;
            let mut arg = 0;
            for (p, &score_before) in before.iter().enumerate() {
                let previous = Label::from_index(p);
                if score_before == f32::NEG_INFINITY || !label.may_follow(Some(previous)) {
                    continue;
                }
                let score = score_before + transition(Some(previous), label);
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
        let mut features: Vec<(u64, u32)> =
            self.weights.index.iter().map(|(&f, &r)| (f, r)).collect();
        features.sort_unstable();
        let max = self
            .weights
            .rows
            .iter()
            .fold(0f32, |m, w| m.max(w.abs()))
            .max(f32::MIN_POSITIVE);
        let scale = max / f32::from(i16::MAX);
        let mut weights = Vec::with_capacity(features.len() * LABELS);
        for &(_, row) in &features {
            let row = row as usize;
            for w in &self.weights.rows[row * LABELS..(row + 1) * LABELS] {
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
        let mut index = FeatureIndex::default();
        index.reserve(file.features.len());
        for (row, feature) in file.features.iter().enumerate() {
            index.insert(*feature, row as u32);
        }
        let rows = file
            .weights
            .iter()
            .map(|&w| f32::from(w) * file.scale)
            .collect();
        let clusters: Clusters = file.clusters.into_iter().collect();
        let gazetteer = Gazetteer::new(file.gazetteer.into_iter().collect());
        Ok(Model {
            weights: Weights {
                index,
                rows,
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
        let labels = viterbi(&emissions, |_, _| 0.0);
        let tags: Vec<_> = labels.iter().map(|l| l.as_str()).collect();
        assert_eq!(tags, ["B-PER", "I-PER"]);
    }

    #[test]
    fn models_survive_the_file_format() {
        let mut index = FeatureIndex::default();
        index.insert(42, 0);
        index.insert(7, 1);
        let mut rows = vec![0f32; 2 * LABELS];
        rows[1] = 2.5;
        rows[LABELS + 3] = -1.25;
        let model = Model {
            weights: Weights {
                index,
                rows,
                transitions: vec![0.5; (LABELS + 1) * LABELS],
            },
            resources: Resources {
                clusters: HashMap::from([("Kerry".to_string(), [1, 2, 3])]),
                gazetteer: Gazetteer::new(HashMap::from([("John Kerry".to_string(), 1)])),
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
