//! Deciding article writes: one change record per article, one flush per call.
//!
//! A write replaces everything derived from the article: its index entries, the counts and
//! first/last-seen times of every entity it mentions (or used to), the entity ranking, the
//! name index, and one change-log entry. All of it is decided under the writer lock into one
//! [`super::ChangeRecord`], which [`Store::apply`] applies atomically, so a crash leaves
//! either all of it or none of it.
//!
//! Which stored entity each extracted name refers to is decided here too, in `resolve.rs`,
//! because it must see every earlier write.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, PoisonError};

use super::keys::{self, ArticleIndex};
use super::log::Decided;
use super::requests::Outcome;
use super::{Changes, Store, codec};
use crate::error::{Error, Invalid, Resource, Result};
use crate::model::{
    Article, ArticleInput, Change, ChangeKind, Derived, Entity, EntityKind, ExtractedEntity,
    Extraction, Mention, MentionOrigin, Quote, RequestTag, Timestamp, name_key, normalize_source,
};

/// An entity keeps at most this many aliases; more would only be noise.
const MAX_ALIASES: usize = 64;

/// A new or replacement article, already analysed.
#[derive(Debug, Clone)]
pub struct Content {
    pub input: ArticleInput,
    pub extraction: Extraction,
    pub content_hash: String,
}

/// One write, with the precondition checked under the writer lock.
#[derive(Debug, Clone)]
pub enum Write {
    /// Fails with AlreadyExists if the id is taken. An id whose article was deleted
    /// continues its revision numbers after the deletion.
    Create { id: String, content: Content },
    /// Fails with NotFound if missing, EtagMismatch if its etag is not `etag`.
    Replace {
        id: String,
        etag: Option<String>,
        content: Content,
    },
    /// Fails with NotFound if missing, EtagMismatch if its etag is not `etag`. Keeps the
    /// history, with a tombstone.
    Delete { id: String, etag: Option<String> },
    /// The same article analysed again (after the model or an editorial decision changed).
    /// Fails like `Replace`; writes nothing, and returns sequence 0, when the derived data
    /// comes out the same.
    Reextract {
        id: String,
        etag: String,
        content: Content,
    },
    /// Removes the article (if it still exists) and all of its history. Fails with NotFound
    /// when there is neither.
    Purge { id: String },
}

/// A write that was applied and made durable.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// The stored article; `None` for a delete or purge.
    pub article: Option<Article>,
    /// The change-log sequence number of the write; 0 when nothing had to be written.
    pub seq: u64,
    /// For a purge: how many stored revisions went.
    pub revisions_removed: u64,
    /// Whether this answers a retry from its request id's record, without writing.
    pub replayed: bool,
}

impl Store {
    /// Applies `writes` in order, each atomically on its own, then makes all of them durable
    /// with one flush. Returns one outcome per write.
    pub fn write(&self, writes: Vec<Write>) -> Vec<Result<Written>> {
        self.write_tagged(writes.into_iter().map(|w| (w, None)).collect())
    }

    /// Like [`Store::write`], each write with an optional request id: a write whose id is
    /// recorded returns the recorded result instead of applying again.
    pub fn write_tagged(&self, writes: Vec<(Write, Option<RequestTag>)>) -> Vec<Result<Written>> {
        let mut outcomes = Vec::with_capacity(writes.len());
        let mut last_seq = None;
        {
            let mut next_seq = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            for (write, tag) in writes {
                // Decided again if another node's write comes first, request id included:
                // that write may be this request's first attempt.
                let outcome;
                (next_seq, outcome) = self.deciding(next_seq, |next_seq| match &tag {
                    Some(tag) => match self.recorded(tag)? {
                        Some(outcome) => self.replay(outcome).map(Decided::Nothing),
                        None => self.decide_one(next_seq, write.clone(), Some(tag)),
                    },
                    None => self.decide_one(next_seq, write.clone(), None),
                });
                // A replayed result waits too: its first attempt may still be in flight.
                if let Ok(written) = &outcome
                    && written.seq > 0
                {
                    last_seq = last_seq.max(Some(written.seq));
                }
                outcomes.push(outcome);
            }
        }
        if let Some(seq) = last_seq
            && let Err(err) = self.settle(seq)
        {
            // Applied but not known to be durable: no write of this call is acknowledged.
            for outcome in &mut outcomes {
                if outcome.is_ok() {
                    *outcome = Err(err.clone());
                }
            }
        }
        outcomes
    }

