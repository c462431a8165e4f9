//! Editorial decisions on entities: edit, merge, block and unblock.
//!
//! Each decision is one atomic batch, like an article write: the entity records, the name
//! index, the ranking, every affected article (its mentions, quotes and index entries) and
//! the change-log entries, so a crash leaves all of it or none of it, and the search index
//! follows the rewritten articles through the log as it follows any write. Each rewritten
//! article gets a new revision (its entities changed, so etags held by clients go stale)
//! and an `Updated` change entry; the decision itself gets an entity entry.
//!
//! Decisions also steer later extraction (see `write.rs`): a merged entity's names point at
//! the survivor, a blocked entity's names are no longer tagged, and an edited entity takes
//! every mention of its names whatever kind the tagger guessed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::PoisonError;

use super::history::PastRevision;
use super::keys::{self, ArticleIndex};
use super::log::Decided;
use super::requests::Outcome;
use super::{Changes, Store, codec};
use crate::error::{Error, Invalid, Precondition, Resource, Result};
use crate::model::{
    Article, Change, ChangeKind, Entity, EntityPatch, RequestTag, Timestamp, name_key,
};

/// One decision touches at most this many articles; more would make one batch too large.
pub const MAX_ARTICLES_PER_DECISION: usize = 100_000;
/// Aliases an editor may give one entity.
pub const MAX_ALIASES: usize = 64;
/// How many merge hops an id may be followed through. Merges cannot form cycles (a merged
/// entity takes no further decisions), so this only guards against a damaged store.
const MAX_REDIRECTS: usize = 100_000;

/// The outcome of a decision.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The entity as it now is (the survivor, for a merge).
    pub entity: Entity,
    /// Articles whose mentions were rewritten.
    pub articles_updated: u64,
    /// The change-log sequence number of the decision.
    pub seq: u64,
}

/// An article a decision rewrites: its entity-index keys before, its time, and the article
/// as changed.
struct Rewritten {
    before: Vec<Vec<u8>>,
    /// The article as stored before the decision, which goes into its history.
    original: Article,
    time: Timestamp,
    article: Article,
}

/// The articles a decision rewrites, read once and written once.
struct Rewrite<'s> {
    store: &'s Store,
    articles: BTreeMap<String, Rewritten>,
}

impl<'s> Rewrite<'s> {
    fn new(store: &'s Store) -> Self {
        Rewrite {
            store,
            articles: BTreeMap::new(),
        }
    }

    /// Applies `change` to every article that mentions `entity_id`.
    fn each_article_of(
        &mut self,
        entity_id: &str,
        mut change: impl FnMut(&mut Article),
    ) -> Result<()> {
        let prefix = ArticleIndex::Entity(entity_id.to_string()).prefix();
        let mut ids = Vec::new();
        for key in self.store.keys_with_prefix(&prefix) {
            let key = key?;
            if let Some((_, id)) = keys::split_suffix(&key[prefix.len()..]) {
                ids.push(id.to_string());
            }
            if ids.len() + self.articles.len() > MAX_ARTICLES_PER_DECISION {
                return Err(Error::ResourceExhausted(format!(
                    "entity {entity_id:?} is mentioned in more than \
                     {MAX_ARTICLES_PER_DECISION} articles, more than one decision may rewrite"
                )));
            }
        }
        for id in ids {
            if !self.articles.contains_key(&id) {
                let Some(article) = self.store.get_article(&id)? else {
                    continue;
                };
                let before = super::mention_index_keys(&article).collect();
                let time = article.sort_time();
                self.articles.insert(
                    id.clone(),
                    Rewritten {
                        original: article.clone(),
                        before,
                        time,
                        article,
                    },
                );
            }
            if let Some(rewritten) = self.articles.get_mut(&id) {
                change(&mut rewritten.article);
            }
        }
        Ok(())
    }

