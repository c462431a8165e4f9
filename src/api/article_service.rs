//! `newsstore.v1.ArticleService`: thin handlers over ingest, store and search.
//!
//! Each handler validates what only the API knows about (page sizes, tokens, field masks),
//! converts the request, calls one layer below, and converts back. Errors become statuses
//! through `From<Error> for Status`.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use super::audit::{self, Audit};
use super::convert::{self, View};
use super::idempotency;
use super::page_token::{self, Listing};
use super::proto::{self, article_service_server::ArticleService};
use super::{page_size, require_id};
use crate::error::{Error, Invalid, Result};
use crate::ingest::{Ingest, InputField};
use crate::model::ArticleInput;
use crate::search::SearchIndex;
use crate::store::Store;

const LIST_DEFAULT: usize = 50;
const LIST_MAX: usize = 1000;

pub struct ArticleApi {
    ingest: Ingest,
    store: Arc<Store>,
    search: Arc<SearchIndex>,
}

/// The longest a write waits for the search index when asked to.
const INDEX_WAIT: Duration = Duration::from_secs(30);

impl ArticleApi {
    pub fn new(ingest: Ingest, store: Arc<Store>, search: Arc<SearchIndex>) -> Self {
        ArticleApi {
            ingest,
            store,
            search,
        }
    }

    /// With `wait`, returns once searches reflect change `seq` (read-your-writes).
    async fn wait_for_index(&self, wait: bool, seq: u64) -> Result<()> {
        if wait && seq > 0 {
            self.search.wait_for(seq, INDEX_WAIT).await?;
        }
        Ok(())
    }
}

/// The update-mask paths that name input fields, and the output-only ones that cannot be set.
fn mask_field(path: &str) -> Result<Vec<InputField>> {
    let field = match path {
        "*" => return Ok(InputField::ALL.to_vec()),
        "headline" => InputField::Headline,
        "body" => InputField::Body,
        "byline" => InputField::Byline,
        "source" => InputField::Source,
        "language" => InputField::Language,
        "published_time" => InputField::Published,
        "tags" => InputField::Tags,
        "entity_tags" => InputField::EntityTags,
        "id" | "lead" | "paragraphs" | "subheadings" | "captions" | "create_time"
        | "update_time" | "etag" | "revision" | "content_hash" | "word_count" | "entities"
        | "quotes" => {
            return Err(Error::invalid(
                "update_mask",
                Invalid::UpdateMask,
                format!(
                    "update_mask path {} is output only and cannot be updated",
                    crate::error::quoted(path)
                ),
            ));
        }
        other => {
            return Err(Error::invalid(
                "update_mask",
                Invalid::UpdateMask,
                format!(
                    "update_mask path {} is not a field of Article; updatable fields are \
                     headline, body, byline, source, language, published_time, tags, \
                     entity_tags (or \"*\")",
                    crate::error::quoted(other)
                ),
            ));
        }
    };
    Ok(vec![field])
}

/// The input fields set in `article`: what an update without a mask changes (AIP-134).
fn set_fields(article: &proto::Article) -> Vec<InputField> {
    let mut fields = Vec::new();
    let checks = [
        (!article.headline.is_empty(), InputField::Headline),
        (!article.body.is_empty(), InputField::Body),
        (!article.byline.is_empty(), InputField::Byline),
        (!article.source.is_empty(), InputField::Source),
        (!article.language.is_empty(), InputField::Language),
        (article.published_time.is_some(), InputField::Published),
        (!article.tags.is_empty(), InputField::Tags),
        (!article.entity_tags.is_empty(), InputField::EntityTags),
    ];
    for (set, field) in checks {
        if set {
            fields.push(field);
        }
    }
    fields
}

fn required_article(article: Option<proto::Article>) -> Result<proto::Article> {
    article.ok_or_else(|| Error::missing("article"))
}

/// The input of a create request, with its optional id.
fn create_input(request: proto::CreateArticleRequest) -> Result<(Option<String>, ArticleInput)> {
    let article = required_article(request.article)?;
    let id = (!request.article_id.is_empty()).then_some(request.article_id);
    Ok((id, convert::input_from_proto(&article)?))
}

#[tonic::async_trait]
impl ArticleService for ArticleApi {
    async fn create_article(
        &self,
        request: Request<proto::CreateArticleRequest>,
    ) -> Result<Response<proto::CreateArticleResponse>, Status> {
        let audit = Audit::of(&request, "CreateArticle");
        let mut request = request.into_inner();
        let wait = request.wait_for_index;
        let request_id = std::mem::take(&mut request.request_id);
        let tag = idempotency::tag("CreateArticle", &request_id, &request)?;
        let (id, input) = create_input(request)?;
        let stored = self.ingest.create(id, input, tag).await?;
        audit.record(format_args!(
            "article {} revision {}",
            stored.article.id, stored.article.revision
        ));
        self.wait_for_index(wait, stored.seq).await?;
        Ok(Response::new(proto::CreateArticleResponse {
            article: Some(convert::article_to_proto(&stored.article, View::Full)),
        }))
    }

