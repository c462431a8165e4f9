//! CoNLL-format files: reading annotated sentences, writing tagged ones, and scoring.
//!
//! The format is one token per line with any number of space- or tab-separated columns (the
//! token first, a gold tag last when there is one), a blank line between sentences, and
//! `-DOCSTART-` lines between documents. GMB's `# sent_id = N` lines are comments. Lines are
//! kept as they were read, so tagging can write each one back with one more column.

use std::fmt::Write as _;

use crate::extract::lexicon;
use crate::extract::ner::{Chunk, Label, Model, chunks};

/// One line of a CoNLL file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `-DOCSTART- ...`: a new document begins.
    DocStart(String),
    /// A comment line (`# sent_id = 1`).
    Comment(String),
    /// The blank line that ends a sentence.
    Blank,
    /// A token line; `token` is its first column.
    Token { line: String, token: String },
}

/// A sentence: its tokens and, when the file has them, their gold labels.
#[derive(Debug, Clone, Default)]
pub struct Sentence {
    pub tokens: Vec<String>,
    /// One per token when every token line ends in a valid tag.
    pub gold: Option<Vec<Label>>,
}

/// A document: the sentences between two `-DOCSTART-` lines. A file without them is one
/// document.
#[derive(Debug, Clone, Default)]
pub struct Document {
    pub sentences: Vec<Sentence>,
}

fn is_comment(line: &str) -> bool {
    line.starts_with("# ") && line.contains(" = ")
}

/// Splits a file into lines.
pub fn lines(text: &str) -> Vec<Line> {
    text.lines()
        .map(|raw| {
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() {
                Line::Blank
            } else if line.starts_with("-DOCSTART-") {
                Line::DocStart(line.to_string())
            } else if is_comment(line) {
                Line::Comment(line.to_string())
            } else {
                let token = line.split_whitespace().next().unwrap_or_default();
                Line::Token {
                    line: line.to_string(),
                    token: token.to_string(),
                }
            }
        })
        .collect()
}

/// The documents of a file. `map_tag` turns a last-column tag into a label (for corpora
/// with their own tag sets); a sentence whose tags do not all map has no gold labels.
pub fn documents(lines: &[Line], map_tag: &dyn Fn(&str) -> Option<Label>) -> Vec<Document> {
    let mut documents = vec![Document::default()];
    let mut sentence = Sentence::default();
    let mut gold = Some(Vec::new());
    let finish =
        |documents: &mut Vec<Document>, sentence: &mut Sentence, gold: &mut Option<Vec<Label>>| {
            if !sentence.tokens.is_empty() {
                let mut done = std::mem::take(sentence);
                done.gold = gold.take();
                if let Some(document) = documents.last_mut() {
                    document.sentences.push(done);
                }
            }
            *gold = Some(Vec::new());
        };
    for line in lines {
        match line {
            Line::Blank | Line::Comment(_) => finish(&mut documents, &mut sentence, &mut gold),
            Line::DocStart(_) => {
                finish(&mut documents, &mut sentence, &mut gold);
                if documents.last().is_some_and(|d| !d.sentences.is_empty()) {
                    documents.push(Document::default());
                }
            }
            Line::Token { line, token } => {
                sentence.tokens.push(token.clone());
                let tag = line.split_whitespace().skip(1).last();
                let label = tag.and_then(map_tag);
                match (label, gold.as_mut()) {
                    (Some(label), Some(labels)) => labels.push(label),
                    _ => gold = None,
                }
            }
        }
    }
    finish(&mut documents, &mut sentence, &mut gold);
    documents.retain(|d| !d.sentences.is_empty());
    documents
}

/// CoNLL-2003's own tags.
pub fn conll_tag(tag: &str) -> Option<Label> {
    Label::parse(tag)
}

/// GMB's tags mapped to CoNLL's: `per`, `org` and `geo` are PER, ORG and LOC; `gpe`
/// (nationalities and countries used as adjectives, "Iraqi") is what CoNLL calls MISC; time,
/// artefact, event and natural-phenomenon names have no counterpart and count as outside.
pub fn gmb_tag(tag: &str) -> Option<Label> {
    if tag == "O" {
        return Some(Label::O);
    }
    let (prefix, kind) = tag.split_once('-')?;
    let kind = match kind {
        "per" => "PER",
        "org" => "ORG",
        "geo" => "LOC",
        "gpe" => "MISC",
        _ => return Some(Label::O),
    };
    Label::parse(&format!("{prefix}-{kind}"))
}

