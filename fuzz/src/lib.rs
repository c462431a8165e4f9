//! Shared pieces of the fuzz targets: one in-process newsstore (store, search index and the
//! four gRPC services, no network) that the `requests` and `search_query` targets call, and
//! the method table that maps an input's first byte to a request type.
//!
//! The services are called through their generated tonic traits, so every input goes the
//! way a real call goes once tonic has framed it: prost decoding, the API's validation and
//! conversion, ingest, the store and the search index. Left out are HTTP/2 and gRPC framing
//! and message-size limits (tonic's), gRPC-Web translation (tonic-web's) and the tower layers
//! for auth, load shedding and metrics, none of which interpret messages.
//!
//! The harness is stateful: one store lives for the whole run and every input writes into
//! it, as a long-running server would see them. A crash found this way usually reproduces
//! from its input alone (the seeds are loaded the same way each time), but one that depends
//! on earlier inputs needs the run's corpus replayed in order. Calls that wait for the search
//! index can take up to the server's 30 s index wait, so run with `-timeout` above that.

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
        // fuzzer should spend its time in newsstore, not in fsync. The harness is never
        // dropped (libFuzzer exits the process), so each run first removes the folders of
        // runs that are gone.
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        remove_stale_folders(&base);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{FOLDER_PREFIX}{}-", std::process::id()))
            .tempdir_in(&base)
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
        let name = METHODS[usize::from(method) % METHODS.len()];
        let known = self.runtime.block_on(self.dispatch(name, bytes));
        assert!(
            known,
            "{name} is in METHODS but has no arm in Harness::dispatch"
        );
        // Let the index follow every write, so that searches, purges and the percolator
        // run over what the fuzzer wrote, as they would in a server.
        let _ = self.search.catch_up(&self.store, usize::MAX);
    }

    /// Calls `method`; false when it has no arm here.
    async fn dispatch(&self, method: &str, bytes: &[u8]) -> bool {
        macro_rules! unary {
            ($service:expr, $call:ident, $request:ty) => {{
                if let Ok(request) = <$request>::decode(bytes) {
                    let _ = $service.$call(Request::new(request)).await;
                }
            }};
        }
        match method {
            "CreateArticle" => unary!(self.articles, create_article, proto::CreateArticleRequest),
            "GetArticle" => unary!(self.articles, get_article, proto::GetArticleRequest),
            "UpdateArticle" => unary!(self.articles, update_article, proto::UpdateArticleRequest),
            "DeleteArticle" => unary!(self.articles, delete_article, proto::DeleteArticleRequest),
            "ListArticles" => unary!(self.articles, list_articles, proto::ListArticlesRequest),
            "SearchArticles" => {
                unary!(self.articles, search_articles, proto::SearchArticlesRequest)
            }
            "BatchCreateArticles" => unary!(
                self.articles,
                batch_create_articles,
                proto::BatchCreateArticlesRequest
            ),
            "ListArticleRevisions" => unary!(
                self.articles,
                list_article_revisions,
                proto::ListArticleRevisionsRequest
            ),
            "CompareArticleRevisions" => unary!(
                self.articles,
                compare_article_revisions,
                proto::CompareArticleRevisionsRequest
            ),
            "PurgeArticle" => unary!(self.articles, purge_article, proto::PurgeArticleRequest),
            "GetEntity" => unary!(self.entities, get_entity, proto::GetEntityRequest),
            "ListEntities" => unary!(self.entities, list_entities, proto::ListEntitiesRequest),
            "ListRelatedEntities" => unary!(
                self.entities,
                list_related_entities,
                proto::ListRelatedEntitiesRequest
            ),
            "ListQuotes" => unary!(self.entities, list_quotes, proto::ListQuotesRequest),
            "UpdateEntity" => unary!(self.entities, update_entity, proto::UpdateEntityRequest),
            "MergeEntities" => unary!(self.entities, merge_entities, proto::MergeEntitiesRequest),
            "BlockEntity" => unary!(self.entities, block_entity, proto::BlockEntityRequest),
            "UnblockEntity" => unary!(self.entities, unblock_entity, proto::UnblockEntityRequest),
            "WatchChanges" => {
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
            "ReextractArticles" => {
                let _ = proto::ReextractArticlesRequest::decode(bytes);
            }
            "Backup" => {
                let _ = proto::BackupRequest::decode(bytes);
            }
            _ => return false,
        }
        true
    }
}

/// Every harness folder's name starts with this, then the process id.
const FOLDER_PREFIX: &str = "newsstore-fuzz-";

/// Removes the harness folders of processes that no longer run.
fn remove_stale_folders(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(FOLDER_PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