    async fn get_article(
        &self,
        request: Request<proto::GetArticleRequest>,
    ) -> Result<Response<proto::GetArticleResponse>, Status> {
        let request = request.into_inner();
        require_id("id", &request.id)?;
        let view = convert::view_from_proto(request.view, View::Full)?;
        let article = match request.revision {
            0 => self
                .store
                .get_article(&request.id)?
                .ok_or_else(|| Error::NotFound {
                    resource: crate::error::Resource::Article,
                    id: request.id.clone(),
                })?,
            n => self
                .store
                .article_at(&request.id, revision(n, "revision")?)?,
        };
        Ok(Response::new(proto::GetArticleResponse {
            article: Some(convert::article_to_proto(&article, view)),
        }))
    }

    async fn update_article(
        &self,
        request: Request<proto::UpdateArticleRequest>,
    ) -> Result<Response<proto::UpdateArticleResponse>, Status> {
        let audit = Audit::of(&request, "UpdateArticle");
        let mut request = request.into_inner();
        let request_id = std::mem::take(&mut request.request_id);
        let tag = idempotency::tag("UpdateArticle", &request_id, &request)?;
        let article = required_article(request.article)?;
        require_id("article.id", &article.id)?;
        let fields = match request.update_mask {
            Some(mask) if !mask.paths.is_empty() => {
                let mut fields = Vec::new();
                for path in super::mask_paths("update_mask", &mask)? {
                    fields.extend(mask_field(path)?);
                }
                fields.sort();
                fields.dedup();
                fields
            }
            _ => set_fields(&article),
        };
        if fields.is_empty() {
            return Err(Error::invalid(
                "update_mask",
                Invalid::UpdateMask,
                "nothing to update: name fields in update_mask or set them in article",
            )
            .into());
        }
        let patch = convert::input_from_proto(&article)?;
        let etag = (!article.etag.is_empty()).then(|| article.etag.clone());
        let updated = self
            .ingest
            .update(article.id.clone(), etag, fields, patch, tag)
            .await?;
        audit.record(format_args!(
            "article {} revision {}",
            updated.article.id, updated.article.revision
        ));
        self.wait_for_index(request.wait_for_index, updated.seq)
            .await?;
        Ok(Response::new(proto::UpdateArticleResponse {
            article: Some(convert::article_to_proto(&updated.article, View::Full)),
        }))
    }

    async fn delete_article(
        &self,
        request: Request<proto::DeleteArticleRequest>,
    ) -> Result<Response<proto::DeleteArticleResponse>, Status> {
        let audit = Audit::of(&request, "DeleteArticle");
        let mut request = request.into_inner();
        require_id("id", &request.id)?;
        let request_id = std::mem::take(&mut request.request_id);
        let tag = idempotency::tag("DeleteArticle", &request_id, &request)?;
        let etag = (!request.etag.is_empty()).then_some(request.etag);
        let seq = self.ingest.delete(request.id.clone(), etag, tag).await?;
        audit.record(format_args!("article {}", request.id));
        self.wait_for_index(request.wait_for_index, seq).await?;
        Ok(Response::new(proto::DeleteArticleResponse {}))
    }

    async fn list_articles(
        &self,
        request: Request<proto::ListArticlesRequest>,
    ) -> Result<Response<proto::ListArticlesResponse>, Status> {
        let request = request.into_inner();
        let size = page_size(request.page_size, LIST_DEFAULT, LIST_MAX)?;
        let view = convert::view_from_proto(request.view, View::Basic)?;
        let filter = convert::filter_from_proto(request.filter.as_ref())?;
        let by_salience = match proto::ListArticlesOrder::try_from(request.order) {
            Ok(proto::ListArticlesOrder::Unspecified | proto::ListArticlesOrder::PublishedDesc) => {
                false
            }
            Ok(proto::ListArticlesOrder::Salience) => {
                if filter.entity_ids.is_empty() {
                    return Err(Error::invalid(
                        "filter.entity_ids",
                        Invalid::Missing,
                        "order LIST_ARTICLES_ORDER_SALIENCE needs an entity in \
                         filter.entity_ids: the articles are ordered by how central it is",
                    )
                    .into());
                }
                true
            }
            Err(_) => {
                return Err(Error::invalid(
                    "order",
                    Invalid::Malformed,
                    format!("{} is not a ListArticlesOrder", request.order),
                )
                .into());
            }
        };
        let fingerprint = page_token::fingerprint(&[
            &convert::filter_fingerprint_parts(&filter),
            &[u8::from(by_salience)],
        ]);
        let cursor = page_token::decode(&request.page_token, Listing::Articles, fingerprint)?;
        let store = self.store.clone();
        let page = tokio::task::spawn_blocking(move || {
            let mut filter = filter;
            store.follow_merges(&mut filter.entity_ids)?;
            if by_salience {
                store.list_articles_by_salience(&filter, size, cursor.as_deref())
            } else {
                store.list_articles(&filter, size, cursor.as_deref())
            }
        })
        .await
        .map_err(|e| Error::internal("listing articles", e))??;
        Ok(Response::new(proto::ListArticlesResponse {
            articles: page
                .items
                .iter()
                .map(|a| convert::article_to_proto(a, view))
                .collect(),
            next_page_token: page
                .next
                .map(|next| page_token::encode(Listing::Articles, fingerprint, &next))
                .unwrap_or_default(),
        }))
    }

