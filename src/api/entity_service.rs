//! `newsstore.v1.EntityService`: the entity records the store keeps, and the editorial
//! decisions on them (edit, merge, block).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::audit::{self, Audit};
use super::convert::{self, EntityField};
use super::idempotency;
use super::page_token::{self, Listing};
use super::proto::{self, entity_service_server::EntityService};
use super::{page_size, require_id};
use crate::error::{Error, Invalid, Resource, Result};
use crate::store::{Decision, Store};

const LIST_DEFAULT: usize = 50;
const LIST_MAX: usize = 1000;
const RELATED_DEFAULT: usize = 20;
const RELATED_MAX: usize = 1000;
/// Related entities are counted over at most this many of the entity's newest articles, so
/// the call costs the same for "Syria" as for a name seen once.
const RELATED_WINDOW: usize = 2000;

pub struct EntityApi {
    store: Arc<Store>,
}

impl EntityApi {
    pub fn new(store: Arc<Store>) -> Self {
        EntityApi { store }
    }
}

impl EntityApi {
    /// Runs a decision off the async threads: it writes and waits for durability.
    async fn decide(
        &self,
        what: &'static str,
        decision: impl FnOnce(&Store) -> Result<Decision> + Send + 'static,
    ) -> Result<Decision> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || decision(&store))
            .await
            .map_err(|e| Error::internal(what, e))?
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[tonic::async_trait]
impl EntityService for EntityApi {
    async fn get_entity(
        &self,
        request: Request<proto::GetEntityRequest>,
    ) -> Result<Response<proto::GetEntityResponse>, Status> {
        let request = request.into_inner();
        require_id("id", &request.id)?;
        // A merged id answers with the entity it was merged into.
        let entity = self
            .store
            .resolve_entity(&request.id)?
            .ok_or_else(|| Error::NotFound {
                resource: Resource::Entity,
                id: request.id.clone(),
            })?;
        Ok(Response::new(proto::GetEntityResponse {
            entity: Some(convert::entity_to_proto(&entity)),
        }))
    }

    async fn list_entities(
        &self,
        request: Request<proto::ListEntitiesRequest>,
    ) -> Result<Response<proto::ListEntitiesResponse>, Status> {
        let request = request.into_inner();
        let size = page_size(request.page_size, LIST_DEFAULT, LIST_MAX)?;
        let kind = convert::kind_from_proto("kind", request.kind)?;
        let prefix = request.name_prefix.trim().to_string();
        let fingerprint =
            page_token::fingerprint(&[&[kind.map_or(0, |k| k as u8 + 1)], prefix.as_bytes()]);
        let cursor = page_token::decode(&request.page_token, Listing::Entities, fingerprint)?;
        let store = self.store.clone();
        let page = tokio::task::spawn_blocking(move || {
            store.list_entities(kind, &prefix, size, cursor.as_deref())
        })
        .await
        .map_err(|e| Error::internal("listing entities", e))??;
        Ok(Response::new(proto::ListEntitiesResponse {
            entities: page.items.iter().map(convert::entity_to_proto).collect(),
            next_page_token: page
                .next
                .map(|next| page_token::encode(Listing::Entities, fingerprint, &next))
                .unwrap_or_default(),
        }))
    }

    async fn list_related_entities(
        &self,
        request: Request<proto::ListRelatedEntitiesRequest>,
    ) -> Result<Response<proto::ListRelatedEntitiesResponse>, Status> {
        let request = request.into_inner();
        require_id("id", &request.id)?;
        let size = page_size(request.page_size, RELATED_DEFAULT, RELATED_MAX)?;
        let kind = convert::kind_from_proto("kind", request.kind)?;
        let store = self.store.clone();
        let page = tokio::task::spawn_blocking(move || {
            store.related_entities(&request.id, kind, size, RELATED_WINDOW)
        })
        .await
        .map_err(|e| Error::internal("listing related entities", e))??;
        Ok(Response::new(proto::ListRelatedEntitiesResponse {
            related: page
                .related
                .iter()
                .map(|r| proto::RelatedEntity {
                    entity: Some(convert::entity_to_proto(&r.entity)),
                    shared_article_count: i64::try_from(r.shared_articles).unwrap_or(i64::MAX),
                    strength: r.strength,
                })
                .collect(),
            articles_examined: i64::try_from(page.articles_examined).unwrap_or(i64::MAX),
            complete: page.complete,
        }))
    }

    async fn update_entity(
        &self,
        request: Request<proto::UpdateEntityRequest>,
    ) -> Result<Response<proto::UpdateEntityResponse>, Status> {
        let audit = Audit::of(&request, "UpdateEntity");
        let mut request = request.into_inner();
        let request_id = std::mem::take(&mut request.request_id);
        let tag = idempotency::tag("UpdateEntity", &request_id, &request)?;
        let entity = request.entity.ok_or_else(|| Error::missing("entity"))?;
        require_id("entity.id", &entity.id)?;
        let mut fields = match &request.update_mask {
            Some(mask) if !mask.paths.is_empty() => {
                let mut fields = Vec::new();
                for path in super::mask_paths("update_mask", mask)? {
                    fields.extend(EntityField::from_path(path)?);
                }
                fields
            }
            _ => EntityField::set_in(&entity),
        };
        fields.sort();
        fields.dedup();
        if fields.is_empty() {
            return Err(Error::invalid(
                "update_mask",
                Invalid::UpdateMask,
                "nothing to update: name fields in update_mask or set them in entity",
            )
            .into());
        }
        let patch = convert::entity_patch_from_proto(&entity, &fields)?;
        let changed: Vec<&str> = fields.iter().map(|f| f.path()).collect();
        let id = entity.id;
        let decision = self
            .decide("updating an entity", move |store| {
                store.update_entity(&id, patch, tag.as_ref())
            })
            .await?;
        audit.record(format_args!(
            "entity {} ({}; {} articles updated)",
            decision.entity.id,
            changed.join(","),
            decision.articles_updated
        ));
        Ok(Response::new(proto::UpdateEntityResponse {
            entity: Some(convert::entity_to_proto(&decision.entity)),
            articles_updated: count(decision.articles_updated),
        }))
    }

