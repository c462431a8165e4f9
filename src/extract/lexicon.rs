//! The word lists extraction relies on, compiled into the binary.
//!
//! Two sorts of list live in `data/`: hand-curated ones (countries and their demonyms, major
//! organisations, titles, name-ending words, calendar words, speech verbs) and ones generated
//! by `newsstore ner build-lexicon` from annotated news corpora (a gazetteer of names with
//! their kinds, given names, common lower-case words). Curated entries win over generated
//! ones. Everything is parsed once, on first use.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use crate::model::{EntityKind, name_key};

/// A name the lexicon knows.
#[derive(Debug, Clone)]
pub struct Known {
    pub kind: EntityKind,
    /// The name to file it under ("United States" for "U.S.").
    pub canonical: String,
    /// From the curated list rather than learnt from corpora.
    pub curated: bool,
    /// Every spelling that gives this key is in capitals ("US", "WHO"), so only a name in
    /// capitals matches: "Who" and "Us" are words, not the organisation and the country.
    caps_only: bool,
}

pub struct Lexicon {
    names: HashMap<String, Known>,
    /// Titles as lower-case word sequences, by their first word; each with its place in
    /// the longest-first order, since the longest match wins. Extraction asks of nearly
    /// every word whether a title starts there, so this must not walk every title.
    titles: HashMap<String, Vec<(usize, Vec<String>)>>,
    title_words: HashSet<String>,
    org_heads: HashSet<String>,
    loc_heads: HashSet<String>,
    calendar: HashSet<String>,
    speech_verbs: HashSet<String>,
    stop_capitalized: HashSet<String>,
    junk: HashSet<String>,
    given_names: HashSet<String>,
    common_words: HashSet<String>,
}

static LEXICON: LazyLock<Lexicon> = LazyLock::new(Lexicon::load);

/// Every spelling in the hand-curated name list (canonical names and aliases) with its kind.
/// The trained tagger's gazetteer starts from these.
pub fn curated_names() -> impl Iterator<Item = (EntityKind, &'static str)> {
    text_lines_raw(include_str!("data/curated.tsv")).flat_map(|line| {
        let mut fields = line.split('\t');
        let kind = fields.next().and_then(EntityKind::from_conll);
        let canonical = fields.next().unwrap_or("");
        let aliases = fields.next().unwrap_or("");
        std::iter::once(canonical)
            .chain(aliases.split('|'))
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .filter_map(move |name| Some((kind?, name)))
    })
}

/// The lexicon, parsed on first use.
pub fn get() -> &'static Lexicon {
    &LEXICON
}

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
}

fn lower_set(text: &str) -> HashSet<String> {
    lines(text).map(str::to_lowercase).collect()
}

impl Lexicon {
    fn load() -> Lexicon {
        let stop_capitalized = lower_set(include_str!("data/stop_capitalized.txt"));
        let common_words = lower_set(include_str!("data/common_words.txt"));
        let mut titles: Vec<Vec<String>> = lines(include_str!("data/titles.txt"))
            .map(|t| t.split_whitespace().map(str::to_lowercase).collect())
            .collect();
        titles.sort_by_key(|words: &Vec<String>| std::cmp::Reverse(words.len()));
        let single_titles: HashSet<String> = titles
            .iter()
            .filter(|t| t.len() == 1)
            .map(|t| t[0].trim_end_matches('.').to_string())
            .collect();
        let mut names = HashMap::new();
        // Generated first, so curated entries overwrite them.
        for line in lines(include_str!("data/gazetteer.tsv")) {
            let mut fields = line.split('\t');
            let (Some(name), Some(kind)) = (
                fields.next(),
                fields.next().and_then(EntityKind::from_conll),
            ) else {
                continue;
            };
            // Corpus labels on single letters and function words ("A" in "Serie A") would
            // turn every sentence-initial article into a name.
            // Names the corpora label with their title ("Mr Brown") would hide the title
            // from the title rules.
            let first = name.split_whitespace().next().unwrap_or("").to_lowercase();
            // A single ordinary word labelled in a corpus ("Government") is usually just
            // that word capitalised.
            if !name.contains(' ') && common_words.contains(&name.to_lowercase()) {
                continue;
            }
            if name.chars().count() < 2
                || stop_capitalized.contains(&name.to_lowercase())
                || (name.contains(' ') && single_titles.contains(first.trim_end_matches('.')))
            {
                continue;
            }
            names.insert(
                name_key(name),
                Known {
                    kind,
                    canonical: name.to_string(),
                    curated: false,
                    caps_only: super::tokens::is_all_caps(name),
                },
            );
        }
        for line in text_lines_raw(include_str!("data/curated.tsv")) {
            let mut fields = line.split('\t');
            let (Some(kind), Some(canonical)) = (
                fields.next().and_then(EntityKind::from_conll),
                fields.next(),
            ) else {
                continue;
            };
            let canonical = canonical.trim();
            let aliases = fields.next().unwrap_or("");
            let known = Known {
                kind,
                canonical: canonical.to_string(),
                curated: true,
                caps_only: false,
            };
            let forms = || {
                std::iter::once(canonical)
                    .chain(aliases.split('|'))
                    .map(str::trim)
            };
            for alias in forms() {
                let key = name_key(alias);
                if key.is_empty() {
                    continue;
                }
                let caps_only = forms()
                    .filter(|form| name_key(form) == key)
                    .all(super::tokens::is_all_caps);
                names.insert(
                    key,
                    Known {
                        caps_only,
                        ..known.clone()
                    },
                );
            }
        }

        let title_words = titles.iter().flatten().cloned().collect();
        let mut by_first: HashMap<String, Vec<(usize, Vec<String>)>> = HashMap::new();
        for (rank, title) in titles.into_iter().enumerate() {
            if let Some(first) = title.first() {
                by_first
                    .entry(first.clone())
                    .or_default()
                    .push((rank, title));
            }
        }
        Lexicon {
            names,
            titles: by_first,
            title_words,
            org_heads: lower_set(include_str!("data/org_heads.txt")),
            loc_heads: lower_set(include_str!("data/loc_heads.txt")),
            calendar: lower_set(include_str!("data/calendar.txt")),
            speech_verbs: lower_set(include_str!("data/speech_verbs.txt")),
            stop_capitalized,
            junk: lines(include_str!("data/junk_phrases.txt"))
                .map(name_key)
                .collect(),
            given_names: lines(include_str!("data/given_names.txt"))
                .map(str::to_string)
                .collect(),
            common_words,
        }
    }

