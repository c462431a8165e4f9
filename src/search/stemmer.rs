//! English stemming that remembers the words it has stemmed.
//!
//! News text repeats its vocabulary: a segment's worth of articles uses a few tens of
//! thousands of distinct words, each many times, and the Snowball algorithm was 6 % of all
//! ingest CPU. A table lookup gives the same stem for a fraction of that. The output is
//! exactly tantivy's `Stemmer` for English (tested below), so the index format, queries and
//! highlighting do not change.

use rust_stemmers::{Algorithm, Stemmer};
use rustc_hash::FxHashMap;
use tantivy::tokenizer::{Token, TokenFilter, TokenStream, Tokenizer};

/// Distinct words remembered before the table starts afresh, which bounds its memory
/// (a few MiB) on text with an open-ended vocabulary.
const MAX_WORDS: usize = 50_000;

/// The token filter: English Snowball stems, remembered per analyser instance. Each
/// indexing segment, query and highlighter builds or clones its own analyser, so nothing is
/// shared or locked.
#[derive(Clone, Copy, Debug, Default)]
pub struct CachedEnglishStemmer;

impl TokenFilter for CachedEnglishStemmer {
    type Tokenizer<T: Tokenizer> = CachedStemmerFilter<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> CachedStemmerFilter<T> {
        CachedStemmerFilter {
            inner: tokenizer,
            stems: FxHashMap::default(),
        }
    }
}

#[derive(Clone)]
pub struct CachedStemmerFilter<T> {
    inner: T,
    stems: FxHashMap<Box<str>, Box<str>>,
}

impl<T: Tokenizer> Tokenizer for CachedStemmerFilter<T> {
    type TokenStream<'a> = CachedStemmerStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        CachedStemmerStream {
            tail: self.inner.token_stream(text),
            stemmer: Stemmer::create(Algorithm::English),
            stems: &mut self.stems,
        }
    }
}

pub struct CachedStemmerStream<'a, T> {
    tail: T,
    stemmer: Stemmer,
    stems: &'a mut FxHashMap<Box<str>, Box<str>>,
}

impl<T: TokenStream> TokenStream for CachedStemmerStream<'_, T> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        let token = self.tail.token_mut();
        if let Some(stem) = self.stems.get(token.text.as_str()) {
            token.text.clear();
            token.text.push_str(stem);
            return true;
        }
        let stem: Box<str> = self.stemmer.stem(&token.text).into();
        if self.stems.len() >= MAX_WORDS {
            self.stems.clear();
        }
        let word = std::mem::replace(&mut token.text, stem.to_string());
        self.stems.insert(word.into_boxed_str(), stem);
        true
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::tokenizer::{Language, LowerCaser, SimpleTokenizer, TextAnalyzer};

    fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<Token> {
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().clone());
        }
        out
    }

    #[test]
    fn stems_exactly_as_tantivys_stemmer_does_first_time_and_from_memory() {
        let text = "Ministers were meeting in Geneva; the meetings ran on. Running talks, \
                    running ministers, généralement 2016's cessation of hostilities — \
                    Hostilities ceased. Ministers' meeting.";
        let mut plain = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(LowerCaser)
            .filter(tantivy::tokenizer::Stemmer::new(Language::English))
            .build();
        let mut cached = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(LowerCaser)
            .filter(CachedEnglishStemmer)
            .build();
        let expected = tokens(&mut plain, text);
        assert!(expected.iter().any(|t| t.text == "minist"));
        // Twice: the second pass answers every word from the table.
        for _ in 0..2 {
            assert_eq!(tokens(&mut cached, text), expected);
        }
    }

    #[test]
    fn the_table_starts_afresh_when_full_and_stays_correct() {
        let mut cached = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(CachedEnglishStemmer)
            .build();
        let mut plain = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(tantivy::tokenizer::Stemmer::new(Language::English))
            .build();
        let text: String = (0..MAX_WORDS + 10)
            .map(|i| format!("running{i}s "))
            .chain(std::iter::once("running ".to_string()))
            .collect();
        assert_eq!(tokens(&mut cached, &text), tokens(&mut plain, &text));
    }
}
