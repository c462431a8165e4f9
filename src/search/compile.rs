//! Turning a parsed query into a tantivy query, and remembering which words to highlight.
//!
//! Words are analysed exactly as the index analysed the text (so "talks" finds "talk").
//! An unscoped word is looked for in headline, body and captions, the headline weighing
//! three times the body. Typo tolerance and prefixes expand a word into the
//! indexed words it could mean; the expansions are bounded, and kept for highlighting.
//! A prefix reads the dictionary's range of words with that prefix, stopping at the
//! expansion limit. A typo runs a Levenshtein automaton over the dictionary (the one
//! tantivy's fuzzy query uses), so it reads only the words within the edit distance and
//! the dictionary paths that can still lead to one: its cost grows with the matching words,
//! not with the size of the dictionary (a walk over every word with the same first letter
//! took 10 s for one 32-word query on 200 articles).

use std::collections::{BTreeMap, BTreeSet};

use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, EmptyQuery, Occur, PhraseQuery, Query, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Searcher, Term};

use super::query::{Node, Scope};
use super::schema::{Fields, name_analyzer, text_analyzer};
use crate::error::{Error, Invalid, Result};
use crate::model::EntityKind;

/// Most indexed words one prefix may expand to.
const MAX_PREFIX_EXPANSIONS: usize = 128;
/// Most indexed words one misspelt word may expand to.
const MAX_TYPO_EXPANSIONS: usize = 16;
/// Typo-expanded words count this much of an exact match.
const TYPO_WEIGHT: f32 = 0.5;

/// The text fields an unscoped word is looked for in, with their weights. The lead is a
/// body paragraph, so the body covers it; the headline counts three times.
fn text_fields(fields: &Fields) -> [(Field, f32); 3] {
    [
        (fields.headline, 3.0),
        (fields.body, 1.0),
        (fields.captions, 1.0),
    ]
}

/// A compiled query and the words to highlight per field.
pub struct Compiled {
    pub query: Box<dyn Query>,
    pub highlights: BTreeMap<Field, BTreeSet<String>>,
}

pub struct Compiler<'a> {
    fields: &'a Fields,
    searcher: &'a Searcher,
    typo_tolerance: bool,
    /// The entity ids a name or id in `entity:` denotes.
    resolve_entity: &'a dyn Fn(&str) -> Result<Vec<String>>,
    text: TextAnalyzer,
    names: TextAnalyzer,
    highlights: BTreeMap<Field, BTreeSet<String>>,
}

impl<'a> Compiler<'a> {
    pub fn new(
        fields: &'a Fields,
        searcher: &'a Searcher,
        typo_tolerance: bool,
        resolve_entity: &'a dyn Fn(&str) -> Result<Vec<String>>,
    ) -> Self {
        Compiler {
            fields,
            searcher,
            typo_tolerance,
            resolve_entity,
            text: text_analyzer(),
            names: name_analyzer(),
            highlights: BTreeMap::new(),
        }
    }

    pub fn compile(mut self, node: &Node) -> Result<Compiled> {
        let query = self.node(node)?;
        Ok(Compiled {
            query,
            highlights: self.highlights,
        })
    }

