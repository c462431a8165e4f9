//! `newsstore.v1.EntityService`: reads over the entity records the store keeps.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert;
use super::page_token::{self, Listing};
use super::proto::{self, entity_service_server::EntityService};
use super::{page_size, require_id};
use crate::error::{Error, Resource};
use crate::store::Store;

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

#[tonic::async_trait]
impl EntityService for EntityApi {
    async fn get_entity(
        &self,
        request: Request<proto::GetEntityRequest>,
    ) -> Result<Response<proto::GetEntityResponse>, Status> {
        let request = request.into_inner();
        require_id("id", &request.id)?;
        let entity = self
            .store
            .get_entity(&request.id)?
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
                })
                .collect(),
            articles_examined: i64::try_from(page.articles_examined).unwrap_or(i64::MAX),
            complete: page.complete,
        }))
    }
}