/// GMB's tags mapped to CoNLL's for learning from: as [`gmb_tag`], and events (`eve`),
/// works (`art`) and natural phenomena (`nat`, named storms) are MISC too, as CoNLL-2003
/// annotates them. Scoring keeps [`gmb_tag`], which leaves MISC out anyway.
pub fn gmb_training_tag(tag: &str) -> Option<Label> {
    match tag.split_once('-') {
        Some((prefix, "eve" | "art" | "nat")) => Label::parse(&format!("{prefix}-MISC")),
        _ => gmb_tag(tag),
    }
}

/// Tags every document of a file and writes each token line back with the predicted IOB2
/// tag as one more column; other lines pass through unchanged.
pub fn tag_file(model: &Model, text: &str) -> String {
    let lines = lines(text);
    let documents = documents(&lines, &|_| None);
    let mut predicted = documents.iter().flat_map(|document| {
        let sentences: Vec<Vec<&str>> = document
            .sentences
            .iter()
            .map(|s| s.tokens.iter().map(String::as_str).collect())
            .collect();
        model.tag_document(&sentences).into_iter().flatten()
    });
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for line in &lines {
        match line {
            Line::DocStart(raw) | Line::Comment(raw) => out.push_str(raw),
            Line::Blank => {}
            Line::Token { line, .. } => {
                let tag = predicted.next().map_or("O", Label::as_str);
                let _ = write!(out, "{line} {tag}");
            }
        }
        out.push('\n');
    }
    out
}

/// Whether `text` is prose rather than CoNLL columns: most of its non-blank lines hold more
/// words than any CoNLL layout has columns (CoNLL-2003 has four, GMB two), which a token
/// line never does and a line of prose nearly always does.
pub fn is_plain_text(text: &str) -> bool {
    let (mut token_lines, mut wide) = (0usize, 0usize);
    for line in lines(text) {
        if let Line::Token { line, .. } = line {
            token_lines += 1;
            if line.split_whitespace().count() > PLAIN_TEXT_WORDS {
                wide += 1;
            }
        }
    }
    wide * 2 > token_lines
}

/// More words than this on a line make it prose (see [`is_plain_text`]).
const PLAIN_TEXT_WORDS: usize = 5;

/// Tags plain text: tokenised and split into sentences the way ingest does, then written
/// as CoNLL, one `token tag` line per token and a blank line after each sentence.
pub fn tag_plain_text(model: &Model, text: &str) -> String {
    let tokens = crate::extract::tokens::tokenize(text);
    let sentences: Vec<Vec<&str>> = crate::extract::tokens::sentences(text, &tokens)
        .into_iter()
        .map(|range| tokens[range].iter().map(|t| t.text(text)).collect())
        .collect();
    let tags = model.tag_document(&sentences);
    let mut out = String::with_capacity(text.len() * 2);
    for (sentence, tags) in sentences.iter().zip(&tags) {
        for (token, tag) in sentence.iter().zip(tags) {
            let _ = writeln!(out, "{token} {}", tag.as_str());
        }
        out.push('\n');
    }
    out
}

/// Entity-level precision, recall and F1, per type and overall, counted as `conlleval` does:
/// an entity is right only when its type and both its ends are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores {
    /// Per type (PER, ORG, LOC, MISC): (correct, predicted, gold).
    pub by_type: [(usize, usize, usize); 4],
    pub tokens: usize,
}

/// How the tagger's entities are compared with gold ones annotated under other rules. GMB
/// (Voice of America news) is the case: it has no MISC (its `gpe`, "Iraqi", is near but not
/// the same), and its people include their titles ("President Bush", "Mr. Karzai"), where
/// CoNLL-2003's start at the name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Convention {
    /// Leave MISC entities out on both sides.
    pub without_misc: bool,
    /// Start every person after its leading title words, on both sides, so that neither
    /// rule is counted as an error.
    pub names_without_titles: bool,
}

impl Convention {
    /// GMB against the tagger: MISC left out, titles kept where each side put them. This is
    /// how the held-out Voice of America figures of issue 31 were counted.
    pub const GMB: Convention = Convention {
        without_misc: true,
        names_without_titles: false,
    };

    /// The same with people compared from their names on, so only the difference in
    /// conventions about titles is forgiven.
    pub const GMB_NAMES: Convention = Convention {
        without_misc: true,
        names_without_titles: true,
    };

