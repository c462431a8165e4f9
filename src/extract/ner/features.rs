//! What the tagger looks at: the features of each token, as 64-bit hashes.
//!
//! One function computes them for training and for tagging, so the two can never drift
//! apart. Each token's strings (its form, lower-case form, shape, affixes) are hashed once;
//! a feature is the hash of a template number and one or two of those, so a sentence costs
//! no allocation per feature. The hash is defined here (FNV-1a and a SplitMix finaliser)
//! rather than taken from std, because the model file stores these values: they must not
//! change between Rust versions.
//!
//! Beyond the word and its neighbours, three things carry most of the weight on news text:
//! word clusters learnt from unlabelled news (they tell that "Wolves" and "Barnsley" are the
//! same sort of word), a gazetteer of names, and what the rest of the document says about a
//! word (a capitalised word seen lower-case elsewhere is probably not a name; one seen
//! capitalised in mid-sentence probably is, even at the start of a sentence or in a
//! headline set in capitals).

use std::borrow::Cow;

use rustc_hash::{FxHashMap, FxHashSet};

use super::label::LABELS;

/// Hashes bytes with FNV-1a.
fn fnv(bytes: &[u8]) -> u64 {
    let mut hash = Fnv::new();
    hash.write(bytes);
    hash.0
}

/// FNV-1a fed piece by piece: the same value as [`fnv`] over the pieces joined, without
/// joining them (a word's shape is hashed as it is read).
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Combines two hashes (SplitMix64's finaliser over their mix).
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hash of a template number alone.
fn template(t: u64) -> u64 {
    mix(0x6e65_7773_746f_7265, t)
}

/// Words a cluster table maps to three cluster numbers, coarse to fine.
pub type Clusters = FxHashMap<String, [u16; 3]>;

/// Names by their words joined with single spaces, each with the entity types it has been
/// seen as (bit `t` for type index `t`).
#[derive(Debug, Clone, Default)]
pub struct Gazetteer {
    names: FxHashMap<String, u8>,
    /// First words of names, to skip most starting points without building a key.
    first_words: FxHashSet<String>,
    longest: usize,
}

impl Gazetteer {
    pub fn new(names: impl IntoIterator<Item = (String, u8)>) -> Gazetteer {
        let names: FxHashMap<String, u8> = names.into_iter().collect();
        let first_words = names
            .keys()
            .filter_map(|n| n.split(' ').next())
            .map(str::to_string)
            .collect();
        let longest = names
            .keys()
            .map(|n| n.split(' ').count())
            .max()
            .unwrap_or(0);
        Gazetteer {
            names,
            first_words,
            longest,
        }
    }

    pub fn names(&self) -> &FxHashMap<String, u8> {
        &self.names
    }

    /// For each token, which types a name starts (low 4 bits) or continues (high 4 bits) at
    /// it. The longest name from each starting token counts.
    fn marks(&self, words: &[&str]) -> Vec<u8> {
        let mut marks = vec![0u8; words.len()];
        let mut key = String::new();
        for start in 0..words.len() {
            if !self.first_words.contains(words[start]) {
                continue;
            }
            let mut found = None;
            key.clear();
            for (len, word) in words[start..].iter().take(self.longest).enumerate() {
                if len > 0 {
                    key.push(' ');
                }
                key.push_str(word);
                if let Some(&types) = self.names.get(&key) {
                    found = Some((len + 1, types));
                }
            }
            if let Some((len, types)) = found {
                marks[start] |= types;
                for mark in &mut marks[start + 1..start + len] {
                    *mark |= types << 4;
                }
            }
        }
        marks
    }
}

/// What the model knows besides its weights.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub clusters: Clusters,
    pub gazetteer: Gazetteer,
}

/// The features of every token of one sentence: token `i` has
/// `hashes[starts[i]..starts[i + 1]]`.
#[derive(Debug, Clone, Default)]
pub struct SentenceFeatures {
    pub hashes: Vec<u64>,
    pub starts: Vec<usize>,
}

