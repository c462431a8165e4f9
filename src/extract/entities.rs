//! Named entities: finding names, deciding what they are, and grouping their mentions.
//!
//! The tagger is rule-based and works in three passes:
//!
//! 1. **Scan.** Each sentence is cut into runs of capitalised words (joined across particles
//!    such as "of", "de", "al-"). A run is split where a title stands ("US | Secretary of
//!    State | John Kerry") and where a known demonym or place prefixes a name ("Turkish |
//!    Twitter"). Each piece is looked up in the lexicon and collects votes for its kind from
//!    its context: a title before it, ", who" after it, "city of" before it, and so on.
//! 2. **Confirm.** Capitals prove nothing at the start of a sentence or in a title-case
//!    heading, so such pieces survive only if the lexicon knows them or the same name occurs
//!    elsewhere in the article where capitals do carry meaning.
//! 3. **Group.** Pieces with the same name key form an entity; short forms join the long form
//!    they abbreviate (a surname joins the full name, "Nusra" joins "al-Nusra Front", an
//!    acronym joins the name whose initials it spells or that defined it in parentheses).
//!    Each entity's kind is decided by the lexicon or the votes of all its mentions.
//!
//! The trained tagger (`ner/`) reads the whole article before pass 1: where it labels most of
//! a piece's tokens with one type, that is a strong vote for the kind, and it confirms pieces
//! whose capitals could merely start a sentence. The curated lists still win.

use std::collections::HashMap;

use super::lexicon::{self, Known, Lexicon};
use super::ner::{self, Label};
use super::tokens::{Token, TokenKind, is_all_caps, sentences, tokenize};
use crate::model::{EntityKind, name_key};

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
    group(lex, occurrences)
}

/// Lower-case words that join the capitalised words of one name.
const PARTICLES: &[&str] = &[
    "of", "de", "da", "del", "della", "der", "den", "van", "von", "du", "la", "le", "bin", "ibn",
    "al", "el", "y",
];

/// Words before a name that suggest a place: "in Geneva".
const PLACE_PREPOSITIONS: &[&str] = &[
    "in",
    "at",
    "near",
    "from",
    "into",
    "across",
    "outside",
    "inside",
    "around",
    "towards",
    "toward",
    "throughout",
    "to",
];

/// Nouns next to a name that make it a place: "city of Aleppo", "Manbij city".
const PLACE_NOUNS: &[&str] = &[
    "city",
    "town",
    "village",
    "suburb",
    "suburbs",
    "province",
    "region",
    "capital",
    "district",
    "county",
    "state",
    "island",
    "outskirts",
    "port",
    "area",
    "neighbourhood",
    "neighborhood",
];

/// Lower-case prefixes hyphenated or apostrophed to names: "al-Nusra", "d'Ivoire".
const NAME_PREFIXES: &[&str] = &[
    "al", "el", "ad", "ad", "an", "ar", "as", "ash", "at", "az", "bin", "ibn", "abu", "d", "l",
    "o", "de", "di", "da", "du", "van", "von", "le", "la", "mc", "mac", "ul", "ur",
];

/// Last words that make a name an event, award, law or work rather than a person:
/// "Satyajit Ray Award", "London Film Festival".
const MISC_HEADS: &[&str] = &[
    "award",
    "awards",
    "trophy",
    "prize",
    "cup",
    "festival",
    "championship",
    "championships",
    "games",
    "olympics",
    "open",
    "war",
    "act",
    "treaty",
    "summit",
    "conference",
    "show",
    "marathon",
    "tournament",
    "series",
    "oscars",
    "medal",
    "day",
    "agreement",
    "accord",
];

/// Courtesy titles, written with or without a full stop.
const HONORIFICS: &[&str] = &[
    "mr", "mrs", "ms", "miss", "dr", "prof", "sir", "dame", "lord", "lady",
];

/// Whether a word can be part of a name: capitalised ("Kerry"), a lower-case particle
/// hyphenated to a capitalised word ("al-Nusra", "d'Ivoire"), or camel case ("eBay").
fn is_name_word(word: &str) -> bool {
    let mut chars = word.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if !first.is_alphabetic() {
        return false;
    }
    if first.is_uppercase() {
        return true;
    }
    if let Some(at) = word.find(['-', '\'', '’']) {
        let (prefix, rest) = word.split_at(at);
        let mut rest = rest.chars();
        rest.next();
        return NAME_PREFIXES.contains(&prefix) && rest.next().is_some_and(char::is_uppercase);
    }
    word.chars().nth(1).is_some_and(char::is_uppercase)
}

