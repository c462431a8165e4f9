//! The rules every article input must meet (sizes, visible text, language tags, tags and
//! entity tags), the article-id rule's error, how an input is cleaned before it is checked,
//! and the content hash that tells one content from another.

use std::collections::BTreeSet;

use crate::error::{Error, Invalid, Result};
use crate::extract;
use crate::model::ArticleInput;
use crate::store::Content;

/// Size limits on what callers may store.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_headline_chars: usize,
    pub max_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_headline_chars: 1000,
            max_batch: 1000,
        }
    }
}

const MAX_SHORT_FIELD_CHARS: usize = 500;
const MAX_TAGS: usize = 100;
const MAX_ENTITY_TAGS: usize = 100;

/// An article id by the one rule ([`crate::model::is_valid_article_id`]), or why not.
pub fn validate_id(id: &str) -> Result<()> {
    if crate::model::is_valid_article_id(id) {
        Ok(())
    } else {
        Err(Error::invalid(
            "article_id",
            Invalid::Malformed,
            format!(
                "article id {id:?} is not valid: use 1 to {} characters from a-z, \
                 0-9, '-' and '_', starting with a letter or digit",
                crate::model::MAX_ARTICLE_ID_LEN
            ),
        ))
    }
}

/// Checks an input against the rules and limits, cleans it, and analyses it.
pub(super) fn prepare(mut input: ArticleInput, limits: &Limits) -> Result<Content> {
    input.headline = input
        .headline
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    input.byline = input.byline.trim().to_string();
    input.source = input.source.trim().to_string();
    input.language = input.language.trim().to_string();
    input.tags = input
        .tags
        .iter()
        .map(|t| t.trim().to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    validate_input(&input, limits)?;
    Ok(analysed(input))
}

/// What a write stores for `input` as it stands: the input, its extraction and its content
/// hash. [`prepare`] ends here after cleaning and checking; re-extraction comes here
/// directly (see `reextract.rs` for why).
pub(super) fn analysed(input: ArticleInput) -> Content {
    let extraction = extract::analyze(&input);
    let content_hash = input.content_hash();
    Content {
        input,
        extraction,
        content_hash,
    }
}

/// Whether `c` shows as something on a page: not a space, a control character, or one of
/// the format and filler characters that render as nothing (zero-width spaces and joiners,
/// direction marks, the byte-order mark, soft hyphens, variation selectors, tags, fillers).
fn is_visible(c: char) -> bool {
    !(c.is_whitespace()
        || c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
            | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{2800}' | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}'))
}

fn validate_input(input: &ArticleInput, limits: &Limits) -> Result<()> {
    if input.headline.is_empty() {
        return Err(Error::missing("article.headline"));
    }
    let headline_chars = input.headline.chars().count();
    if headline_chars > limits.max_headline_chars {
        return Err(Error::invalid(
            "article.headline",
            Invalid::TooLarge,
            format!(
                "the headline has {headline_chars} characters; at most {} are allowed",
                limits.max_headline_chars
            ),
        ));
    }
    if input.body.trim().is_empty() {
        return Err(Error::missing("article.body"));
    }
    if input.body.len() > limits.max_body_bytes {
        return Err(Error::invalid(
            "article.body",
            Invalid::TooLarge,
            format!(
                "the body has {} bytes; at most {} are allowed",
                input.body.len(),
                limits.max_body_bytes
            ),
        ));
    }
    for (field, value) in [
        ("article.headline", &input.headline),
        ("article.body", &input.body),
    ] {
        if !value.chars().any(is_visible) {
            return Err(Error::invalid(
                field,
                Invalid::Malformed,
                format!(
                    "{field} has no visible text: only spaces, zero-width or other invisible \
                     characters"
                ),
            ));
        }
        if value.contains('\0') {
            return Err(Error::invalid(
                field,
                Invalid::Malformed,
                format!("{field} must be text: it contains a NUL character"),
            ));
        }
    }
    for (field, value) in [
        ("article.byline", &input.byline),
        ("article.source", &input.source),
    ] {
        if value.chars().count() > MAX_SHORT_FIELD_CHARS {
            return Err(Error::invalid(
                field,
                Invalid::TooLarge,
                format!("{field} may have at most {MAX_SHORT_FIELD_CHARS} characters"),
            ));
        }
    }
    if !input.language.is_empty() && !is_language_tag(&input.language) {
        return Err(Error::invalid(
            "article.language",
            Invalid::Malformed,
            format!(
                "{:?} is not a BCP-47 language tag such as \"en\" or \"en-GB\"",
                input.language
            ),
        ));
    }
    if input.tags.len() > MAX_TAGS {
        return Err(Error::invalid(
            "article.tags",
            Invalid::TooLarge,
            format!("an article may have at most {MAX_TAGS} tags"),
        ));
    }
    if let Some(tag) = input
        .tags
        .iter()
        .find(|t| t.is_empty() || t.chars().count() > 100)
    {
        return Err(Error::invalid(
            "article.tags",
            Invalid::Malformed,
            format!("tag {tag:?} must have 1 to 100 characters"),
        ));
    }
    if input.entity_tags.len() > MAX_ENTITY_TAGS {
        return Err(Error::invalid(
            "article.entity_tags",
            Invalid::TooLarge,
            format!("an article may have at most {MAX_ENTITY_TAGS} entity tags"),
        ));
    }
    for tag in &input.entity_tags {
        let name = tag.name.trim();
        if name.is_empty() && tag.entity_id.is_none() {
            return Err(Error::invalid(
                "article.entity_tags",
                Invalid::Missing,
                "each entity tag needs a name or an entity_id",
            ));
        }
        if tag.kind.is_none() && tag.entity_id.is_none() {
            return Err(Error::invalid(
                "article.entity_tags",
                Invalid::Missing,
                format!("entity tag {name:?} needs a kind (or an entity_id)"),
            ));
        }
        if name.chars().count() > 200 {
            return Err(Error::invalid(
                "article.entity_tags",
                Invalid::TooLarge,
                "entity tag names may have at most 200 characters",
            ));
        }
    }
    Ok(())
}

/// `en`, `en-GB`, `zh-Hant-TW`: a 2–3 letter language and optional subtags.
fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let language_ok = parts
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphabetic()));
    language_ok
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(validate_id("000_d5ebef1cd6c2904d").is_ok());
        assert!(validate_id("a").is_ok());
        for bad in ["", "-a", "A", "a b", "a/b", "é", &"a".repeat(129)] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn language_tags() {
        for good in ["en", "en-GB", "zh-Hant-TW", "deu"] {
            assert!(is_language_tag(good), "{good}");
        }
        for bad in ["e", "english", "en_GB", "en-", "12"] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }
}
