//! Annotated news corpora, and the word lists the extractor ships that are learnt from them.
//!
//! `newsstore ner build-lexicon` reads CoNLL-2003 (`train.txt`, Reuters) and GMB
//! (`train.conll`, Voice of America), both IOB2, and writes three files into
//! `src/extract/data/`: a gazetteer of names with the kind annotators gave them, a list of
//! given names, and a list of common lower-case words. The shipped files are exactly what this
//! produces from `../shared/data`, so they can be rebuilt and reviewed. Only the training
//! splits are read: the CoNLL development set stays unseen for evaluation.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use crate::model::EntityKind;

/// One annotated sentence: tokens with their entity label (`None` outside entities) and
/// whether the label begins a new entity.
struct Sentence {
    tokens: Vec<(String, Option<(bool, EntityKind)>)>,
}

/// Maps a corpus's own label (without the B-/I- prefix) to our kinds; `None` drops it.
type LabelMap = fn(&str) -> Option<EntityKind>;

fn conll_label(label: &str) -> Option<EntityKind> {
    EntityKind::from_conll(label)
}

/// GMB's `gpe` marks nationalities ("Iraqi"), which CoNLL calls MISC; its time, artefact,
/// event and natural-phenomenon labels have no counterpart and are dropped.
fn gmb_label(label: &str) -> Option<EntityKind> {
    match label {
        "per" => Some(EntityKind::Person),
        "org" => Some(EntityKind::Organization),
        "geo" => Some(EntityKind::Location),
        "gpe" => Some(EntityKind::Misc),
        _ => None,
    }
}

/// Reads an IOB2 file whose last column is the tag. Lines starting with `-DOCSTART-` or `#`
/// are skipped; a blank line ends a sentence.
fn read_iob(text: &str, map: LabelMap) -> Vec<Sentence> {
    let mut sentences = Vec::new();
    let mut current = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            if !current.is_empty() {
                sentences.push(Sentence {
                    tokens: std::mem::take(&mut current),
                });
            }
            continue;
        }
        if line.starts_with("-DOCSTART-") || line.starts_with('#') {
            continue;
        }
        let mut columns = line.split_whitespace();
        let (Some(token), Some(tag)) = (columns.next(), columns.next_back()) else {
            continue;
        };
        let label = match tag.split_once('-') {
            Some((prefix, label)) => map(label).map(|kind| (prefix == "B", kind)),
            None => None,
        };
        current.push((token.to_string(), label));
    }
    if !current.is_empty() {
        sentences.push(Sentence { tokens: current });
    }
    sentences
}

/// Weighted counts of one phrase: per kind, and per spelling.
type PhraseCounts = (BTreeMap<EntityKind, u32>, HashMap<String, u32>);

/// Counts gathered over all corpora.
#[derive(Default)]
struct Counts {
    /// Entity phrase (by name key) → its counts.
    phrases: HashMap<String, PhraseCounts>,
    /// First tokens of multi-token person names.
    given: HashMap<String, u32>,
    /// Tokens of multi-token names of other kinds, to keep "New" out of the given names.
    other_starts: HashMap<String, u32>,
    /// Lower-case words outside entities.
    lower: HashMap<String, u32>,
}

impl Counts {
    fn add(&mut self, sentences: &[Sentence], weight: u32) {
        for sentence in sentences {
            let mut i = 0;
            let tokens = &sentence.tokens;
            while i < tokens.len() {
                let (word, label) = &tokens[i];
                let Some((_, kind)) = label else {
                    if word.chars().all(|c| c.is_lowercase()) {
                        *self.lower.entry(word.clone()).or_default() += weight;
                    }
                    i += 1;
                    continue;
                };
                let mut j = i + 1;
                while j < tokens.len() && matches!(tokens[j].1, Some((false, k)) if k == *kind) {
                    j += 1;
                }
                let words: Vec<&str> = tokens[i..j].iter().map(|(w, _)| w.as_str()).collect();
                let phrase = words.join(" ");
                let key = crate::model::name_key(&phrase);
                if !key.is_empty() {
                    let (kinds, spellings) = self.phrases.entry(key).or_default();
                    *kinds.entry(*kind).or_default() += weight;
                    *spellings.entry(phrase).or_default() += weight;
                }
                if words.len() >= 2 {
                    let first = words[0].to_string();
                    if *kind == EntityKind::Person {
                        *self.given.entry(first).or_default() += weight;
                    } else {
                        *self.other_starts.entry(first).or_default() += weight;
                    }
                }
                i = j;
            }
        }
    }
}