    /// Writes the articles and their index entries into `batch`, with one change entry
    /// each; returns how many there were.
    fn finish(self, batch: &mut Changes, next_seq: &mut u64) -> Result<u64> {
        let count = self.articles.len() as u64;
        for (id, rewritten) in self.articles {
            let Rewritten {
                before,
                original,
                mut article,
                ..
            } = rewritten;
            batch.tally(Some(&original), Some(&article));
            batch.insert(
                keys::revision(&id, original.revision),
                codec::encode(&PastRevision::Article(Box::new(original)))?,
            );
            renormalize(&mut article);
            // A new revision: the article's representation changed, clients holding its etag
            // must re-read, and the search index can tell this state from the one before.
            article.revision += 1;
            article.updated = Timestamp::now();
            // Mentions went, moved or folded together and saliences shifted: the article's
            // entity-index entries are replaced whole (an unchanged key is removed and put
            // back in the same batch, which leaves it in place).
            for key in before {
                batch.remove(key);
            }
            for key in super::mention_index_keys(&article) {
                batch.insert(key, Vec::new());
            }
            batch.insert(
                keys::article_entities(&id),
                super::article_entities_record(&article)?,
            );
            batch.insert(keys::article(&id), codec::encode(&article)?);
            let change = Change {
                seq: *next_seq,
                time: Timestamp::now(),
                kind: ChangeKind::Updated,
                article_id: id,
                revision: article.revision,
                entity_id: String::new(),
                merged_ids: Vec::new(),
            };
            batch.insert(keys::change(change.seq), codec::encode(&change)?);
            *next_seq += 1;
        }
        Ok(count)
    }
}

/// Mentions most salient first, salience summing to one, after mentions were dropped or
/// folded together.
fn renormalize(article: &mut Article) {
    let mentions = &mut article.derived.mentions;
    let total: f32 = mentions.iter().map(|m| m.salience).sum();
    if total > 0.0 {
        for mention in mentions.iter_mut() {
            mention.salience /= total;
        }
    }
    mentions.sort_by(|a, b| b.salience.total_cmp(&a.salience));
}

fn not_found(id: &str) -> Error {
    Error::NotFound {
        resource: Resource::Entity,
        id: id.to_string(),
    }
}

/// Removes the entity's ranking entries (taken before its counts change).
fn unrank(batch: &mut Changes, entity: &Entity) {
    if entity.article_count > 0 {
        batch.remove(keys::rank(entity.kind, entity.article_count, &entity.id));
    }
}

fn rank(batch: &mut Changes, entity: &Entity) {
    if entity.article_count > 0 && !entity.blocked && entity.merged_into.is_none() {
        batch.insert(
            keys::rank(entity.kind, entity.article_count, &entity.id),
            Vec::new(),
        );
    }
}

/// Every name key an entity is found by: its name's and its aliases'.
fn name_keys(entity: &Entity) -> BTreeSet<String> {
    std::iter::once(&entity.name)
        .chain(&entity.aliases)
        .map(|n| name_key(n))
        .filter(|k| !k.is_empty())
        .collect()
}

fn validate_name(field: &str, name: &str) -> Result<String> {
    let name = name.trim();
    if name_key(name).is_empty() {
        return Err(Error::invalid(
            field,
            Invalid::Malformed,
            format!("{field} {name:?} must contain a letter or digit"),
        ));
    }
    if name.chars().count() > 200 {
        return Err(Error::invalid(
            field,
            Invalid::TooLarge,
            format!("{field} is longer than 200 characters"),
        ));
    }
    Ok(name.to_string())
}

