//! The search index's schema: what is indexed for each article.
//!
//! Only article ids are stored; the text itself stays in sled. That keeps the index smaller
//! than the raw text and means a hit is always shown as the store has it.

use tantivy::schema::{
    Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer,
};
use tantivy::{Index, TantivyDocument};

use crate::model::{Article, normalize_source};

/// The English analyser: split on non-alphanumerics, lower-case, drop absurdly long tokens,
/// stem (Porter, via tantivy's Snowball stemmer).
const TOKENIZER: &str = "news_en";

pub struct Fields {
    pub schema: Schema,
    pub id: Field,
    pub headline: Field,
    pub lead: Field,
    pub body: Field,
    pub captions: Field,
    pub source: Field,
    pub entity: Field,
    pub published: Field,
}

impl Fields {
    pub fn new() -> Fields {
        let mut builder = Schema::builder();
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let id = builder.add_text_field("id", STRING | STORED);
        let headline = builder.add_text_field("headline", text.clone());
        let lead = builder.add_text_field("lead", text.clone());
        let body = builder.add_text_field("body", text.clone());
        let captions = builder.add_text_field("captions", text);
        let source = builder.add_text_field("source", STRING);
        let entity = builder.add_text_field("entity", STRING);
        let published = builder.add_i64_field("published", INDEXED);
        Fields {
            schema: builder.build(),
            id,
            headline,
            lead,
            body,
            captions,
            source,
            entity,
            published,
        }
    }

    /// The index document of an article.
    pub fn document(&self, article: &Article) -> TantivyDocument {
        let mut doc = TantivyDocument::default();
        doc.add_text(self.id, &article.id);
        doc.add_text(self.headline, &article.input.headline);
        doc.add_text(self.lead, article.lead());
        doc.add_text(self.body, &article.input.body);
        for caption in &article.derived.captions {
            doc.add_text(self.captions, caption);
        }
        let source = normalize_source(&article.input.source);
        if !source.is_empty() {
            doc.add_text(self.source, &source);
        }
        for mention in &article.derived.mentions {
            doc.add_text(self.entity, &mention.entity_id);
        }
        doc.add_i64(self.published, article.sort_time().0);
        doc
    }
}

/// Registers the analysers the schema names; needed on every open.
pub fn register_tokenizers(index: &Index) {
    let analyzer = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(64))
        .filter(LowerCaser)
        .filter(Stemmer::new(Language::English))
        .build();
    index.tokenizers().register(TOKENIZER, analyzer);
}