impl SentenceFeatures {
    pub fn len(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn token(&self, i: usize) -> &[u64] {
        &self.hashes[self.starts[i]..self.starts[i + 1]]
    }
}

/// A word's shape, a character at a time: capitals become `X`, small letters `x`, digits
/// `d`, others stay; runs longer than `cap` are cut to `cap`.
fn shape_chars(word: &str, cap: usize, mut emit: impl FnMut(char)) {
    let mut last = '\0';
    let mut run = 0;
    for c in word.chars() {
        let s = if c.is_uppercase() {
            'X'
        } else if c.is_lowercase() {
            'x'
        } else if c.is_ascii_digit() {
            'd'
        } else {
            c
        };
        if s == last {
            run += 1;
        } else {
            run = 1;
            last = s;
        }
        if run <= cap {
            emit(s);
        }
    }
}

/// `fnv` of the word's shape, without building the shape: every token of every article
/// needs two of these.
fn shape_hash(word: &str, cap: usize) -> u64 {
    let mut hash = Fnv::new();
    shape_chars(word, cap, |c| {
        hash.write(c.encode_utf8(&mut [0; 4]).as_bytes())
    });
    hash.0
}

#[cfg(test)]
fn shape(word: &str, cap: usize) -> String {
    let mut out = String::new();
    shape_chars(word, cap, |c| out.push(c));
    out
}

fn is_capitalized(word: &str) -> bool {
    word.chars().next().is_some_and(char::is_uppercase)
}

/// A sentence in capitals (a headline or a dateline): capitals say nothing there.
fn is_all_caps_sentence(words: &[&str]) -> bool {
    let mut letters = 0;
    for word in words {
        for c in word.chars() {
            if c.is_lowercase() {
                return false;
            }
            if c.is_uppercase() {
                letters += 1;
            }
        }
    }
    letters > 3
}

/// Per-token values shared by the token's own features and its neighbours'.
struct Atoms {
    word: u64,
    lower: u64,
    shape: u64,
    short_shape: u64,
    /// The middle-grained cluster, or a marker for unknown words.
    cluster_mid: u64,
}

impl Atoms {
    /// Stands for the space before or after a sentence. Cluster numbers are small, so the
    /// marker's cluster value is taken from the top of the range, where none can be.
    fn marker(value: u64) -> Atoms {
        Atoms {
            word: value,
            lower: value,
            shape: value,
            short_shape: value,
            cluster_mid: u64::MAX - value,
        }
    }
}

/// Template numbers. They are part of the model format: never renumber, only add.
mod t {
    pub const BIAS: u64 = 0;
    pub const WORD: u64 = 1;
    pub const LOWER: u64 = 2;
    pub const PREV_LOWER: u64 = 3;
    pub const NEXT_LOWER: u64 = 4;
    pub const PREV2_LOWER: u64 = 5;
    pub const NEXT2_LOWER: u64 = 6;
    pub const PREV_THIS: u64 = 7;
    pub const THIS_NEXT: u64 = 8;
    pub const SHAPE: u64 = 9;
    pub const PREV_SHAPE: u64 = 10;
    pub const NEXT_SHAPE: u64 = 11;
    pub const SHAPE_TRIGRAM: u64 = 12;
    pub const SHORT_SHAPE: u64 = 13;
    pub const PREFIX: u64 = 14; // + length - 1, four of them
    pub const SUFFIX: u64 = 18; // + length - 1, four of them
    pub const INITIAL_SHAPE: u64 = 22;
    pub const CAPS_SENTENCE_SHAPE: u64 = 23;
    pub const CLUSTER: u64 = 24; // + level, three of them
    pub const PREV_CLUSTER: u64 = 27;
    pub const NEXT_CLUSTER: u64 = 28;
    pub const GAZETTEER: u64 = 29;
    pub const PREV_GAZETTEER: u64 = 30;
    pub const NEXT_GAZETTEER: u64 = 31;
    pub const SEEN_LOWER: u64 = 32;
    pub const SEEN_CAPITALIZED_MID: u64 = 33;
    pub const PREV_LOWER_SHAPE: u64 = 34;
    pub const SHAPE_NEXT_LOWER: u64 = 35;
    pub const CLUSTER_TRIGRAM: u64 = 36;
    pub const PREV_WORD_CAPS_SENTENCE: u64 = 37;
    pub const NEXT_WORD_CAPS_SENTENCE: u64 = 38;
}

/// What a whole document says about its words.
#[derive(Default)]
struct DocumentFacts {
    /// Lower-case forms of words written in lower case somewhere.
    seen_lower: FxHashSet<u64>,
    /// Lower-case forms of words written capitalised in mid-sentence somewhere.
    seen_capitalized_mid: FxHashSet<u64>,
}

impl DocumentFacts {
    fn gather(sentences: &[Vec<&str>]) -> DocumentFacts {
        let mut facts = DocumentFacts::default();
        for words in sentences {
            if is_all_caps_sentence(words) {
                continue;
            }
            for (i, word) in words.iter().enumerate() {
                let Some(first) = word.chars().next() else {
                    continue;
                };
                if !first.is_alphabetic() {
                    continue;
                }
                let lower = fnv(word.to_lowercase().as_bytes());
                if first.is_lowercase() {
                    facts.seen_lower.insert(lower);
                } else if i > 0 && !matches!(words[i - 1], "\"" | "``" | "(" | "-" | ":") {
                    facts.seen_capitalized_mid.insert(lower);
                }
            }
        }
        facts
    }
}

/// The features of every token of every sentence of one document.
pub fn document(sentences: &[Vec<&str>], resources: &Resources) -> Vec<SentenceFeatures> {
    let facts = DocumentFacts::gather(sentences);
    sentences
        .iter()
        .map(|words| sentence(words, resources, &facts))
        .collect()
}

fn sentence(words: &[&str], resources: &Resources, facts: &DocumentFacts) -> SentenceFeatures {
    let caps_sentence = is_all_caps_sentence(words);
    // Most words are lower-case ASCII already: borrow those rather than copy them.
    let lowers: Vec<Cow<str>> = words
        .iter()
        .map(|w| {
            if w.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
                Cow::Borrowed(*w)
            } else {
                Cow::Owned(w.to_lowercase())
            }
        })
        .collect();
    let clusters: Vec<Option<[u16; 3]>> = words
        .iter()
        .zip(&lowers)
        .map(|(word, lower)| {
            resources
                .clusters
                .get(*word)
                .or_else(|| resources.clusters.get(lower.as_ref()))
                .copied()
        })
        .collect();
    let atoms: Vec<Atoms> = words
        .iter()
        .zip(&lowers)
        .zip(&clusters)
        .map(|((word, lower), cluster)| Atoms {
            word: fnv(word.as_bytes()),
            lower: fnv(lower.as_bytes()),
            shape: shape_hash(word, 3),
            short_shape: shape_hash(word, 1),
            cluster_mid: cluster.map_or(u64::MAX, |c| u64::from(c[1])),
        })
        .collect();
    let gazetteer = resources.gazetteer.marks(words);
    let start_atom = Atoms::marker(1);
    let end_atom = Atoms::marker(2);
    let at = |i: isize| -> &Atoms {
        if i < 0 {
            &start_atom
        } else {
            atoms.get(i as usize).unwrap_or(&end_atom)
        }
    };
    let gaz_at = |i: isize| -> u64 {
        if i < 0 {
            0x100
        } else {
            gazetteer.get(i as usize).map_or(0x200, |&m| u64::from(m))
        }
    };

