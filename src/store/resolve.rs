//! Entity resolution: which stored entity a name in a new article refers to.
//!
//! It happens while a write is decided because it must see every earlier write: a name (or
//! an alias learnt from an earlier article) that belongs to an entity of the same kind links
//! to it; otherwise a new entity is created with a slug id that is never reused. Editorial
//! decisions steer it: merged names point at the survivor, blocked names are dropped, and an
//! edited entity takes its names whatever kind the tagger guessed.

use super::keys;
use super::write::Batch;
use crate::error::{Error, Invalid, Result};
use crate::model::{Entity, EntityKind, ExtractedEntity, name_key};

impl Batch<'_> {
    /// The id of the stored entity `extracted` refers to, creating it if needed; `None`
    /// for a tentative name the store does not know.
    pub(super) fn resolve(&mut self, extracted: &ExtractedEntity) -> Result<Option<String>> {
        if let Some(given) = &extracted.entity_id {
            // A merged id stands for the entity it was merged into.
            let id = match self.store.resolve_entity(given)? {
                Some(entity) => entity.id,
                None => given.clone(),
            };
            let id = &id;
            return match self.entity(id)? {
                // A block is the desk's decision that this entity is not tagged, by the
                // tagger or by a client, however the tag names it (by id here, by name
                // below): the tag is kept in the article's entity_tags, so unblocking and
                // re-extracting brings the mention back, but no mention is made now and
                // the write goes through, so a desk's decision cannot stop a pipeline.
                Some(entity) if entity.blocked => Ok(None),
                Some(entity) if extracted.kind.is_none_or(|k| k == entity.kind) => {
                    Ok(Some(id.clone()))
                }
                Some(entity) => Err(Error::invalid(
                    "article.entity_tags",
                    Invalid::Malformed,
                    format!(
                        "entity {id:?} is a {}, but the tag says {}",
                        entity.kind.tag(),
                        extracted.kind.map_or("nothing", EntityKind::tag)
                    ),
                )),
                None => Err(Error::invalid(
                    "article.entity_tags",
                    Invalid::Malformed,
                    format!("entity_tags names entity {id:?}, which does not exist"),
                )),
            };
        }
        let kind = match extracted.kind {
            Some(kind) => Some(kind),
            None if extracted.tentative => None,
            None => {
                return Err(Error::invalid(
                    "article.entity_tags",
                    Invalid::Missing,
                    format!(
                        "entity tag {:?} needs a kind or an entity_id",
                        extracted.name
                    ),
                ));
            }
        };
        let canonical_key = name_key(&extracted.name);
        if canonical_key.is_empty() {
            return Err(Error::invalid(
                "article.entity_tags",
                Invalid::Malformed,
                format!("entity name {:?} has no letters or digits", extracted.name),
            ));
        }
        if let Some(kind) = kind
            && let Some(id) = self.created.get(&(canonical_key.clone(), kind))
        {
            return Ok(Some(id.clone()));
        }
        // By the canonical name, which the name index knows as a name or an alias of an
        // entity seen before ("Kerry" finds John Kerry once an article has said both).
        let several_words = extracted.name.split_whitespace().count() >= 2;
        let candidates = self.store.entity_ids_by_name_key(&canonical_key)?;
        let mut best: Option<((bool, bool), u64, &str)> = None;
        for id in candidates.iter() {
            let Some(entity) = self.entity(id)? else {
                continue;
            };
            if entity.merged_into.is_some() {
                continue;
            }
            // An editor's kind wins over the tagger's guess. A name of several words is one
            // entity whatever the tagger called it in this article (its kind follows the
            // majority of its articles); a single word may name different things.
            let same_kind = kind.is_none_or(|k| entity.kind == k) || entity.edited;
            let exact_name = name_key(&entity.name) == canonical_key;
            if !(same_kind || (exact_name && several_words)) {
                continue;
            }
            // A blocked name is not tagged, in any article from now on (see above).
            if entity.blocked {
                return Ok(None);
            }
            let rank = ((same_kind, exact_name), entity.article_count, id.as_str());
            if best.is_none_or(|b| (rank.0, rank.1) > (b.0, b.1)) {
                best = Some(rank);
            }
        }
        if let Some((_, _, id)) = best {
            return Ok(Some(id.to_string()));
        }
        let Some(kind) = kind else {
            return Ok(None);
        };
        let id = self.new_entity_id(&extracted.name, kind)?;
        let code = self.new_code()?;
        self.insert(keys::entity_code(code), id.as_bytes().to_vec());
        self.entities.insert(
            id.clone(),
            Entity {
                code,
                id: id.clone(),
                name: extracted.name.clone(),
                kind,
                aliases: Vec::new(),
                article_count: 0,
                mention_count: 0,
                first_seen: None,
                last_seen: None,
                description: extracted.description.clone().unwrap_or_default(),
                external_ids: Default::default(),
                merged_into: None,
                blocked: false,
                edited: false,
                kind_votes: [0; 4],
            },
        );
        self.insert(keys::name(&canonical_key, &id), Vec::new());
        self.created.insert((canonical_key, kind), id.clone());
        Ok(Some(id))
    }

    /// A fresh, readable id: the name's slug, then the slug with the kind, then numbered.
    fn new_entity_id(&self, name: &str, kind: EntityKind) -> Result<String> {
        let slug = slugify(name);
        let base = if slug.is_empty() {
            kind.tag().to_string()
        } else {
            slug
        };
        let candidates = [base.clone(), format!("{base}-{}", kind.tag())]
            .into_iter()
            .chain((2..10_000).map(|n| format!("{base}-{}-{n}", kind.tag())));
        for candidate in candidates {
            if !self.entities.contains_key(&candidate)
                && !self.store.tree.contains_key(keys::entity(&candidate))?
            {
                return Ok(candidate);
            }
        }
        Err(Error::Internal(format!("no free entity id for {name:?}")))
    }
}

/// A lower-case ASCII slug: "Bashar al-Assad" → "bashar-al-assad", "U.N." → "un".
fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if matches!(c, '.' | '\'' | '’') {
            continue;
        }
        let folded = name_key(&c.to_string());
        if folded.is_empty() {
            if !slug.ends_with('-') && !slug.is_empty() {
                slug.push('-');
            }
        } else {
            slug.extend(folded.chars().filter(char::is_ascii_alphanumeric));
        }
        if slug.len() >= 60 {
            break;
        }
    }
    slug.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_readable_ascii() {
        assert_eq!(slugify("Bashar al-Assad"), "bashar-al-assad");
        assert_eq!(slugify("U.N."), "un");
        assert_eq!(slugify("O'Brien & Co"), "obrien-co");
        assert_eq!(slugify("Recep Tayyip Erdoğan"), "recep-tayyip-erdogan");
        assert_eq!(slugify("—"), "");
    }
}
