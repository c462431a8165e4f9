//! The one conversion between protobuf messages and domain types.
//!
//! Incoming messages are validated as they convert (timestamps in range, enum values known),
//! so everything below the API receives well-formed domain values. Outgoing conversion
//! honours the requested view.

use super::proto;
use crate::error::{Error, Invalid, Result};
use crate::model::{
    Article, ArticleFilter, ArticleInput, Entity, EntityKind, EntityPatch, EntityTag, Mention,
    MentionOrigin, Quote, Span, Timestamp, normalize_source,
};

/// Seconds of 1678-01-01 and 2262-04-11, the range an `i64` of nanoseconds covers.
const MIN_SECONDS: i64 = -9_223_372_036;
const MAX_SECONDS: i64 = 9_223_372_035;

pub fn timestamp_from_proto(field: &str, ts: &prost_types::Timestamp) -> Result<Timestamp> {
    if !(0..1_000_000_000).contains(&ts.nanos) || !(MIN_SECONDS..=MAX_SECONDS).contains(&ts.seconds)
    {
        return Err(Error::invalid(
            field,
            Invalid::OutOfRange,
            format!("{field} must be a valid time between the years 1678 and 2262"),
        ));
    }
    Ok(Timestamp(ts.seconds * 1_000_000_000 + i64::from(ts.nanos)))
}

pub fn timestamp_to_proto(time: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.0.div_euclid(1_000_000_000),
        nanos: time.0.rem_euclid(1_000_000_000) as i32,
    }
}

pub fn kind_from_proto(field: &str, value: i32) -> Result<Option<EntityKind>> {
    match proto::EntityKind::try_from(value) {
        Ok(proto::EntityKind::Unspecified) => Ok(None),
        Ok(proto::EntityKind::Person) => Ok(Some(EntityKind::Person)),
        Ok(proto::EntityKind::Organization) => Ok(Some(EntityKind::Organization)),
        Ok(proto::EntityKind::Location) => Ok(Some(EntityKind::Location)),
        Ok(proto::EntityKind::Misc) => Ok(Some(EntityKind::Misc)),
        Err(_) => Err(Error::invalid(
            field,
            Invalid::Malformed,
            format!("{value} is not an EntityKind"),
        )),
    }
}

pub fn kind_to_proto(kind: EntityKind) -> proto::EntityKind {
    match kind {
        EntityKind::Person => proto::EntityKind::Person,
        EntityKind::Organization => proto::EntityKind::Organization,
        EntityKind::Location => proto::EntityKind::Location,
        EntityKind::Misc => proto::EntityKind::Misc,
    }
}

/// The caller-supplied fields of an article message.
pub fn input_from_proto(article: &proto::Article) -> Result<ArticleInput> {
    let published = article
        .published_time
        .as_ref()
        .map(|ts| timestamp_from_proto("article.published_time", ts))
        .transpose()?;
    let entity_tags = article
        .entity_tags
        .iter()
        .map(|tag| {
            let entity_id = (!tag.entity_id.is_empty()).then(|| tag.entity_id.clone());
            Ok(EntityTag {
                name: tag.name.clone(),
                kind: kind_from_proto("article.entity_tags.kind", tag.kind)?,
                entity_id,
            })
        })
        .collect::<Result<_>>()?;
    Ok(ArticleInput {
        headline: article.headline.clone(),
        body: article.body.clone(),
        byline: article.byline.clone(),
        source: article.source.clone(),
        language: article.language.clone(),
        published,
        tags: article.tags.clone(),
        entity_tags,
    })
}

/// Whether a view shows the full article.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Basic,
    Full,
}

pub fn view_from_proto(value: i32, default: View) -> Result<View> {
    match proto::ArticleView::try_from(value) {
        Ok(proto::ArticleView::Unspecified) => Ok(default),
        Ok(proto::ArticleView::Basic) => Ok(View::Basic),
        Ok(proto::ArticleView::Full) => Ok(View::Full),
        Err(_) => Err(Error::invalid(
            "view",
            Invalid::Malformed,
            format!("{value} is not an ArticleView"),
        )),
    }
}

