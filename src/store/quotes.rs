//! Quotes by speaker, read through the speaker's article index.
//!
//! A quote's speaker is always an entity its article mentions, so the entity's
//! newest-first article index already leads to every quote it spoke; no separate index has
//! to be kept in step with writes, merges and blocks. A page reads at most
//! [`MAX_ARTICLES_PER_PAGE`] articles, so a prolific name that rarely speaks costs a bounded
//! amount per call: such a page may hold fewer quotes than asked, with a token to go on.

use super::Store;
use super::keys::{self, ArticleIndex};
use crate::error::{Error, Invalid, Resource, Result};
use crate::model::{Quote, Timestamp};

/// Articles one page of quotes reads at most.
pub const MAX_ARTICLES_PER_PAGE: usize = 500;

/// A quote and the article it appears in.
#[derive(Debug, Clone, PartialEq)]
pub struct QuoteHit {
    pub quote: Quote,
    pub article_id: String,
    pub headline: String,
    pub published: Option<Timestamp>,
}

/// A page of quotes; `next` is the position to continue from.
#[derive(Debug, Clone)]
pub struct QuotePage {
    pub quotes: Vec<QuoteHit>,
    pub speaker_id: String,
    pub next: Option<Vec<u8>>,
}

/// A position: an article's index suffix (time and id), a 0 byte, the next quote's number.
fn position(suffix: &[u8], quote: u16) -> Vec<u8> {
    let mut out = suffix.to_vec();
    out.push(0);
    out.extend_from_slice(&quote.to_be_bytes());
    out
}

fn split_position(position: &[u8]) -> Option<(&[u8], u16)> {
    let (suffix, rest) = position.split_at_checked(position.len().checked_sub(3)?)?;
    if rest[0] != 0 || keys::split_suffix(suffix).is_none() {
        return None;
    }
    Some((suffix, u16::from_be_bytes([rest[1], rest[2]])))
}

impl Store {
    /// Quotes spoken by entity `speaker` (or the entity it was merged into), newest article
    /// first, continuing from `cursor`.
    pub fn list_quotes(
        &self,
        speaker: &str,
        page_size: usize,
        cursor: Option<&[u8]>,
    ) -> Result<QuotePage> {
        let start = match cursor {
            Some(c) => Some(split_position(c).ok_or_else(|| {
                Error::invalid(
                    "page_token",
                    Invalid::PageToken,
                    "page_token is not a position this server issued",
                )
            })?),
            None => None,
        };
        let entity = self
            .resolve_entity(speaker)?
            .ok_or_else(|| Error::NotFound {
                resource: Resource::Entity,
                id: speaker.to_string(),
            })?;
        let prefix = ArticleIndex::Entity(entity.id.clone()).prefix();
        let mut low = prefix.clone();
        if let Some((suffix, _)) = start {
            low.extend_from_slice(suffix);
        }
        let mut quotes = Vec::new();
        for (read, entry) in self.keys_in(low..keys::prefix_end(&prefix)).enumerate() {
            let key = entry?;
            let suffix = &key[prefix.len()..];
            if read == MAX_ARTICLES_PER_PAGE {
                return Ok(QuotePage {
                    quotes,
                    speaker_id: entity.id,
                    next: Some(position(suffix, 0)),
                });
            }
            let Some((_, article_id)) = keys::split_suffix(suffix) else {
                continue;
            };
            let first = match start {
                Some((s, n)) if s == suffix => usize::from(n),
                _ => 0,
            };
            let Some(article) = self.get_article(article_id)? else {
                continue;
            };
            for (i, quote) in article.derived.quotes.iter().enumerate().skip(first) {
                if quote.speaker.as_ref().is_none_or(|(s, _)| *s != entity.id) {
                    continue;
                }
                if quotes.len() == page_size {
                    let at = u16::try_from(i).unwrap_or(u16::MAX);
                    return Ok(QuotePage {
                        quotes,
                        speaker_id: entity.id,
                        next: Some(position(suffix, at)),
                    });
                }
                quotes.push(QuoteHit {
                    quote: quote.clone(),
                    article_id: article.id.clone(),
                    headline: article.input.headline.clone(),
                    published: article.input.published,
                });
            }
        }
        Ok(QuotePage {
            quotes,
            speaker_id: entity.id,
            next: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_reject_junk() {
        let suffix = {
            let mut s = keys::newest_first(Timestamp(42)).to_vec();
            s.extend_from_slice(b"article-1");
            s
        };
        let p = position(&suffix, 7);
        assert_eq!(split_position(&p), Some((suffix.as_slice(), 7)));
        assert_eq!(split_position(b"x"), None);
        assert_eq!(split_position(&[1, 2, 3, 4]), None);
    }
}