    /// The result a recorded request had, rebuilt from the store (articles from history),
    /// once it may be acknowledged: the first attempt may not have finished its flush yet.
    pub fn replay_settled(&self, outcome: Outcome) -> Result<Written> {
        let written = self.replay(outcome)?;
        self.settle(written.seq)?;
        Ok(written)
    }

    /// The result a recorded request had, rebuilt from the store (articles from history).
    /// Not necessarily durable yet; see [`Store::replay_settled`].
    fn replay(&self, outcome: Outcome) -> Result<Written> {
        let written = match outcome {
            Outcome::Article {
                id,
                revision,
                seq,
                content_hash,
            } => {
                let article = self.article_at(&id, revision).ok().filter(|article| {
                    content_hash.is_empty() || article.derived.content_hash == content_hash
                });
                let Some(article) = article else {
                    return Err(Error::NotFound {
                        resource: Resource::Article,
                        id: format!("{id} (created by this request, purged since)"),
                    });
                };
                Written {
                    article: Some(article),
                    seq,
                    ..Written::default()
                }
            }
            Outcome::Deleted { seq, .. } => Written {
                seq,
                ..Written::default()
            },
            Outcome::Purged { removed, seq, .. } => Written {
                seq,
                revisions_removed: removed,
                ..Written::default()
            },
            Outcome::Decision { .. } => {
                return Err(Error::invalid(
                    "request_id",
                    Invalid::RequestIdReused,
                    "request_id was already used for an entity decision; use a new one",
                ));
            }
        };
        Ok(Written {
            replayed: true,
            ..written
        })
    }

    /// Decides `write` against the store as it is, as the change `*next_seq`.
    fn decide_one(
        &self,
        next_seq: &mut u64,
        write: Write,
        tag: Option<&RequestTag>,
    ) -> Result<Decided<Written>> {
        let reextract = matches!(write, Write::Reextract { .. });
        let now = Timestamp::now();
        let mut batch = Batch::new(self);
        let mut revisions_removed = 0;
        let (id, old, content, kind) = match write {
            Write::Create { id, content } => {
                if self.tree.contains_key(keys::article(&id))? {
                    return Err(Error::AlreadyExists {
                        resource: Resource::Article,
                        id,
                    });
                }
                (id, None, Some(content), ChangeKind::Created)
            }
            Write::Replace { id, etag, content } => {
                let old = self.current(&id, etag.as_deref())?;
                (id, Some(old), Some(content), ChangeKind::Updated)
            }
            Write::Delete { id, etag } => {
                let old = self.current(&id, etag.as_deref())?;
                batch.tombstone(&old, now)?;
                (id, Some(old), None, ChangeKind::Deleted)
            }
            Write::Reextract { id, etag, content } => {
                let old = self.current(&id, Some(&etag))?;
                (id, Some(old), Some(content), ChangeKind::Updated)
            }
            Write::Purge { id } => {
                let old = self.get_article(&id)?;
                revisions_removed = batch.forget_history(&id)? + u64::from(old.is_some());
                if revisions_removed == 0 {
                    return Err(Error::NotFound {
                        resource: Resource::Article,
                        id,
                    });
                }
                (id, old, None, ChangeKind::Purged)
            }
        };
        // The revision a new record gets: one above anything the id ever had.
        let last_revision = match &old {
            Some(old) => old.revision,
            // No current record (checked above): only its history can hold a number.
            None if kind == ChangeKind::Created => self.last_past_revision(&id)?,
            None => 0,
        };
        if let Some(old) = &old {
            batch.unindex_article(old)?;
            if kind != ChangeKind::Purged {
                batch.keep_revision(old)?;
            }
        }
        let article = match content {
            Some(content) => {
                Some(batch.put_article(&id, old.as_ref(), last_revision + 1, content)?)
            }
            None => None,
        };
        if reextract
            && let (Some(old), Some(new)) = (&old, &article)
            && old.derived == new.derived
        {
            // Nothing changed: drop the batch, keep the revision and etag callers hold.
            return Ok(Decided::Nothing(Written {
                article: Some(old.clone()),
                ..Written::default()
            }));
        }
        batch.update_entities(old.as_ref(), article.as_ref())?;
        let seq = *next_seq;
        let revision = article.as_ref().map_or(last_revision, |a| a.revision);
        let change = Change {
            seq,
            time: now,
            kind,
            article_id: id.clone(),
            revision,
            entity_id: String::new(),
            merged_ids: Vec::new(),
        };
        batch.insert(keys::change(seq), codec::encode(&change)?);
        if let Some(tag) = tag {
            let outcome = match kind {
                ChangeKind::Deleted => Outcome::Deleted { id, seq },
                ChangeKind::Purged => Outcome::Purged {
                    id,
                    removed: revisions_removed,
                    seq,
                },
                _ => Outcome::Article {
                    id,
                    revision,
                    seq,
                    content_hash: article
                        .as_ref()
                        .map(|a| a.derived.content_hash.clone())
                        .unwrap_or_default(),
                },
            };
            self.record(tag, outcome, &mut batch.batch)?;
        }
        Ok(Decided::Record(
            batch.finish().into_record(seq, seq),
            Written {
                article,
                seq,
                revisions_removed,
                replayed: false,
            },
        ))
    }

