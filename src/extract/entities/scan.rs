//! Pass 1, the scan: each sentence's runs of capitalised words, split where a title or a
//! demonym stands, become occurrences with votes for their kind from their context and the
//! trained tagger's labels.

use super::{Occurrence, PARTICLES, Segment, Votes};
use crate::extract::lexicon::{Known, Lexicon};
use crate::extract::ner::Label;
use crate::extract::tokens::{Token, TokenKind, is_all_caps};
use crate::model::EntityKind;

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

pub(super) struct Scanner<'s, 'a> {
    pub(super) lex: &'static Lexicon,
    pub(super) segment: &'s Segment<'a>,
    pub(super) tokens: &'s [Token],
    /// The trained tagger's label for each token (empty without a model).
    pub(super) labels: &'s [Label],
    /// The title as written before the piece being emitted, if any.
    pub(super) description: Option<String>,
    pub(super) out: &'s mut Vec<Occurrence>,
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

    pub(super) fn scan(&mut self) {
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