    async fn merge_entities(
        &self,
        request: Request<proto::MergeEntitiesRequest>,
    ) -> Result<Response<proto::MergeEntitiesResponse>, Status> {
        let audit = Audit::of(&request, "MergeEntities");
        let mut request = request.into_inner();
        let request_id = std::mem::take(&mut request.request_id);
        let tag = idempotency::tag("MergeEntities", &request_id, &request)?;
        require_id("survivor_id", &request.survivor_id)?;
        if request.merged_ids.len() > 100 {
            return Err(Error::invalid(
                "merged_ids",
                Invalid::TooLarge,
                "at most 100 entities can be merged in one call",
            )
            .into());
        }
        for id in &request.merged_ids {
            require_id("merged_ids", id)?;
        }
        let merged = audit::ids(request.merged_ids.iter().map(String::as_str));
        let decision = self
            .decide("merging entities", move |store| {
                store.merge_entities(&request.survivor_id, &request.merged_ids, tag.as_ref())
            })
            .await?;
        audit.record(format_args!(
            "entity {} absorbed {merged} ({} articles updated)",
            decision.entity.id, decision.articles_updated
        ));
        Ok(Response::new(proto::MergeEntitiesResponse {
            entity: Some(convert::entity_to_proto(&decision.entity)),
            articles_updated: count(decision.articles_updated),
        }))
    }

    async fn block_entity(
        &self,
        request: Request<proto::BlockEntityRequest>,
    ) -> Result<Response<proto::BlockEntityResponse>, Status> {
        let audit = Audit::of(&request, "BlockEntity");
        let mut request = request.into_inner();
        let request_id = std::mem::take(&mut request.request_id);
        let tag = idempotency::tag("BlockEntity", &request_id, &request)?;
        let id = request.id;
        require_id("id", &id)?;
        let decision = self
            .decide("blocking an entity", move |store| {
                store.set_blocked(&id, true, tag.as_ref())
            })
            .await?;
        audit.record(format_args!(
            "entity {} ({} articles updated)",
            decision.entity.id, decision.articles_updated
        ));
        Ok(Response::new(proto::BlockEntityResponse {
            entity: Some(convert::entity_to_proto(&decision.entity)),
            articles_updated: count(decision.articles_updated),
        }))
    }

    async fn unblock_entity(
        &self,
        request: Request<proto::UnblockEntityRequest>,
    ) -> Result<Response<proto::UnblockEntityResponse>, Status> {
        let audit = Audit::of(&request, "UnblockEntity");
        let mut request = request.into_inner();
        let request_id = std::mem::take(&mut request.request_id);
        let tag = idempotency::tag("UnblockEntity", &request_id, &request)?;
        let id = request.id;
        require_id("id", &id)?;
        let decision = self
            .decide("unblocking an entity", move |store| {
                store.set_blocked(&id, false, tag.as_ref())
            })
            .await?;
        audit.record(format_args!("entity {}", decision.entity.id));
        Ok(Response::new(proto::UnblockEntityResponse {
            entity: Some(convert::entity_to_proto(&decision.entity)),
        }))
    }

    async fn list_quotes(
        &self,
        request: Request<proto::ListQuotesRequest>,
    ) -> Result<Response<proto::ListQuotesResponse>, Status> {
        let request = request.into_inner();
        require_id("speaker_id", &request.speaker_id)?;
        let size = page_size(request.page_size, LIST_DEFAULT, LIST_MAX)?;
        let fingerprint = page_token::fingerprint(&[request.speaker_id.as_bytes()]);
        let cursor = page_token::decode(&request.page_token, Listing::Quotes, fingerprint)?;
        let store = self.store.clone();
        let page = tokio::task::spawn_blocking(move || {
            store.list_quotes(&request.speaker_id, size, cursor.as_deref())
        })
        .await
        .map_err(|e| Error::internal("listing quotes", e))??;
        Ok(Response::new(proto::ListQuotesResponse {
            quotes: page
                .quotes
                .iter()
                .map(|hit| proto::SpokenQuote {
                    quote: Some(convert::quote_to_proto(&hit.quote)),
                    article_id: hit.article_id.clone(),
                    headline: hit.headline.clone(),
                    published_time: hit.published.map(convert::timestamp_to_proto),
                })
                .collect(),
            next_page_token: page
                .next
                .map(|next| page_token::encode(Listing::Quotes, fingerprint, &next))
                .unwrap_or_default(),
            speaker_id: page.speaker_id,
        }))
    }
}
