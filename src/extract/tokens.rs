//! Splitting text into tokens and sentences.
//!
//! Tokens keep byte offsets into the text they came from, so everything found later (entity
//! spans, quotes) points back at the original characters. The rules are the ones news text
//! needs: abbreviations with inner dots ("U.N.") stay whole, possessive "'s" is split off so
//! "Kerry's" yields the name "Kerry", and hyphenated names ("al-Nusra") stay one token.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Letters, possibly with digits, inner hyphens and apostrophes, or dotted initials.
    Word,
    /// Digits, possibly with inner separators ("1,500", "2.5").
    Number,
    /// A double quotation mark: `"`, `“` or `”`.
    Quote(QuoteMark),
    /// A possessive marker split off a word: `'s`, `’s` or a bare trailing apostrophe.
    Possessive,
    /// Any other single character that is not whitespace.
    Punct,
}

/// Which way a quotation mark faces, when the character says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteMark {
    Open,
    Close,
    /// The straight `"`, whose direction depends on its neighbours.
    Straight,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub start: usize,
    pub end: usize,
    pub kind: TokenKind,
}

impl Token {
    pub fn text<'t>(&self, text: &'t str) -> &'t str {
        &text[self.start..self.end]
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

fn is_apostrophe(c: char) -> bool {
    c == '\'' || c == '’'
}

/// Splits `text` into tokens. Whitespace separates tokens and is never part of one.
pub fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let byte_at = |i: usize| chars.get(i).map_or(text.len(), |&(b, _)| b);
    let mut tokens = Vec::with_capacity(chars.len() / 5);
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '"' || c == '“' || c == '”' {
            let mark = match c {
                '“' => QuoteMark::Open,
                '”' => QuoteMark::Close,
                _ => straight_quote_direction(
                    i.checked_sub(1).map(|p| chars[p].1),
                    chars.get(i + 1).map(|&(_, n)| n),
                ),
            };
            tokens.push(Token {
                start,
                end: byte_at(i + 1),
                kind: TokenKind::Quote(mark),
            });
            i += 1;
            continue;
        }
        if !is_word_char(c) {
            tokens.push(Token {
                start,
                end: byte_at(i + 1),
                kind: TokenKind::Punct,
            });
            i += 1;
            continue;
        }
        // A run of word characters, joined across inner hyphens, apostrophes, dots between
        // single letters ("U.S.") and separators inside numbers ("1,500").
        let numeric = c.is_ascii_digit();
        let mut j = i + 1;
        loop {
            while j < chars.len() && is_word_char(chars[j].1) {
                j += 1;
            }
            let Some(&(_, joiner)) = chars.get(j) else {
                break;
            };
            let next_is_word = chars.get(j + 1).is_some_and(|&(_, n)| is_word_char(n));
            let joins = match joiner {
                '-' | '‐' => next_is_word,
                ',' | '.' if numeric => chars.get(j + 1).is_some_and(|&(_, n)| n.is_ascii_digit()),
                c if is_apostrophe(c) => {
                    // Inner apostrophes stay ("don't", "O'Brien"); a possessive does not.
                    next_is_word && !is_possessive_s(&chars, j)
                }
                _ => false,
            };
            if !joins {
                break;
            }
            j += 1;
        }
        // Dotted initials: "U.S." or "U.N." (single letters each followed by a dot).
        if !numeric && j == i + 1 && chars.get(j).is_some_and(|&(_, d)| d == '.') {
            let mut k = i;
            while k + 1 < chars.len()
                && chars[k].1.is_alphabetic()
                && chars[k + 1].1 == '.'
                && (k == i || chars[k - 1].1 == '.')
            {
                k += 2;
            }
            if k - i >= 4 {
                j = k;
            }
        }
        tokens.push(Token {
            start,
            end: byte_at(j),
            kind: if numeric {
                TokenKind::Number
            } else {
                TokenKind::Word
            },
        });
        i = j;
        // A possessive right after a word.
        if let Some(&(pstart, a)) = chars.get(i)
            && is_apostrophe(a)
        {
            if is_possessive_s(&chars, i) {
                tokens.push(Token {
                    start: pstart,
                    end: byte_at(i + 2),
                    kind: TokenKind::Possessive,
                });
                i += 2;
            } else if chars.get(i + 1).is_none_or(|&(_, n)| !is_word_char(n))
                && text[start..pstart].ends_with('s')
                && a == '\''
            {
                tokens.push(Token {
                    start: pstart,
                    end: byte_at(i + 1),
                    kind: TokenKind::Possessive,
                });
                i += 1;
            }
        }
    }
    tokens
}

/// Which way a straight `"` faces, judged by its neighbours: after a space and before a
/// word it opens; after a word and before a space or punctuation it closes.
fn straight_quote_direction(previous: Option<char>, next: Option<char>) -> QuoteMark {
    let open_before = previous.is_none_or(|p| p.is_whitespace() || "([{—–-".contains(p));
    let close_after = next.is_none_or(|n| n.is_whitespace() || ".,;:!?)]}—–-".contains(n));
    match (open_before, close_after) {
        (true, false) => QuoteMark::Open,
        (false, true) => QuoteMark::Close,
        _ => QuoteMark::Straight,
    }
}

/// Whether `chars[at]` is an apostrophe starting a possessive "'s" that ends the word.
fn is_possessive_s(chars: &[(usize, char)], at: usize) -> bool {
    chars
        .get(at + 1)
        .is_some_and(|&(_, s)| s == 's' || s == 'S')
        && chars.get(at + 2).is_none_or(|&(_, n)| !is_word_char(n))
}

