//! Snippets and highlighting that do not analyse whole articles.
//!
//! Marking the matched words of a hit means knowing which words of the text stem to the
//! query's terms. Stemming every word of every hit was the dearest part of a search, so
//! words are first screened by their first letters (a stem's first four letters almost
//! always begin the words it comes from: "happi" and "happy" share "happ"), and only the few
//! that pass are stemmed. The passage shown is the window of the configured length that
//! holds the most distinct matched words, starting a little before its first match.

use std::collections::BTreeSet;
use std::ops::Range;

use tantivy::tokenizer::TextAnalyzer;

use super::Highlight;

/// Characters of context kept before the first matched word of a passage.
const LEAD_IN_CHARS: usize = 30;

pub struct Highlighter {
    /// The analysed words to mark.
    words: BTreeSet<String>,
    /// Lower-case first letters of each word, to screen text words cheaply.
    probes: Vec<String>,
    analyzer: TextAnalyzer,
}

impl Highlighter {
    /// A highlighter for `words`, as analysed by `analyzer`.
    pub fn new(words: BTreeSet<String>, analyzer: TextAnalyzer) -> Self {
        let mut probes: Vec<String> = words
            .iter()
            .map(|w| w.chars().take(4).collect::<String>())
            .collect();
        probes.sort();
        probes.dedup();
        Highlighter {
            words,
            probes,
            analyzer,
        }
    }

    /// Byte ranges of the words of `text` that analyse to one of the words.
    fn matches(&mut self, text: &str) -> Vec<Range<usize>> {
        let mut found = Vec::new();
        if self.words.is_empty() {
            return found;
        }
        let mut lower = String::new();
        for (start, word) in words(text) {
            lower.clear();
            lower.extend(word.chars().flat_map(char::to_lowercase));
            if !self
                .probes
                .iter()
                .any(|probe| lower.starts_with(probe.as_str()))
            {
                continue;
            }
            let mut stream = self.analyzer.token_stream(word);
            if stream.advance() && self.words.contains(&stream.token().text) {
                found.push(start..start + word.len());
            }
        }
        found
    }

    /// `text` with every matched word marked.
    pub fn mark(&mut self, text: &str, marks: &Highlight) -> String {
        let found = self.matches(text);
        mark_ranges(text, &found, marks)
    }

    /// The best passage of the paragraphs, marked; `None` when no word matches.
    pub fn snippet(&mut self, paragraphs: &[&str], marks: &Highlight) -> Option<String> {
        if self.words.is_empty() {
            return None;
        }
        let first = paragraphs.iter().position(|p| {
            self.probes
                .iter()
                .any(|probe| contains_ignore_ascii_case(p, probe))
        })?;
        // Enough text after the first candidate paragraph to fill a passage, and no more.
        let mut window = String::new();
        for paragraph in &paragraphs[first..] {
            if !window.is_empty() {
                window.push_str("\n\n");
            }
            window.push_str(paragraph);
            if window.len() >= marks.snippet_chars * 3 {
                break;
            }
        }
        let found = self.matches(&window);
        if found.is_empty() {
            return None;
        }
        let limit = marks.snippet_chars;
        // The passage starting at each match that holds the most distinct words.
        let mut best = (0, 0usize);
        for (i, range) in found.iter().enumerate() {
            let end = advance_chars(&window, range.start, limit);
            let distinct: BTreeSet<&str> = found[i..]
                .iter()
                .take_while(|r| r.end <= end)
                .map(|r| &window[r.clone()])
                .collect();
            if distinct.len() > best.1 {
                best = (i, distinct.len());
            }
        }
        let anchor = found[best.0].start;
        let start = word_start(&window, back_chars(&window, anchor, LEAD_IN_CHARS));
        let end = word_end(&window, advance_chars(&window, start, limit));
        let inside: Vec<Range<usize>> = found
            .iter()
            .filter(|r| r.start >= start && r.end <= end)
            .map(|r| r.start - start..r.end - start)
            .collect();
        let fragment = window[start..end].trim_end();
        Some(mark_ranges(fragment, &inside, marks))
    }
}

