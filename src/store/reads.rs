//! Reads: articles, entities and their listings, the change log, and the related-entities
//! ranking. Reads never take the writer lock.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::keys::{self, ArticleIndex};
use super::records::ArticleEntities;
use super::{Store, codec};
use crate::error::{Error, Invalid, Result};
use crate::model::{
    Article, ArticleFilter, Change, Entity, EntityKind, Related, Timestamp, name_key,
};

/// A list page examines at most this many index entries, so a filter that matches rarely
/// cannot make one request scan the whole store; the page then ends early with a token.
pub(crate) const MAX_EXAMINED_PER_PAGE: usize = 10_000;
/// A name prefix may match at most this many names.
const MAX_PREFIX_MATCHES: usize = 50_000;

/// One page of a listing and the cursor to continue from.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Opaque position after the last item; `None` on the last page.
    pub next: Option<Vec<u8>>,
}

/// The size of one key space (see [`keys`]).
#[derive(Debug, Clone, Default)]
pub struct KeySpaceSize {
    pub prefix: u8,
    pub entries: u64,
    pub key_bytes: u64,
    pub value_bytes: u64,
}

/// Entities related to one entity, and how much of its history was examined.
#[derive(Debug)]
pub struct RelatedPage {
    pub related: Vec<Related>,
    pub articles_examined: u64,
    pub complete: bool,
}