    fn node(&mut self, node: &Node) -> Result<Box<dyn Query>> {
        match node {
            Node::And(items) => {
                let mut clauses = Vec::with_capacity(items.len());
                for item in items {
                    clauses.push(match item {
                        Node::Not(inner) => (Occur::MustNot, self.node(inner)?),
                        other => (Occur::Must, self.node(other)?),
                    });
                }
                if clauses.iter().all(|(occur, _)| *occur == Occur::MustNot) {
                    clauses.push((Occur::Must, Box::new(AllQuery)));
                }
                Ok(Box::new(BooleanQuery::new(clauses)))
            }
            Node::Or(items) => {
                let clauses = items
                    .iter()
                    .map(|item| Ok((Occur::Should, self.node(item)?)))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Box::new(BooleanQuery::new(clauses)))
            }
            Node::Not(inner) => Ok(Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery)),
                (Occur::MustNot, self.node(inner)?),
            ]))),
            Node::Word {
                scope,
                text,
                prefix,
                at,
            } => self.word(*scope, text, *prefix, *at),
            Node::Phrase { scope, text, at } => self.phrase(*scope, text, *at),
        }
    }

    fn word(
        &mut self,
        scope: Scope,
        text: &str,
        prefix: bool,
        at: usize,
    ) -> Result<Box<dyn Query>> {
        match scope {
            Scope::Kind => self.kind(text, at),
            Scope::Entity => self.entity(text),
            Scope::Tag => Ok(term(self.fields.tag, &text.to_lowercase())),
            Scope::Language => Ok(term(self.fields.language, &text.to_lowercase())),
            Scope::Source if prefix => self.prefix(&[(self.fields.source_text, 1.0)], text, at),
            Scope::Source => self.phrase(scope, text, at),
            _ if prefix => self.prefix(&self.scoped(scope), text, at),
            _ => {
                let words = analyze(&mut self.text, text);
                match words.as_slice() {
                    [] => Ok(Box::new(EmptyQuery)),
                    [word] => self.text_word(&self.scoped(scope), word),
                    _ => self.phrase(scope, text, at),
                }
            }
        }
    }

    /// The text fields a scope means.
    fn scoped(&self, scope: Scope) -> Vec<(Field, f32)> {
        match scope {
            Scope::Headline => vec![(self.fields.headline, 1.0)],
            Scope::Lead => vec![(self.fields.lead, 1.0)],
            Scope::Body => vec![(self.fields.body, 1.0)],
            Scope::Caption => vec![(self.fields.captions, 1.0)],
            _ => text_fields(self.fields).to_vec(),
        }
    }

    /// One analysed word in some text fields, with typo expansions when asked for.
    fn text_word(&mut self, fields: &[(Field, f32)], word: &str) -> Result<Box<dyn Query>> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for &(field, weight) in fields {
            clauses.push((Occur::Should, boost(term(field, word), weight)));
            self.highlight(field, word);
            if self.typo_tolerance {
                for similar in self.similar_words(field, word)? {
                    clauses.push((
                        Occur::Should,
                        boost(term(field, &similar), weight * TYPO_WEIGHT),
                    ));
                    self.highlight(field, &similar);
                }
            }
        }
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    fn phrase(&mut self, scope: Scope, text: &str, at: usize) -> Result<Box<dyn Query>> {
        let (fields, analyzer) = match scope {
            Scope::Source => (vec![(self.fields.source_text, 1.0)], &mut self.names),
            Scope::Kind => return self.kind(text, at),
            Scope::Entity => return self.entity(text),
            Scope::Tag => return Ok(term(self.fields.tag, &text.trim().to_lowercase())),
            Scope::Language => return Ok(term(self.fields.language, &text.trim().to_lowercase())),
            _ => (self.scoped(scope), &mut self.text),
        };
        let words = analyze(analyzer, text);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (field, weight) in fields {
            let query: Box<dyn Query> = match words.as_slice() {
                [] => return Ok(Box::new(EmptyQuery)),
                [word] => term(field, word),
                _ => Box::new(PhraseQuery::new(
                    words
                        .iter()
                        .map(|w| Term::from_field_text(field, w))
                        .collect(),
                )),
            };
            clauses.push((Occur::Should, boost(query, weight)));
            for word in &words {
                self.highlight(field, word);
            }
        }
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    fn prefix(&mut self, fields: &[(Field, f32)], text: &str, at: usize) -> Result<Box<dyn Query>> {
        let stem = text.to_lowercase();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for &(field, weight) in fields {
            let words = self.words_with_prefix(field, &stem, MAX_PREFIX_EXPANSIONS + 1)?;
            if words.len() > MAX_PREFIX_EXPANSIONS {
                return Err(Error::invalid(
                    "query",
                    Invalid::Query,
                    format!(
                        "\"{text}*\" matches more than {MAX_PREFIX_EXPANSIONS} words; use a longer \
                         prefix (at character {at})"
                    ),
                ));
            }
            for word in words {
                clauses.push((Occur::Should, boost(term(field, &word), weight)));
                self.highlight(field, &word);
            }
        }
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    fn kind(&mut self, text: &str, at: usize) -> Result<Box<dyn Query>> {
        let kind = match text.trim().to_lowercase().as_str() {
            "person" | "people" | "per" => EntityKind::Person,
            "organization" | "organisation" | "org" => EntityKind::Organization,
            "location" | "place" | "loc" => EntityKind::Location,
            "misc" => EntityKind::Misc,
            other => {
                return Err(Error::invalid(
                    "query",
                    Invalid::Query,
                    format!(
                        "kind:{other} is not a kind; use person, organization, location or misc \
                         (at character {at})"
                    ),
                ));
            }
        };
        Ok(term(self.fields.kind, kind.tag()))
    }

    fn entity(&mut self, text: &str) -> Result<Box<dyn Query>> {
        let ids = (self.resolve_entity)(text.trim())?;
        if ids.is_empty() {
            return Ok(Box::new(EmptyQuery));
        }
        let clauses = ids
            .iter()
            .map(|id| (Occur::Should, term(self.fields.entity, id)))
            .collect();
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    fn highlight(&mut self, field: Field, word: &str) {
        self.highlights
            .entry(field)
            .or_default()
            .insert(word.to_string());
    }

    /// Indexed words of `field` starting with `prefix`, at most `limit`, in order.
    fn words_with_prefix(
        &self,
        field: Field,
        prefix: &str,
        limit: usize,
    ) -> Result<BTreeSet<String>> {
        let mut words = BTreeSet::new();
        let end = prefix_end(prefix.as_bytes());
        for segment in self.searcher.segment_readers() {
            let index = segment
                .inverted_index(field)
                .map_err(|e| Error::internal("reading the term dictionary", e))?;
            let mut stream = index
                .terms()
                .range()
                .ge(prefix.as_bytes())
                .lt(&end)
                .into_stream()
                .map_err(|e| Error::internal("reading the term dictionary", e))?;
            while stream.advance() {
                if let Ok(word) = std::str::from_utf8(stream.key()) {
                    words.insert(word.to_string());
                }
                if words.len() >= limit {
                    return Ok(words);
                }
            }
        }
        Ok(words)
    }

    /// Indexed words of `field` within one or two edits of `word` (one for words of up to
    /// seven letters), sharing its first letter, closest first.
    fn similar_words(&self, field: Field, word: &str) -> Result<Vec<String>> {
        let max_edits = match word.chars().count() {
            0..=3 => return Ok(Vec::new()),
            4..=7 => 1,
            _ => 2,
        };
        let mut found: Vec<(u8, String)> = Vec::new();
        for segment in self.searcher.segment_readers() {
            let index = segment
                .inverted_index(field)
                .map_err(|e| Error::internal("reading the term dictionary", e))?;
            let (words, _) = similar_terms(index.terms(), word, max_edits)?;
            found.extend(words);
        }
        found.sort();
        found.dedup_by(|a, b| a.1 == b.1);
        found.truncate(MAX_TYPO_EXPANSIONS);
        Ok(found.into_iter().map(|(_, w)| w).collect())
    }
}

/// Most words one typo lookup collects from one segment before it stops: a bound on the
/// work whatever the dictionary holds (the closest [`MAX_TYPO_EXPANSIONS`] are kept).
const MAX_TYPO_CANDIDATES: usize = 1_000;

/// The words of `terms` within `max_edits` (an adjacent transposition counting as one) of
/// `word` that share its first letter, with their distances; and how many words the walk
/// read, which the automaton keeps to the words that match.
fn similar_terms(
    terms: &tantivy::termdict::TermDictionary,
    word: &str,
    max_edits: u8,
) -> Result<(Vec<(u8, String)>, usize)> {
    static BUILDERS: std::sync::OnceLock<[levenshtein_automata::LevenshteinAutomatonBuilder; 2]> =
        std::sync::OnceLock::new();
    let builders = BUILDERS.get_or_init(|| {
        [
            levenshtein_automata::LevenshteinAutomatonBuilder::new(1, true),
            levenshtein_automata::LevenshteinAutomatonBuilder::new(2, true),
        ]
    });
    let builder = &builders[usize::from(max_edits.clamp(1, 2) - 1)];
    let dfa = builder.build_dfa(word);
    let Some(first) = word.chars().next() else {
        return Ok((Vec::new(), 0));
    };
    let mut stream = terms
        .search(Levenshtein(&dfa))
        .into_stream()
        .map_err(|e| Error::internal("reading the term dictionary", e))?;
    let (mut found, mut read) = (Vec::new(), 0);
    while stream.advance() && found.len() < MAX_TYPO_CANDIDATES {
        read += 1;
        let Ok(candidate) = std::str::from_utf8(stream.key()) else {
            continue;
        };
        if candidate == word || !candidate.starts_with(first) {
            continue;
        }
        if let levenshtein_automata::Distance::Exact(distance) = dfa.eval(candidate) {
            found.push((distance, candidate.to_string()));
        }
    }
    Ok((found, read))
}

/// A Levenshtein DFA as an automaton over the term dictionary's FST.
struct Levenshtein<'a>(&'a levenshtein_automata::DFA);

impl tantivy_fst::Automaton for Levenshtein<'_> {
    type State = u32;

    fn start(&self) -> u32 {
        self.0.initial_state()
    }

    fn is_match(&self, state: &u32) -> bool {
        matches!(
            self.0.distance(*state),
            levenshtein_automata::Distance::Exact(_)
        )
    }

    fn can_match(&self, state: &u32) -> bool {
        *state != levenshtein_automata::SINK_STATE
    }

    fn accept(&self, state: &u32, byte: u8) -> u32 {
        self.0.transition(*state, byte)
    }
}