fn validate_external_ids(ids: &BTreeMap<String, String>) -> Result<()> {
    for (scheme, value) in ids {
        let scheme_ok = !scheme.is_empty()
            && scheme.len() <= 40
            && scheme
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !scheme_ok {
            return Err(Error::invalid(
                "entity.external_ids",
                Invalid::Malformed,
                format!(
                    "external id scheme {scheme:?} must be 1 to 40 lower-case letters, digits, \
                     '_' or '-' (for example \"wikidata\")"
                ),
            ));
        }
        let value_ok = !value.trim().is_empty() && value.len() <= 200;
        let wikidata_ok = scheme != "wikidata"
            || (value.len() > 1
                && value.starts_with('Q')
                && value[1..].chars().all(|c| c.is_ascii_digit()));
        if !value_ok || !wikidata_ok {
            return Err(Error::invalid(
                "entity.external_ids",
                Invalid::Malformed,
                format!(
                    "external id {value:?} for {scheme:?} is not valid (a Wikidata id looks \
                     like \"Q22316\")"
                ),
            ));
        }
    }
    if ids.len() > 32 {
        return Err(Error::invalid(
            "entity.external_ids",
            Invalid::TooLarge,
            "an entity takes at most 32 external ids",
        ));
    }
    Ok(())
}

impl Store {
    /// The entity `id`, following merges to the entity it now lives on.
    pub fn resolve_entity(&self, id: &str) -> Result<Option<Entity>> {
        let mut current = id.to_string();
        for _ in 0..MAX_REDIRECTS {
            let Some(entity) = self.get_entity(&current)? else {
                return Ok(None);
            };
            match &entity.merged_into {
                Some(next) => current.clone_from(next),
                None => return Ok(Some(entity)),
            }
        }
        Err(Error::Internal(format!(
            "entity {id:?} redirects more than {MAX_REDIRECTS} times"
        )))
    }

    /// Replaces merged entity ids by the ids of the entities they were merged into, so
    /// filters written before a merge keep finding the same articles.
    pub fn follow_merges(&self, ids: &mut [String]) -> Result<()> {
        for id in ids.iter_mut() {
            if let Some(entity) = self.resolve_entity(id)?
                && entity.id != *id
            {
                *id = entity.id;
            }
        }
        Ok(())
    }

    /// A live entity (not merged away) for a decision.
    fn live_entity(&self, id: &str) -> Result<Entity> {
        let entity = self.get_entity(id)?.ok_or_else(|| not_found(id))?;
        if let Some(into) = &entity.merged_into {
            return Err(Error::FailedPrecondition {
                reason: Precondition::EntityMerged {
                    entity_id: id.to_string(),
                    survivor_id: into.clone(),
                },
                message: format!(
                    "entity {id:?} was merged into {into:?}; make the change there instead"
                ),
            });
        }
        Ok(entity)
    }

    /// Decides a decision's batch under the writer lock and commits it, then waits until
    /// it is durable. A decision with a recorded request id returns the recorded result
    /// instead.
    fn decide(
        &self,
        request: Option<&RequestTag>,
        build: impl Fn(&mut Changes, &mut u64) -> Result<(Entity, u64, Change)>,
    ) -> Result<Decision> {
        let decision = {
            let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            // Decided again if another node's decision comes first, request id included.
            self.deciding(writer, |next_seq| {
                if let Some(tag) = request {
                    match self.recorded(tag)? {
                        Some(Outcome::Decision {
                            entity,
                            articles_updated,
                            seq,
                        }) => {
                            return Ok(Decided::Nothing(Decision {
                                entity: *entity,
                                articles_updated,
                                seq,
                            }));
                        }
                        Some(_) => {
                            return Err(Error::invalid(
                                "request_id",
                                Invalid::RequestIdReused,
                                "request_id was already used for an article write; use a new \
                                 one",
                            ));
                        }
                        None => {}
                    }
                }
                let first_seq = *next_seq;
                let mut seq = first_seq;
                let mut batch = Changes::default();
                let (entity, articles_updated, mut change) = build(&mut batch, &mut seq)?;
                change.seq = seq;
                batch.insert(keys::change(seq), codec::encode(&change)?);
                if let Some(tag) = request {
                    let outcome = Outcome::Decision {
                        entity: Box::new(entity.clone()),
                        articles_updated,
                        seq,
                    };
                    self.record(tag, outcome, &mut batch)?;
                }
                Ok(Decided::Record(
                    batch.into_record(first_seq, seq),
                    Decision {
                        entity,
                        articles_updated,
                        seq,
                    },
                ))
            })
            .1?
        };
        // A recorded decision's first attempt may still be waiting for its flush.
        self.settle(decision.seq)?;
        Ok(decision)
    }