impl Store {
    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }

    /// Entries, key bytes and value bytes per key space (a full scan, for `newsstore
    /// stats`): what the data is, to set against what the files take.
    pub fn key_space_sizes(&self) -> Result<Vec<KeySpaceSize>> {
        let mut sizes = std::collections::BTreeMap::<u8, KeySpaceSize>::new();
        for entry in self.tree.iter() {
            let (key, value) = entry?;
            let prefix = key.first().copied().unwrap_or(0);
            let size = sizes.entry(prefix).or_insert_with(|| KeySpaceSize {
                prefix,
                ..KeySpaceSize::default()
            });
            size.entries += 1;
            size.key_bytes += key.len() as u64;
            size.value_bytes += value.len() as u64;
        }
        let mut sizes: Vec<KeySpaceSize> = sizes.into_values().collect();
        sizes.sort_by_key(|s| std::cmp::Reverse(s.key_bytes + s.value_bytes));
        Ok(sizes)
    }

    pub(super) fn get<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        let read = || {
            self.tree
                .get(key)?
                .map(|bytes| codec::decode(&bytes))
                .transpose()
        };
        read().map_err(|err| err.at_key(&keys::show(key)))
    }

    /// The entities an article mentions with their salience there (the `x` record).
    pub(super) fn article_entities(&self, article_id: &str) -> Result<ArticleEntities> {
        let record: Option<ArticleEntities> = self.get(&keys::article_entities(article_id))?;
        Ok(record.unwrap_or_default())
    }

    pub fn get_article(&self, id: &str) -> Result<Option<Article>> {
        self.get(&keys::article(id))
    }

    /// The entity's record with its counters, which the entity index holds (see
    /// [`entity_record`]). The two are read apart, so a reader racing a write may see the
    /// record after it with the counters before it, for the microseconds between the
    /// store applying sled's batch and the index's changes, as with any entity-index read.
    pub fn get_entity(&self, id: &str) -> Result<Option<Entity>> {
        let Some(mut entity) = self.get::<Entity>(&keys::entity(id))? else {
            return Ok(None);
        };
        self.count_entity(&mut entity);
        Ok(Some(entity))
    }

    /// Sets an entity's counters from the entity index.
    pub(super) fn count_entity(&self, entity: &mut Entity) {
        let counters = self.entity_index.counters(&entity.id);
        entity.article_count = counters.articles;
        entity.mention_count = counters.tally.mentions;
        entity.kind_votes = counters.tally.votes;
        entity.last_seen = counters.newest;
        entity.first_seen = counters.oldest;
    }

    /// The ids of the entities `name` denotes: the entity with that id, and every entity
    /// with that canonical name or alias (compared by name key).
    pub fn entities_named(&self, name: &str) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        if !name.is_empty()
            && let Some(entity) = self.resolve_entity(name)?
        {
            ids.push(entity.id);
        }
        let key = name_key(name);
        if key.is_empty() {
            return Ok(ids);
        }
        for id in self.scan_name_index(&key)? {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// The id of the entity with number `code`.
    pub fn entity_id_by_code(&self, code: u64) -> Result<Option<String>> {
        Ok(self
            .tree
            .get(keys::entity_code(code))?
            .map(|id| String::from_utf8_lossy(&id).into_owned()))
    }

    /// One more than the highest entity number assigned so far.
    pub fn next_entity_code(&self) -> Result<u64> {
        Ok(match self.tree.get(keys::META_NEXT_CODE)? {
            Some(bytes) => bytes
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(1),
            None => 1,
        })
    }

    /// Every stored article, in id order (for rebuilding derived indexes).
    pub fn articles(&self) -> impl Iterator<Item = Result<Article>> + '_ {
        self.tree
            .scan_prefix([keys::ARTICLE])
            .map(|entry| codec::decode(&entry?.1))
    }

    /// Up to `limit` articles in id order, after article `after`.
    pub fn articles_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Article>> {
        let low = match after {
            Some(id) => {
                let mut key = keys::article(id);
                key.push(0);
                key
            }
            None => vec![keys::ARTICLE],
        };
        self.tree
            .range(low..keys::prefix_end(&[keys::ARTICLE]))
            .take(limit)
            .map(|entry| codec::decode(&entry?.1))
            .collect()
    }

    /// How many articles are stored (counts keys: for progress reports, not request paths).
    pub fn article_count(&self) -> Result<u64> {
        let mut count = 0;
        for entry in self.tree.scan_prefix([keys::ARTICLE]) {
            entry?;
            count += 1;
        }
        Ok(count)
    }

    /// Change-log entries after `seq`, oldest first, at most `limit`.
    pub fn changes_after(&self, seq: u64, limit: usize) -> Result<Vec<Change>> {
        let start = keys::change(seq.saturating_add(1));
        let end = keys::prefix_end(&[keys::CHANGE]);
        self.tree
            .range(start..end)
            .take(limit)
            .map(|entry| codec::decode(&entry?.1))
            .collect()
    }

    /// Articles matching `filter`, newest first, continuing after `cursor`.
    pub fn list_articles(
        &self,
        filter: &ArticleFilter,
        page_size: usize,
        cursor: Option<&[u8]>,
    ) -> Result<Page<Article>> {
        if let Some(cursor) = cursor
            && keys::split_suffix(cursor).is_none()
        {
            return Err(bad_cursor());
        }
        let indexes = match self.choose_indexes(filter)? {
            Some(indexes) => indexes,
            None => {
                return Ok(Page {
                    items: Vec::new(),
                    next: None,
                });
            }
        };
        // The range of `time + id` suffixes the time filter allows.
        let low_time = match filter.published_end {
            Some(end) => match end.0.checked_sub(1) {
                Some(t) => Some(keys::newest_first(Timestamp(t))),
                None => {
                    return Ok(Page {
                        items: Vec::new(),
                        next: None,
                    });
                }
            },
            None => None,
        };
        let high_time = filter.published_start.map(keys::newest_first);
        let mut iterators: Vec<_> = indexes
            .iter()
            .map(|index| {
                let prefix = index.prefix();
                let mut low = prefix.clone();
                match (low_time, cursor) {
                    (Some(t), Some(c)) if c > t.as_slice() => {
                        low.extend_from_slice(c);
                        low.push(0);
                    }
                    (Some(t), _) => low.extend_from_slice(&t),
                    (None, Some(c)) => {
                        low.extend_from_slice(c);
                        low.push(0);
                    }
                    (None, None) => {}
                }
                let high = match high_time {
                    Some(t) => {
                        let mut bound = prefix.clone();
                        bound.extend_from_slice(&t);
                        keys::prefix_end(&bound)
                    }
                    None => keys::prefix_end(&prefix),
                };
                self.positions(low..high, prefix.len())
            })
            .collect();

        let mut items = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        let mut examined = 0;
        loop {
            let Some(suffix) = merge_next(&mut iterators)? else {
                return Ok(Page { items, next: None });
            };
            if items.len() == page_size || examined == MAX_EXAMINED_PER_PAGE {
                return Ok(Page { items, next: last });
            }
            examined += 1;
            let (time, id) = keys::split_suffix(&suffix)
                .ok_or_else(|| Error::Internal("malformed article index key".into()))?;
            // An entry read just before its article moved in time is stale: the article
            // turns up again under its new entry.
            if let Some(article) = self.get_article(id)?
                && article.sort_time() == time
                && filter.matches(&article)
            {
                items.push(article);
            }
            last = Some(suffix.to_vec());
        }
    }

    /// The indexes to scan for `filter`; `None` when nothing can match.
    pub(super) fn choose_indexes(
        &self,
        filter: &ArticleFilter,
    ) -> Result<Option<Vec<ArticleIndex>>> {
        if !filter.entity_ids.is_empty() {
            // Scan the rarest entity; the article check covers the others.
            let mut rarest: Option<Entity> = None;
            for id in &filter.entity_ids {
                let Some(entity) = self.get_entity(id)? else {
                    return Ok(None);
                };
                if rarest
                    .as_ref()
                    .is_none_or(|r| entity.article_count < r.article_count)
                {
                    rarest = Some(entity);
                }
            }
            return Ok(rarest.map(|e| vec![ArticleIndex::Entity(e.id)]));
        }
        if !filter.sources.is_empty() {
            let unique: HashSet<&String> = filter.sources.iter().collect();
            return Ok(Some(
                unique
                    .into_iter()
                    .map(|s| ArticleIndex::Source(s.clone()))
                    .collect(),
            ));
        }
        Ok(Some(vec![ArticleIndex::Time]))
    }

    /// Entities with at least one article, most articles first, optionally of one kind and
    /// with a name or alias starting with `name_prefix`.
    pub fn list_entities(
        &self,
        kind: Option<EntityKind>,
        name_prefix: &str,
        page_size: usize,
        cursor: Option<&[u8]>,
    ) -> Result<Page<Entity>> {
        if let Some(cursor) = cursor
            && (cursor.len() < 9 || std::str::from_utf8(&cursor[8..]).is_err())
        {
            return Err(bad_cursor());
        }
        if !name_prefix.is_empty() {
            return self.list_entities_by_prefix(kind, name_prefix, page_size, cursor);
        }
        let kinds = match kind {
            Some(kind) => vec![kind],
            None => EntityKind::ALL.to_vec(),
        };
        // Positions (`count desc, id`) compare the same way in every kind's ranking, so the
        // listing of all kinds is a merge of the four.
        let mut rankings: Vec<_> = kinds
            .into_iter()
            .map(|kind| {
                let prefix = keys::rank_prefix(kind);
                let mut low = prefix.clone();
                if let Some(cursor) = cursor {
                    low.extend_from_slice(cursor);
                    low.push(0);
                }
                self.positions(low..keys::prefix_end(&prefix), prefix.len())
            })
            .collect();
        let mut items = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        while let Some(position) = merge_next(&mut rankings)? {
            if items.len() == page_size {
                return Ok(Page { items, next: last });
            }
            let id = keys::entity_of_rank_position(&position)
                .ok_or_else(|| Error::Internal("malformed ranking key".into()))?;
            if let Some(entity) = self.get_entity(id)? {
                items.push(entity);
            }
            // The position is the key's: the entity's count may change meanwhile.
            last = Some(position.to_vec());
        }
        Ok(Page { items, next: None })
    }

    pub(super) fn list_entities_by_prefix(
        &self,
        kind: Option<EntityKind>,
        name_prefix: &str,
        page_size: usize,
        cursor: Option<&[u8]>,
    ) -> Result<Page<Entity>> {
        let key = name_key(name_prefix);
        if key.is_empty() {
            return Err(Error::invalid(
                "name_prefix",
                Invalid::Malformed,
                "name_prefix must contain a letter or digit",
            ));
        }
        let mut ids: HashSet<String> = HashSet::new();
        for (n, entry) in self.tree.scan_prefix(keys::name_prefix(&key)).enumerate() {
            if n == MAX_PREFIX_MATCHES {
                return Err(Error::invalid(
                    "name_prefix",
                    Invalid::OutOfRange,
                    format!(
                        "name_prefix {name_prefix:?} matches more than {MAX_PREFIX_MATCHES} \
                         names; use a longer prefix"
                    ),
                ));
            }
            let (k, _) = entry?;
            if let Some(id) = keys::entity_of_name_key(&k) {
                ids.insert(id.to_string());
            }
        }
        // Ordered like the ranking, so the cursor has the same form.
        let mut ranked: BTreeMap<Vec<u8>, Entity> = BTreeMap::new();
        for id in ids {
            if let Some(entity) = self.get_entity(&id)?
                && entity.article_count > 0
                && kind.is_none_or(|k| k == entity.kind)
            {
                ranked.insert(rank_cursor(&entity), entity);
            }
        }
        let mut items = Vec::new();
        let start = cursor.map(<[u8]>::to_vec);
        for (position, entity) in ranked {
            if start.as_ref().is_some_and(|s| position <= *s) {
                continue;
            }
            if items.len() == page_size {
                let last: &Entity = &items[items.len() - 1];
                return Ok(Page {
                    next: Some(rank_cursor(last)),
                    items,
                });
            }
            items.push(entity);
        }
        Ok(Page { items, next: None })
    }

    /// The entities that share articles with entity `id`, most shared first, looking at its
    /// `max_articles` most recent articles.
    pub fn related_entities(
        &self,
        id: &str,
        kind: Option<EntityKind>,
        limit: usize,
        max_articles: usize,
    ) -> Result<RelatedPage> {
        if self.get_entity(id)?.is_none() {
            return Err(Error::NotFound {
                resource: crate::error::Resource::Entity,
                id: id.to_string(),
            });
        }
        let prefix = ArticleIndex::Entity(id.to_string()).prefix();
        // Per other entity: shared articles, and the sum over them of both saliences'
        // product, which ranks a name central to the same stories above a passing mention.
        let mut shared: HashMap<String, (u64, f64)> = HashMap::new();
        let mut examined = 0u64;
        let mut complete = true;
        for key in self.keys_with_prefix(&prefix) {
            if examined as usize == max_articles {
                complete = false;
                break;
            }
            let key = key?;
            let Some((_, article_id)) = keys::split_suffix(&key[prefix.len()..]) else {
                continue;
            };
            examined += 1;
            let entities = self.article_entities(article_id)?;
            let own = entities
                .iter()
                .find(|(other, ..)| other == id)
                .map_or(0.0, |(_, s, ..)| f64::from(*s));
            for (other, salience, ..) in entities {
                if other != id {
                    let entry = shared.entry(other).or_default();
                    entry.0 += 1;
                    entry.1 += own * f64::from(salience);
                }
            }
        }
        let mut ranked: Vec<(String, (u64, f64))> = shared.into_iter().collect();
        ranked.sort_by(|a, b| {
            b.1.1
                .total_cmp(&a.1.1)
                .then_with(|| b.1.0.cmp(&a.1.0))
                .then_with(|| a.0.cmp(&b.0))
        });
        let mut related = Vec::new();
        for (other, (count, strength)) in ranked {
            if related.len() == limit {
                break;
            }
            if let Some(entity) = self.get_entity(&other)?
                && kind.is_none_or(|k| k == entity.kind)
            {
                related.push(Related {
                    entity,
                    shared_articles: count,
                    strength,
                });
            }
        }
        Ok(RelatedPage {
            related,
            articles_examined: examined,
            complete,
        })
    }

    /// The index keys in `range`, each without its first `skip` bytes (the index's prefix),
    /// as a source for [`merge_next`].
    pub(super) fn positions(
        &self,
        range: std::ops::Range<Vec<u8>>,
        skip: usize,
    ) -> std::iter::Peekable<impl Iterator<Item = sled::Result<sled::IVec>> + use<>> {
        self.keys_in(range)
            .map(move |key| key.map(|key| key.subslice(skip, key.len() - skip)))
            .peekable()
    }

    /// The keys in `range`, from sled or, for the `m`, `l` and `r` key spaces, from the
    /// entity indexes (see [`EntityIndex::range`]).
    pub(super) fn keys_in(
        &self,
        range: std::ops::Range<Vec<u8>>,
    ) -> Box<dyn Iterator<Item = sled::Result<sled::IVec>> + Send> {
        match range.start.first() {
            Some(&keys::MENTION | &keys::SALIENCE | &keys::RANK) => {
                Box::new(self.entity_index.range(range).map(|key| Ok(key.into())))
            }
            _ => Box::new(self.tree.range(range).keys()),
        }
    }

    /// The keys of an entity-index prefix (see [`Store::keys_in`]).
    pub(super) fn keys_with_prefix(
        &self,
        prefix: &[u8],
    ) -> Box<dyn Iterator<Item = sled::Result<sled::IVec>> + Send> {
        self.keys_in(prefix.to_vec()..keys::prefix_end(prefix))
    }
}

