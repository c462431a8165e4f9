//! `newsstore.v1.ChangeService`: the change log as a stream.
//!
//! Each call gets a task that reads durable change-log entries after its cursor, in order,
//! and waits on the store's durable-sequence channel when it has caught up, so an idle
//! watcher costs a parked task and nothing else. The buffer towards the client is bounded
//! and always keeps one slot free: a reader that stops reading gets a RESOURCE_EXHAUSTED
//! naming where to resume in that slot, instead of the server holding ever more events.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::convert::{self, View};
use super::proto::{self, change_service_server::ChangeService};
use crate::error::{Error, Invalid, Result};
use crate::model::{Article, Change, ChangeKind, normalize_source};
use crate::search::{SearchIndex, query};
use crate::store::Store;

/// Events buffered towards one client.
const BUFFER: usize = 64;
/// Log entries read per batch.
const BATCH: usize = 256;
pub struct ChangeApi {
    store: Arc<Store>,
    search: Arc<SearchIndex>,
    /// How long a reader may leave the buffer full before its stream ends with an error.
    slow_reader: Duration,
    /// Turns true when the server starts shutting down: streams never end on their own, so
    /// they end then, telling the client where to resume.
    stopping: tokio::sync::watch::Receiver<bool>,
    /// Open watchers per client address and per token, so one client cannot hold every
    /// task and buffer, from one address or from many with one token.
    per_client: Arc<std::sync::Mutex<std::collections::HashMap<Client, usize>>>,
    /// Most watchers one client address, or one token, may hold open (0: no limit).
    max_per_client: usize,
}

/// Who a watcher slot is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Client {
    Address(std::net::IpAddr),
    Token(String),
}

/// A client's hold on its watcher slots (its address's and its token's), given back when
/// the stream's task ends.
struct ClientSlot {
    per_client: Arc<std::sync::Mutex<std::collections::HashMap<Client, usize>>>,
    clients: Vec<Client>,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self
            .per_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for client in &self.clients {
            if let Some(count) = map.get_mut(client) {
                *count -= 1;
                if *count == 0 {
                    map.remove(client);
                }
            }
        }
    }
}

impl ChangeApi {
    pub fn new(
        store: Arc<Store>,
        search: Arc<SearchIndex>,
        slow_reader: Duration,
        stopping: tokio::sync::watch::Receiver<bool>,
        max_per_client: usize,
    ) -> Self {
        ChangeApi {
            store,
            search,
            slow_reader,
            stopping,
            per_client: Arc::default(),
            max_per_client,
        }
    }

    /// Takes a watcher slot of the caller's address and of its token, or refuses when
    /// either holds them all.
    fn take_slot(
        &self,
        address: Option<std::net::IpAddr>,
        token: Option<&str>,
    ) -> Result<ClientSlot> {
        let mut slot = ClientSlot {
            per_client: self.per_client.clone(),
            clients: Vec::new(),
        };
        if self.max_per_client == 0 {
            return Ok(slot);
        }
        let clients = address
            .map(Client::Address)
            .into_iter()
            .chain(token.map(|t| Client::Token(t.to_string())));
        let mut map = self
            .per_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for client in clients {
            let count = map.entry(client.clone()).or_default();
            if *count >= self.max_per_client {
                let who = match &client {
                    Client::Address(_) => "this client address",
                    Client::Token(_) => "this token",
                };
                // The slots taken so far are given back when `slot` drops, after the lock.
                drop(map);
                return Err(Error::ResourceExhausted(format!(
                    "{who} already has {} change streams open, the most one may; close one, \
                     or filter one stream for several things",
                    self.max_per_client
                )));
            }
            *count += 1;
            slot.clients.push(client);
        }
        Ok(slot)
    }
}

/// The most entity ids and sources one watcher's filter may name: the same bounds as the
/// filters of ListArticles and SearchArticles, since each change is matched against them
/// (tags go through the list filters' own `convert::lowercase_values`).
const MAX_ENTITY_IDS: usize = 20;
const MAX_SOURCES: usize = 50;

/// `values` of request field `field`, refused past `max` or with an empty one.
fn bounded(field: &str, values: Vec<String>, max: usize) -> Result<Vec<String>> {
    if values.len() > max {
        return Err(Error::invalid(
            field,
            Invalid::TooLarge,
            format!(
                "{field} may hold at most {max} values, this one has {}",
                values.len()
            ),
        ));
    }
    if values.iter().any(|v| v.trim().is_empty()) {
        return Err(Error::invalid(
            field,
            Invalid::Malformed,
            format!("{field} must not contain empty values"),
        ));
    }
    Ok(values)
}

/// What a watcher wants to hear about.
#[derive(Debug, Clone, Default)]
struct Filter {
    entity_ids: Vec<String>,
    sources: Vec<String>,
    tags: Vec<String>,
    /// A saved search the article must match (a percolator).
    query: Option<Arc<query::Node>>,
}