    /// Sets an entity's name, kind, aliases, description or external ids. A changed name
    /// keeps the old one as an alias, so articles that use it still find the entity.
    pub fn update_entity(
        &self,
        id: &str,
        patch: EntityPatch,
        request: Option<&RequestTag>,
    ) -> Result<Decision> {
        if let Some(ids) = &patch.external_ids {
            validate_external_ids(ids)?;
        }
        let name = patch
            .name
            .as_deref()
            .map(|n| validate_name("entity.name", n))
            .transpose()?;
        let aliases = match &patch.aliases {
            Some(aliases) => {
                if aliases.len() > MAX_ALIASES {
                    return Err(Error::invalid(
                        "entity.aliases",
                        Invalid::TooLarge,
                        format!("an entity takes at most {MAX_ALIASES} aliases"),
                    ));
                }
                let mut clean: Vec<String> = Vec::new();
                for alias in aliases {
                    let alias = validate_name("entity.aliases", alias)?;
                    if !clean.contains(&alias) {
                        clean.push(alias);
                    }
                }
                Some(clean)
            }
            None => None,
        };
        if patch
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 500)
        {
            return Err(Error::invalid(
                "entity.description",
                Invalid::TooLarge,
                "entity.description is longer than 500 characters",
            ));
        }
        self.decide(request, |batch, seq| {
            let old = self.live_entity(id)?;
            let mut entity = old.clone();
            if let Some(aliases) = &aliases {
                entity.aliases.clone_from(aliases);
            }
            if let Some(name) = &name
                && *name != entity.name
            {
                let previous = std::mem::replace(&mut entity.name, name.clone());
                // The old name goes first, so it survives when the list is full: articles
                // that use it must keep finding the entity.
                entity.aliases.retain(|a| *a != previous);
                entity.aliases.insert(0, previous);
            }
            entity.aliases.retain(|a| *a != entity.name);
            if let Some(kind) = patch.kind {
                entity.kind = kind;
            }
            if let Some(description) = &patch.description {
                entity.description = description.trim().to_string();
            }
            if let Some(ids) = &patch.external_ids {
                entity.external_ids.clone_from(ids);
            }
            if patch.name.is_some() || patch.kind.is_some() || patch.aliases.is_some() {
                entity.edited = true;
            }
            // The name index: keys the entity lost and gained.
            let (before, after) = (name_keys(&old), name_keys(&entity));
            for key in before.difference(&after) {
                batch.remove(keys::name(key, id));
            }
            for key in after.difference(&before) {
                batch.insert(keys::name(key, id), Vec::new());
            }
            unrank(batch, &old);
            rank(batch, &entity);
            // Articles show the entity's current name and kind.
            let mut rewrite = Rewrite::new(self);
            if entity.name != old.name || entity.kind != old.kind {
                rewrite.each_article_of(id, |article| {
                    for mention in &mut article.derived.mentions {
                        if mention.entity_id == id {
                            mention.name.clone_from(&entity.name);
                            mention.kind = entity.kind;
                        }
                    }
                    for quote in &mut article.derived.quotes {
                        if let Some((speaker, name)) = &mut quote.speaker
                            && speaker == id
                        {
                            name.clone_from(&entity.name);
                        }
                    }
                })?;
            }
            let updated = rewrite.finish(batch, seq)?;
            batch.insert(keys::entity(id), super::entity_record(&entity)?);
            Ok((
                entity,
                updated,
                entity_change(ChangeKind::EntityUpdated, id, Vec::new()),
            ))
        })
    }

    /// Merges `merged` into `survivor`: every mention, alias and name moves over, and the
    /// merged ids keep resolving to the survivor.
    pub fn merge_entities(
        &self,
        survivor: &str,
        merged: &[String],
        request: Option<&RequestTag>,
    ) -> Result<Decision> {
        if merged.is_empty() {
            return Err(Error::missing("merged_ids"));
        }
        if merged.iter().any(|m| m == survivor) {
            return Err(Error::invalid(
                "merged_ids",
                Invalid::Malformed,
                format!("entity {survivor:?} cannot be merged into itself"),
            ));
        }
        self.decide(request, |batch, seq| {
            let old_survivor = self.live_entity(survivor)?;
            if old_survivor.blocked {
                return Err(Error::FailedPrecondition {
                    reason: Precondition::EntityBlocked {
                        entity_id: survivor.to_string(),
                    },
                    message: format!(
                        "entity {survivor:?} is blocked; unblock it before merging into it"
                    ),
                });
            }
            let mut entity = old_survivor.clone();
            let mut rewrite = Rewrite::new(self);
            let mut gone = Vec::new();
            for id in merged.iter().collect::<BTreeSet<_>>() {
                let old = self.live_entity(id)?;
                // Articles: the merged entity's mentions become the survivor's.
                rewrite.each_article_of(id, |article| merge_in_article(article, id, &entity))?;
                // Names: the merged entity's name and aliases find the survivor now.
                for key in name_keys(&old) {
                    batch.remove(keys::name(&key, id));
                    batch.insert(keys::name(&key, survivor), Vec::new());
                }
                // Every moved name is recorded as an alias (past the usual cap: a merge must
                // not lose a name the index now points at the survivor).
                for alias in std::iter::once(&old.name).chain(&old.aliases) {
                    if *alias != entity.name && !entity.aliases.contains(alias) {
                        entity.aliases.push(alias.clone());
                    }
                }
                for (scheme, value) in &old.external_ids {
                    entity
                        .external_ids
                        .entry(scheme.clone())
                        .or_insert_with(|| value.clone());
                }
                if entity.description.is_empty() {
                    entity.description.clone_from(&old.description);
                }
                unrank(batch, &old);
                let mut redirect = old;
                redirect.merged_into = Some(survivor.to_string());
                batch.insert(keys::entity(id), super::entity_record(&redirect)?);
                gone.push(id.clone());
            }
            // Counts and first/last seen over the survivor's articles as they now are.
            let mut articles = BTreeSet::new();
            let (mut mentions, mut first, mut last) = (0u64, None, None);
            let mut votes = [0u64; 4];
            let survivor_articles = {
                let prefix = ArticleIndex::Entity(survivor.to_string()).prefix();
                let mut ids = Vec::new();
                for key in self.keys_with_prefix(&prefix) {
                    let key = key?;
                    if let Some((time, id)) = keys::split_suffix(&key[prefix.len()..]) {
                        ids.push((time, id.to_string()));
                    }
                }
                ids
            };
            // The survivor's mention in one of its articles, as that article now is.
            let mut count = |id: &str, time: Timestamp, article: &Article| {
                let mut mentioned = article.derived.mentions.iter();
                if let Some(m) = mentioned.find(|m| m.entity_id == survivor) {
                    mentions += u64::from(m.count);
                    if let Some(kind) = m.extracted_kind {
                        votes[kind.index()] += 1;
                    }
                    articles.insert(id.to_string());
                    first = Some(first.map_or(time, |f: Timestamp| f.min(time)));
                    last = Some(last.map_or(time, |l: Timestamp| l.max(time)));
                }
            };
            for (time, id) in survivor_articles {
                if !rewrite.articles.contains_key(&id)
                    && let Some(article) = self.get_article(&id)?
                {
                    count(&id, time, &article);
                }
            }
            for (id, rewritten) in &rewrite.articles {
                count(id, rewritten.time, &rewritten.article);
            }
            unrank(batch, &old_survivor);
            entity.article_count = articles.len() as u64;
            entity.mention_count = mentions;
            entity.kind_votes = votes;
            entity.first_seen = first;
            entity.last_seen = last;
            rank(batch, &entity);
            let updated = rewrite.finish(batch, seq)?;
            batch.insert(keys::entity(survivor), super::entity_record(&entity)?);
            Ok((
                entity,
                updated,
                entity_change(ChangeKind::EntitiesMerged, survivor, gone),
            ))
        })
    }

    /// Blocks a false entity: its mentions leave every article and its names are no longer
    /// tagged in new ones. Unblocking lets extraction find it again in new articles.
    pub fn set_blocked(
        &self,
        id: &str,
        blocked: bool,
        request: Option<&RequestTag>,
    ) -> Result<Decision> {
        self.decide(request, |batch, seq| {
            let old = self.live_entity(id)?;
            let mut entity = old.clone();
            entity.blocked = blocked;
            let mut rewrite = Rewrite::new(self);
            if blocked && !old.blocked {
                rewrite.each_article_of(id, |article| {
                    article.derived.mentions.retain(|m| m.entity_id != id);
                    for quote in &mut article.derived.quotes {
                        if quote.speaker.as_ref().is_some_and(|(s, _)| s == id) {
                            quote.speaker = None;
                        }
                    }
                })?;
                entity.article_count = 0;
                entity.mention_count = 0;
                entity.first_seen = None;
                entity.last_seen = None;
                entity.kind_votes = [0; 4];
            }
            unrank(batch, &old);
            rank(batch, &entity);
            let updated = rewrite.finish(batch, seq)?;
            batch.insert(keys::entity(id), super::entity_record(&entity)?);
            let kind = if blocked {
                ChangeKind::EntityBlocked
            } else {
                ChangeKind::EntityUnblocked
            };
            Ok((entity, updated, entity_change(kind, id, Vec::new())))
        })
    }
}

