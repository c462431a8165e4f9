//! The trained named-entity tagger: which tokens are people, organisations, places and other
//! names (PER, ORG, LOC, MISC, in IOB2).
//!
//! An averaged structured perceptron over hashed features (`features.rs`), decoded with
//! Viterbi under IOB2 constraints (`model.rs`). Training is not here but in `corpus/`
//! (`tagger.rs`, `perceptron.rs`, and `clusters.rs` for the word clusters learnt from
//! unlabelled news), since nothing on a request path trains; the clusters' lookup table the
//! tagger reads is `features::Clusters`. The shipped model is compiled
//! into the binary from `data/ner.model`, so nothing is read or fetched at run time;
//! `newsstore ner train` reproduces it from `../shared/data`.

pub mod features;
pub mod label;
pub mod model;

use std::sync::LazyLock;

pub use label::{Chunk, LABELS, Label, chunks};
pub use model::{Model, ModelError};

/// The shipped model's bytes.
const SHIPPED: &[u8] = include_bytes!("../data/ner.model");

static MODEL: LazyLock<Result<Model, ModelError>> = LazyLock::new(|| Model::from_bytes(SHIPPED));

/// The model compiled into this binary, decoded on first use.
pub fn shipped() -> Result<&'static Model, &'static ModelError> {
    MODEL.as_ref()
}

impl Model {
    /// Labels for every token of a document's sentences. The whole document is passed at
    /// once because what a word does elsewhere in it is evidence (see `features.rs`).
    pub fn tag_document(&self, sentences: &[Vec<&str>]) -> Vec<Vec<Label>> {
        let features = features::document(sentences, &self.resources);
        let transitions = self.weights.transition_matrix();
        let mut emissions = Vec::new();
        features
            .iter()
            .map(|sentence| {
                emissions.clear();
                emissions.extend(
                    (0..sentence.len()).map(|i| features::score(sentence.token(i), &self.weights)),
                );
                model::viterbi(&emissions, &transitions)
            })
            .collect()
    }
}