impl Filter {
    fn passes(&self, change: &Change, article: Option<&Article>) -> bool {
        if !change.kind.is_article() {
            return self.entity_ids.is_empty()
                || self
                    .entity_ids
                    .iter()
                    .any(|id| *id == change.entity_id || change.merged_ids.contains(id));
        }
        let Some(article) = article else {
            // Deleted: its entities, source and tags are unknown now.
            return true;
        };
        let entities_ok = self.entity_ids.is_empty()
            || article
                .derived
                .mentions
                .iter()
                .any(|m| self.entity_ids.contains(&m.entity_id));
        let sources_ok = self.sources.is_empty()
            || self
                .sources
                .contains(&normalize_source(&article.input.source));
        let tags_ok = self.tags.is_empty()
            || article
                .input
                .tags
                .iter()
                .any(|t| self.tags.contains(&t.to_lowercase()));
        entities_ok && sources_ok && tags_ok
    }
}

fn kind_to_proto(kind: ChangeKind) -> proto::ChangeKind {
    match kind {
        ChangeKind::Created => proto::ChangeKind::ArticleCreated,
        ChangeKind::Updated => proto::ChangeKind::ArticleUpdated,
        ChangeKind::Deleted => proto::ChangeKind::ArticleDeleted,
        ChangeKind::EntitiesMerged => proto::ChangeKind::EntitiesMerged,
        ChangeKind::EntityUpdated => proto::ChangeKind::EntityUpdated,
        ChangeKind::EntityBlocked => proto::ChangeKind::EntityBlocked,
        ChangeKind::EntityUnblocked => proto::ChangeKind::EntityUnblocked,
        ChangeKind::Purged => proto::ChangeKind::ArticlePurged,
    }
}

fn event(change: &Change, article: Option<&Article>) -> proto::WatchChangesResponse {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    proto::WatchChangesResponse {
        sequence: count(change.seq),
        change_time: Some(convert::timestamp_to_proto(change.time)),
        kind: kind_to_proto(change.kind) as i32,
        article_id: change.article_id.clone(),
        revision: count(change.revision),
        article: article.map(|a| convert::article_to_proto(a, View::Basic)),
        entity_id: change.entity_id.clone(),
        merged_ids: change.merged_ids.clone(),
    }
}

/// The error for a reader whose next change was compacted away.
fn compacted(after: u64, oldest: u64) -> Error {
    Error::OutOfRange {
        message: format!(
            "changes after sequence {after} are no longer kept; the oldest available is \
             {oldest}. Re-read the current state (ListArticles), then watch with \
             after_sequence={} or from_now",
            oldest.saturating_sub(1)
        ),
        oldest,
    }
}

/// The next changes after `cursor`, up to sequence `up_to`, that pass `filter`, with their
/// articles, and the sequence read up to.
fn next_batch(
    store: &Store,
    search: &SearchIndex,
    cursor: u64,
    up_to: u64,
    filter: &Filter,
) -> Result<(Vec<proto::WatchChangesResponse>, u64)> {
    let mut read_to = cursor;
    let mut passed = Vec::new();
    let changes = store.changes_after(cursor, BATCH)?;
    if let Some(first) = changes.first()
        && first.seq > cursor + 1
    {
        return Err(compacted(cursor, first.seq));
    }
    for change in changes {
        if change.seq > up_to {
            break;
        }
        read_to = change.seq;
        let article = if change.kind.is_article() && change.kind.has_article() {
            store.get_article(&change.article_id)?
        } else {
            None
        };
        if filter.passes(&change, article.as_ref()) {
            passed.push((change, article));
        }
    }
    if let Some(node) = &filter.query {
        let ids: Vec<&str> = passed
            .iter()
            .filter_map(|(_, article)| article.as_ref().map(|a| a.id.as_str()))
            .collect();
        let matched = if ids.is_empty() {
            Default::default()
        } else {
            search.matching(store, node, &ids)?
        };
        // Deletes and purges pass (the article is gone), as do entity changes; a create or
        // update of an article deleted since cannot be tested, and its delete follows.
        passed.retain(|(change, article)| match article {
            Some(article) => matched.contains(&article.id),
            None => !change.kind.has_article(),
        });
    }
    let events = passed
        .iter()
        .map(|(change, article)| event(change, article.as_ref()))
        .collect();
    Ok((events, read_to))
}

/// Counts a watcher in the metrics for as long as its task runs.
struct WatcherCount;

impl WatcherCount {
    fn new() -> Self {
        crate::metrics::watchers(1.0);
        WatcherCount
    }
}

impl Drop for WatcherCount {
    fn drop(&mut self) {
        crate::metrics::watchers(-1.0);
    }
}