pub fn article_to_proto(article: &Article, view: View) -> proto::Article {
    let full = view == View::Full;
    let body = &article.input.body;
    let slices = |ranges: &[crate::model::ByteRange]| -> Vec<String> {
        ranges.iter().map(|r| r.slice(body).to_string()).collect()
    };
    proto::Article {
        id: article.id.clone(),
        headline: article.input.headline.clone(),
        lead: article.lead().to_string(),
        body: if full { body.clone() } else { String::new() },
        paragraphs: if full {
            slices(&article.derived.paragraphs)
        } else {
            Vec::new()
        },
        subheadings: if full {
            slices(&article.derived.subheadings)
        } else {
            Vec::new()
        },
        captions: if full {
            article.derived.captions.clone()
        } else {
            Vec::new()
        },
        byline: article.input.byline.clone(),
        source: article.input.source.clone(),
        language: article.input.language.clone(),
        published_time: article.input.published.map(timestamp_to_proto),
        create_time: Some(timestamp_to_proto(article.created)),
        update_time: Some(timestamp_to_proto(article.updated)),
        tags: article.input.tags.clone(),
        etag: article.etag(),
        revision: i64::try_from(article.revision).unwrap_or(i64::MAX),
        content_hash: article.derived.content_hash.clone(),
        word_count: i32::try_from(article.derived.word_count).unwrap_or(i32::MAX),
        entity_tags: article
            .input
            .entity_tags
            .iter()
            .map(|tag| proto::EntityTag {
                name: tag.name.clone(),
                kind: tag
                    .kind
                    .map_or(proto::EntityKind::Unspecified, kind_to_proto)
                    as i32,
                entity_id: tag.entity_id.clone().unwrap_or_default(),
            })
            .collect(),
        entities: article
            .derived
            .mentions
            .iter()
            .map(|m| mention_to_proto(m, full))
            .collect(),
        quotes: if full {
            article.derived.quotes.iter().map(quote_to_proto).collect()
        } else {
            Vec::new()
        },
    }
}

fn span_to_proto(span: Span) -> proto::TextSpan {
    proto::TextSpan {
        start: i32::try_from(span.start).unwrap_or(i32::MAX),
        end: i32::try_from(span.end).unwrap_or(i32::MAX),
    }
}

/// A mention; `full` adds where it occurs and the forms it took.
fn mention_to_proto(mention: &Mention, full: bool) -> proto::EntityMention {
    proto::EntityMention {
        entity_id: mention.entity_id.clone(),
        name: mention.name.clone(),
        kind: kind_to_proto(mention.kind) as i32,
        spans: if full {
            mention.spans.iter().copied().map(span_to_proto).collect()
        } else {
            Vec::new()
        },
        count: i32::try_from(mention.count).unwrap_or(i32::MAX),
        salience: f64::from(mention.salience),
        origin: match mention.origin {
            MentionOrigin::Extracted => proto::MentionOrigin::Extracted,
            MentionOrigin::Client => proto::MentionOrigin::Client,
            MentionOrigin::ExtractedAndClient => proto::MentionOrigin::ExtractedAndClient,
        } as i32,
        surface_forms: if full {
            mention.surface_forms.clone()
        } else {
            Vec::new()
        },
    }
}

pub fn quote_to_proto(quote: &Quote) -> proto::Quote {
    let (speaker_entity_id, speaker_name) = quote.speaker.clone().unwrap_or_default();
    proto::Quote {
        text: quote.text.clone(),
        span: Some(span_to_proto(quote.span)),
        speaker_entity_id,
        speaker_name,
    }
}

pub fn entity_to_proto(entity: &Entity) -> proto::Entity {
    proto::Entity {
        id: entity.id.clone(),
        name: entity.name.clone(),
        kind: kind_to_proto(entity.kind) as i32,
        aliases: entity.aliases.clone(),
        article_count: i64::try_from(entity.article_count).unwrap_or(i64::MAX),
        mention_count: i64::try_from(entity.mention_count).unwrap_or(i64::MAX),
        first_seen_time: entity.first_seen.map(timestamp_to_proto),
        last_seen_time: entity.last_seen.map(timestamp_to_proto),
        description: entity.description.clone(),
        external_ids: entity
            .external_ids
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        blocked: entity.blocked,
        edited: entity.edited,
    }
}

/// The entity fields an editor may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntityField {
    Name,
    Kind,
    Aliases,
    Description,
    ExternalIds,
}

impl EntityField {
    pub const ALL: [EntityField; 5] = [
        EntityField::Name,
        EntityField::Kind,
        EntityField::Aliases,
        EntityField::Description,
        EntityField::ExternalIds,
    ];