/// The words of `text` (runs of letters and digits) with their byte offsets.
fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut rest = text.char_indices().peekable();
    std::iter::from_fn(move || {
        while rest.peek().is_some_and(|(_, c)| !c.is_alphanumeric()) {
            rest.next();
        }
        let &(start, _) = rest.peek()?;
        let mut end = start;
        while let Some(&(at, c)) = rest.peek() {
            if !c.is_alphanumeric() {
                break;
            }
            end = at + c.len_utf8();
            rest.next();
        }
        Some((start, &text[start..end]))
    })
}

/// The byte offset `chars` characters after `from` (or the end).
fn advance_chars(text: &str, from: usize, chars: usize) -> usize {
    text[from..]
        .char_indices()
        .nth(chars)
        .map_or(text.len(), |(at, _)| from + at)
}

/// The byte offset `chars` characters before `to` (or the start).
fn back_chars(text: &str, to: usize, chars: usize) -> usize {
    text[..to]
        .char_indices()
        .rev()
        .nth(chars.saturating_sub(1))
        .map_or(0, |(at, _)| at)
}

/// Moves `at` forward to the start of a word, unless it is at the start of the text.
fn word_start(text: &str, at: usize) -> usize {
    if at == 0 {
        return 0;
    }
    match text[at..].find(char::is_whitespace) {
        Some(space) => {
            let after = at + space;
            after + text[after..].len() - text[after..].trim_start().len()
        }
        None => at,
    }
}

/// Moves `at` back to the end of a word, unless it is at the end of the text.
fn word_end(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    text[..at].rfind(char::is_whitespace).unwrap_or(at)
}

/// Whether `haystack` contains `needle`, ignoring ASCII case.
fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    let (haystack, needle) = (haystack.as_bytes(), needle.as_bytes());
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle))
}

/// `text` with the byte ranges wrapped in the markers. The text is not escaped: the caller
/// chose the markers and renders the result.
pub fn mark_ranges(text: &str, ranges: &[Range<usize>], marks: &Highlight) -> String {
    let mut out =
        String::with_capacity(text.len() + ranges.len() * (marks.pre.len() + marks.post.len()));
    let mut at = 0;
    for range in ranges {
        let fits = range.start >= at
            && range.end <= text.len()
            && text.is_char_boundary(range.start)
            && text.is_char_boundary(range.end);
        if !fits {
            continue;
        }
        out.push_str(&text[at..range.start]);
        out.push_str(&marks.pre);
        out.push_str(&text[range.clone()]);
        out.push_str(&marks.post);
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::schema::text_analyzer;

    fn marks(chars: usize) -> Highlight {
        Highlight {
            pre: "[".into(),
            post: "]".into(),
            snippet_chars: chars,
        }
    }

    fn highlighter(words: &[&str]) -> Highlighter {
        Highlighter::new(
            words.iter().map(|w| w.to_string()).collect(),
            text_analyzer(),
        )
    }

    #[test]
    fn marks_every_form_of_a_stemmed_word() {
        let mut h = highlighter(&["talk", "happi"]);
        assert_eq!(
            h.mark("Talks, talking and a happy talker.", &marks(100)),
            "[Talks], [talking] and a [happy] talker."
        );
        assert_eq!(
            mark_ranges("a <b> c", &[0..1, 6..7], &marks(10)),
            "[a] <b> [c]"
        );
    }

    #[test]
    fn snippets_centre_on_the_densest_matches() {
        let mut h = highlighter(&["ceasefir", "geneva"]);
        let paragraphs = [
            "Nothing relevant here at all.",
            "The weather was fine. Talks in Geneva produced a ceasefire on Friday, officials said.",
        ];
        let snippet = h.snippet(&paragraphs, &marks(60)).unwrap();
        assert!(
            snippet.contains("[Geneva]") && snippet.contains("[ceasefire]"),
            "{snippet}"
        );
        assert!(snippet.chars().count() <= 64, "{snippet}");
        assert!(!snippet.contains("Nothing"), "{snippet}");
        assert_eq!(h.snippet(&["No match here."], &marks(60)), None);
    }

    #[test]
    fn never_panics_on_odd_text() {
        let mut h = highlighter(&["é", "日本", "a"]);
        for text in ["", " ", "é", "ééé é", "日本語 日本", "a\u{200b}a", "\n\n"] {
            let _ = h.mark(text, &marks(5));
            let _ = h.snippet(&[text, text], &marks(20));
        }
    }
}
