//! Named entities: finding names, deciding what they are, and grouping their mentions.
//!
//! The tagger is rule-based and works in three passes, one file each:
//!
//! 1. **Scan** (`scan.rs`). Each sentence is cut into runs of capitalised words (joined
//!    across particles such as "of", "de", "al-"). A run is split where a title stands ("US
//!    | Secretary of State | John Kerry") and where a known demonym or place prefixes a name
//!    ("Turkish | Twitter"). Each piece is looked up in the lexicon and collects votes for
//!    its kind from its context: a title before it, ", who" after it, "city of" before it,
//!    and so on.
//! 2. **Confirm** (`confirm.rs`). Pieces with the same name key are gathered. Capitals prove
//!    nothing at the start of a sentence or in a title-case heading, so such pieces survive
//!    only if the lexicon knows them or the same name occurs elsewhere in the article where
//!    capitals do carry meaning.
//! 3. **Group** (`group.rs`). Short forms join the long form they abbreviate (a surname
//!    joins the full name, "Nusra" joins "al-Nusra Front", an acronym joins the name whose
//!    initials it spells or that defined it in parentheses). Each entity's kind is decided
//!    by the lexicon or the votes of all its mentions.
//!
//! The trained tagger (`ner/`) reads the whole article before pass 1: where it labels most of
//! a piece's tokens with one type, that is a strong vote for the kind, and it confirms pieces
//! whose capitals could merely start a sentence. The curated lists still win.
//!
//! This file runs the passes (`find_entities`) and holds what they hand each other: the
//! occurrences the scan finds, the votes for their kind, and the clusters of one name.

mod confirm;
mod group;
mod scan;

use super::lexicon::{self, Known};
use super::ner;
use super::tokens::{Token, sentences, tokenize};
use crate::model::{EntityKind, name_key};
use scan::Scanner;

/// Which field of the article a piece of text belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Headline,
    Body,
}

/// A stretch of text analysed as a unit: the headline, or one block of the body.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub field: Field,
    /// Byte offset of `text` in its field.
    pub offset: usize,
    pub text: &'a str,
    /// A heading in title case, where capitals carry no information.
    pub title_like: bool,
}

/// Evidence for an entity's kind. Strong votes come from unambiguous context such as a
/// preceding title; weak ones from hints such as "in" before a name.
#[derive(Debug, Clone, Copy, Default)]
pub struct Votes {
    strong: [u16; 4],
    weak: [u16; 4],
}

/// Counts saturate: a body repeating one name 100,000 times (2 MiB of it) would overflow
/// a u16, and past tens of thousands of votes the winner is settled anyway.
impl Votes {
    fn strong(&mut self, kind: EntityKind) {
        let count = &mut self.strong[kind.index()];
        *count = count.saturating_add(1);
    }

    fn weak(&mut self, kind: EntityKind) {
        let count = &mut self.weak[kind.index()];
        *count = count.saturating_add(1);
    }

    fn add(&mut self, other: &Votes) {
        for i in 0..4 {
            self.strong[i] = self.strong[i].saturating_add(other.strong[i]);
            self.weak[i] = self.weak[i].saturating_add(other.weak[i]);
        }
    }

    /// The kind with the most evidence, strong votes first; `None` without any.
    fn winner(&self) -> Option<EntityKind> {
        let score = |i: usize| u32::from(self.strong[i]) * 3 + u32::from(self.weak[i]);
        let best = (0..4).max_by_key(|&i| (score(i), std::cmp::Reverse(i)))?;
        (score(best) > 0).then_some(EntityKind::ALL[best])
    }

    fn has_strong(&self) -> bool {
        self.strong.iter().any(|&n| n > 0)
    }
}

/// One occurrence of a name in the headline or body.
#[derive(Debug, Clone)]
pub struct Occurrence {
    pub field: Field,
    /// Byte range in the field.
    pub start: usize,
    pub end: usize,
    pub surface: String,
    /// Followed by "'s": the name is an owner here, not a grammatical subject.
    pub possessive: bool,
    known: Option<Known>,
    votes: Votes,
    /// The title written before it, lower case ("foreign minister").
    pub title: Option<String>,
    /// The title as written, with what qualifies it ("US Secretary of State").
    pub description: Option<String>,
    /// Capitals here may be sentence-initial or title case, so the name needs confirming.
    unconfirmed: bool,
    /// An acronym defined right after it in parentheses: "… Red Cross (ICRC)".
    defines: Option<String>,
}

/// An entity found in one article, with all its occurrences.
#[derive(Debug, Clone)]
pub struct FoundEntity {
    pub name: String,
    /// `None` for a lone name with no evidence of its kind ("Kerry arrived"): kept only if
    /// the store already knows an entity by that name.
    pub kind: Option<EntityKind>,
    pub occurrences: Vec<Occurrence>,
    /// Titles written before its mentions ("secretary of state").
    pub titles: Vec<String>,
    /// The first title as written ("US Secretary of State").
    pub description: Option<String>,
}

impl FoundEntity {
    /// Distinct surface forms, in order of first appearance.
    pub fn surface_forms(&self) -> Vec<String> {
        let mut forms: Vec<String> = Vec::new();
        for occurrence in &self.occurrences {
            if !forms.contains(&occurrence.surface) {
                forms.push(occurrence.surface.clone());
            }
        }
        forms
    }
}