    /// The update-mask path that names this field.
    pub fn path(self) -> &'static str {
        match self {
            EntityField::Name => "name",
            EntityField::Kind => "kind",
            EntityField::Aliases => "aliases",
            EntityField::Description => "description",
            EntityField::ExternalIds => "external_ids",
        }
    }

    /// The field an update-mask path names.
    pub fn from_path(path: &str) -> Result<Vec<EntityField>> {
        Ok(vec![match path {
            "*" => return Ok(EntityField::ALL.to_vec()),
            "name" => EntityField::Name,
            "kind" => EntityField::Kind,
            "aliases" => EntityField::Aliases,
            "description" => EntityField::Description,
            "external_ids" => EntityField::ExternalIds,
            "id" | "article_count" | "mention_count" | "first_seen_time" | "last_seen_time"
            | "blocked" | "edited" => {
                return Err(Error::invalid(
                    "update_mask",
                    Invalid::UpdateMask,
                    format!(
                        "update_mask path {path:?} cannot be updated (use BlockEntity and \
                         UnblockEntity for `blocked`)"
                    ),
                ));
            }
            other => {
                return Err(Error::invalid(
                    "update_mask",
                    Invalid::UpdateMask,
                    format!(
                        "update_mask path {other:?} is not a field of Entity; updatable fields \
                         are name, kind, aliases, description, external_ids (or \"*\")"
                    ),
                ));
            }
        }])
    }

    /// The fields set in `entity`: what an update without a mask changes (AIP-134).
    pub fn set_in(entity: &proto::Entity) -> Vec<EntityField> {
        [
            (!entity.name.is_empty(), EntityField::Name),
            (entity.kind != 0, EntityField::Kind),
            (!entity.aliases.is_empty(), EntityField::Aliases),
            (!entity.description.is_empty(), EntityField::Description),
            (!entity.external_ids.is_empty(), EntityField::ExternalIds),
        ]
        .into_iter()
        .filter_map(|(set, field)| set.then_some(field))
        .collect()
    }
}

/// The patch that sets `fields` of `entity`.
pub fn entity_patch_from_proto(
    entity: &proto::Entity,
    fields: &[EntityField],
) -> Result<EntityPatch> {
    let mut patch = EntityPatch::default();
    for field in fields {
        match field {
            EntityField::Name => {
                if entity.name.trim().is_empty() {
                    return Err(Error::missing("entity.name"));
                }
                patch.name = Some(entity.name.clone());
            }
            EntityField::Kind => {
                patch.kind = Some(
                    kind_from_proto("entity.kind", entity.kind)?
                        .ok_or_else(|| Error::missing("entity.kind"))?,
                );
            }
            EntityField::Aliases => patch.aliases = Some(entity.aliases.clone()),
            EntityField::Description => patch.description = Some(entity.description.clone()),
            EntityField::ExternalIds => {
                patch.external_ids = Some(
                    entity
                        .external_ids
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                );
            }
        }
    }
    Ok(patch)
}

pub fn filter_from_proto(filter: Option<&proto::ArticleFilter>) -> Result<ArticleFilter> {
    let Some(filter) = filter else {
        return Ok(ArticleFilter::default());
    };
    let mut sources: Vec<String> = filter.sources.iter().map(|s| normalize_source(s)).collect();
    if sources.iter().any(String::is_empty) {
        return Err(Error::invalid(
            "filter.sources",
            Invalid::Malformed,
            "filter.sources must not contain empty values",
        ));
    }
    sources.sort();
    sources.dedup();
    let mut entity_ids = filter.entity_ids.clone();
    if entity_ids.iter().any(String::is_empty) {
        return Err(Error::invalid(
            "filter.entity_ids",
            Invalid::Malformed,
            "filter.entity_ids must not contain empty values",
        ));
    }
    if entity_ids.len() > 20 || sources.len() > 50 {
        return Err(Error::invalid(
            "filter",
            Invalid::TooLarge,
            "a filter may name at most 20 entities and 50 sources",
        ));
    }
    entity_ids.sort();
    entity_ids.dedup();
    let published_start = filter
        .published_start_time
        .as_ref()
        .map(|ts| timestamp_from_proto("filter.published_start_time", ts))
        .transpose()?;
    let published_end = filter
        .published_end_time
        .as_ref()
        .map(|ts| timestamp_from_proto("filter.published_end_time", ts))
        .transpose()?;
    if let (Some(start), Some(end)) = (published_start, published_end)
        && start >= end
    {
        return Err(Error::invalid(
            "filter.published_end_time",
            Invalid::OutOfRange,
            "filter.published_end_time must be after filter.published_start_time",
        ));
    }
    let mut kinds = Vec::new();
    for &value in &filter.kinds {
        match kind_from_proto("filter.kinds", value)? {
            Some(kind) if !kinds.contains(&kind) => kinds.push(kind),
            Some(_) => {}
            None => {
                return Err(Error::invalid(
                    "filter.kinds",
                    Invalid::Malformed,
                    "filter.kinds must not contain ENTITY_KIND_UNSPECIFIED",
                ));
            }
        }
    }
    kinds.sort();
    let tags = lowercase_values("filter.tags", &filter.tags)?;
    let languages = lowercase_values("filter.languages", &filter.languages)?;
    Ok(ArticleFilter {
        sources,
        entity_ids,
        published_start,
        published_end,
        kinds,
        tags,
        languages,
    })
}

