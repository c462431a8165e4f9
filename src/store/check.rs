//! A full consistency check of the store: every index agrees with the articles.
//!
//! This scans everything, so it is for tests, tools and after a crash, never for a request
//! path. It states the store's invariants as code:
//!
//! - every article has exactly its time, source, entity and entity-list index entries, and
//!   every index entry points at an article that has it;
//! - every entity's article count equals its entries in the entity index, its mention count
//!   the sum over its articles, its first and last seen times their oldest and newest, and
//!   its ranking entries match its count;
//! - every name-index entry points at an existing entity, and every entity is found by
//!   its number;
//! - the change log is numbered 1, 2, 3, … without gaps, but for losses an operator
//!   accepted at open (`--accept-data-loss`), which are recorded.

use std::collections::{BTreeMap, BTreeSet};

use super::keys::{self, ArticleIndex};
use super::{Store, codec};
use crate::error::Result;
use crate::model::{Article, Change, Entity, Timestamp, normalize_source};

impl Store {
    /// Every violated invariant, described; empty when the store is consistent.
    pub fn check(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        let mut expected: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut entity_articles: BTreeMap<String, (u64, u64, [u64; 4])> = BTreeMap::new();
        let mut entity_times: BTreeMap<String, (Timestamp, Timestamp)> = BTreeMap::new();
        let mut article_ids: BTreeSet<String> = BTreeSet::new();

        for entry in self.tree.scan_prefix([keys::ARTICLE]) {
            let (key, value) = entry?;
            let article: Article = codec::decode(&value)?;
            if !crate::model::is_valid_article_id(&article.id) {
                problems.push(format!(
                    "article id {} breaks the article-id rule",
                    crate::error::quoted(&article.id)
                ));
            }
            if key.as_ref() != keys::article(&article.id).as_slice() {
                problems.push(format!(
                    "article {:?} is stored under another key",
                    article.id
                ));
            }
            article_ids.insert(article.id.clone());
            let time = article.sort_time();
            expected.insert(ArticleIndex::Time.key(time, &article.id));
            let source = normalize_source(&article.input.source);
            if !source.is_empty() {
                expected.insert(ArticleIndex::Source(source).key(time, &article.id));
            }
            expected.extend(super::mention_index_keys(&article));
            for mention in &article.derived.mentions {
                let counts = entity_articles
                    .entry(mention.entity_id.clone())
                    .or_default();
                counts.0 += 1;
                counts.1 += u64::from(mention.count);
                if let Some(kind) = mention.extracted_kind {
                    counts.2[kind.index()] += 1;
                }
                let times = entity_times
                    .entry(mention.entity_id.clone())
                    .or_insert((time, time));
                times.0 = times.0.min(time);
                times.1 = times.1.max(time);
            }
            // An unreadable list is a problem to report, not a failed check.
            let listed = self.article_entities(&article.id).ok();
            if listed != Some(super::article_entities_of(&article)) {
                problems.push(format!("article {:?}: entity list disagrees", article.id));
            }
        }

        for entry in self.tree.scan_prefix([keys::ARTICLE_ENTITIES]) {
            let (key, _) = entry?;
            let id = String::from_utf8_lossy(&key[1..]).into_owned();
            if !article_ids.contains(&id) {
                problems.push(format!("entity list for missing article {id:?}"));
            }
        }

        let mut found: BTreeSet<Vec<u8>> = BTreeSet::new();
        for prefix in [keys::TIME, keys::SOURCE, keys::MENTION, keys::SALIENCE] {
            for entry in self.tree.scan_prefix([prefix]) {
                let key = entry?.0;
                if prefix == keys::MENTION || prefix == keys::SALIENCE {
                    // Layout 4 keeps these in memory only.
                    problems.push(format!(
                        "entity-index key {} left in sled",
                        keys::show(&key)
                    ));
                }
                found.insert(key.to_vec());
            }
        }
        found.extend(self.entity_index.all_keys());
        for missing in expected.difference(&found) {
            problems.push(format!("missing index entry {}", keys::show(missing)));
        }
        for stray in found.difference(&expected) {
            problems.push(format!(
                "index entry {} points at no such article",
                keys::show(stray)
            ));
        }

        let mut ranks: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut entity_ids: BTreeSet<String> = BTreeSet::new();
        for entry in self.tree.scan_prefix([keys::ENTITY]) {
            let (_, value) = entry?;
            let mut entity: Entity = codec::decode(&value)?;
            self.count_entity(&mut entity);
            let (articles, mentions, votes) =
                entity_articles.remove(&entity.id).unwrap_or_default();
            if entity.article_count != articles || entity.mention_count != mentions {
                problems.push(format!(
                    "entity {:?} counts {}/{} but its articles say {articles}/{mentions}",
                    entity.id, entity.article_count, entity.mention_count
                ));
            }
            if entity.kind_votes != votes {
                problems.push(format!(
                    "entity {:?} has kind votes {:?} but its articles say {votes:?}",
                    entity.id, entity.kind_votes
                ));
            }
            let seen = entity_times.get(&entity.id).copied();
            if (entity.first_seen, entity.last_seen) != (seen.map(|t| t.0), seen.map(|t| t.1)) {
                problems.push(format!(
                    "entity {:?} has wrong first/last seen times",
                    entity.id
                ));
            }
            entity_ids.insert(entity.id.clone());
            if self.entity_id_by_code(entity.code)?.as_deref() != Some(entity.id.as_str()) {
                problems.push(format!(
                    "entity {:?} is not found by its number {}",
                    entity.id, entity.code
                ));
            }
            if entity.article_count > 0 {
                ranks.insert(keys::rank(entity.kind, entity.article_count, &entity.id));
            }
        }
        for id in entity_articles.keys() {
            problems.push(format!(
                "articles mention entity {id:?}, which has no record"
            ));
        }
        for entry in self.tree.scan_prefix([keys::NAME]) {
            let (key, _) = entry?;
            if let Some(id) = keys::entity_of_name_key(&key)
                && !entity_ids.contains(id)
            {
                problems.push(format!("a name points at missing entity {id:?}"));
            }
        }
        let mut stored_ranks: BTreeSet<Vec<u8>> =
            self.entity_index.ranking_keys().into_iter().collect();
        for entry in self.tree.scan_prefix([keys::RANK]) {
            let key = entry?.0;
            // Layout 5 keeps the ranking in memory only.
            problems.push(format!("ranking key {} left in sled", keys::show(&key)));
            stored_ranks.insert(key.to_vec());
        }
        if stored_ranks != ranks {
            problems.push(format!(
                "entity ranking has {} entries, counts imply {}",
                stored_ranks.len(),
                ranks.len()
            ));
        }

        // A loss accepted at open (`--accept-data-loss`) is a known jump, not a problem.
        let accepted: BTreeSet<(u64, u64)> = super::accepted_losses(&self.tree)?
            .into_iter()
            .map(|(upto, ended)| (ended, upto + 1))
            .collect();
        let mut expected_seq = 1;
        for entry in self.tree.scan_prefix([keys::CHANGE]) {
            let (_, value) = entry?;
            let change: Change = codec::decode(&value)?;
            if change.seq != expected_seq && !accepted.contains(&(expected_seq - 1, change.seq)) {
                problems.push(format!(
                    "change log jumps from {} to {}",
                    expected_seq - 1,
                    change.seq
                ));
            }
            expected_seq = change.seq + 1;
        }
        Ok(problems)
    }
}