    async fn search_articles(
        &self,
        request: Request<proto::SearchArticlesRequest>,
    ) -> Result<Response<proto::SearchArticlesResponse>, Status> {
        let request = request.into_inner();
        let search = super::search::request_from_proto(&request)?;
        let output = super::search::Output::from_proto(&request)?;
        let fingerprint = super::search::fingerprint(&request, &search);
        let mut search = search;
        search.page = match page_token::decode(&request.page_token, Listing::Search, fingerprint)? {
            None => None,
            Some(position) => Some(super::search::decode_position(&position)?),
        };
        let (index, store) = (self.search.clone(), self.store.clone());
        let results = tokio::task::spawn_blocking(move || {
            let mut search = search;
            store.follow_merges(&mut search.filter.entity_ids)?;
            index.search(&store, &search)
        })
        .await
        .map_err(|e| Error::internal("searching", e))??;
        Ok(Response::new(output.response(results, fingerprint)))
    }

    async fn batch_create_articles(
        &self,
        request: Request<proto::BatchCreateArticlesRequest>,
    ) -> Result<Response<proto::BatchCreateArticlesResponse>, Status> {
        let audit = Audit::of(&request, "BatchCreateArticles");
        let mut request = request.into_inner();
        let request_id = std::mem::take(&mut request.request_id);
        // The view only shapes the answer: a retry may ask for a smaller one (after a FULL
        // answer was too large, say), so it is not part of what the request id stands for.
        let view = convert::view_from_proto(std::mem::take(&mut request.view), View::Full)?;
        let tag = idempotency::tag("BatchCreateArticles", &request_id, &request)?;
        let wait = request.wait_for_index;
        let requests = request.requests;
        let max = self.ingest.limits().max_batch;
        if requests.is_empty() {
            return Err(Error::missing("requests").into());
        }
        if requests.len() > max {
            return Err(Error::invalid(
                "requests",
                Invalid::TooLarge,
                format!(
                    "a batch may hold at most {max} articles, this one has {}; split it",
                    requests.len()
                ),
            )
            .into());
        }
        if let Some(tag) = &tag {
            // Every batch records its first item under its request id, so a different batch
            // reusing the id is refused whole here, before any of it is written.
            match self.store.recorded(&idempotency::item_tag(tag, 0)) {
                Err(Error::InvalidArgument {
                    kind: Invalid::RequestIdReused,
                    ..
                }) => {
                    return Err(Error::invalid(
                        "request_id",
                        Invalid::RequestIdReused,
                        format!(
                            "request_id {} was already used for a different batch; use a \
                             new request_id for each distinct request",
                            crate::error::quoted(&request_id)
                        ),
                    )
                    .into());
                }
                other => drop(other?),
            }
        }
        // Items that fail conversion keep their place in the results.
        let mut results: Vec<Option<proto::BatchCreateArticlesResult>> = Vec::new();
        let mut valid = Vec::new();
        let mut positions = Vec::new();
        for (i, item) in requests.into_iter().enumerate() {
            match create_input(item) {
                Ok((id, input)) => {
                    results.push(None);
                    positions.push(i);
                    valid.push((id, input, tag.as_ref().map(|t| idempotency::item_tag(t, i))));
                }
                Err(err) => results.push(Some(item_result(Err(err), view))),
            }
        }
        let outcomes = self.ingest.create_batch(valid).await;
        let stored: Vec<&str> = outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok().map(|stored| stored.article.id.as_str()))
            .collect();
        if !stored.is_empty() {
            audit.record(format_args!(
                "{} articles {}",
                stored.len(),
                audit::ids(stored.into_iter())
            ));
        }
        let last_seq = outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok().map(|stored| stored.seq))
            .max()
            .unwrap_or(0);
        for (position, outcome) in positions.into_iter().zip(outcomes) {
            results[position] = Some(item_result(outcome.map(|stored| stored.article), view));
        }
        self.wait_for_index(wait, last_seq).await?;
        Ok(Response::new(proto::BatchCreateArticlesResponse {
            results: results.into_iter().flatten().collect(),
        }))
    }

    async fn list_article_revisions(
        &self,
        request: Request<proto::ListArticleRevisionsRequest>,
    ) -> Result<Response<proto::ListArticleRevisionsResponse>, Status> {
        let request = request.into_inner();
        require_id("article_id", &request.article_id)?;
        let size = page_size(request.page_size, LIST_DEFAULT, LIST_MAX)?;
        let view = convert::view_from_proto(request.view, View::Basic)?;
        let fingerprint = page_token::fingerprint(&[request.article_id.as_bytes()]);
        let cursor = page_token::decode(&request.page_token, Listing::Revisions, fingerprint)?;
        let page = self
            .store
            .list_revisions(&request.article_id, cursor.as_deref(), size)?;
        Ok(Response::new(proto::ListArticleRevisionsResponse {
            revisions: page
                .items
                .iter()
                .map(|r| proto::ArticleRevision {
                    revision: i64::try_from(r.revision).unwrap_or(i64::MAX),
                    time: Some(convert::timestamp_to_proto(r.time)),
                    deleted: r.article.is_none(),
                    article: r
                        .article
                        .as_ref()
                        .map(|a| convert::article_to_proto(a, view)),
                })
                .collect(),
            next_page_token: page
                .next
                .map(|next| page_token::encode(Listing::Revisions, fingerprint, &next))
                .unwrap_or_default(),
        }))
    }

    async fn compare_article_revisions(
        &self,
        request: Request<proto::CompareArticleRevisionsRequest>,
    ) -> Result<Response<proto::CompareArticleRevisionsResponse>, Status> {
        let request = request.into_inner();
        require_id("article_id", &request.article_id)?;
        let from = revision(request.from_revision, "from_revision")?;
        let id = &request.article_id;
        let to = match request.to_revision {
            0 => self.store.get_article(id)?.ok_or_else(|| {
                if self.store.list_revisions(id, None, 1).is_ok() {
                    Error::FailedPrecondition {
                        reason: crate::error::Precondition::ArticleDeleted {
                            article_id: id.clone(),
                        },
                        message: format!(
                            "article {id:?} is deleted, so it has no current revision; name \
                             to_revision (ListArticleRevisions lists them)"
                        ),
                    }
                } else {
                    Error::NotFound {
                        resource: crate::error::Resource::Article,
                        id: id.clone(),
                    }
                }
            })?,
            n => self.store.article_at(id, revision(n, "to_revision")?)?,
        };
        let from = self.store.article_at(id, from)?;
        // Off the async threads: a large rewrite takes up to the diff's budget of CPU.
        let changes = tokio::task::spawn_blocking(move || crate::diff::compare(&from, &to))
            .await
            .map_err(|e| Error::internal("comparing revisions", e))?;
        Ok(Response::new(proto::CompareArticleRevisionsResponse {
            changes: changes
                .into_iter()
                .map(convert::field_change_to_proto)
                .collect(),
        }))
    }

    async fn purge_article(
        &self,
        request: Request<proto::PurgeArticleRequest>,
    ) -> Result<Response<proto::PurgeArticleResponse>, Status> {
        let audit = Audit::of(&request, "PurgeArticle");
        let mut request = request.into_inner();
        require_id("id", &request.id)?;
        let request_id = std::mem::take(&mut request.request_id);
        let tag = idempotency::tag("PurgeArticle", &request_id, &request)?;
        let written = self.ingest.purge(request.id.clone(), tag).await?;
        audit.record(format_args!(
            "article {} ({} revisions removed)",
            request.id, written.revisions_removed
        ));
        // The call returns once the search index has dropped the article too.
        self.wait_for_index(true, written.seq).await?;
        Ok(Response::new(proto::PurgeArticleResponse {
            revisions_removed: i64::try_from(written.revisions_removed).unwrap_or(i64::MAX),
        }))
    }
}

/// A revision number from a request: 1 or more.
fn revision(value: i64, field: &str) -> Result<u64> {
    u64::try_from(value).ok().filter(|&r| r > 0).ok_or_else(|| {
        Error::invalid(
            field,
            Invalid::OutOfRange,
            format!("{field} must be 1 or more; got {value}"),
        )
    })
}

fn item_result(
    outcome: Result<crate::model::Article>,
    view: View,
) -> proto::BatchCreateArticlesResult {
    use proto::batch_create_articles_result::Outcome;
    let outcome = match outcome {
        Ok(article) => Outcome::Article(convert::article_to_proto(&article, view)),
        Err(err) => Outcome::Error(proto::BatchItemError {
            code: super::status::code(&err) as i32,
            message: super::status::message(&err),
            reason: err.reason().to_string(),
        }),
    };
    proto::BatchCreateArticlesResult {
        outcome: Some(outcome),
    }
}