/// Words after which a full stop does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "Mr", "Mrs", "Ms", "Dr", "Prof", "St", "Gen", "Lt", "Col", "Capt", "Sgt", "Rev", "Sen", "Rep",
    "Gov", "Jr", "Sr", "No", "vs", "etc", "Inc", "Corp", "Ltd", "Co", "Jan", "Feb", "Mar", "Apr",
    "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec", "Mt", "Ft", "Adm", "Maj", "Cpl",
];

/// Splits `tokens` (of `text`) into sentences, returned as index ranges into `tokens`.
///
/// A sentence ends at `.`, `!` or `?` (plus any closing quotes) when the next token starts
/// a new sentence: a capitalised word, a digit or an opening quote. A full stop after a
/// known abbreviation ("Mr.") does not end one.
pub fn sentences(text: &str, tokens: &[Token]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < tokens.len() {
        let token = tokens[i];
        let t = token.text(text);
        let ends_with_terminal = token.kind == TokenKind::Punct && matches!(t, "." | "!" | "?");
        // "U.S." carries its own full stop.
        let dotted_abbrev = token.kind == TokenKind::Word && t.ends_with('.');
        if ends_with_terminal || dotted_abbrev {
            let mut end = i + 1;
            while end < tokens.len()
                && (matches!(tokens[end].kind, TokenKind::Quote(QuoteMark::Close))
                    || (tokens[end].kind == TokenKind::Quote(QuoteMark::Straight)
                        && closes_quote(tokens, end)))
            {
                end += 1;
            }
            let previous_is_abbrev = ends_with_terminal
                && i > 0
                && tokens[i - 1].end == token.start
                && ABBREVIATIONS.contains(&tokens[i - 1].text(text));
            let next_starts = tokens.get(end).is_none_or(|next| {
                let n = next.text(text);
                match next.kind {
                    TokenKind::Quote(QuoteMark::Open | QuoteMark::Straight) => true,
                    TokenKind::Number => true,
                    TokenKind::Word => n.chars().next().is_some_and(char::is_uppercase),
                    _ => false,
                }
            });
            // After "U.S." a capitalised word may be a name ("U.S. Army"); only a word that
            // usually starts sentences ends one there.
            let dotted_ok = !dotted_abbrev
                || tokens
                    .get(end)
                    .is_none_or(|next| super::lexicon::get().is_sentence_starter(next.text(text)));
            if !previous_is_abbrev && next_starts && dotted_ok {
                out.push(start..end);
                start = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    if start < tokens.len() {
        out.push(start..tokens.len());
    }
    out
}

/// Whether the straight quote at `i` closes a quotation: it is glued to the token before it
/// and not to the one after it.
fn closes_quote(tokens: &[Token], i: usize) -> bool {
    let glued_before = i > 0 && tokens[i - 1].end == tokens[i].start;
    let glued_after = tokens.get(i + 1).is_some_and(|n| n.start == tokens[i].end);
    glued_before && !glued_after
}

/// Whether a word starts with an upper-case letter.
pub fn is_capitalized(word: &str) -> bool {
    word.chars().next().is_some_and(char::is_uppercase)
}

/// Whether a word is written in capitals throughout (at least two letters): "PKK", "U.N.".
pub fn is_all_caps(word: &str) -> bool {
    let mut letters = 0;
    for c in word.chars() {
        if c.is_alphabetic() {
            if !c.is_uppercase() {
                return false;
            }
            letters += 1;
        }
    }
    letters >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<&str> {
        tokenize(text).iter().map(|t| t.text(text)).collect()
    }

    #[test]
    fn keeps_dotted_initials_and_hyphenated_names_whole() {
        assert_eq!(
            words("the U.N. and al-Nusra Front's"),
            ["the", "U.N.", "and", "al-Nusra", "Front", "'s"]
        );
    }

    #[test]
    fn splits_possessives_but_not_contractions() {
        assert_eq!(words("Kerry's don't"), ["Kerry", "'s", "don't"]);
        assert_eq!(words("Kerry’s"), ["Kerry", "’s"]);
        assert_eq!(words("the Kurds' future"), ["the", "Kurds", "'", "future"]);
    }

    #[test]
    fn numbers_keep_their_separators() {
        assert_eq!(words("1,500 and 2.5."), ["1,500", "and", "2.5", "."]);
    }

    #[test]
    fn quotes_are_tokens() {
        let text = "“Hi,” he said \"yes\" and \" alone";
        let kinds: Vec<_> = tokenize(text).iter().map(|t| t.kind).collect();
        assert_eq!(kinds[0], TokenKind::Quote(QuoteMark::Open));
        assert_eq!(kinds[3], TokenKind::Quote(QuoteMark::Close));
        assert_eq!(kinds[6], TokenKind::Quote(QuoteMark::Open));
        assert_eq!(kinds[8], TokenKind::Quote(QuoteMark::Close));
        assert_eq!(kinds[10], TokenKind::Quote(QuoteMark::Straight));
    }

    #[test]
    fn splits_sentences_but_not_after_abbreviations() {
        let text = "Mr. Smith went to Washington. He said \"no.\" The U.N. and others agreed.";
        let tokens = tokenize(text);
        let got: Vec<String> = sentences(text, &tokens)
            .into_iter()
            .map(|r| text[tokens[r.start].start..tokens[r.end - 1].end].to_string())
            .collect();
        assert_eq!(
            got,
            [
                "Mr. Smith went to Washington.",
                "He said \"no.\"",
                "The U.N. and others agreed."
            ]
        );
    }

    #[test]
    fn never_panics_on_odd_text() {
        for text in [
            "",
            "'",
            "'s",
            "\"",
            "a'",
            "U.",
            "1,",
            "-a",
            "a-",
            "é'ś",
            "\u{0}\u{200b}",
        ] {
            let tokens = tokenize(text);
            let _ = sentences(text, &tokens);
        }
    }
}