struct Scanner<'s, 'a> {
    lex: &'static Lexicon,
    segment: &'s Segment<'a>,
    tokens: &'s [Token],
    /// The trained tagger's label for each token (empty without a model).
    labels: &'s [Label],
    /// The title as written before the piece being emitted, if any.
    description: Option<String>,
    out: &'s mut Vec<Occurrence>,
}

impl Scanner<'_, '_> {
    fn word(&self, i: usize) -> &str {
        self.tokens.get(i).map_or("", |t| t.text(self.segment.text))
    }

    fn is_word(&self, i: usize) -> bool {
        self.tokens
            .get(i)
            .is_some_and(|t| t.kind == TokenKind::Word)
    }

    fn is_name(&self, i: usize) -> bool {
        self.is_word(i) && is_name_word(self.word(i)) && !self.is_contraction(i)
    }

    /// "I'm", "It's", "Don't": capitalised, but not names.
    fn is_contraction(&self, i: usize) -> bool {
        let word = self.word(i);
        let Some(at) = word.find(['\'', '’']) else {
            return false;
        };
        let (head, tail) = word.split_at(at);
        let tail: String = tail.chars().skip(1).collect::<String>().to_lowercase();
        self.lex.is_stop(head)
            || tail == "t"
            || ["m", "ve", "ll", "re", "d"].contains(&tail.as_str())
    }

    /// The text from token `a` to token `b - 1`, as written.
    fn span_text(&self, a: usize, b: usize) -> &str {
        &self.segment.text[self.tokens[a].start..self.tokens[b - 1].end]
    }

    /// Index of the first token of the sentence proper, past opening quotes and dashes.
    fn sentence_start(&self) -> usize {
        self.tokens
            .iter()
            .position(|t| matches!(t.kind, TokenKind::Word | TokenKind::Number))
            .unwrap_or(0)
    }

    fn scan(&mut self) {
        let mut i = 0;
        while i < self.tokens.len() {
            if !self.is_name(i) {
                i += 1;
                continue;
            }
            let mut j = i + 1;
            loop {
                if self.is_name(j) {
                    j += 1;
                } else if self.joins(j) {
                    j += if self.word(j) == "of" && self.word(j + 1) == "the" {
                        2
                    } else {
                        1
                    };
                } else {
                    break;
                }
            }
            if self.segment.title_like {
                self.scan_title_run(i, j);
            } else {
                self.run(i, j);
            }
            i = j;
        }
    }

    /// Whether the particle or ampersand at `j` continues the current name.
    fn joins(&self, j: usize) -> bool {
        let word = self.word(j);
        let next_is_name = |k: usize| self.is_name(k);
        match word {
            "&" => next_is_name(j + 1),
            "of" if self.word(j + 1) == "the" => next_is_name(j + 2),
            "for" => {
                let previous = self.word(j.wrapping_sub(1));
                (self.lex.is_org_head(previous) || self.lex.is_title_word(previous))
                    && next_is_name(j + 1)
            }
            w if PARTICLES.contains(&w) => next_is_name(j + 1),
            _ => false,
        }
    }

    /// In a title-case heading only names the lexicon knows can be told from ordinary
    /// capitalised words; the rest are kept as unconfirmed and survive only if the article
    /// uses them as names elsewhere.
    fn scan_title_run(&mut self, a: usize, b: usize) {
        let mut i = a;
        while i < b {
            let mut matched = 0;
            for end in (i + 1..=b.min(i + 6)).rev() {
                if let Some(known) = self.lex.lookup(self.span_text(i, end))
                    && known.curated
                {
                    self.emit(i, end, Some(known.clone()), Votes::default(), None, false);
                    matched = end - i;
                    break;
                }
            }
            if matched > 0 {
                i += matched;
                continue;
            }
            if !self.lex.is_stop(self.word(i)) && !self.lex.is_calendar(self.word(i)) {
                self.emit(i, i + 1, None, Votes::default(), None, true);
            }
            i += 1;
        }
    }

