//! Annotated news corpora and what is learnt from them: the extractor's word lists
//! (`lexicon.rs`), the entity tagger's model (`tagger.rs`, which trains it with the averaged
//! perceptron of `perceptron.rs` and the word clusters `clusters.rs` learns from unlabelled
//! text), and reading, writing and scoring CoNLL-format files (`conll.rs`). Everything here
//! runs from the `ner` subcommands, never on a request path.

pub mod clusters;
pub mod conll;
pub mod lexicon;
pub mod perceptron;
pub mod tagger;

pub use lexicon::build_lexicon;
