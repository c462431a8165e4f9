//! The `ner` tools: build the generated word lists, train the tagger, tag and score
//! CoNLL files.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

use crate::corpus::{conll, tagger};
use crate::extract::ner::{self, Model};

#[derive(Debug, Subcommand)]
pub(super) enum NerCommand {
    /// Rebuild the extractor's generated word lists (src/extract/data/gazetteer.tsv,
    /// given_names.txt, common_words.txt) from the CoNLL-2003 and GMB training corpora.
    BuildLexicon {
        /// Folder holding CoNLL-2003 `train.txt`.
        #[arg(long, default_value = "../shared/data/ner-train")]
        conll: PathBuf,
        /// Folder holding GMB `train.conll`.
        #[arg(long, default_value = "../shared/data/ner-train-gmb")]
        gmb: PathBuf,
        /// Where to write the files.
        #[arg(long, default_value = "src/extract/data")]
        out: PathBuf,
    },
    /// Train the entity tagger and write the model (by default over the shipped one, which
    /// this reproduces). Prints the development-set F1 after each epoch.
    Train {
        /// Folder holding CoNLL-2003 `train.txt` and `valid.txt`.
        #[arg(long, default_value = "../shared/data/ner-train")]
        conll: PathBuf,
        /// Folder holding GMB `train.conll` (names for the gazetteer, text for clusters).
        #[arg(long, default_value = "../shared/data/ner-train-gmb")]
        gmb: PathBuf,
        /// Folder of unlabelled news articles for the word clusters.
        #[arg(long, default_value = "../shared/data/news")]
        news: PathBuf,
        /// Passes over the training set.
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        /// Reuse the word clusters of this model file instead of learning them again.
        #[arg(long)]
        clusters_from: Option<PathBuf>,
        /// Where to write the model.
        #[arg(long, default_value = "src/extract/data/ner.model")]
        out: PathBuf,
    },
    /// Tag a CoNLL-format file: each token line is written back with the predicted IOB2 tag
    /// as one more column; blank and `-DOCSTART-` lines pass through. Plain text (prose,
    /// not one token per line) is recognised, tokenised as ingest does, and written as
    /// `token tag` lines with a blank line after each sentence.
    Tag {
        /// The file to tag; standard input when absent.
        file: Option<PathBuf>,
        /// A model file to use instead of the shipped model.
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Score the tagger on a CoNLL-format file whose last column is the gold tag: entity-level
    /// precision, recall and F1 per type, as conlleval counts them.
    Eval {
        /// The annotated file (for example ../shared/data/ner-train/valid.txt).
        file: PathBuf,
        /// A model file to use instead of the shipped model.
        #[arg(long)]
        model: Option<PathBuf>,
    },
}

pub(super) async fn run(command: NerCommand) -> anyhow::Result<()> {
    match command {
        NerCommand::Train {
            conll,
            gmb,
            news,
            epochs,
            clusters_from,
            out,
        } => {
            let clusters_from = match clusters_from {
                Some(path) => Some(ner_model(Some(&path))?.into_owned()),
                None => None,
            };
            let options = tagger::Options {
                conll,
                gmb,
                news,
                epochs,
                clusters_from,
            };
            let started = std::time::Instant::now();
            let (model, scores) = tokio::task::spawn_blocking(move || {
                tagger::train(&options, &|line| {
                    eprintln!("[{:>6.1} s] {line}", started.elapsed().as_secs_f64())
                })
            })
            .await??;
            let bytes = model.to_bytes();
            std::fs::write(&out, &bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            print!("{}", scores.report());
            println!(
                "wrote {} ({:.1} MiB) in {:.0} s",
                out.display(),
                bytes.len() as f64 / 1048576.0,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        NerCommand::Tag { file, model } => {
            let model = ner_model(model.as_deref())?;
            let text = match &file {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
                None => std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?,
            };
            let started = std::time::Instant::now();
            let tagged = if conll::is_plain_text(&text) {
                tracing::info!(
                    "the input is plain text, not CoNLL columns: tokenising it into sentences"
                );
                conll::tag_plain_text(&model, &text)
            } else {
                conll::tag_file(&model, &text)
            };
            let seconds = started.elapsed().as_secs_f64();
            let tokens = tagged.lines().filter(|l| !l.trim().is_empty()).count();
            std::io::Write::write_all(&mut std::io::stdout().lock(), tagged.as_bytes())?;
            tracing::info!(
                "tagged {tokens} lines in {seconds:.3} s ({:.0} per second)",
                tokens as f64 / seconds.max(1e-9)
            );
            Ok(())
        }
        NerCommand::Eval { file, model } => {
            let model = ner_model(model.as_deref())?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let documents = conll::documents(&conll::lines(&text), &conll::conll_tag);
            let started = std::time::Instant::now();
            let scores = conll::evaluate(&model, &documents);
            let seconds = started.elapsed().as_secs_f64();
            print!("{}", scores.report());
            println!(
                "{:.0} tokens per second (one core, features and decoding)",
                scores.tokens as f64 / seconds.max(1e-9)
            );
            Ok(())
        }
        NerCommand::BuildLexicon { conll, gmb, out } => {
            let lexicon = crate::corpus::build_lexicon(&conll, &gmb)?;
            std::fs::write(out.join("gazetteer.tsv"), lexicon.gazetteer)?;
            std::fs::write(out.join("given_names.txt"), lexicon.given_names)?;
            std::fs::write(out.join("common_words.txt"), lexicon.common_words)?;
            println!(
                "wrote gazetteer.tsv, given_names.txt, common_words.txt to {}",
                out.display()
            );
            Ok(())
        }
    }
}

/// The model a `ner` command uses: the one in `path`, or the shipped one.
fn ner_model(path: Option<&std::path::Path>) -> anyhow::Result<std::borrow::Cow<'static, Model>> {
    use std::borrow::Cow;
    match path {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read model {}", path.display()))?;
            let model = Model::from_bytes(&bytes)
                .with_context(|| format!("cannot load model {}", path.display()))?;
            Ok(Cow::Owned(model))
        }
        None => ner::shipped()
            .map(Cow::Borrowed)
            .map_err(|e| anyhow::anyhow!("the shipped model cannot be loaded: {e}")),
    }
}
