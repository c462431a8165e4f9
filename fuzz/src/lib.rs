//! Shared pieces of the fuzz targets: one in-process newsstore (store, search index and the
//! four gRPC services, no network) that the `requests` and `search_query` targets call, and
//! the method table that maps an input's first byte to a request type.
//!
//! The services are called through their generated tonic traits, so every input goes the
//! way a real call goes after HTTP/2: prost decoding, the API's validation and conversion,
//! ingest, the store and the search index. Only the tower layers in front (auth, load
//! shedding, request spans) are left out; they never look at message bodies.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use newsstore::api::proto::article_service_server::ArticleService;
use newsstore::api::proto::change_service_server::ChangeService;
use newsstore::api::proto::entity_service_server::EntityService;
use newsstore::api::proto::{self};
use newsstore::api::{ArticleApi, ChangeApi, EntityApi};
use newsstore::ingest::{Ingest, Limits};
use newsstore::search::SearchIndex;
use newsstore::store::Store;
use prost::Message;
use tokio::runtime::Runtime;
use tokio_stream::StreamExt;
use tonic::Request;

/// Every request type of `newsstore.v1`, in the order an input's first byte selects them.
pub const METHODS: &[&str] = &[
    "CreateArticle",
    "GetArticle",
    "UpdateArticle",
    "DeleteArticle",
    "ListArticles",
    "SearchArticles",
    "BatchCreateArticles",
    "ListArticleRevisions",
    "CompareArticleRevisions",
    "PurgeArticle",
    "GetEntity",
    "ListEntities",
    "ListRelatedEntities",
    "ListQuotes",
    "UpdateEntity",
    "MergeEntities",
    "BlockEntity",
    "UnblockEntity",
    "WatchChanges",
    "ReextractArticles",
    "Backup",
];

/// A newsstore without a network: the services over a store in a temporary folder, loaded
/// with the repository's seed articles so that reads, updates and searches find something.
pub struct Harness {
    pub runtime: Runtime,
    pub store: Arc<Store>,
    pub search: Arc<SearchIndex>,
    pub articles: ArticleApi,
    pub entities: EntityApi,
    pub changes: ChangeApi,
    _stopping: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// The one harness of this process, built on first use.
    pub fn get() -> &'static Harness {
        static HARNESS: OnceLock<Harness> = OnceLock::new();
        HARNESS.get_or_init(Harness::build)
    }

    fn build() -> Harness {
        // tmpfs when there is one: every write is flushed before it is acknowledged, and the
        // fuzzer should spend its time in newsstore, not in fsync.
        let base = Path::new("/dev/shm");
        let dir = if base.is_dir() {
            tempfile::tempdir_in(base)
        } else {
            tempfile::tempdir()
        }
        .expect("a temporary folder");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let store =
            Arc::new(Store::open(&dir.path().join("store"), 16 << 20).expect("opening a store"));
        let search = Arc::new(
            SearchIndex::open(&dir.path().join("index"), &store).expect("opening an index"),
        );
        let ingest = Ingest::new(store.clone(), Limits::default());
        let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds");
        let report = runtime.block_on(newsstore::seed::load(&ingest, &seeds, 1 << 20));
        assert!(
            report.loaded() > 0,
            "no seed articles loaded from {seeds:?}"
        );
        search
            .catch_up(&store, usize::MAX)
            .expect("indexing the seeds");
        let (stopping, stopping_rx) = tokio::sync::watch::channel(false);
        // The server's own index follower, so that calls which wait for the index (purge,
        // `wait_for_index`) return as they would in a server. On this single-threaded
        // runtime it runs while a call is being answered.
        {
            let _entered = runtime.enter();
            newsstore::search::spawn_follower(
                search.clone(),
                store.clone(),
                Duration::ZERO,
                stopping.subscribe(),
            );
        }
        Harness {
            articles: ArticleApi::new(ingest, store.clone(), search.clone()),
            entities: EntityApi::new(store.clone()),
            changes: ChangeApi::new(
                store.clone(),
                search.clone(),
                Duration::from_millis(10),
                stopping_rx,
                4,
            ),
            runtime,
            store,
            search,
            _stopping: stopping,
            _dir: dir,
        }
    }

    /// Decodes `bytes` as the request of `METHODS[method % len]` and, when it decodes, calls
    /// the service with it. Errors are fine (that is what bad input should get); panics,
    /// hangs and runaway memory are what the fuzzer looks for.
    pub fn call(&self, method: u8, bytes: &[u8]) {
        self.runtime.block_on(self.dispatch(method, bytes));
        // Let the index follow every write, so that searches, purges and the percolator
        // run over what the fuzzer wrote, as they would in a server.
        let _ = self.search.catch_up(&self.store, usize::MAX);
    }

    async fn dispatch(&self, method: u8, bytes: &[u8]) {
        macro_rules! unary {
            ($service:expr, $call:ident, $request:ty) => {{
                if let Ok(request) = <$request>::decode(bytes) {
                    let _ = $service.$call(Request::new(request)).await;
                }
            }};
        }
        match usize::from(method) % METHODS.len() {
            0 => unary!(self.articles, create_article, proto::CreateArticleRequest),
            1 => unary!(self.articles, get_article, proto::GetArticleRequest),
            2 => unary!(self.articles, update_article, proto::UpdateArticleRequest),
            3 => unary!(self.articles, delete_article, proto::DeleteArticleRequest),
            4 => unary!(self.articles, list_articles, proto::ListArticlesRequest),
            5 => unary!(self.articles, search_articles, proto::SearchArticlesRequest),
            6 => unary!(
                self.articles,
                batch_create_articles,
                proto::BatchCreateArticlesRequest
            ),
            7 => unary!(
                self.articles,
                list_article_revisions,
                proto::ListArticleRevisionsRequest
            ),
            8 => unary!(
                self.articles,
                compare_article_revisions,
                proto::CompareArticleRevisionsRequest
            ),
            9 => unary!(self.articles, purge_article, proto::PurgeArticleRequest),
            10 => unary!(self.entities, get_entity, proto::GetEntityRequest),
            11 => unary!(self.entities, list_entities, proto::ListEntitiesRequest),
            12 => unary!(
                self.entities,
                list_related_entities,
                proto::ListRelatedEntitiesRequest
            ),
            13 => unary!(self.entities, list_quotes, proto::ListQuotesRequest),
            14 => unary!(self.entities, update_entity, proto::UpdateEntityRequest),
            15 => unary!(self.entities, merge_entities, proto::MergeEntitiesRequest),
            16 => unary!(self.entities, block_entity, proto::BlockEntityRequest),
            17 => unary!(self.entities, unblock_entity, proto::UnblockEntityRequest),
            18 => {
                if let Ok(request) = proto::WatchChangesRequest::decode(bytes)
                    && let Ok(response) = self.changes.watch_changes(Request::new(request)).await
                {
                    // What is already in the log arrives at once; a live stream would wait
                    // for writes, so the fuzzer reads briefly and hangs up.
                    let mut stream = response.into_inner();
                    let read = async { while stream.next().await.is_some() {} };
                    let _ = tokio::time::timeout(Duration::from_millis(5), read).await;
                }
            }
            // These two take no parameters, so only their decoding depends on the input; a
            // full re-extraction or backup per input would only slow the fuzzer down.
            19 => {
                let _ = proto::ReextractArticlesRequest::decode(bytes);
            }
            _ => {
                let _ = proto::BackupRequest::decode(bytes);
            }
        }
    }
}