    fn known(&self, a: usize, b: usize) -> Option<Known> {
        self.lex.lookup(self.span_text(a, b)).cloned()
    }

    fn strippable(&self, i: usize) -> bool {
        let w = self.word(i);
        self.lex.is_stop(w) || self.lex.is_calendar(w) || !self.is_name(i)
    }

    /// Handles one run of capitalised words `[a, b)`.
    fn run(&mut self, mut a: usize, mut b: usize) {
        // "The Hague" is a name; "The talks" is not.
        if b - a >= 2
            && let Some(known) = self.known(a, b)
        {
            self.emit(a, b, Some(known), Votes::default(), None, false);
            return;
        }
        while a < b && self.strippable(a) {
            a += 1;
        }
        while b > a && self.strippable(b - 1) {
            b -= 1;
        }
        if a == b || self.lex.is_junk(self.span_text(a, b)) {
            return;
        }
        // A sentence-initial common word ("Residents", "Police") is not part of the name.
        if a == self.sentence_start()
            && self.lex.is_common_word(self.word(a))
            && self.lex.lookup(self.word(a)).is_none()
            && !self.lex.is_given_name(self.word(a))
            && self.lex.title_len(&[self.word(a)]) == 0
        {
            if b - a == 1 {
                // Alone it may still be a name ("Bush said"): keep it, unconfirmed.
                self.emit(a, b, None, Votes::default(), None, true);
                return;
            }
            a += 1;
            while a < b && self.strippable(a) {
                a += 1;
            }
            if a == b {
                return;
            }
        }
        if let Some(known) = self.known(a, b) {
            self.emit(a, b, Some(known), Votes::default(), None, false);
            return;
        }
        // "International Committee of the Red Cross", "Fath Alsham Front".
        let org_head = (b - a >= 2 && self.lex.is_org_head(self.word(b - 1)))
            || (a..b).any(|k| {
                self.lex.is_org_head(self.word(k)) && matches!(self.word(k + 1), "of" | "for")
            });
        if org_head {
            let mut votes = Votes::default();
            votes.strong(EntityKind::Organization);
            self.emit(a, b, None, votes, None, false);
            return;
        }
        // Titles split the run: "US | Secretary of State | John Kerry".
        let mut piece_start = a;
        let mut title: Option<String> = None;
        let mut k = a;
        while k < b {
            let words: Vec<&str> = (k..b).map(|i| self.word(i)).collect();
            let len = self.lex.title_len(&words);
            if len > 0 {
                self.description = title
                    .as_ref()
                    .map(|_| self.span_text(a, piece_start).to_string());
                self.piece(piece_start, k, title.take());
                let this = self.span_text(k, k + len).to_lowercase();
                title = Some(match title.take() {
                    Some(previous) => format!("{previous} {this}"),
                    None => this,
                });
                k += len;
                piece_start = k;
            } else {
                k += 1;
            }
        }
        self.description = title
            .as_ref()
            .filter(|_| piece_start > a)
            .map(|_| self.span_text(a, piece_start).to_string());
        self.piece(piece_start, b, title);
        self.description = None;
    }

