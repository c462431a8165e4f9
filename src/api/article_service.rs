//! `newsstore.v1.ArticleService`: thin handlers over ingest, store and search.
//!
//! Each handler validates what only the API knows about (page sizes, tokens, field masks),
//! converts the request, calls one layer below, and converts back. Errors become statuses
//! through `From<Error> for Status`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::{self, View};
use super::page_token::{self, Listing};
use super::proto::{self, article_service_server::ArticleService};
use super::{page_size, require_id};
use crate::error::{Error, Invalid, Result};
use crate::ingest::{Ingest, InputField};
use crate::model::ArticleInput;
use crate::search::{MAX_SEARCH_DEPTH, SearchIndex, SearchRequest};
use crate::store::Store;

const LIST_DEFAULT: usize = 50;
const LIST_MAX: usize = 1000;
const SEARCH_DEFAULT: usize = 10;
const SEARCH_MAX: usize = 100;
const MAX_QUERY_CHARS: usize = 1000;

pub struct ArticleApi {
    ingest: Ingest,
    store: Arc<Store>,
    search: Arc<SearchIndex>,
}

impl ArticleApi {
    pub fn new(ingest: Ingest, store: Arc<Store>, search: Arc<SearchIndex>) -> Self {
        ArticleApi {
            ingest,
            store,
            search,
        }
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
                format!("update_mask path {path:?} is output only and cannot be updated"),
            ));
        }
        other => {
            return Err(Error::invalid(
                "update_mask",
                Invalid::UpdateMask,
                format!(
                    "update_mask path {other:?} is not a field of Article; updatable fields are \
                     headline, body, byline, source, language, published_time, tags, \
                     entity_tags (or \"*\")"
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
        let (id, input) = create_input(request.into_inner())?;
        let article = self.ingest.create(id, input).await?;
        Ok(Response::new(proto::CreateArticleResponse {
            article: Some(convert::article_to_proto(&article, View::Full)),
        }))
    }

    async fn get_article(
        &self,
        request: Request<proto::GetArticleRequest>,
    ) -> Result<Response<proto::GetArticleResponse>, Status> {
        let request = request.into_inner();
        require_id("id", &request.id)?;
        let view = convert::view_from_proto(request.view, View::Full)?;
        let article = self
            .store
            .get_article(&request.id)?
            .ok_or_else(|| Error::NotFound {
                resource: crate::error::Resource::Article,
                id: request.id.clone(),
            })?;
        Ok(Response::new(proto::GetArticleResponse {
            article: Some(convert::article_to_proto(&article, view)),
        }))
    }

    async fn update_article(
        &self,
        request: Request<proto::UpdateArticleRequest>,
    ) -> Result<Response<proto::UpdateArticleResponse>, Status> {
        let request = request.into_inner();
        let article = required_article(request.article)?;
        require_id("article.id", &article.id)?;
        let fields = match request.update_mask {
            Some(mask) if !mask.paths.is_empty() => {
                let mut fields = Vec::new();
                for path in &mask.paths {
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
            .update(article.id.clone(), etag, fields, patch)
            .await?;
        Ok(Response::new(proto::UpdateArticleResponse {
            article: Some(convert::article_to_proto(&updated, View::Full)),
        }))
    }

    async fn delete_article(
        &self,
        request: Request<proto::DeleteArticleRequest>,
    ) -> Result<Response<proto::DeleteArticleResponse>, Status> {
        let request = request.into_inner();
        require_id("id", &request.id)?;
        let etag = (!request.etag.is_empty()).then_some(request.etag);
        self.ingest.delete(request.id, etag).await?;
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
        let fingerprint = page_token::fingerprint(&[&convert::filter_fingerprint_parts(&filter)]);
        let cursor = page_token::decode(&request.page_token, Listing::Articles, fingerprint)?;
        let store = self.store.clone();
        let page = tokio::task::spawn_blocking(move || {
            store.list_articles(&filter, size, cursor.as_deref())
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
        let query = request.query.trim().to_string();
        if query.is_empty() {
            return Err(Error::missing("query").into());
        }
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(Error::invalid(
                "query",
                Invalid::TooLarge,
                format!("query may have at most {MAX_QUERY_CHARS} characters"),
            )
            .into());
        }
        let size = page_size(request.page_size, SEARCH_DEFAULT, SEARCH_MAX)?;
        let view = convert::view_from_proto(request.view, View::Basic)?;
        let filter = convert::filter_from_proto(request.filter.as_ref())?;
        let fingerprint = page_token::fingerprint(&[
            query.as_bytes(),
            &convert::filter_fingerprint_parts(&filter),
        ]);
        let offset = match page_token::decode(&request.page_token, Listing::Search, fingerprint)? {
            None => 0,
            Some(position) => {
                let bytes: [u8; 8] = position.as_slice().try_into().map_err(|_| {
                    Error::invalid("page_token", Invalid::PageToken, "page_token is invalid")
                })?;
                usize::try_from(u64::from_be_bytes(bytes)).unwrap_or(usize::MAX)
            }
        };
        if offset.saturating_add(size) > MAX_SEARCH_DEPTH {
            return Err(Error::invalid(
                "page_token",
                Invalid::OutOfRange,
                format!(
                    "search results can be paged to a depth of {MAX_SEARCH_DEPTH}; narrow the \
                     query or filter instead"
                ),
            )
            .into());
        }
        let search_request = SearchRequest {
            query,
            filter,
            offset,
            limit: size,
        };
        let (search, store) = (self.search.clone(), self.store.clone());
        let results = tokio::task::spawn_blocking(move || search.search(&store, &search_request))
            .await
            .map_err(|e| Error::internal("searching", e))??;
        let next_page_token = if results.more {
            let next = (offset + size) as u64;
            page_token::encode(Listing::Search, fingerprint, &next.to_be_bytes())
        } else {
            String::new()
        };
        Ok(Response::new(proto::SearchArticlesResponse {
            hits: results
                .hits
                .iter()
                .map(|hit| proto::SearchHit {
                    article: Some(convert::article_to_proto(&hit.article, view)),
                    score: f64::from(hit.score),
                    snippet: hit.snippet.clone(),
                    highlights: hit
                        .highlights
                        .iter()
                        .map(|h| proto::TextSpan {
                            start: i32::try_from(h.start).unwrap_or(i32::MAX),
                            end: i32::try_from(h.end).unwrap_or(i32::MAX),
                        })
                        .collect(),
                })
                .collect(),
            next_page_token,
            total_size: i64::try_from(results.total).unwrap_or(i64::MAX),
        }))
    }

    async fn batch_create_articles(
        &self,
        request: Request<proto::BatchCreateArticlesRequest>,
    ) -> Result<Response<proto::BatchCreateArticlesResponse>, Status> {
        let requests = request.into_inner().requests;
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
        // Items that fail conversion keep their place in the results.
        let mut results: Vec<Option<proto::BatchCreateArticlesResult>> = Vec::new();
        let mut valid = Vec::new();
        let mut positions = Vec::new();
        for (i, item) in requests.into_iter().enumerate() {
            match create_input(item) {
                Ok(input) => {
                    results.push(None);
                    positions.push(i);
                    valid.push(input);
                }
                Err(err) => results.push(Some(item_result(Err(err)))),
            }
        }
        let outcomes = self.ingest.create_batch(valid).await;
        for (position, outcome) in positions.into_iter().zip(outcomes) {
            results[position] = Some(item_result(outcome));
        }
        Ok(Response::new(proto::BatchCreateArticlesResponse {
            results: results.into_iter().flatten().collect(),
        }))
    }
}

fn item_result(outcome: Result<crate::model::Article>) -> proto::BatchCreateArticlesResult {
    use proto::batch_create_articles_result::Outcome;
    let outcome = match outcome {
        Ok(article) => Outcome::Article(convert::article_to_proto(&article, View::Full)),
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