/// The change entry of a decision (its sequence number is set when it is applied).
fn entity_change(kind: ChangeKind, entity_id: &str, merged_ids: Vec<String>) -> Change {
    Change {
        seq: 0,
        time: Timestamp::now(),
        kind,
        article_id: String::new(),
        revision: 0,
        entity_id: entity_id.to_string(),
        merged_ids,
    }
}

/// Moves an article's mention of `merged` onto `survivor`, folding it into the survivor's
/// own mention when the article has one.
fn merge_in_article(article: &mut Article, merged: &str, survivor: &Entity) {
    let mentions = &mut article.derived.mentions;
    let Some(from) = mentions.iter().position(|m| m.entity_id == merged) else {
        return;
    };
    let moved = mentions.remove(from);
    match mentions.iter_mut().find(|m| m.entity_id == survivor.id) {
        Some(into) => {
            into.spans.extend(moved.spans);
            into.spans.sort();
            into.spans.dedup();
            into.count += moved.count;
            into.salience += moved.salience;
            for form in moved.surface_forms {
                if !into.surface_forms.contains(&form) {
                    into.surface_forms.push(form);
                }
            }
        }
        None => {
            let mut mention = moved;
            mention.entity_id.clone_from(&survivor.id);
            mention.entity_code = survivor.code;
            mention.name.clone_from(&survivor.name);
            mention.kind = survivor.kind;
            mentions.push(mention);
        }
    }
    for quote in &mut article.derived.quotes {
        if let Some((speaker, name)) = &mut quote.speaker
            && speaker == merged
        {
            speaker.clone_from(&survivor.id);
            name.clone_from(&survivor.name);
        }
    }
}