/// One step of a k-way merge of sorted index scans: takes the smallest next entry across
/// `sources`; `None` once every one is exhausted.
fn merge_next<I>(sources: &mut [std::iter::Peekable<I>]) -> Result<Option<sled::IVec>>
where
    I: Iterator<Item = sled::Result<sled::IVec>>,
{
    let mut best: Option<(usize, sled::IVec)> = None;
    for (i, source) in sources.iter_mut().enumerate() {
        match source.peek() {
            Some(Ok(entry)) if best.as_ref().is_none_or(|(_, b)| entry < b) => {
                best = Some((i, entry.clone()));
            }
            Some(Ok(_)) | None => {}
            Some(Err(_)) => {
                if let Some(Err(err)) = source.next() {
                    return Err(err.into());
                }
            }
        }
    }
    Ok(best.and_then(|(i, _)| sources[i].next()).transpose()?)
}

/// The position of an entity in the ranking, as a cursor.
fn rank_cursor(entity: &Entity) -> Vec<u8> {
    let mut cursor = (u64::MAX - entity.article_count).to_be_bytes().to_vec();
    cursor.extend_from_slice(entity.id.as_bytes());
    cursor
}

pub(super) fn bad_cursor() -> Error {
    Error::invalid(
        "page_token",
        Invalid::PageToken,
        "page_token is not a position this server issued",
    )
}
