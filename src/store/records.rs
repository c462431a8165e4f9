//! The records derived from articles and entities that the store keeps beside them: an
//! article's `x` record (the entity index is rebuilt from these) and an entity's record
//! without its counters.

use super::codec;
use super::keys::{self, ArticleIndex};
use crate::error::Result;
use crate::model::{Article, Entity, EntityKind};

/// The `x` record of an article: per entity it mentions, the entity's id, its salience
/// there, how often the article names it and the kind extraction gave it there. The entity
/// index (entries and tallies) is rebuilt from these small records rather than the
/// articles. Before layout 6 the record held ids and saliences alone (or ids alone).
pub(super) type ArticleEntities = Vec<(String, f32, u32, Option<EntityKind>)>;

/// The entity-index keys of an article's mentions: per mention, its `m` (by time) and `l`
/// (by salience) entries.
pub(super) fn mention_index_keys(article: &Article) -> impl Iterator<Item = Vec<u8>> + '_ {
    let time = article.sort_time();
    article.derived.mentions.iter().flat_map(move |mention| {
        [
            ArticleIndex::Entity(mention.entity_id.clone()).key(time, &article.id),
            keys::salience(&mention.entity_id, mention.salience, time, &article.id),
        ]
    })
}

/// What the `x` record of `article` holds.
pub(super) fn article_entities_of(article: &Article) -> ArticleEntities {
    article
        .derived
        .mentions
        .iter()
        .map(|m| (m.entity_id.clone(), m.salience, m.count, m.extracted_kind))
        .collect()
}

/// The `x` record for `article`.
pub(super) fn article_entities_record(article: &Article) -> Result<Vec<u8>> {
    codec::encode(&article_entities_of(article))
}

/// An entity's record as stored: without its counters (article and mention counts, first
/// and last seen, kind votes), which are derived from its articles and held by the entity
/// index. So a write rewrites only the records whose own fields it changes, not the record
/// of every entity its article mentions: at 2,125 articles that was half of what sled wrote
/// and a third of its files.
pub(super) fn entity_record(entity: &Entity) -> Result<Vec<u8>> {
    codec::encode(&record_of(entity))
}

/// What [`entity_record`] encodes: `entity` with its counters cleared.
pub(super) fn record_of(entity: &Entity) -> Entity {
    let mut record = entity.clone();
    clear_counters(&mut record);
    record
}

/// Whether `entity` and the `stored` record agree in everything but the counters, that is
/// whether writing `entity` would change its record. Every field is named, so a new one
/// cannot be forgotten here.
pub(super) fn same_record(entity: &Entity, stored: &Entity) -> bool {
    let Entity {
        id,
        name,
        kind,
        aliases,
        article_count: _,
        mention_count: _,
        first_seen: _,
        last_seen: _,
        code,
        description,
        external_ids,
        merged_into,
        blocked,
        edited,
        kind_votes: _,
    } = entity;
    *id == stored.id
        && *name == stored.name
        && *kind == stored.kind
        && *aliases == stored.aliases
        && *code == stored.code
        && *description == stored.description
        && *external_ids == stored.external_ids
        && *merged_into == stored.merged_into
        && *blocked == stored.blocked
        && *edited == stored.edited
}

/// Zeroes what [`entity_record`] leaves out.
pub(super) fn clear_counters(entity: &mut Entity) {
    entity.article_count = 0;
    entity.mention_count = 0;
    entity.first_seen = None;
    entity.last_seen = None;
    entity.kind_votes = [0; 4];
}