/// Trimmed, lower-cased, sorted, deduplicated values; empty ones are refused.
pub fn lowercase_values(field: &str, values: &[String]) -> Result<Vec<String>> {
    if values.len() > 50 {
        return Err(Error::invalid(
            field,
            Invalid::TooLarge,
            format!("{field} may hold at most 50 values"),
        ));
    }
    let mut out: Vec<String> = values.iter().map(|v| v.trim().to_lowercase()).collect();
    if out.iter().any(String::is_empty) {
        return Err(Error::invalid(
            field,
            Invalid::Malformed,
            format!("{field} must not contain empty values"),
        ));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The bytes a page token's fingerprint covers for a filter.
pub fn filter_fingerprint_parts(filter: &ArticleFilter) -> Vec<u8> {
    let mut out = Vec::new();
    let mut add = |tag: &[u8], value: &[u8]| {
        out.extend_from_slice(tag);
        out.extend_from_slice(&(value.len() as u64).to_be_bytes());
        out.extend_from_slice(value);
    };
    for source in &filter.sources {
        add(b"s", source.as_bytes());
    }
    for id in &filter.entity_ids {
        add(b"e", id.as_bytes());
    }
    for kind in &filter.kinds {
        add(b"k", kind.tag().as_bytes());
    }
    for tag in &filter.tags {
        add(b"t", tag.as_bytes());
    }
    for language in &filter.languages {
        add(b"l", language.as_bytes());
    }
    if let Some(time) = filter.published_start {
        add(b"from", &time.0.to_be_bytes());
    }
    if let Some(time) = filter.published_end {
        add(b"until", &time.0.to_be_bytes());
    }
    out
}

pub fn field_change_to_proto(change: crate::diff::FieldChange) -> proto::FieldChange {
    use crate::diff::EditOp;
    proto::FieldChange {
        field: change.field.to_string(),
        before: change.before,
        after: change.after,
        edits: change
            .edits
            .into_iter()
            .map(|(op, text)| proto::TextEdit {
                op: match op {
                    EditOp::Equal => proto::TextEditOp::Equal,
                    EditOp::Insert => proto::TextEditOp::Insert,
                    EditOp::Delete => proto::TextEditOp::Delete,
                } as i32,
                text,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_refuse_nonsense() {
        for ts in [
            prost_types::Timestamp {
                seconds: 0,
                nanos: 0,
            },
            prost_types::Timestamp {
                seconds: 1_472_169_600,
                nanos: 123_456_789,
            },
            prost_types::Timestamp {
                seconds: -1,
                nanos: 999_999_999,
            },
        ] {
            let time = timestamp_from_proto("t", &ts).unwrap();
            assert_eq!(timestamp_to_proto(time), ts);
        }
        for bad in [
            prost_types::Timestamp {
                seconds: 0,
                nanos: -1,
            },
            prost_types::Timestamp {
                seconds: 0,
                nanos: 1_000_000_000,
            },
            prost_types::Timestamp {
                seconds: i64::MAX,
                nanos: 0,
            },
            prost_types::Timestamp {
                seconds: i64::MIN,
                nanos: 0,
            },
        ] {
            assert!(timestamp_from_proto("t", &bad).is_err());
        }
    }

    #[test]
    fn unknown_enum_values_are_refused() {
        assert!(kind_from_proto("kind", 99).is_err());
        assert_eq!(kind_from_proto("kind", 0).unwrap(), None);
        assert!(view_from_proto(-1, View::Full).is_err());
    }
}
