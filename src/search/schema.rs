//! The search index's schema: what is indexed for each article.
//!
//! No text is stored; it stays in sled, which keeps the index smaller than the raw text and
//! means a hit is always shown as the store has it. Filter and facet values are fast
//! (columnar) fields so that counting and ordering never touch the documents.

use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer};
use tantivy::{Index, TantivyDocument};

use super::stemmer::CachedEnglishStemmer;
use crate::model::{Article, EntityKind, Timestamp, language_keys, normalize_source};

/// English text: split on non-alphanumerics, lower-case, drop absurdly long tokens, stem.
pub const TEXT_ANALYZER: &str = "news_en";
/// Names such as sources: split and lower-case, no stemming.
pub const NAME_ANALYZER: &str = "news_name";

/// Bumped whenever the schema or the analysers change; an index built with another version
/// is rebuilt at startup.
pub const SCHEMA_VERSION: u32 = 3;

/// Bits of an `entity_code` value above the entity number, holding its kind.
pub const KIND_SHIFT: u32 = 56;

/// The `entity_code` value of an entity: its kind above its number.
pub fn entity_value(kind: EntityKind, code: u64) -> u64 {
    (kind_number(kind) << KIND_SHIFT) | (code & ((1 << KIND_SHIFT) - 1))
}

fn kind_number(kind: EntityKind) -> u64 {
    EntityKind::ALL
        .iter()
        .position(|k| *k == kind)
        .map_or(0, |i| i as u64 + 1)
}

/// The kind and number of an `entity_code` value.
pub fn split_entity_value(value: u64) -> (Option<EntityKind>, u64) {
    let kind = usize::try_from(value >> KIND_SHIFT)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| EntityKind::ALL.get(i).copied());
    (kind, value & ((1 << KIND_SHIFT) - 1))
}

pub struct Fields {
    pub schema: Schema,
    /// Article id; fast, so hits are mapped to ids without reading documents.
    pub id: Field,
    pub headline: Field,
    pub lead: Field,
    pub body: Field,
    pub captions: Field,
    /// The source as words, for `source:` in queries.
    pub source_text: Field,
    /// The normalised source, for filters and facets.
    pub source: Field,
    /// Entity ids, for filters and `entity:`.
    pub entity: Field,
    /// Kind and number of each entity (see `entity_value`), for entity facets.
    pub entity_code: Field,
    /// Kind tags of the entities mentioned.
    pub kind: Field,
    /// Lower-cased tags.
    pub tag: Field,
    /// Language keys (see `language_keys`).
    pub language: Field,
    /// Publication (or creation) time in nanoseconds.
    pub published: Field,
    /// "YYYY-MM" of `published`, for month facets.
    pub month: Field,
}

impl Fields {
    pub fn new() -> Fields {
        let mut builder = Schema::builder();
        let text = |analyzer: &str| {
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(analyzer)
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            )
        };
        let id = builder.add_text_field("id", STRING | FAST);
        let headline = builder.add_text_field("headline", text(TEXT_ANALYZER));
        let lead = builder.add_text_field("lead", text(TEXT_ANALYZER));
        let body = builder.add_text_field("body", text(TEXT_ANALYZER));
        let captions = builder.add_text_field("captions", text(TEXT_ANALYZER));
        let source_text = builder.add_text_field("source_text", text(NAME_ANALYZER));
        let source = builder.add_text_field("source", STRING | FAST);
        let entity = builder.add_text_field("entity", STRING);
        let entity_code = builder.add_u64_field("entity_code", FAST);
        let kind = builder.add_text_field("kind", STRING);
        let tag = builder.add_text_field("tag", STRING | FAST);
        let language = builder.add_text_field("language", STRING);
        let published = builder.add_i64_field("published", INDEXED | FAST);
        let month = builder.add_text_field("month", FAST);
        Fields {
            schema: builder.build(),
            id,
            headline,
            lead,
            body,
            captions,
            source_text,
            source,
            entity,
            entity_code,
            kind,
            tag,
            language,
            published,
            month,
        }
    }

    /// The index document of an article.
    pub fn document(&self, article: &Article) -> TantivyDocument {
        let mut doc = TantivyDocument::default();
        doc.add_text(self.id, &article.id);
        doc.add_text(self.headline, &article.input.headline);
        doc.add_text(self.lead, article.lead());
        for paragraph in &article.derived.paragraphs {
            doc.add_text(self.body, paragraph.slice(&article.input.body));
        }
        for subheading in &article.derived.subheadings {
            doc.add_text(self.body, subheading.slice(&article.input.body));
        }
        for caption in &article.derived.captions {
            doc.add_text(self.captions, caption);
        }
        let source = normalize_source(&article.input.source);
        if !source.is_empty() {
            doc.add_text(self.source_text, &article.input.source);
            doc.add_text(self.source, &source);
        }
        let mut kinds = Vec::new();
        for mention in &article.derived.mentions {
            doc.add_text(self.entity, &mention.entity_id);
            if mention.entity_code > 0 {
                doc.add_u64(
                    self.entity_code,
                    entity_value(mention.kind, mention.entity_code),
                );
            }
            if !kinds.contains(&mention.kind) {
                kinds.push(mention.kind);
                doc.add_text(self.kind, mention.kind.tag());
            }
        }
        let mut tags: Vec<String> = article
            .input
            .tags
            .iter()
            .map(|t| t.to_lowercase())
            .collect();
        tags.sort();
        tags.dedup();
        for tag in tags {
            doc.add_text(self.tag, tag);
        }
        for key in language_keys(&article.input.language) {
            doc.add_text(self.language, key);
        }
        let time = article.sort_time();
        doc.add_i64(self.published, time.0);
        doc.add_text(self.month, month_of(time));
        doc
    }
}

/// "YYYY-MM" of a time, in UTC (the civil-from-days algorithm, so no date library is
/// needed for this one conversion).
pub fn month_of(time: Timestamp) -> String {
    let days = time.0.div_euclid(86_400_000_000_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}")
}

/// The English analyser.
pub fn text_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(64))
        .filter(LowerCaser)
        .filter(CachedEnglishStemmer)
        .build()
}

/// The analyser for names: like the English one without stemming.
pub fn name_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(64))
        .filter(LowerCaser)
        .build()
}

/// Registers the analysers the schema names; needed on every open.
pub fn register_tokenizers(index: &Index) {
    index.tokenizers().register(TEXT_ANALYZER, text_analyzer());
    index.tokenizers().register(NAME_ANALYZER, name_analyzer());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_utc_calendar_months() {
        let second = 1_000_000_000i64;
        assert_eq!(month_of(Timestamp(0)), "1970-01");
        assert_eq!(month_of(Timestamp(1_472_169_600 * second)), "2016-08");
        assert_eq!(month_of(Timestamp(951_782_400 * second)), "2000-02"); // 2000-02-29
        assert_eq!(month_of(Timestamp(-second)), "1969-12");
        assert_eq!(month_of(Timestamp(1_709_251_199 * second)), "2024-02");
        assert_eq!(month_of(Timestamp(1_709_251_200 * second)), "2024-03");
    }
}