    /// The stored article `id`, checked against an expected etag.
    fn current(&self, id: &str, etag: Option<&str>) -> Result<Article> {
        let article = self.get_article(id)?.ok_or_else(|| Error::NotFound {
            resource: Resource::Article,
            id: id.to_string(),
        })?;
        if let Some(given) = etag
            && given != article.etag()
        {
            return Err(Error::EtagMismatch {
                id: id.to_string(),
                current: article.etag(),
                given: given.to_string(),
            });
        }
        Ok(article)
    }
}

/// The changes of one article write, and the entity records it touches, before they are
/// applied.
pub(super) struct Batch<'s> {
    pub(super) store: &'s Store,
    pub(super) batch: Changes,
    /// Entity records read or created by this write, by id, with their counters.
    pub(super) entities: HashMap<String, Entity>,
    /// The stored records of the entities read: a record is written only when the write
    /// changes more than its counters.
    pub(super) stored: HashMap<String, Arc<Option<Entity>>>,
    /// Entities created by this write, so a second mention resolves to the first.
    pub(super) created: HashMap<(String, EntityKind), String>,
    /// Ranking entries to remove, taken before counts change.
    pub(super) old_ranks: HashMap<String, (EntityKind, u64)>,
    /// Aliases the written article offers per entity.
    pub(super) new_aliases: HashMap<String, Vec<String>>,
    /// The next entity number, once this write has created an entity.
    pub(super) next_code: Option<u64>,
}

impl<'s> Batch<'s> {
    fn new(store: &'s Store) -> Self {
        Batch {
            store,
            batch: Changes::default(),
            entities: HashMap::new(),
            stored: HashMap::new(),
            created: HashMap::new(),
            old_ranks: HashMap::new(),
            new_aliases: HashMap::new(),
            next_code: None,
        }
    }