    /// The known entity a name denotes, by [`name_key`].
    pub fn lookup(&self, name: &str) -> Option<&Known> {
        self.names
            .get(&name_key(name))
            .filter(|known| !known.caps_only || super::tokens::is_all_caps(name))
    }

    /// The length (in words) of the longest title starting at `words[0]`, matched without
    /// regard to case.
    /// Plural titles count ("MPs", "Ministers").
    pub fn title_len(&self, words: &[&str]) -> usize {
        let matches = |t: &String, w: &&str| {
            let w = w.trim_end_matches('.');
            t.eq_ignore_ascii_case(w)
                || w.strip_suffix('s')
                    .is_some_and(|singular| t.eq_ignore_ascii_case(singular))
        };
        let Some(first) = words.first() else {
            return 0;
        };
        // Candidates: titles whose first word is this word, ASCII-lowered (titles are lower
        // case, so that is what `eq_ignore_ascii_case` accepts), as written or without a
        // plural "s". The lookup may propose more than match; `matches` decides.
        let first = first.trim_end_matches('.').to_ascii_lowercase();
        let singular = first.strip_suffix('s');
        std::iter::once(first.as_str())
            .chain(singular)
            .filter_map(|key| self.titles.get(key))
            .flatten()
            .filter(|(_, title)| {
                title.len() <= words.len() && title.iter().zip(words).all(|(t, w)| matches(t, w))
            })
            .min_by_key(|(rank, _)| *rank)
            .map_or(0, |(_, title)| title.len())
    }

    /// Whether a word can be part of a title ("Foreign", "Minister").
    pub fn is_title_word(&self, word: &str) -> bool {
        self.title_words.contains(&word.to_lowercase())
    }

    pub fn is_org_head(&self, word: &str) -> bool {
        self.org_heads.contains(&word.to_lowercase())
    }

    pub fn is_loc_head(&self, word: &str) -> bool {
        self.loc_heads.contains(&word.to_lowercase())
    }

    /// Weekdays, months and holidays: capitalised, never entities.
    pub fn is_calendar(&self, word: &str) -> bool {
        self.calendar.contains(&word.to_lowercase())
    }

    pub fn is_speech_verb(&self, word: &str) -> bool {
        self.speech_verbs.contains(&word.to_lowercase())
    }

    /// Capitalised words that are never names: pronouns, determiners, sentence adverbs.
    pub fn is_stop(&self, word: &str) -> bool {
        self.stop_capitalized.contains(&word.to_lowercase())
    }

    /// Page furniture such as "Image Source", never an entity.
    pub fn is_junk(&self, phrase: &str) -> bool {
        self.junk.contains(&name_key(phrase))
    }

    pub fn is_given_name(&self, word: &str) -> bool {
        self.given_names.contains(word)
    }

    /// Whether a word is common in lower case, so that seeing it capitalised at the start of
    /// a sentence says nothing about it being a name.
    pub fn is_common_word(&self, word: &str) -> bool {
        self.common_words.contains(&word.to_lowercase())
    }

    /// Whether a capitalised word usually starts a sentence rather than a name.
    pub fn is_sentence_starter(&self, word: &str) -> bool {
        self.is_stop(word) || (self.is_common_word(word) && self.lookup(word).is_none())
    }
}

/// Lines of a TSV file, keeping inner tabs and skipping comments.
fn text_lines_raw(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curated_aliases_resolve_to_their_canonical_name() {
        let lexicon = get();
        let us = lexicon.lookup("U.S.").expect("U.S. is curated");
        assert_eq!(us.canonical, "United States");
        assert_eq!(us.kind, EntityKind::Location);
        assert_eq!(
            lexicon.lookup("UN").map(|k| k.kind),
            Some(EntityKind::Organization)
        );
        assert!(lexicon.lookup("Us").is_none());
        assert!(lexicon.lookup("Who").is_none());
        assert!(lexicon.lookup("WHO").is_some());
    }

    #[test]
    fn titles_match_longest_first() {
        let lexicon = get();
        assert_eq!(
            lexicon.title_len(&["Secretary", "of", "State", "John", "Kerry"]),
            3
        );
        assert_eq!(lexicon.title_len(&["Kerry"]), 0);
    }
}
