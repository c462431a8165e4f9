//! The API's writes: create one or a batch of articles, update fields under an optional
//! etag, delete and purge, each answering a retried request id with its first result.

use std::collections::BTreeSet;

use super::rules::{prepare, validate_id};
use super::{
    Ingest, Plan, analyse_then_write, every_outcome, run_blocking, run_blocking_each, with_retries,
};
use crate::error::{Error, Result};
use crate::model::{Article, ArticleInput, RequestTag};
use crate::store::{Write, Written};

/// The caller-supplied fields an update can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum InputField {
    Headline,
    Body,
    Byline,
    Source,
    Language,
    Published,
    Tags,
    EntityTags,
}

impl InputField {
    pub const ALL: [InputField; 8] = [
        InputField::Headline,
        InputField::Body,
        InputField::Byline,
        InputField::Source,
        InputField::Language,
        InputField::Published,
        InputField::Tags,
        InputField::EntityTags,
    ];

    fn copy(self, from: &ArticleInput, to: &mut ArticleInput) {
        match self {
            InputField::Headline => to.headline.clone_from(&from.headline),
            InputField::Body => to.body.clone_from(&from.body),
            InputField::Byline => to.byline.clone_from(&from.byline),
            InputField::Source => to.source.clone_from(&from.source),
            InputField::Language => to.language.clone_from(&from.language),
            InputField::Published => to.published = from.published,
            InputField::Tags => to.tags.clone_from(&from.tags),
            InputField::EntityTags => to.entity_tags.clone_from(&from.entity_tags),
        }
    }
}

/// A stored article and the change-log sequence number of the write that stored it (0
/// when nothing had to be written).
#[derive(Debug, Clone)]
pub struct Stored {
    pub article: Article,
    pub seq: u64,
}

impl Ingest {
    /// Stores a new article under `id`, or a generated id. A recorded `tag` returns the
    /// first result instead.
    pub async fn create(
        &self,
        id: Option<String>,
        input: ArticleInput,
        tag: Option<RequestTag>,
    ) -> Result<Stored> {
        self.create_batch(vec![(id, input, tag)])
            .await
            .pop()
            .unwrap_or_else(|| Err(Error::Internal("a batch of one returned nothing".into())))
    }

    /// Stores many new articles with one flush; each succeeds or fails on its own, and each
    /// with a recorded tag returns its first result instead.
    pub async fn create_batch(
        &self,
        items: Vec<(Option<String>, ArticleInput, Option<RequestTag>)>,
    ) -> Vec<Result<Stored>> {
        if items.len() > self.limits.max_batch {
            let error = || {
                Error::ResourceExhausted(format!(
                    "a batch may hold at most {} articles; split it",
                    self.limits.max_batch
                ))
            };
            return items.iter().map(|_| Err(error())).collect();
        }
        let limits = self.limits;
        let store = self.store.clone();
        run_blocking_each(items.len(), move || {
            // Validation and extraction first; only the good items reach the store.
            let mut results: Vec<Option<Result<Stored>>> = Vec::with_capacity(items.len());
            let mut pending = Vec::new();
            let mut seen_ids = BTreeSet::new();
            for (i, (id, input, tag)) in items.into_iter().enumerate() {
                // A retry of a stored item needs no analysis (and its generated id must not
                // change): it is answered from the record.
                if let Some(tag) = &tag {
                    match store.recorded(tag) {
                        Ok(Some(outcome)) => {
                            results
                                .push(Some(store.replay_settled(outcome).and_then(expect_article)));
                            continue;
                        }
                        Ok(None) => {}
                        Err(err) => {
                            results.push(Some(Err(err)));
                            continue;
                        }
                    }
                }
                let id = id
                    .map_or_else(|| Ok(generate_id()), |id| validate_id(&id).map(|()| id))
                    .and_then(|id| {
                        if seen_ids.insert(id.clone()) {
                            Ok(id)
                        } else {
                            Err(Error::AlreadyExists {
                                resource: crate::error::Resource::Article,
                                id,
                            })
                        }
                    });
                match id {
                    Ok(id) => {
                        results.push(None);
                        pending.push((i, input, (id, tag)));
                    }
                    Err(err) => results.push(Some(Err(err))),
                }
            }
            let written = analyse_then_write(
                &limits,
                &mut results,
                pending,
                |content, (id, tag)| Ok(Plan::Write((Write::Create { id, content }, tag), ())),
                |writes| store.write_tagged(writes),
            );
            for (i, (), outcome) in written {
                results[i] = Some(outcome.and_then(expect_article));
            }
            every_outcome(results, "an item")
        })
        .await
    }