    /// Handles a piece `[a, b)` of a run, `title` being the title written before it.
    fn piece(&mut self, mut a: usize, mut b: usize, title: Option<String>) {
        while a < b && (self.strippable(a) || PARTICLES.contains(&self.word(a))) {
            a += 1;
        }
        while b > a && (self.strippable(b - 1) || PARTICLES.contains(&self.word(b - 1))) {
            b -= 1;
        }
        if a == b || (a..b).all(|i| self.lex.title_len(&[self.word(i)]) > 0) {
            return;
        }
        loop {
            // Two curated names side by side beat a corpus label on the pair ("Gulf Arab").
            if let Some((end, left, right)) = self.curated_pair(a, b) {
                self.emit(a, end, Some(left), Votes::default(), None, false);
                self.emit(end, b, Some(right), Votes::default(), None, false);
                return;
            }
            if let Some(known) = self.known(a, b) {
                self.emit(
                    a,
                    b,
                    Some(known),
                    self.votes(a, b, title.is_some()),
                    title,
                    false,
                );
                return;
            }
            // A known prefix: split off a demonym always ("Turkish | Twitter"), a place only
            // when what follows is known too ("Gulf | Arab").
            let prefix = (a + 1..b)
                .rev()
                .find_map(|end| self.known(a, end).map(|known| (end, known)));
            let Some((end, known)) = prefix else {
                break;
            };
            // A person's name after an organisation or place: "BBC | Michael Howard".
            let person_follows = b - end >= 2 && self.lex.is_given_name(self.word(end));
            let split = match known.kind {
                EntityKind::Misc => true,
                EntityKind::Location | EntityKind::Organization if person_follows => true,
                EntityKind::Location => self.known(end, b).is_some(),
                // "BBC Sport", "Reuters News": an organisation's own department or product.
                EntityKind::Organization
                    if (end..b).all(|i| self.lex.is_common_word(self.word(i))) =>
                {
                    let mut votes = self.votes(a, b, title.is_some());
                    votes.strong(EntityKind::Organization);
                    self.emit(a, b, None, votes, title, false);
                    return;
                }
                _ => false,
            };
            if !split {
                break;
            }
            self.emit(a, end, Some(known), Votes::default(), None, false);
            a = end;
            // "Scottish & Newcastle": what follows a split starts at a name.
            while a < b && !self.is_name(a) {
                a += 1;
            }
            if a == b {
                return;
            }
        }
        let votes = self.votes(a, b, title.is_some());
        self.emit(a, b, None, votes, title, false);
    }

    /// A split of `[a, b)` into two curated names, when the whole is not itself curated.
    fn curated_pair(&self, a: usize, b: usize) -> Option<(usize, Known, Known)> {
        if b - a < 2 || self.known(a, b).is_some_and(|k| k.curated) {
            return None;
        }
        (a + 1..b).find_map(|end| {
            let left = self.known(a, end).filter(|k| k.curated)?;
            let right = self.known(end, b).filter(|k| k.curated)?;
            Some((end, left, right))
        })
    }

    /// Kind evidence for the piece `[a, b)` from its surroundings.
    fn votes(&self, a: usize, b: usize, after_title: bool) -> Votes {
        let lex = self.lex;
        let mut votes = Votes::default();
        let lower = |i: usize| self.word(i).to_lowercase();
        let before = if a > 0 { lower(a - 1) } else { String::new() };
        let before2 = if a > 1 { lower(a - 2) } else { String::new() };
        let mut after_index = b;
        if self
            .tokens
            .get(b)
            .is_some_and(|t| t.kind == TokenKind::Possessive)
        {
            after_index += 1;
        }
        let after = lower(after_index);
        let after2 = lower(after_index + 1);
        let words = b - a;

        // "Lord of the Rings": a title before an ordinary word makes no person.
        let ordinary = words == 1 && lex.is_common_word(self.word(a));
        if (after_title || HONORIFICS.contains(&before.trim_end_matches('.'))) && !ordinary {
            votes.strong(EntityKind::Person);
        }
        if lex.title_len(&[before.as_str()]) > 0 && before.chars().all(char::is_lowercase) {
            votes.strong(EntityKind::Person);
        }
        if after == "who" || (after == "," && after2 == "who") {
            votes.strong(EntityKind::Person);
        }
        if words >= 2 && lex.is_given_name(self.word(a)) {
            votes.strong(EntityKind::Person);
        }
        if lex.is_speech_verb(&after) && b == after_index {
            votes.weak(EntityKind::Person);
        }
        if PLACE_NOUNS.contains(&after.as_str())
            || (before == "of" && PLACE_NOUNS.contains(&before2.as_str()))
        {
            votes.strong(EntityKind::Location);
        }
        if words >= 2 && lex.is_loc_head(self.word(b - 1)) {
            votes.strong(EntityKind::Location);
        }
        if words >= 2 && MISC_HEADS.contains(&self.word(b - 1).to_lowercase().as_str()) {
            votes.strong(EntityKind::Misc);
        }
        // "in Geneva" hints at a place; "in Damien Duff and Arjen Robben" shows that for
        // longer names it hints at nothing.
        if words == 1
            && (PLACE_PREPOSITIONS.contains(&before.as_str())
                || (before == "the" && PLACE_PREPOSITIONS.contains(&before2.as_str())))
        {
            votes.weak(EntityKind::Location);
        }
        if words == 1 && is_all_caps(self.word(a)) && self.word(a).len() <= 6 {
            votes.weak(EntityKind::Organization);
        }
        votes
    }