    let mut out = SentenceFeatures {
        hashes: Vec::with_capacity(words.len() * 40),
        starts: Vec::with_capacity(words.len() + 1),
    };
    for (i, word) in words.iter().enumerate() {
        out.starts.push(out.hashes.len());
        let h = &mut out.hashes;
        let j = i as isize;
        let (prev2, prev, this, next, next2) = (at(j - 2), at(j - 1), at(j), at(j + 1), at(j + 2));
        let f1 = |t: u64, a: u64| mix(template(t), a);
        let f2 = |t: u64, a: u64, b: u64| mix(mix(template(t), a), b);

        h.push(template(t::BIAS));
        h.push(f1(t::WORD, this.word));
        h.push(f1(t::LOWER, this.lower));
        h.push(f1(t::PREV_LOWER, prev.lower));
        h.push(f1(t::NEXT_LOWER, next.lower));
        h.push(f1(t::PREV2_LOWER, prev2.lower));
        h.push(f1(t::NEXT2_LOWER, next2.lower));
        h.push(f2(t::PREV_THIS, prev.lower, this.lower));
        h.push(f2(t::THIS_NEXT, this.lower, next.lower));
        h.push(f1(t::SHAPE, this.shape));
        h.push(f1(t::PREV_SHAPE, prev.shape));
        h.push(f1(t::NEXT_SHAPE, next.shape));
        h.push(f2(
            t::SHAPE_TRIGRAM,
            mix(prev.short_shape, this.short_shape),
            next.short_shape,
        ));
        h.push(f1(t::SHORT_SHAPE, this.short_shape));
        h.push(f2(t::PREV_LOWER_SHAPE, prev.lower, this.shape));
        h.push(f2(t::SHAPE_NEXT_LOWER, this.shape, next.lower));

        // Affixes of one to four characters: the n-th end is where the first n characters
        // end, the n-th start where the last n begin.
        let lower: &str = &lowers[i];
        let ends = lower
            .char_indices()
            .skip(1)
            .map(|(b, _)| b)
            .chain(std::iter::once(lower.len()));
        let starts = lower.char_indices().rev().map(|(b, _)| b);
        for (n, (prefix_end, suffix_start)) in (1..=4u64).zip(ends.zip(starts)) {
            h.push(f1(t::PREFIX + n - 1, fnv(&lower.as_bytes()[..prefix_end])));
            h.push(f1(
                t::SUFFIX + n - 1,
                fnv(&lower.as_bytes()[suffix_start..]),
            ));
        }

        if i == 0 {
            h.push(f1(t::INITIAL_SHAPE, this.short_shape));
        }
        if caps_sentence {
            h.push(f1(t::CAPS_SENTENCE_SHAPE, this.short_shape));
            h.push(f1(t::PREV_WORD_CAPS_SENTENCE, prev.lower));
            h.push(f1(t::NEXT_WORD_CAPS_SENTENCE, next.lower));
        }

        match clusters[i] {
            Some(levels) => {
                for (level, cluster) in levels.iter().enumerate() {
                    h.push(f1(t::CLUSTER + level as u64, u64::from(*cluster)));
                }
            }
            None => h.push(f1(t::CLUSTER, u64::MAX)),
        }
        h.push(f1(t::PREV_CLUSTER, prev.cluster_mid));
        h.push(f1(t::NEXT_CLUSTER, next.cluster_mid));
        h.push(f2(
            t::CLUSTER_TRIGRAM,
            mix(prev.cluster_mid, this.cluster_mid),
            next.cluster_mid,
        ));

        h.push(f1(t::GAZETTEER, gaz_at(j)));
        h.push(f2(t::PREV_GAZETTEER, gaz_at(j - 1), gaz_at(j)));
        h.push(f2(t::NEXT_GAZETTEER, gaz_at(j), gaz_at(j + 1)));

        if word.chars().next().is_some_and(char::is_alphabetic) && !word.is_empty() {
            let capitalized = is_capitalized(word);
            let context =
                u64::from(capitalized) | u64::from(i == 0) << 1 | u64::from(caps_sentence) << 2;
            if facts.seen_lower.contains(&this.lower) {
                h.push(f1(t::SEEN_LOWER, context));
            }
            if facts.seen_capitalized_mid.contains(&this.lower) {
                h.push(f1(t::SEEN_CAPITALIZED_MID, context));
            }
        }
    }
    out.starts.push(out.hashes.len());
    out
}