/// The three generated files' contents.
pub struct Lexicon {
    pub gazetteer: String,
    pub given_names: String,
    pub common_words: String,
}

/// Builds the lexicon from the corpora in `conll_dir` (its `train.txt`) and `gmb_dir` (its
/// `train.conll`). CoNLL's hand annotation counts twice as much as GMB's silver labels.
pub fn build_lexicon(conll_dir: &Path, gmb_dir: &Path) -> std::io::Result<Lexicon> {
    let conll = std::fs::read_to_string(conll_dir.join("train.txt"))?;
    let gmb = std::fs::read_to_string(gmb_dir.join("train.conll"))?;
    let mut counts = Counts::default();
    counts.add(&read_iob(&conll, conll_label), 2);
    counts.add(&read_iob(&gmb, gmb_label), 1);

    let mut gazetteer = String::from(
        "# Generated by `newsstore ner build-lexicon` from CoNLL-2003 train and GMB train.\n\
         # name<TAB>kind<TAB>weighted count. Do not edit: rebuild instead.\n",
    );
    let mut rows: Vec<(String, EntityKind, u32)> = Vec::new();
    for (kinds, spellings) in counts.phrases.values() {
        let total: u32 = kinds.values().sum();
        let Some((&kind, &best)) = kinds.iter().max_by_key(|&(kind, n)| (*n, *kind)) else {
            continue;
        };
        // Seen twice in hand-annotated text (or three times in silver-labelled text), and
        // given one kind at least four times in five.
        if total < 3 || best * 5 < total * 4 {
            continue;
        }
        let Some((spelling, _)) = spellings
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
        else {
            continue;
        };
        // Tokenisation debris and coordinations ("United States and European Union") are
        // annotation noise, not names.
        let clean = spelling.chars().next().is_some_and(char::is_alphanumeric)
            && !spelling.contains('"')
            && !spelling.split(' ').any(|w| w == "and" || w == "'s");
        if clean {
            rows.push((spelling.clone(), kind, total));
        }
    }
    rows.sort();
    for (name, kind, total) in rows {
        let _ = writeln!(gazetteer, "{name}\t{}\t{total}", kind.conll());
    }

    let mut given: Vec<&String> = counts
        .given
        .iter()
        .filter(|&(name, &n)| {
            n >= 3
                && name.chars().next().is_some_and(char::is_uppercase)
                && name.chars().all(char::is_alphabetic)
                && counts.other_starts.get(name.as_str()).copied().unwrap_or(0) * 4 < n
                && !counts.lower.contains_key(&name.to_lowercase())
        })
        .map(|(name, _)| name)
        .collect();
    given.sort();
    let mut given_names = String::from(
        "# Generated by `newsstore ner build-lexicon`: first words of person names.\n",
    );
    for name in given {
        let _ = writeln!(given_names, "{name}");
    }

    let mut common: Vec<&String> = counts
        .lower
        .iter()
        .filter(|&(word, &n)| n >= 4 && word.chars().all(char::is_alphabetic))
        .map(|(word, _)| word)
        .collect();
    common.sort();
    let mut common_words = String::from(
        "# Generated by `newsstore ner build-lexicon`: words seen in lower case in news text.\n",
    );
    for word in common {
        let _ = writeln!(common_words, "{word}");
    }

    Ok(Lexicon {
        gazetteer,
        given_names,
        common_words,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_conll_and_gmb_labels() {
        let conll = "-DOCSTART- -X- -X- O\n\nJohn NNP B-NP B-PER\nKerry NNP I-NP I-PER\n\
                     said VBD B-VP O\n\n";
        let sentences = read_iob(conll, conll_label);
        assert_eq!(sentences.len(), 1);
        assert_eq!(
            sentences[0].tokens[1],
            ("Kerry".to_string(), Some((false, EntityKind::Person)))
        );
        let gmb = "# sent_id = 1\nIraqi JJ B-gpe\nofficials NNS O\n\n";
        let sentences = read_iob(gmb, gmb_label);
        assert_eq!(sentences[0].tokens[0].1, Some((true, EntityKind::Misc)));
    }
}