    /// The kind the tagger gives most of the tokens `[a, b)`, if it gives one to more than
    /// half of them.
    fn tagged_kind(&self, a: usize, b: usize) -> Option<EntityKind> {
        let labels = self.labels.get(a..b)?;
        let mut counts = [0usize; 4];
        for label in labels {
            if let Some(t) = label.type_index() {
                counts[t] += 1;
            }
        }
        let (best, &n) = counts
            .iter()
            .enumerate()
            .max_by_key(|&(i, n)| (*n, 4 - i))?;
        (n * 2 > labels.len()).then(|| EntityKind::ALL[best])
    }

    fn emit(
        &mut self,
        a: usize,
        b: usize,
        known: Option<Known>,
        mut votes: Votes,
        title: Option<String>,
        unconfirmed: bool,
    ) {
        let surface = self.span_text(a, b).to_string();
        if self.lex.is_junk(&surface) {
            return;
        }
        // The trained tagger's view counts as strong evidence of the kind, and confirms a
        // name whose capitals could be sentence-initial (not in title-case headings, which
        // it never saw in training).
        let tagged = self.tagged_kind(a, b);
        if let Some(kind) = tagged {
            votes.strong(kind);
        }
        let confirmed_by_tagger = tagged.is_some() && !self.segment.title_like;
        // A sentence-initial single word that is common in lower case needs confirming
        // unless the lexicon knows it.
        let initial_common = a == self.sentence_start()
            && b - a == 1
            && self.lex.is_common_word(&surface)
            && known.is_none();
        let possessive = self
            .tokens
            .get(b)
            .is_some_and(|t| t.kind == TokenKind::Possessive);
        // "Long Name (ACR)" defines an acronym, if the acronym starts like the name.
        let acronym = self.word(b + 1);
        let defines = (self.word(b) == "("
            && self.word(b + 2) == ")"
            && is_all_caps(acronym)
            && b - a >= 2
            && acronym.chars().next() == self.word(a).chars().next())
        .then(|| acronym.to_string());
        let description = title.as_ref().and(self.description.take());
        let offset = self.segment.offset;
        self.out.push(Occurrence {
            field: self.segment.field,
            start: offset + self.tokens[a].start,
            end: offset + self.tokens[b - 1].end,
            surface,
            possessive,
            known,
            votes,
            title,
            description,
            unconfirmed: (unconfirmed || initial_common || self.segment.title_like)
                && !confirmed_by_tagger,
            defines,
        });
    }
}

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

impl Cluster {
    /// The longest, then most frequent, then earliest surface form; or the lexicon's name.
    fn name(&self) -> String {
        if let Some(known) = self.known.as_ref().filter(|k| k.curated) {
            return known.canonical.clone();
        }
        let mut best: Option<(&str, usize, usize)> = None;
        for occurrence in &self.occurrences {
            let surface = occurrence.surface.as_str();
            let pieces = surface
                .split(|c: char| c.is_whitespace() || c == '-')
                .filter(|p| !p.is_empty())
                .count();
            let count = self
                .occurrences
                .iter()
                .filter(|o| o.surface == surface)
                .count();
            if best.is_none_or(|(_, p, c)| (pieces, count) > (p, c)) {
                best = Some((surface, pieces, count));
            }
        }
        best.map_or_else(String::new, |(s, _, _)| s.to_string())
    }