type ChangeStream = Pin<Box<dyn Stream<Item = Result<proto::WatchChangesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ChangeService for ChangeApi {
    type WatchChangesStream = ChangeStream;

    async fn watch_changes(
        &self,
        request: Request<proto::WatchChangesRequest>,
    ) -> Result<Response<Self::WatchChangesStream>, Status> {
        let token = super::layers::call_span::CallContext::of_call(&request)
            .and_then(|context| context.token().map(str::to_string));
        let client_slot =
            self.take_slot(request.remote_addr().map(|a| a.ip()), token.as_deref())?;
        let request = request.into_inner();
        let after = u64::try_from(request.after_sequence).map_err(|_| {
            Error::invalid(
                "after_sequence",
                Invalid::OutOfRange,
                "after_sequence must not be negative",
            )
        })?;
        let query = match query::parse(&request.query) {
            Ok(node) => node.map(Arc::new),
            Err(err) => {
                return Err(Error::invalid("query", Invalid::Query, err.to_string()).into());
            }
        };
        let filter = Arc::new(Filter {
            query,
            entity_ids: bounded("entity_ids", request.entity_ids, MAX_ENTITY_IDS)?,
            sources: bounded("sources", request.sources, MAX_SOURCES)?
                .iter()
                .map(|s| normalize_source(s))
                .collect(),
            tags: convert::lowercase_values("tags", &request.tags)?,
        });
        let store = self.store.clone();
        let search = self.search.clone();
        // A saved query is tested against the search index, so such a watcher reads only as
        // far as the index has applied.
        let mut visible = if filter.query.is_some() {
            search.subscribe()
        } else {
            store.subscribe()
        };
        let mut cursor = if request.from_now {
            store.durable_seq()
        } else {
            let oldest = store.oldest_change()?;
            if after + 1 < oldest {
                return Err(compacted(after, oldest).into());
            }
            after
        };
        let (sender, receiver) = tokio::sync::mpsc::channel(BUFFER);
        let slow_reader = self.slow_reader;
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            let _counted = WatcherCount::new();
            let _slot = client_slot;
            loop {
                let up_to = *visible.borrow_and_update();
                let batch = {
                    let (store, search) = (store.clone(), search.clone());
                    let filter = filter.clone();
                    tokio::task::spawn_blocking(move || {
                        next_batch(&store, &search, cursor, up_to, &filter)
                    })
                    .await
                };
                let (events, read_to) = match batch {
                    Ok(Ok(batch)) => batch,
                    Ok(Err(err)) => {
                        let _ = sender.send(Err(Status::from(err))).await;
                        return;
                    }
                    Err(err) => {
                        let _ = sender
                            .send(Err(Status::from(Error::internal("reading changes", err))))
                            .await;
                        return;
                    }
                };
                for event in events {
                    let sequence = event.sequence;
                    // Two free slots, so one is left for the error below whatever happens.
                    let reserved = tokio::select! {
                        reserved = tokio::time::timeout(slow_reader, sender.reserve_many(2)) => reserved,
                        _ = stopping.wait_for(|stop| *stop) => {
                            // The slot kept free takes the error.
                            let resume_after = u64::try_from(sequence.saturating_sub(1)).unwrap_or(0);
                            let _ = sender.try_send(Err(Status::from(Error::ShuttingDown {
                                message: format!(
                                    "the server is shutting down; reconnect and resume with \
                                     after_sequence={resume_after}"
                                ),
                                resume_after: Some(resume_after),
                            })));
                            return;
                        }
                    };
                    match reserved {
                        Ok(Ok(mut permits)) => {
                            if let Some(permit) = permits.next() {
                                permit.send(Ok(event));
                            }
                        }
                        Ok(Err(_)) => return,
                        Err(_) => {
                            let resume = u64::try_from(sequence.saturating_sub(1)).unwrap_or(0);
                            let _ = sender.try_send(Err(Status::from(Error::ReaderTooSlow {
                                message: format!(
                                    "the change stream was not read for {:.1} s; resume with \
                                     after_sequence={resume}",
                                    slow_reader.as_secs_f64()
                                ),
                                resume_after: resume,
                            })));
                            return;
                        }
                    }
                }
                if read_to > cursor {
                    cursor = read_to;
                    continue;
                }
                // Caught up: wait for the next durable change, or for the client to go.
                tokio::select! {
                    changed = visible.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    () = sender.closed() => return,
                    _ = stopping.wait_for(|stop| *stop) => {
                        let _ = sender.try_send(Err(Status::from(Error::ShuttingDown {
                            message: format!(
                                "the server is shutting down; reconnect and resume with \
                                 after_sequence={cursor}"
                            ),
                            resume_after: Some(cursor),
                        })));
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}