    fn apply(&self, tokens: &[String], mut chunks: Vec<Chunk>) -> Vec<Chunk> {
        if self.without_misc {
            chunks.retain(|c| c.type_index != MISC);
        }
        if self.names_without_titles {
            for chunk in chunks.iter_mut().filter(|c| c.type_index == PER) {
                chunk.start += leading_title(tokens, chunk);
            }
        }
        chunks
    }
}

/// How many of `chunk`'s first words are a title ("President", "Prime Minister") followed
/// by a name; 0 when the chunk is no more than a title.
pub fn leading_title(tokens: &[String], chunk: &Chunk) -> usize {
    let words: Vec<&str> = tokens[chunk.start..chunk.end]
        .iter()
        .map(String::as_str)
        .collect();
    let title = lexicon::get().title_len(&words);
    if title < words.len() { title } else { 0 }
}

/// Type indices (see `label::TYPES`).
pub const PER: usize = 0;
pub const MISC: usize = 3;

impl Scores {
    pub fn add(&mut self, gold: &[Label], predicted: &[Label]) {
        self.add_chunks(gold.len(), chunks(gold), chunks(predicted));
    }

    /// Adds a sentence (`tokens`) compared under `convention`.
    pub fn add_as(
        &mut self,
        convention: Convention,
        tokens: &[String],
        gold: &[Label],
        predicted: &[Label],
    ) {
        self.add_chunks(
            gold.len(),
            convention.apply(tokens, chunks(gold)),
            convention.apply(tokens, chunks(predicted)),
        );
    }

    fn add_chunks(&mut self, tokens: usize, gold_chunks: Vec<Chunk>, predicted_chunks: Vec<Chunk>) {
        self.tokens += tokens;
        for chunk in &gold_chunks {
            self.by_type[chunk.type_index].2 += 1;
        }
        for chunk in &predicted_chunks {
            self.by_type[chunk.type_index].1 += 1;
            if gold_chunks.contains(chunk) {
                self.by_type[chunk.type_index].0 += 1;
            }
        }
    }

    fn prf((correct, predicted, gold): (usize, usize, usize)) -> (f64, f64, f64) {
        let p = if predicted == 0 {
            0.0
        } else {
            correct as f64 / predicted as f64
        };
        let r = if gold == 0 {
            0.0
        } else {
            correct as f64 / gold as f64
        };
        let f = if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        };
        (p, r, f)
    }

    fn total(&self) -> (usize, usize, usize) {
        self.by_type
            .iter()
            .fold((0, 0, 0), |a, t| (a.0 + t.0, a.1 + t.1, a.2 + t.2))
    }

    /// Overall F1.
    pub fn f1(&self) -> f64 {
        Self::prf(self.total()).2
    }

    /// F1 of type `type_index` (0 PER, 1 ORG, 2 LOC, 3 MISC).
    pub fn type_f1(&self, type_index: usize) -> f64 {
        Self::prf(self.by_type[type_index]).2
    }

    /// A table like `conlleval`'s.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let (correct, predicted, gold) = self.total();
        let _ = writeln!(
            out,
            "{} tokens, {gold} entities, {predicted} found, {correct} correct",
            self.tokens
        );
        let _ = writeln!(
            out,
            "{:<8} {:>9} {:>9} {:>9} {:>7}",
            "type", "precision", "recall", "F1", "gold"
        );
        for (t, counts) in self.by_type.iter().enumerate() {
            let (p, r, f) = Self::prf(*counts);
            let name = Label::from_index(1 + 2 * t).type_name().unwrap_or("?");
            let _ = writeln!(
                out,
                "{name:<8} {:>9.4} {:>9.4} {:>9.4} {:>7}",
                p, r, f, counts.2
            );
        }
        let (p, r, f) = Self::prf(self.total());
        let _ = writeln!(
            out,
            "{:<8} {:>9.4} {:>9.4} {:>9.4} {:>7}",
            "overall", p, r, f, gold
        );
        out
    }
}

/// Scores `model` on the gold labels of `documents`.
pub fn evaluate(model: &Model, documents: &[Document]) -> Scores {
    evaluate_as(model, documents, Convention::default())
}