    fn kind(&self) -> Option<EntityKind> {
        if let Some(known) = self.known.as_ref().filter(|k| k.curated) {
            return Some(known.kind);
        }
        let mut votes = self.votes;
        if let Some(known) = &self.known {
            // Corpus statistics count as much as a strong vote of context.
            votes.strong(known.kind);
        }
        if let Some(kind) = votes.winner() {
            return Some(kind);
        }
        // An unexplained name of two or three capitalised words is most often a person
        // ("Amma Asante"); one made of ordinary words is more often a title or event ("Way
        // Of Life", "Bullet Boy").
        let lex = lexicon::get();
        let longest = self
            .occurrences
            .iter()
            .max_by_key(|o| name_words(&o.surface).len())?;
        let words: Vec<&str> = longest
            .surface
            .split_whitespace()
            .filter(|w| !PARTICLES.contains(w))
            .collect();
        if words.len() < 2 {
            return None;
        }
        if words.len() <= 3 && !words.iter().any(|w| lex.is_common_word(w)) {
            Some(EntityKind::Person)
        } else {
            Some(EntityKind::Misc)
        }
    }

    fn absorb(&mut self, other: Cluster) {
        self.votes.add(&other.votes);
        self.confirmed |= other.confirmed;
        if self.known.is_none() {
            self.known = other.known;
        }
        self.occurrences.extend(other.occurrences);
    }
}