    /// Changes the `fields` of article `id` to their values in `patch`. With an `etag`, the
    /// update applies only if the article still has it.
    pub async fn update(
        &self,
        id: String,
        etag: Option<String>,
        fields: Vec<InputField>,
        patch: ArticleInput,
        tag: Option<RequestTag>,
    ) -> Result<Stored> {
        let this = self.clone();
        run_blocking(move || {
            // A retry must not be refused by the etag its first attempt made stale.
            if let Some(tag) = &tag
                && let Some(outcome) = this.store.recorded(tag)?
            {
                return expect_article(this.store.replay_settled(outcome)?);
            }
            with_retries(&id, || {
                let current = this
                    .store
                    .get_article(&id)?
                    .ok_or_else(|| Error::NotFound {
                        resource: crate::error::Resource::Article,
                        id: id.clone(),
                    })?;
                if let Some(given) = &etag
                    && *given != current.etag()
                {
                    return Err(Error::EtagMismatch {
                        id: id.clone(),
                        current: current.etag(),
                        given: given.clone(),
                    });
                }
                let mut input = current.input.clone();
                for field in &fields {
                    field.copy(&patch, &mut input);
                }
                let content = prepare(input, &this.limits)?;
                if content.content_hash == current.derived.content_hash {
                    return Ok(Some(Stored {
                        article: current,
                        seq: 0,
                    }));
                }
                let write = Write::Replace {
                    id: id.clone(),
                    etag: Some(current.etag()),
                    content,
                };
                match this.store.write_tagged(vec![(write, tag.clone())]).pop() {
                    // Without an etag the caller asked for no precondition: read again.
                    Some(Err(Error::EtagMismatch { .. })) if etag.is_none() => Ok(None),
                    Some(Err(Error::EtagMismatch { current, .. })) => Err(Error::EtagMismatch {
                        id: id.clone(),
                        current,
                        given: etag.clone().unwrap_or_default(),
                    }),
                    Some(outcome) => outcome.and_then(expect_article).map(Some),
                    None => Err(Error::Internal("a write returned nothing".into())),
                }
            })
        })
        .await
    }

    /// Deletes article `id`, if it still has `etag` when one is given. Returns the
    /// change-log sequence number of the delete.
    pub async fn delete(
        &self,
        id: String,
        etag: Option<String>,
        tag: Option<RequestTag>,
    ) -> Result<u64> {
        self.write_one(Write::Delete { id, etag }, tag)
            .await
            .map(|written| written.seq)
    }

    /// Removes article `id` and its whole history for good.
    pub async fn purge(&self, id: String, tag: Option<RequestTag>) -> Result<Written> {
        self.write_one(Write::Purge { id }, tag).await
    }

    async fn write_one(&self, write: Write, tag: Option<RequestTag>) -> Result<Written> {
        let store = self.store.clone();
        run_blocking(move || match store.write_tagged(vec![(write, tag)]).pop() {
            Some(outcome) => outcome,
            None => Err(Error::Internal("a write returned nothing".into())),
        })
        .await
    }
}

fn expect_article(written: Written) -> Result<Stored> {
    match written.article {
        Some(article) => Ok(Stored {
            article,
            seq: written.seq,
        }),
        None => Err(Error::Internal("a write returned no article".into())),
    }
}

/// A new server-chosen id: a UUIDv7, so ids sort roughly by creation time.
fn generate_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
