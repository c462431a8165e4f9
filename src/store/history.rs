//! Article history: every past revision, and the deletion, kept beside the current record.
//!
//! The current revision lives only in `a` (so an article that never changed costs nothing
//! extra); when a write replaces it, the replaced record moves to `h` in the same batch, and
//! a delete leaves the last revision there plus a tombstone numbered one above it. An
//! article created again under a deleted id continues the numbering, so a revision number
//! names one state for the life of the id. Only a purge removes history (and with it the
//! numbering: an id created again after a purge starts at 1).

use serde::{Deserialize, Serialize};

use super::write::Batch;
use super::{Page, Store, codec, keys};
use crate::error::{Error, Resource, Result};
use crate::model::{Article, Timestamp};

/// A past state of an article, as stored under `h`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum PastRevision {
    /// The article as it was until the next revision replaced it.
    Article(Box<Article>),
    /// The article was deleted at `time`.
    Deleted { time: Timestamp },
}

/// One revision, as a caller sees it.
#[derive(Debug, Clone)]
pub struct Revision {
    pub revision: u64,
    /// When the revision was made (for a deletion, when it was deleted).
    pub time: Timestamp,
    /// The article at this revision; `None` for the deletion.
    pub article: Option<Article>,
}

impl Revision {
    fn from_past(revision: u64, past: PastRevision) -> Revision {
        match past {
            PastRevision::Article(article) => Revision {
                revision,
                time: article.updated,
                article: Some(*article),
            },
            PastRevision::Deleted { time } => Revision {
                revision,
                time,
                article: None,
            },
        }
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound {
        resource: Resource::Article,
        id: id.to_string(),
    }
}

impl Store {
    /// The highest revision number in article `id`'s history (not counting a current
    /// record); 0 if it has none.
    pub(super) fn last_past_revision(&self, id: &str) -> Result<u64> {
        Ok(
            match self.tree.scan_prefix(keys::revision_prefix(id)).next_back() {
                Some(entry) => keys::revision_of_key(&entry?.0).unwrap_or(0),
                None => 0,
            },
        )
    }

    /// Revisions of article `id`, newest first, continuing after `cursor`. NotFound when
    /// the id has neither a current record nor any history.
    pub fn list_revisions(
        &self,
        id: &str,
        cursor: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<Revision>> {
        let limit = limit.max(1);
        let before = match cursor {
            Some(c) => Some(
                c.try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| super::bad_cursor())?,
            ),
            None => None,
        };
        let current = self.get_article(id)?;
        let prefix = keys::revision_prefix(id);
        if current.is_none() && self.tree.scan_prefix(&prefix).next().is_none() {
            return Err(not_found(id));
        }
        let mut items = Vec::with_capacity(limit.min(64));
        if let Some(article) = current
            && before.is_none_or(|b| article.revision < b)
        {
            items.push(Revision {
                revision: article.revision,
                time: article.updated,
                article: Some(article),
            });
        }
        let end = match before {
            Some(b) => keys::revision(id, b),
            None => keys::prefix_end(&prefix),
        };
        let mut more = false;
        for entry in self.tree.range(prefix..end).rev() {
            let (key, value) = entry?;
            if items.len() == limit {
                more = true;
                break;
            }
            let revision = keys::revision_of_key(&key)
                .ok_or_else(|| Error::Internal("a malformed revision key".into()))?;
            items.push(Revision::from_past(revision, codec::decode(&value)?));
        }
        let next = match items.last() {
            Some(last) if more && last.revision > 1 => Some(last.revision.to_be_bytes().to_vec()),
            _ => None,
        };
        Ok(Page { items, next })
    }

    /// Revision `revision` of article `id`. NotFound when there is no such revision, or
    /// when it is the deletion (whose message says so).
    pub fn article_at(&self, id: &str, revision: u64) -> Result<Article> {
        let current = self.get_article(id)?;
        if let Some(article) = current.as_ref()
            && article.revision == revision
        {
            return Ok(article.clone());
        }
        match self.get::<PastRevision>(&keys::revision(id, revision))? {
            Some(PastRevision::Article(article)) => Ok(*article),
            Some(PastRevision::Deleted { .. }) => Err(Error::RevisionNotFound {
                id: id.to_string(),
                revision,
                why: "is its deletion; ask for an earlier revision",
            }),
            None if current.is_none() && self.last_past_revision(id)? == 0 => Err(not_found(id)),
            None => Err(Error::RevisionNotFound {
                id: id.to_string(),
                revision,
                why: "does not exist; ListArticleRevisions lists the ones there are",
            }),
        }
    }
}

impl Batch<'_> {
    /// Moves `old`, about to be replaced or deleted, into history.
    pub(super) fn keep_revision(&mut self, old: &Article) -> Result<()> {
        let past = PastRevision::Article(Box::new(old.clone()));
        self.insert(keys::revision(&old.id, old.revision), codec::encode(&past)?);
        Ok(())
    }

    /// Records the deletion of `old` as the revision after it.
    pub(super) fn tombstone(&mut self, old: &Article, time: Timestamp) -> Result<()> {
        let past = PastRevision::Deleted { time };
        self.insert(
            keys::revision(&old.id, old.revision + 1),
            codec::encode(&past)?,
        );
        Ok(())
    }

    /// Removes every stored past revision of article `id`; returns how many there were.
    pub(super) fn forget_history(&mut self, id: &str) -> Result<u64> {
        let mut removed = 0;
        let keys: Vec<_> = self
            .store
            .tree
            .scan_prefix(keys::revision_prefix(id))
            .keys()
            .collect::<Result<_, _>>()?;
        for key in keys {
            self.remove(key.to_vec());
            removed += 1;
        }
        Ok(removed)
    }
}