fn term(field: Field, word: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, word),
        IndexRecordOption::WithFreqs,
    ))
}

fn boost(query: Box<dyn Query>, weight: f32) -> Box<dyn Query> {
    if (weight - 1.0).abs() < f32::EPSILON {
        query
    } else {
        Box::new(BoostQuery::new(query, weight))
    }
}

/// The smallest byte string after every string starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    vec![u8::MAX; prefix.len() + 1]
}

/// The words an analyser makes of `text`.
pub fn analyze(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while stream.advance() {
        words.push(stream.token().text.clone());
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dictionary of 60,000 words, most sharing the misspelt word's first letter: the
    /// automaton reads only the words within the distance, where a walk over the first
    /// letter's range read them all; and it finds what the edit distance says.
    #[test]
    fn a_typo_lookup_reads_only_the_matching_words() {
        use tantivy::schema::{STRING, Schema};
        let mut schema = Schema::builder();
        let field = schema.add_text_field("word", STRING);
        let index = tantivy::Index::create_in_ram(schema.build());
        let mut writer: tantivy::IndexWriter = index.writer(50_000_000).unwrap();
        let mut words: Vec<String> = (0..60_000).map(|i| format!("k{i:06x}q")).collect();
        words.extend(["kerry", "kery", "krery", "kerrey", "carry", "kerr"].map(String::from));
        for word in &words {
            writer
                .add_document(tantivy::doc!(field => word.as_str()))
                .unwrap();
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let segments = searcher.segment_readers();
        let mut found = Vec::new();
        let mut read = 0;
        for segment in segments {
            let inverted = segment.inverted_index(field).unwrap();
            let (words, n) = similar_terms(inverted.terms(), "kerry", 1).unwrap();
            found.extend(words);
            read += n;
        }
        found.sort();
        assert_eq!(
            found,
            vec![
                (1, "kerr".to_string()),
                (1, "kerrey".to_string()),
                (1, "kery".to_string()),
                (1, "krery".to_string()),
            ],
            "one edit, a transposition counting as one, same first letter"
        );
        assert!(read <= 6, "read {read} words for 4 matches");
    }
}
