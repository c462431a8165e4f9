//! The `ner` tools: build the generated word lists, train the tagger, tag and score
//! CoNLL files.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::corpus::conll::{self, Scores};
use crate::corpus::tagger;
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
        #[command(flatten)]
        training: Training,
        /// Where to write the model.
        #[arg(long, default_value = "src/extract/data/ner.model")]
        out: PathBuf,
    },
    /// Cross-validate the tagger: k folds over CoNLL-2003 train and development together,
    /// by document; prints the mean and spread of F1 after each epoch, and per type.
    Cv {
        #[command(flatten)]
        training: Training,
        /// Number of folds.
        #[arg(long, default_value_t = 5)]
        folds: usize,
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
        /// The file is GMB-annotated (`per`, `org`, `geo`, … tags): score PER, ORG and LOC
        /// without MISC, then again with people compared from their names on (GMB counts a
        /// title as part of a person, CoNLL does not).
        #[arg(long)]
        gmb: bool,
    },
}

pub(super) async fn run(command: NerCommand) -> anyhow::Result<()> {
    match command {
        NerCommand::Train { training, out } => {
            let options = training.options()?;
            let started = std::time::Instant::now();
            let (model, report) = tokio::task::spawn_blocking(move || {
                tagger::train(&options, &|line| {
                    eprintln!("[{:>6.1} s] {line}", started.elapsed().as_secs_f64())
                })
            })
            .await??;
            let bytes = model.to_bytes();
            std::fs::write(&out, &bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("CoNLL-2003 development set:");
            print!("{}", report.dev.report());
            if let Some(gmb) = &report.gmb {
                println!("GMB check (the held-out tenth; PER, ORG, LOC):");
                print!("{}", gmb.scores.report());
                println!("the same, people compared from their names on:");
                print!("{}", gmb.from_names.report());
            }
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
        NerCommand::Cv { training, folds } => {
            if folds < 2 {
                anyhow::bail!("--folds must be at least 2");
            }
            let options = training.options()?;
            let epochs = options.epochs;
            let started = std::time::Instant::now();
            let cv = tokio::task::spawn_blocking(move || {
                tagger::cross_validate(&options, folds, &|line| {
                    eprintln!("[{:>6.1} s] {line}", started.elapsed().as_secs_f64())
                })
            })
            .await??;
            println!("epoch  cross-validated F1 (mean ± sd over {folds} folds)");
            for epoch in 1..=epochs {
                let (mean, sd) = cv.spread(epoch, Scores::f1);
                println!("{epoch:>5}  {mean:.4} ± {sd:.4}");
            }
            for (t, name) in crate::extract::ner::label::TYPES.iter().enumerate() {
                let (mean, sd) = cv.spread(epochs, |s| s.type_f1(t));
                println!("{name:<5}  {mean:.4} ± {sd:.4} after {epochs} epochs");
            }
            Ok(())
        }
        NerCommand::Eval { file, model, gmb } => {
            let model = ner_model(model.as_deref())?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            if gmb {
                let documents = conll::documents(&conll::lines(&text), &conll::gmb_tag);
                print!(
                    "{}",
                    conll::evaluate_as(&model, &documents, conll::Convention::GMB).report()
                );
                println!("people compared from their names on:");
                print!(
                    "{}",
                    conll::evaluate_as(&model, &documents, conll::Convention::GMB_NAMES).report()
                );
                return Ok(());
            }
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

/// How to train, for `ner train` and `ner cv`.
#[derive(Debug, Args)]
pub(super) struct Training {
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
    /// Learn from GMB's first nine tenths too (Voice of America news), relabelled to
    /// CoNLL-2003's rules.
    #[arg(long)]
    with_gmb: bool,
    /// Leave out features seen fewer times than this in training (1: none, as the shipped
    /// model).
    #[arg(long, default_value_t = 1)]
    min_feature_count: u32,
    /// Hold GMB's last tenth out of the gazetteer and the clusters and score it as the
    /// out-of-domain check (the shipped model was made without this).
    #[arg(long)]
    gmb_check: bool,
    /// Pretrained word vectors (GloVe's text format, most frequent words first) to cluster;
    /// the clusters learnt from the corpora keep only the words these lack.
    #[arg(long, conflicts_with = "clusters_from")]
    vectors: Option<PathBuf>,
}

impl Training {
    fn options(self) -> anyhow::Result<tagger::Options> {
        let clusters_from = self
            .clusters_from
            .map(|path| anyhow::Ok(ner_model(Some(&path))?.into_owned()))
            .transpose()?;
        Ok(tagger::Options {
            conll: self.conll,
            gmb: self.gmb,
            news: self.news,
            epochs: self.epochs,
            clusters_from,
            with_gmb: self.with_gmb,
            min_feature_count: self.min_feature_count,
            gmb_check: self.gmb_check,
            vectors: self.vectors,
        })
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