/// Finds the entities of an article given as segments.
pub fn find_entities(segments: &[Segment<'_>]) -> Vec<FoundEntity> {
    let lex = lexicon::get();
    let tokenized: Vec<(Vec<Token>, Vec<std::ops::Range<usize>>)> = segments
        .iter()
        .map(|segment| {
            let tokens = tokenize(segment.text);
            let sentences = sentences(segment.text, &tokens);
            (tokens, sentences)
        })
        .collect();
    // The tagger reads the whole article at once: what a word does in one sentence is
    // evidence in another.
    let words: Vec<Vec<&str>> = segments
        .iter()
        .zip(&tokenized)
        .flat_map(|(segment, (tokens, sentences))| {
            sentences.iter().map(move |range| {
                tokens[range.clone()]
                    .iter()
                    .map(|t| t.text(segment.text))
                    .collect()
            })
        })
        .collect();
    let labels = match ner::shipped() {
        Ok(model) => model.tag_document(&words),
        Err(_) => Vec::new(),
    };
    let mut labels = labels.iter();
    let mut occurrences = Vec::new();
    for (segment, (tokens, sentences)) in segments.iter().zip(&tokenized) {
        for sentence in sentences {
            let mut scanner = Scanner {
                lex,
                segment,
                tokens: &tokens[sentence.clone()],
                labels: labels.next().map_or(&[], Vec::as_slice),
                description: None,
                out: &mut occurrences,
            };
            scanner.scan();
        }
    }
    group::group(lex, confirm::by_name(lex, occurrences))
}

/// Lower-case words that join the capitalised words of one name.
const PARTICLES: &[&str] = &[
    "of", "de", "da", "del", "della", "der", "den", "van", "von", "du", "la", "le", "bin", "ibn",
    "al", "el", "y",
];

/// The words of a name key-by-key, with particles and a leading "al" dropped, so that
/// "al-Nusra Front" and "Nusra Front" compare equal at the tail.
fn name_words(name: &str) -> Vec<String> {
    name.split(|c: char| c.is_whitespace() || c == '-')
        .map(name_key)
        .filter(|w| !w.is_empty() && !PARTICLES.contains(&w.as_str()) && w != "the")
        .collect()
}

/// A cluster of occurrences being assembled into an entity.
struct Cluster {
    occurrences: Vec<Occurrence>,
    known: Option<Known>,
    votes: Votes,
    confirmed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entities(text: &str) -> Vec<(String, EntityKind)> {
        let segment = Segment {
            field: Field::Body,
            offset: 0,
            text,
            title_like: false,
        };
        find_entities(&[segment])
            .into_iter()
            .filter_map(|e| Some((e.name, e.kind?)))
            .collect()
    }

    fn has(found: &[(String, EntityKind)], name: &str, kind: EntityKind) -> bool {
        found.iter().any(|(n, k)| n == name && *k == kind)
    }

    #[test]
    fn splits_titles_from_names_and_resolves_surnames() {
        let found = entities(
            "US Secretary of State John Kerry met Russian Foreign Minister Sergei Lavrov. \
             Kerry said Lavrov agreed.",
        );
        assert!(has(&found, "John Kerry", EntityKind::Person), "{found:?}");
        assert!(
            has(&found, "Sergei Lavrov", EntityKind::Person),
            "{found:?}"
        );
        assert!(
            has(&found, "United States", EntityKind::Location),
            "{found:?}"
        );
        assert!(
            !found.iter().any(|(n, _)| n == "Kerry" || n == "Lavrov"),
            "{found:?}"
        );
    }

    #[test]
    fn short_forms_of_countries_join_the_full_name_and_titles_become_descriptions() {
        let text = "The United States said talks would go on. Officials from the US added \
                    that U.S. envoys and US Secretary of State John Kerry would attend.";
        let segment = Segment {
            field: Field::Body,
            offset: 0,
            text,
            title_like: false,
        };
        let found = find_entities(&[segment]);
        let us: Vec<&FoundEntity> = found.iter().filter(|e| e.name == "United States").collect();
        assert_eq!(us.len(), 1, "{found:?}");
        assert_eq!(us[0].occurrences.len(), 4, "{:?}", us[0].occurrences);
        let kerry = found.iter().find(|e| e.name == "John Kerry").unwrap();
        assert_eq!(kerry.description.as_deref(), Some("US Secretary of State"));
        assert_eq!(kerry.titles, ["secretary of state"]);
    }

    #[test]
    fn ignores_sentence_initial_words_weekdays_and_pronouns() {
        let found = entities("Residents fled on Friday. He said They left. Teams met in Geneva.");
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Geneva"], "{found:?}");
    }

    #[test]
    fn person_cue_who_and_place_cue_city() {
        let found = entities(
            "The envoy, Staffan de Mistura, who said little, visited the town of Daraya and \
             Manbij city.",
        );
        assert!(
            has(&found, "Staffan de Mistura", EntityKind::Person),
            "{found:?}"
        );
        assert!(has(&found, "Daraya", EntityKind::Location), "{found:?}");
        assert!(has(&found, "Manbij", EntityKind::Location), "{found:?}");
    }

    #[test]
    fn acronyms_join_the_name_that_defines_them() {
        let found = entities(
            "The International Widget Council (IWC) met. Later the IWC said it was pleased.",
        );
        assert_eq!(
            found,
            [(
                "International Widget Council".to_string(),
                EntityKind::Organization
            )]
        );
    }

    #[test]
    fn title_case_headings_keep_only_known_or_confirmed_names() {
        let heading = Segment {
            field: Field::Body,
            offset: 0,
            text: "We Do Not Support an Independent Kurd Initiative For Syria",
            title_like: true,
        };
        let found: Vec<String> = find_entities(&[heading])
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert!(found.contains(&"Syria".to_string()), "{found:?}");
        assert!(
            !found
                .iter()
                .any(|n| n.contains("Support") || n.contains("Initiative"))
        );
    }
}