/// Folds a feature hash to a slot in a table of `slots` rows (a power of two).
pub fn slot(hash: u64, slots: usize) -> usize {
    debug_assert!(slots.is_power_of_two());
    (hash as usize) & (slots - 1)
}

/// Per-label scores of one token: the sum of its features' weight rows.
pub fn score(features: &[u64], weights: &super::model::Weights) -> [f32; LABELS] {
    let mut scores = [0f32; LABELS];
    for &feature in features {
        if let Some(row) = weights.row(feature) {
            for (s, w) in scores.iter_mut().zip(row.iter()) {
                *s += *w;
            }
        }
    }
    scores
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn shapes_collapse_runs() {
        assert_eq!(shape("Washington", 3), "Xxxx");
        assert_eq!(shape("Washington", 1), "Xx");
        assert_eq!(shape("U.S.", 1), "X.X.");
        assert_eq!(shape("1996-08-22", 1), "d-d-d");
        assert_eq!(shape("McDonald", 1), "XxXx");
        for word in [
            "Washington",
            "U.S.",
            "1996-08-22",
            "McDonald",
            "Zürich",
            "ÉTÉ",
            "",
        ] {
            for cap in [1, 3] {
                assert_eq!(shape_hash(word, cap), fnv(shape(word, cap).as_bytes()));
            }
        }
    }

    #[test]
    fn the_hash_is_stable() {
        // The model file stores these values: a change here silently breaks every model.
        assert_eq!(fnv(b"Kerry"), 0xea36_c8fe_1ec9_614c);
        assert_eq!(mix(1, 2), mix(1, 2));
        assert_ne!(mix(1, 2), mix(2, 1));
    }

    #[test]
    fn the_gazetteer_marks_the_longest_name_from_each_start() {
        let gazetteer = Gazetteer::new(HashMap::from([
            ("New York".to_string(), 0b0100),
            ("New York Times".to_string(), 0b0010),
            ("York".to_string(), 0b0100),
        ]));
        let marks = gazetteer.marks(&["the", "New", "York", "Times", "said"]);
        assert_eq!(marks, [0, 0b0010, 0b0010_0000 | 0b0100, 0b0010_0000, 0]);
    }

    #[test]
    fn documents_say_which_words_are_common() {
        let sentences = vec![
            vec!["Rain", "fell", "on", "Brown", "."],
            vec!["The", "rain", "stopped", "."],
            vec!["BROWN", "WINS"],
        ];
        let facts = DocumentFacts::gather(&sentences);
        assert!(facts.seen_lower.contains(&fnv(b"rain")));
        assert!(facts.seen_capitalized_mid.contains(&fnv(b"brown")));
        assert!(!facts.seen_capitalized_mid.contains(&fnv(b"rain")));
        assert!(!facts.seen_lower.contains(&fnv(b"wins")));
        let features = document(&sentences, &Resources::default());
        assert_eq!(features.len(), 3);
        assert_eq!(features[0].len(), 5);
        assert!(features[0].token(3).len() > 20);
    }
}