/// Pass 2 and 3: confirm, group and decide kinds.
fn group(lex: &Lexicon, occurrences: Vec<Occurrence>) -> Vec<FoundEntity> {
    // Group by the key of the canonical name (so "US" and "U.S." meet under "United States").
    let mut clusters: Vec<Cluster> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for occurrence in occurrences {
        let key = match &occurrence.known {
            Some(known) if known.curated => name_key(&known.canonical),
            _ => name_key(&occurrence.surface),
        };
        if key.is_empty() {
            continue;
        }
        let confirmed = !occurrence.unconfirmed
            || occurrence
                .known
                .as_ref()
                .is_some_and(|k| k.curated || !lex.is_common_word(&occurrence.surface));
        let index = *by_key.entry(key).or_insert_with(|| {
            clusters.push(Cluster {
                occurrences: Vec::new(),
                known: None,
                votes: Votes::default(),
                confirmed: false,
            });
            clusters.len() - 1
        });
        let cluster = &mut clusters[index];
        cluster.votes.add(&occurrence.votes);
        cluster.confirmed |= confirmed;
        if cluster.known.is_none() {
            cluster.known.clone_from(&occurrence.known);
        }
        cluster.occurrences.push(occurrence);
    }

    // Acronyms defined in parentheses become aliases of what defined them.
    let definitions: Vec<(String, usize)> = clusters
        .iter()
        .enumerate()
        .flat_map(|(i, c)| {
            c.occurrences
                .iter()
                .filter_map(move |o| o.defines.as_ref().map(|acr| (name_key(acr), i)))
        })
        .collect();

    // What the pairwise comparison below needs of each cluster, computed once: it looks at
    // every pair of clusters, and recomputing these per pair was the largest part of
    // grouping (a tenth of extraction on news text).
    struct Facts {
        /// Each distinct surface form with its name words.
        forms: Vec<(String, Vec<String>)>,
        most_words: usize,
        key: String,
        kind: Option<EntityKind>,
    }
    let facts: Vec<Facts> = clusters
        .iter()
        .map(|c| {
            let mut forms: Vec<(String, Vec<String>)> = Vec::new();
            for o in &c.occurrences {
                if !forms.iter().any(|(surface, _)| *surface == o.surface) {
                    forms.push((o.surface.clone(), name_words(&o.surface)));
                }
            }
            Facts {
                most_words: forms.iter().map(|(_, w)| w.len()).max().unwrap_or(0),
                forms,
                key: name_key(&c.occurrences[0].surface),
                kind: c.kind(),
            }
        })
        .collect();

    // Short forms join long forms: most words first, so chains resolve to the longest.
    let mut order: Vec<usize> = (0..clusters.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(facts[i].most_words));
    let mut merged_into: Vec<Option<usize>> = vec![None; clusters.len()];
    for &short in order.iter().rev() {
        let short_facts = &facts[short];
        let short_curated = clusters[short].known.as_ref().is_some_and(|k| k.curated);
        let mut targets: Vec<usize> = Vec::new();
        for &long in &order {
            if long == short || merged_into[long].is_some() {
                continue;
            }
            let long_facts = &facts[long];
            if !clusters[long].confirmed || short_curated {
                continue;
            }
            if short_facts.kind.is_some()
                && long_facts.kind.is_some()
                && short_facts.kind != long_facts.kind
            {
                continue;
            }
            let defined = definitions
                .iter()
                .any(|(acr, i)| *i == long && *acr == short_facts.key);
            let abbreviates = long_facts.forms.iter().any(|(surface, long_words)| {
                short_facts.forms.iter().any(|(_, short_words)| {
                    abbreviates(
                        short_words,
                        long_words,
                        long_facts.kind,
                        surface,
                        &short_facts.key,
                    )
                })
            });
            if defined || abbreviates {
                targets.push(long);
            }
        }
        // Ambiguous short forms ("Smith" with two Smiths) stay on their own.
        targets.dedup();
        if let [target] = targets[..] {
            merged_into[short] = Some(target);
        }
    }
    let mut final_clusters: Vec<Option<Cluster>> = clusters.into_iter().map(Some).collect();
    for short in order.iter().rev().copied() {
        let Some(mut target) = merged_into[short] else {
            continue;
        };
        while let Some(next) = merged_into[target] {
            target = next;
        }
        if let Some(cluster) = final_clusters[short].take()
            && let Some(Some(long)) = final_clusters.get_mut(target)
        {
            long.absorb(cluster);
        }
    }

    let mut entities: Vec<FoundEntity> = final_clusters
        .into_iter()
        .flatten()
        .filter(|c| c.confirmed)
        .filter_map(|c| {
            let name = c.name();
            if name.chars().filter(|c| c.is_alphanumeric()).count() < 2 || lex.is_junk(&name) {
                return None;
            }
            // A lone capitalised word that is also an ordinary word ("Shopping",
            // "Premiership") needs strong evidence; without any evidence a lone name is
            // tentative.
            let lone = c.known.is_none() && !c.votes.has_strong() && name_words(&name).len() < 2;
            if lone && c.occurrences.iter().any(|o| lex.is_common_word(&o.surface)) {
                return None;
            }
            let kind = c.kind();
            if kind.is_none() && !lone {
                return None;
            }
            // A given name alone ("David said") cannot be told apart from every other David.
            if kind == Some(EntityKind::Person)
                && c.occurrences
                    .iter()
                    .all(|o| name_words(&o.surface).len() == 1)
                && lex.is_given_name(&name)
                && c.known.as_ref().is_none_or(|k| !k.curated)
            {
                return None;
            }
            let mut titles: Vec<String> = Vec::new();
            for t in c.occurrences.iter().filter_map(|o| o.title.clone()) {
                if !titles.contains(&t) {
                    titles.push(t);
                }
            }
            let mut occurrences = c.occurrences;
            occurrences.sort_by_key(|o| (o.field == Field::Body, o.start));
            let description = occurrences.iter().find_map(|o| o.description.clone());
            Some(FoundEntity {
                name,
                kind,
                occurrences,
                titles,
                description,
            })
        })
        .collect();
    entities.sort_by_key(|e| {
        (
            e.occurrences[0].field == Field::Body,
            e.occurrences[0].start,
        )
    });
    entities
}

/// Whether the short name `short` (as name words) abbreviates the long name `long`.
fn abbreviates(
    short: &[String],
    long: &[String],
    long_kind: Option<EntityKind>,
    long_surface: &str,
    short_key: &str,
) -> bool {
    if short.is_empty() || short.len() >= long.len() {
        return false;
    }
    // A tail: "Kerry" of "John Kerry", "Nusra Front" of "al-Nusra Front".
    if long.ends_with(short) {
        return true;
    }
    match long_kind {
        // A distinctive word of an organisation: "Nusra" of "al-Nusra Front".
        Some(EntityKind::Organization) if short.len() == 1 => {
            let lex = lexicon::get();
            long.iter()
                .take(long.len() - 1)
                .any(|w| *w == short[0] && !lex.is_org_head(w))
                || initials(long_surface) == short_key
        }
        Some(EntityKind::Organization | EntityKind::Misc | EntityKind::Location) => {
            initials(long_surface) == short_key
        }
        _ => false,
    }
}

/// The lower-case initials of a name's capitalised words: "icrc" for "International
/// Committee of the Red Cross".
fn initials(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|w| w.chars().next())
        .filter(|c| c.is_uppercase())
        .flat_map(char::to_lowercase)
        .collect()
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