    pub(super) fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.batch.insert(key, value);
    }

    pub(super) fn remove(&mut self, key: Vec<u8>) {
        self.batch.remove(key);
    }

    fn finish(mut self) -> Changes {
        if let Some(next) = self.next_code {
            self.batch.insert(keys::META_NEXT_CODE, next.to_be_bytes());
        }
        self.batch
    }

    /// A fresh entity number.
    pub(super) fn new_code(&mut self) -> Result<u64> {
        let next = match self.next_code {
            Some(next) => next,
            None => match self.store.tree.get(keys::META_NEXT_CODE)? {
                Some(bytes) => u64::from_be_bytes(
                    bytes
                        .as_ref()
                        .try_into()
                        .map_err(|_| Error::Internal("malformed entity counter".into()))?,
                ),
                None => 1,
            },
        };
        self.next_code = Some(next + 1);
        Ok(next)
    }

    /// Loads an entity record into the working set.
    pub(super) fn entity(&mut self, id: &str) -> Result<Option<&mut Entity>> {
        if !self.entities.contains_key(id) {
            let stored = self.store.entity_record_for_writer(id)?;
            let Some(record) = stored.as_ref() else {
                return Ok(None);
            };
            let mut entity = record.clone();
            self.store.count_entity(&mut entity);
            self.old_ranks
                .insert(id.to_string(), (entity.kind, entity.article_count));
            self.stored.insert(id.to_string(), stored);
            self.entities.insert(id.to_string(), entity);
        }
        Ok(self.entities.get_mut(id))
    }

    /// Removes every index entry of `old`.
    fn unindex_article(&mut self, old: &Article) -> Result<()> {
        let time = old.sort_time();
        self.remove(keys::article(&old.id));
        self.remove(ArticleIndex::Time.key(time, &old.id));
        let source = normalize_source(&old.input.source);
        if !source.is_empty() {
            self.remove(ArticleIndex::Source(source).key(time, &old.id));
        }
        self.remove(keys::article_entities(&old.id));
        for mention in &old.derived.mentions {
            self.remove(keys::salience(
                &mention.entity_id,
                mention.salience,
                time,
                &old.id,
            ));
            self.remove(ArticleIndex::Entity(mention.entity_id.clone()).key(time, &old.id));
        }
        Ok(())
    }

    /// Resolves entities, builds the article record and indexes it.
    fn put_article(
        &mut self,
        id: &str,
        old: Option<&Article>,
        revision: u64,
        content: Content,
    ) -> Result<Article> {
        let now = Timestamp::now();
        let Content {
            input,
            extraction,
            content_hash,
        } = content;
        let mut mentions: Vec<Mention> = Vec::with_capacity(extraction.entities.len());
        // Extraction index → position in `mentions` (two extracted entities may resolve to
        // one stored entity).
        let mut position: Vec<usize> = Vec::with_capacity(extraction.entities.len());
        for extracted in &extraction.entities {
            let Some(entity_id) = self.resolve(extracted)? else {
                position.push(usize::MAX);
                continue;
            };
            self.new_aliases
                .entry(entity_id.clone())
                .or_default()
                .extend(extracted.aliases.iter().cloned());
            let entity = self
                .entities
                .get(&entity_id)
                .ok_or_else(|| Error::Internal("resolved entity missing".into()))?;
            match mentions.iter().position(|m| m.entity_id == entity_id) {
                Some(at) => {
                    merge_mention(&mut mentions[at], extracted);
                    position.push(at);
                }
                None => {
                    position.push(mentions.len());
                    mentions.push(Mention {
                        entity_id,
                        entity_code: entity.code,
                        name: entity.name.clone(),
                        kind: entity.kind,
                        spans: extracted.spans.clone(),
                        count: extracted.count,
                        salience: extracted.salience,
                        origin: extracted.origin,
                        surface_forms: extracted.surface_forms.clone(),
                        extracted_kind: extracted.kind,
                    });
                }
            }
        }
        // Dropped tentative names leave the rest to share all of the salience.
        let total: f32 = mentions.iter().map(|m| m.salience).sum();
        for mention in &mut mentions {
            mention.spans.sort();
            mention.spans.dedup();
            if total > 0.0 {
                mention.salience /= total;
            }
        }
        let quotes = extraction
            .quotes
            .iter()
            .map(|q| Quote {
                text: q.text.clone(),
                span: q.span,
                speaker: q
                    .speaker
                    .and_then(|i| position.get(i))
                    .and_then(|&at| mentions.get(at))
                    .map(|m| (m.entity_id.clone(), m.name.clone())),
            })
            .collect();
        mentions.sort_by(|a, b| b.salience.total_cmp(&a.salience));
        let article = Article {
            id: id.to_string(),
            input,
            derived: Derived {
                paragraphs: extraction.paragraphs,
                subheadings: extraction.subheadings,
                captions: extraction.captions,
                word_count: extraction.word_count,
                content_hash,
                mentions,
                quotes,
            },
            revision,
            created: old.map_or(now, |o| o.created),
            updated: now,
        };

        let time = article.sort_time();
        self.insert(keys::article(id), codec::encode(&article)?);
        self.insert(ArticleIndex::Time.key(time, id), Vec::new());
        let source = normalize_source(&article.input.source);
        if !source.is_empty() {
            self.insert(ArticleIndex::Source(source).key(time, id), Vec::new());
        }
        self.insert(
            keys::article_entities(id),
            super::article_entities_record(&article)?,
        );
        for mention in &article.derived.mentions {
            self.insert(
                keys::salience(&mention.entity_id, mention.salience, time, id),
                Vec::new(),
            );
            self.insert(
                ArticleIndex::Entity(mention.entity_id.clone()).key(time, id),
                Vec::new(),
            );
        }
        Ok(article)
    }

    /// Counts `old` out of and `new` into the tallies of every entity they mention, and
    /// updates those entities' kinds, aliases and rankings, writing the records this changes.
    fn update_entities(&mut self, old: Option<&Article>, new: Option<&Article>) -> Result<()> {
        self.batch.tally(old, new);
        let mut ids: BTreeSet<String> = BTreeSet::new();
        fn mention_of<'a>(article: Option<&'a Article>, id: &str) -> Option<&'a Mention> {
            article.and_then(|a| a.derived.mentions.iter().find(|m| m.entity_id == id))
        }
        let vote_of = |article: Option<&Article>, id: &str| {
            mention_of(article, id).and_then(|m| m.extracted_kind)
        };
        for article in [old, new].into_iter().flatten() {
            ids.extend(article.derived.mentions.iter().map(|m| m.entity_id.clone()));
        }
        for id in ids {
            let before = mention_of(old, &id).is_some();
            let after = mention_of(new, &id).is_some();
            let forms = self.new_aliases.remove(&id).unwrap_or_default();
            let Some(entity) = self.entity(&id)? else {
                // An article may mention an entity record that no longer exists only if the
                // store was damaged; skip it rather than fail every later write.
                tracing::warn!(entity = %id, "an article mentions a missing entity");
                continue;
            };
            // Articles whose mention carries no kind (tagged by entity id, or written before
            // kinds were kept) count for the kind the entity has: a kind is never decided by
            // the few articles that voted against the many that could not.
            let unvoted = entity
                .article_count
                .saturating_sub(entity.kind_votes.iter().sum());
            entity.kind_votes[entity.kind.index()] += unvoted;
            if let Some(kind) = vote_of(old, &id) {
                let votes = &mut entity.kind_votes[kind.index()];
                *votes = votes.saturating_sub(1);
            }
            if let Some(kind) = vote_of(new, &id) {
                entity.kind_votes[kind.index()] += 1;
            }
            if !entity.edited {
                let current = entity.kind.index();
                let (best, votes) = entity
                    .kind_votes
                    .iter()
                    .enumerate()
                    .max_by_key(|&(i, v)| (*v, i == current))
                    .map_or((current, 0), |(i, v)| (i, *v));
                if votes > entity.kind_votes[current] {
                    entity.kind = EntityKind::ALL[best];
                }
            }
            // The ranking's next key; the counters themselves are the entity index's.
            entity.article_count =
                (entity.article_count + u64::from(after)).saturating_sub(u64::from(before));
            let mut new_alias_keys = Vec::new();
            for form in forms {
                let key = name_key(&form);
                if key.is_empty()
                    || form == entity.name
                    || entity.aliases.contains(&form)
                    || entity.aliases.len() >= MAX_ALIASES
                {
                    continue;
                }
                entity.aliases.push(form);
                new_alias_keys.push(key);
            }
            let (kind, article_count) = (entity.kind, entity.article_count);
            // The record is written only if the write changed more than its counters; the
            // two maps are borrowed apart, so neither needs a copy to compare.
            let entity = self
                .entities
                .get(&id)
                .ok_or_else(|| Error::Internal("updated entity missing".into()))?;
            let record = match self.stored.get(&id).map(|stored| stored.as_ref().as_ref()) {
                Some(Some(stored)) if super::same_record(entity, stored) => None,
                _ => Some(super::record_of(entity)),
            };
            for key in new_alias_keys {
                self.insert(keys::name(&key, &id), Vec::new());
            }
            if let Some((kind, count)) = self.old_ranks.get(&id).copied()
                && count > 0
            {
                self.remove(keys::rank(kind, count, &id));
            }
            if article_count > 0 {
                self.insert(keys::rank(kind, article_count, &id), Vec::new());
            }
            if let Some(record) = record {
                self.insert(keys::entity(&id), codec::encode(&record)?);
                self.stored.insert(id, Arc::new(Some(record)));
            }
        }
        Ok(())
    }
}

/// Folds a second extracted entity into a mention of the same stored entity.
fn merge_mention(mention: &mut Mention, extracted: &ExtractedEntity) {
    mention.spans.extend(extracted.spans.iter().copied());
    mention.count += extracted.count;
    mention.salience += extracted.salience;
    for form in &extracted.surface_forms {
        if !mention.surface_forms.contains(form) {
            mention.surface_forms.push(form.clone());
        }
    }
    mention.origin = match (mention.origin, extracted.origin) {
        (a, b) if a == b => a,
        _ => MentionOrigin::ExtractedAndClient,
    };
}