/// Scores `model` on the gold labels of `documents`, compared under `convention`.
pub fn evaluate_as(model: &Model, documents: &[Document], convention: Convention) -> Scores {
    let mut scores = Scores::default();
    for document in documents {
        let sentences: Vec<Vec<&str>> = document
            .sentences
            .iter()
            .map(|s| s.tokens.iter().map(String::as_str).collect())
            .collect();
        let predicted = model.tag_document(&sentences);
        for (sentence, labels) in document.sentences.iter().zip(&predicted) {
            if let Some(gold) = &sentence.gold {
                scores.add_as(convention, &sentence.tokens, gold, labels);
            }
        }
    }
    scores
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\
        German JJ B-NP B-MISC\ncall NN I-NP O\n\nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n\n\
        -DOCSTART- -X- -X- O\n\nBRUSSELS NNP B-NP B-LOC\n";

    fn gold_tags(sentence: &Sentence) -> Vec<&'static str> {
        sentence.gold.iter().flatten().map(|l| l.as_str()).collect()
    }

    #[test]
    fn reads_documents_sentences_and_gold_tags() {
        let documents = documents(&lines(SAMPLE), &conll_tag);
        assert_eq!(documents.len(), 2);
        assert_eq!(documents[0].sentences.len(), 2);
        let first = &documents[0].sentences[0];
        assert_eq!(first.tokens, ["EU", "rejects", "German", "call"]);
        assert_eq!(gold_tags(first), ["B-ORG", "O", "B-MISC", "O"]);
        assert_eq!(documents[1].sentences[0].tokens, ["BRUSSELS"]);
    }

    #[test]
    fn gmb_tags_map_to_conll_types() {
        let gmb = "# sent_id = 1\nIraqi JJ B-gpe\nofficials NNS O\nin IN O\nJanuary NNP B-tim\n\n";
        let documents = documents(&lines(gmb), &gmb_tag);
        assert_eq!(
            gold_tags(&documents[0].sentences[0]),
            ["B-MISC", "O", "O", "O"]
        );
    }

    #[test]
    fn scores_count_whole_entities_only() {
        let parse = |tags: &str| -> Vec<Label> {
            tags.split(' ').map(|t| Label::parse(t).unwrap()).collect()
        };
        let mut scores = Scores::default();
        // Gold: PER(0..2), LOC(3). Predicted: PER(0..1) (wrong end), LOC(3) (right).
        scores.add(&parse("B-PER I-PER O B-LOC"), &parse("B-PER O O B-LOC"));
        assert_eq!(scores.by_type[0], (0, 1, 1));
        assert_eq!(scores.by_type[2], (1, 1, 1));
        assert!((scores.f1() - 0.5).abs() < 1e-9);
        assert!(scores.report().contains("overall"));
    }

    #[test]
    fn gmb_conventions_leave_out_misc_and_can_forgive_titles() {
        let parse = |tags: &str| -> Vec<Label> {
            tags.split(' ').map(|t| Label::parse(t).unwrap()).collect()
        };
        let tokens: Vec<String> = ["President", "Bush", "met", "Iraqi", "officials"]
            .iter()
            .map(|t| t.to_string())
            .collect();
        // GMB: the title inside the person, "Iraqi" (gpe) as MISC; the tagger: CoNLL's way.
        let gold = parse("B-PER I-PER O B-MISC O");
        let predicted = parse("O B-PER O B-MISC O");
        let mut plain = Scores::default();
        plain.add_as(Convention::default(), &tokens, &gold, &predicted);
        assert_eq!(plain.by_type[0], (0, 1, 1));
        assert_eq!(plain.by_type[3], (1, 1, 1));
        let mut gmb = Scores::default();
        gmb.add_as(Convention::GMB, &tokens, &gold, &predicted);
        assert_eq!(gmb.by_type[0], (0, 1, 1), "titles still count");
        assert_eq!(gmb.by_type[3], (0, 0, 0), "MISC left out");
        let mut names = Scores::default();
        names.add_as(Convention::GMB_NAMES, &tokens, &gold, &predicted);
        assert_eq!(names.by_type[0], (1, 1, 1), "both start at the name");
        // A name that is all title words keeps them ("President" alone is not emptied).
        let mut alone = Scores::default();
        alone.add_as(
            Convention::GMB_NAMES,
            &tokens[..1],
            &parse("B-PER"),
            &parse("B-PER"),
        );
        assert_eq!(alone.by_type[0], (1, 1, 1));
    }

    #[test]
    fn tagging_adds_one_column_and_passes_other_lines_through() {
        let model = Model::default();
        let out = tag_file(&model, SAMPLE);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "-DOCSTART- -X- -X- O");
        assert_eq!(lines[1], "");
        assert!(lines[2].starts_with("EU NNP B-NP B-ORG "));
        assert_eq!(lines.len(), SAMPLE.lines().count());
    }
}
