//! Assembling and running the server.
//!
//! [`Application::build`] opens everything, loads the seeds and binds the listener (port 0
//! picks a free port, which is how the tests start real servers side by side);
//! [`Application::run_until`] serves until a shutdown signal, then shuts down in order:
//! health turns NOT_SERVING, in-flight calls finish, the search follower catches up, the
//! store is flushed and closed, and the search index's merges in progress finish.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;

use crate::api::health::{self, Findings};
use crate::api::layers::auth::{AuthConfig, AuthLayer};
use crate::api::layers::call_metrics::CallMetricsLayer;
use crate::api::layers::call_span::CallSpanLayer;
use crate::api::layers::consistency::ConsistencyLayer;
use crate::api::layers::overload::ShedLayer;
use crate::api::layers::read_limit::ReadLimitLayer;
use crate::api::layers::wire_errors;
use crate::api::proto::admin_service_server::AdminServiceServer;
use crate::api::proto::article_service_server::ArticleServiceServer;
use crate::api::proto::change_service_server::ChangeServiceServer;
use crate::api::proto::entity_service_server::EntityServiceServer;
use crate::api::{self, AdminApi, ArticleApi, ChangeApi, EntityApi};
use crate::cluster::{Cluster, ClusterConfig, Follower, snapshots};
use crate::connections::{self, Admission};
use crate::ingest::{Ingest, Limits};
use crate::search::{self, SearchIndex};
use crate::seed::{self, SeedReport};
use crate::store::{OpenOptions, Retention, Store};

/// Everything the server needs to know, from the command line or the environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// The seeds folder to load at startup; `None` skips seeding.
    pub seeds: Option<PathBuf>,
    pub max_seed_bytes: u64,
    pub cache_bytes: u64,
    /// How long a written article may take to become searchable.
    pub index_refresh: Duration,
    pub limits: Limits,
    pub max_message_bytes: usize,
    /// How long shutdown waits for in-flight calls (and open streams such as health
    /// watches) before closing them.
    pub shutdown_grace: Duration,
    /// How long a change-feed reader may leave its buffer full before its stream ends with
    /// RESOURCE_EXHAUSTED (and where to resume).
    pub watch_slow_reader: Duration,
    /// How long the change log and request ids are kept.
    pub retention: Retention,
    /// How often the change log is compacted to `retention`.
    pub compact_every: Duration,
    /// Origins allowed to call through gRPC-Web from a browser ("*" for any); empty sends
    /// no CORS headers.
    pub cors_origins: Vec<String>,
    /// Bearer tokens and scopes; none configured leaves every call open.
    pub auth: AuthConfig,
    /// Serve TLS instead of plaintext.
    pub tls: Option<TlsFiles>,
    /// Where to serve Prometheus metrics (`/metrics`); `None` for nowhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Calls in flight at most; more are refused with RESOURCE_EXHAUSTED (0: no limit).
    pub max_in_flight: usize,
    /// Change streams one client address may hold open (0: no limit).
    pub max_watchers_per_client: usize,
    /// Serve a store that lost acknowledged changes (see `store::OpenOptions`).
    pub accept_data_loss: bool,
    /// Writes are refused while the data folder's disk has less free space than this.
    pub min_free_bytes: u64,
    /// Connections open at once at most (0: no limit); see `connections.rs`.
    pub max_connections: usize,
    /// How long a new connection (or a TLS handshake) may take to start talking.
    pub handshake_timeout: Duration,
    /// Join a cluster: the store follows a replicated log on NATS JetStream (see
    /// `cluster/`); `None` is embedded mode.
    pub cluster: Option<ClusterConfig>,
}

/// PEM files for TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server's certificate chain.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// With this CA, clients must present a certificate it signed (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// Reads the files into tonic's TLS settings, naming the file that fails.
    fn load(&self) -> anyhow::Result<ServerTlsConfig> {
        let read = |path: &PathBuf, what: &str| {
            std::fs::read(path)
                .with_context(|| format!("cannot read the TLS {what} {}", path.display()))
        };
        let identity = Identity::from_pem(
            read(&self.cert, "certificate")?,
            read(&self.key, "private key")?,
        );
        let mut config = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_root(Certificate::from_pem(read(ca, "client CA")?));
        }
        Ok(config)
    }
}

impl Config {
    /// Defaults for a server on `listen` with data in `data_dir` and no seeds.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Config {
            listen,
            data_dir,
            seeds: None,
            max_seed_bytes: 4 * 1024 * 1024,
            cache_bytes: DEFAULT_CACHE_MB * 1024 * 1024,
            index_refresh: Duration::from_millis(500),
            limits: Limits::default(),
            max_message_bytes: 16 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(10),
            watch_slow_reader: Duration::from_secs(30),
            retention: Retention::default(),
            compact_every: Duration::from_secs(60),
            cors_origins: Vec::new(),
            auth: AuthConfig::default(),
            tls: None,
            metrics_listen: None,
            max_in_flight: 512,
            max_watchers_per_client: 256,
            accept_data_loss: false,
            min_free_bytes: DEFAULT_MIN_FREE_MB << 20,
            max_connections: default_max_connections(),
            handshake_timeout: Duration::from_secs(10),
            cluster: None,
        }
    }

    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("store")
    }

    pub fn index_dir(&self) -> PathBuf {
        self.data_dir.join("search")
    }
}

/// Opens the store of `config`.
pub fn open_store(config: &Config) -> anyhow::Result<Arc<Store>> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data folder {}",
            config.data_dir.display()
        )
    })?;
    let options = OpenOptions {
        cache_bytes: config.cache_bytes,
        accept_data_loss: config.accept_data_loss,
        witness: SearchIndex::recorded_position(&config.index_dir()),
        min_free_bytes: config.min_free_bytes,
    };
    let mut store = Store::open_with(&config.store_dir(), &options)?;
    store.set_retention(config.retention);
    Ok(Arc::new(store))
}

/// A built server, bound and ready to run.
pub struct Application {
    config: Config,
    tls: Option<ServerTlsConfig>,
    metrics: Option<TcpListener>,
    listener: TcpListener,
    local_addr: SocketAddr,
    store: Arc<Store>,
    search: Arc<SearchIndex>,
    ingest: Ingest,
    follower: JoinHandle<()>,
    stop_follower: watch::Sender<bool>,
    /// Cluster mode: the tasks applying the log to the store and offering snapshots.
    log_tasks: Vec<JoinHandle<()>>,
    /// Cluster mode: how far the node is behind the log, for health.
    log_follower: Option<Arc<Follower>>,
    seed_report: SeedReport,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        // Configurations that would open access, and bad certificate paths, fail here,
        // before anything is opened.
        let any_origin = config.cors_origins.iter().any(|o| o.trim() == "*");
        if any_origin && !config.auth.enabled() {
            // Any web page a newsroom user opens could then write, purge and take
            // backups through their browser, on loopback too.
            anyhow::bail!(
                "--cors-origins '*' (NEWSSTORE_CORS_ORIGINS) lets every web page call the API, \
                 and without tokens every call is allowed: list the origins that may call it \
                 (--cors-origins https://cms.example.com), or configure tokens (--auth-file, \
                 --tokens)"
            );
        }
        let tls = config.tls.as_ref().map(TlsFiles::load).transpose()?;
        let cluster = match &config.cluster {
            Some(cluster) => Some(Cluster::connect(cluster.clone()).await?),
            None => None,
        };
        if let Some(cluster) = &cluster {
            join_from_snapshot(cluster, &config).await?;
        }
        let store = open_store(&config)?;
        if let Some(cluster) = &cluster {
            cluster.attach(&store)?;
        }
        let index_dir = config.index_dir();
        let index_store = store.clone();
        let search =
            tokio::task::spawn_blocking(move || SearchIndex::open(&index_dir, &index_store))
                .await
                .context("opening the search index")??;
        let search = Arc::new(search);
        let (stop_follower, stopped) = watch::channel(false);
        let follower =
            search::spawn_follower(search.clone(), store.clone(), config.index_refresh, stopped);
        let mut log_tasks = Vec::new();
        let mut log_follower = None;
        if let Some(cluster) = &cluster {
            log_tasks.push(crate::cluster::flusher::spawn_flusher(
                store.clone(),
                stop_follower.subscribe(),
            ));
            let (task, follower) = follow_log(cluster, &store, stop_follower.subscribe()).await?;
            log_tasks.push(task);
            log_follower = Some(follower);
            if !cluster.config().snapshot_every.is_zero() {
                log_tasks.push(snapshots::spawn_snapshotter(
                    cluster.snapshots().clone(),
                    store.clone(),
                    config.data_dir.clone(),
                    cluster.config().snapshot_every,
                    stop_follower.subscribe(),
                ));
            }
        }
        let ingest = Ingest::new(store.clone(), config.limits);
        let seed_report = match &config.seeds {
            Some(dir) => seed::load(&ingest, dir, config.max_seed_bytes).await,
            None => SeedReport::default(),
        };
        if config.min_free_bytes > 0 && config.min_free_bytes < 2 * config.max_message_bytes as u64
        {
            tracing::warn!(
                min_free_mb = config.min_free_bytes >> 20,
                max_message_mb = config.max_message_bytes >> 20,
                "the free-space reserve is smaller than two of the largest requests: one \
                 write could fill the disk past it, and the storage engine then needs a \
                 restart to write again; raise --min-free-mb"
            );
        }
        if any_origin {
            tracing::warn!(
                "--cors-origins '*': every web page may call the API with a token it holds; \
                 list the origins instead where you can"
            );
        }
        if !config.listen.ip().is_loopback() && !config.auth.enabled() {
            tracing::warn!(
                address = %config.listen,
                "LISTENING BEYOND LOOPBACK WITHOUT AUTHENTICATION: anyone who can reach this \
                 address can write, merge and purge. Configure tokens (--auth-file or \
                 NEWSSTORE_TOKENS) or listen on 127.0.0.1"
            );
        }
        if !config.listen.ip().is_loopback() && config.auth.enabled() && config.tls.is_none() {
            tracing::warn!(
                address = %config.listen,
                "bearer tokens over plaintext beyond loopback: anyone on the path can read \
                 and reuse them. Serve TLS (--tls-cert, --tls-key) or put a TLS proxy in front"
            );
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        let metrics = match config.metrics_listen {
            Some(addr) => Some(crate::metrics::bind(addr).await?),
            None => None,
        };
        Ok(Application {
            config,
            tls,
            metrics,
            listener,
            local_addr,
            store,
            search,
            ingest,
            follower,
            stop_follower,
            log_tasks,
            log_follower,
            seed_report,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The metrics address actually bound, if metrics are served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The store the server serves (for in-process tools and tests: digests, positions).
    pub fn store(&self) -> Arc<Store> {
        self.store.clone()
    }

    pub fn seed_report(&self) -> &SeedReport {
        &self.seed_report
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let Application {
            config,
            tls,
            metrics,
            listener,
            local_addr,
            store,
            search,
            ingest,
            follower,
            stop_follower,
            log_tasks,
            log_follower,
            ..
        } = self;
        let (health, health_service) = tonic_health::server::health_reporter();
        let findings = Arc::new(Findings::default());
        let (stopping, stopping_rx) = watch::channel(false);
        let monitor = health::spawn_monitor(
            health.clone(),
            findings.clone(),
            store.clone(),
            log_follower,
            stopping_rx.clone(),
        )
        .await;

        // Both reflection versions describe everything served, each other included, so
        // grpcurl 1.8 (v1alpha only) and newer clients (v1) see the same list.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(api::proto::FILE_DESCRIPTOR_SET)
                // google.rpc's error details (ErrorInfo, BadRequest, RetryInfo, …), so
                // grpcurl and other reflection clients print them decoded.
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(
                    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
                )
        };
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;

        let limit = config.max_message_bytes;
        let admin = AdminServiceServer::new(AdminApi::new(
            ingest.clone(),
            store.clone(),
            config.data_dir.join("backups"),
        ))
        .max_encoding_message_size(limit);
        let changes = ChangeServiceServer::new(ChangeApi::new(
            store.clone(),
            search.clone(),
            config.watch_slow_reader,
            stopping_rx,
            config.max_watchers_per_client,
        ))
        .max_encoding_message_size(limit);
        let metrics = match metrics {
            Some(listener) => Some(crate::metrics::serve(
                listener,
                store.clone(),
                search.clone(),
                stop_follower.subscribe(),
            )?),
            None => None,
        };
        let compactor = spawn_compactor(
            store.clone(),
            search.clone(),
            config.compact_every,
            stop_follower.subscribe(),
        );
        let index = search.clone();
        let articles = ArticleServiceServer::new(ArticleApi::new(ingest, store.clone(), search))
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let entities = EntityServiceServer::new(EntityApi::new(store.clone()))
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);

        tracing::info!(
            address = %local_addr,
            data = %config.data_dir.display(),
            tls = config.tls.is_some(),
            mutual_tls = config.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
            authentication = config.auth.enabled(),
            "newsstore serving"
        );
        let shutdown_health = health.clone();
        let (draining, drain_started) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            signal.await;
            let _ = draining.send(());
            let _ = stopping.send(true);
            tracing::info!("shutting down: finishing in-flight calls");
            // The monitor stops first, so it cannot turn a status back to SERVING.
            let _ = monitor.await;
            for service in std::iter::once("").chain(health::SERVICES).chain([
                health::STORAGE,
                health::WRITES,
                health::LOG,
            ]) {
                shutdown_health
                    .set_service_status(service, ServingStatus::NotServing)
                    .await;
            }
        };
        let incoming = connections::incoming(
            listener,
            Admission {
                max_connections: config.max_connections,
                handshake: config.handshake_timeout,
            },
        );
        let cors = cors_layer(&config.cors_origins)?;
        let consistency = ConsistencyLayer::new(store.clone(), index.clone());
        // A connection that stops answering pings is closed, so a vanished peer does not
        // hold a descriptor.
        let mut builder = Server::builder()
            .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT));
        if let Some(tls) = tls {
            builder = builder
                .tls_config(tls.timeout(config.handshake_timeout))
                .context("the TLS certificate or key is not usable")?;
        }
        let server = builder
            // gRPC-Web (browsers) arrives over HTTP/1.1 and is translated to gRPC here; CORS
            // answers browsers' preflight requests first.
            .accept_http1(true)
            .layer(
                tower::ServiceBuilder::new()
                    .layer(CallSpanLayer::default())
                    .layer(ShedLayer::new(config.max_in_flight))
                    .option_layer(cors)
                    .layer(tonic_web::GrpcWebLayer::new())
                    .layer(CallMetricsLayer::new(findings))
                    .map_response(wire_errors::rewrite)
                    .layer(AuthLayer::new(&config.auth))
                    .layer(ReadLimitLayer::default())
                    .layer(consistency),
            )
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(articles)
            .add_service(entities)
            .add_service(admin)
            .add_service(changes)
            .serve_with_incoming_shutdown(incoming, shutdown);
        // Streams never finish on their own, so draining is bounded by the grace period;
        // dropping the server then closes what is left.
        let grace = config.shutdown_grace;
        let deadline = async move {
            if drain_started.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let served = tokio::select! {
            served = server => served,
            () = deadline => {
                tracing::warn!(seconds = grace.as_secs_f64(), "grace period over; closing the remaining calls");
                Ok(())
            }
        };

        // Let the index catch up with everything acknowledged, then flush the store.
        let _ = stop_follower.send(true);
        if let Err(err) = compactor.await {
            tracing::error!(error = %err, "the change-log compactor failed");
        }
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        for task in log_tasks {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "a cluster task failed");
            }
        }
        if let Err(err) = follower.await {
            tracing::error!(error = %err, "the search follower failed");
        }
        let merges = index.finish_merges();
        drop(index);
        // The services went with the server, so this is normally the last handle and the
        // store closes with a checkpoint, which keeps the next start short. Calls still
        // running past the grace period keep theirs: close then waits for them up to
        // CLOSE_WAIT and skips the checkpoint.
        let closed = tokio::task::spawn_blocking(move || store.close(CLOSE_WAIT)).await;
        served.context("the gRPC server failed")?;
        let checkpointed = closed.context("closing the store")??;
        tracing::info!(checkpointed, "store closed");
        // Everything acknowledged is on disk by now; a kill from here on costs only the
        // merge (see SearchIndex::finish_merges).
        let started = std::time::Instant::now();
        let merged = tokio::task::spawn_blocking(move || merges.recv_timeout(MERGE_WAIT)).await?;
        match merged {
            Ok(Ok(())) => tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                "search index merges finished"
            ),
            Ok(Err(err)) => tracing::warn!(error = %err, "a search index merge failed"),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => tracing::warn!(
                seconds = MERGE_WAIT.as_secs(),
                "search index merges still running; stopping without them (the next start \
                 merges again)"
            ),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {}
        }
        tracing::info!("newsstore stopped");
        Ok(())
    }
}

/// A node with an empty store folder starts from the cluster's newest snapshot, if there is
/// one, instead of replaying the whole log.
async fn join_from_snapshot(cluster: &Cluster, config: &Config) -> anyhow::Result<()> {
    let dir = config.store_dir();
    let empty = match std::fs::read_dir(&dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => true,
        Err(err) => {
            return Err(err).with_context(|| format!("cannot read {}", dir.display()));
        }
    };
    if !empty {
        return Ok(());
    }
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data folder {}",
            config.data_dir.display()
        )
    })?;
    let started = std::time::Instant::now();
    match snapshots::restore_newest(cluster.snapshots(), &dir).await? {
        Some(snapshot) => tracing::info!(
            position = snapshot.position,
            seconds = started.elapsed().as_secs_f64(),
            "joined from the cluster's newest snapshot"
        ),
        None => tracing::info!("no snapshot in the cluster yet: replaying the log from its start"),
    }
    Ok(())
}

/// Starts applying the cluster's log to `store` and waits until the store has caught up
/// with the log's head as it was when the node started and the subscription is live, so
/// the node seeds and serves from the cluster's state.
async fn follow_log(
    cluster: &Cluster,
    store: &Arc<Store>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<(JoinHandle<()>, Arc<Follower>)> {
    let follower = Arc::new(Follower::default());
    let task = follower.spawn(cluster.stream().clone(), store.clone(), stop);
    let head = cluster
        .head()
        .await
        .context("reading the cluster log's head")?;
    let mut position = store.watch_position();
    let started = std::time::Instant::now();
    tracing::info!(
        head,
        applied = store.position(),
        "catching up with the cluster log"
    );
    while store.position() < head || !follower.connected() {
        if let Some(failure) = follower.failure() {
            anyhow::bail!("this node cannot apply the cluster log: {failure}");
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), position.changed()).await;
    }
    tracing::info!(
        head,
        seconds = started.elapsed().as_secs_f64(),
        "caught up with the cluster log"
    );
    Ok((task, follower))
}

/// The database page cache, in MiB, unless configured. Small on purpose: at 100,000 articles
/// most reads are random and miss any cache that fits the memory target, so 16 MiB served
/// GetArticle as fast as 64 did, while the written pages a larger cache keeps (sled counts
/// them by encoded size; in memory they take more) raised the peak under writes by about
/// 60 MiB (load benchmark, docs/bench/README.md). The cost: the entity
/// listing and loading ran about 10 % and 6 % slower. Stores much larger than that, or
/// with hot sets that fit, do better with `--cache-mb` raised.
pub const DEFAULT_CACHE_MB: u64 = 16;

/// The free space, in MiB, writes must leave on the data folder's disk unless configured:
/// room for the search index to commit and merge what was acknowledged (a bounded merge
/// rewrites at most 25,000 articles' worth of segments) and for sled's snapshot.
pub const DEFAULT_MIN_FREE_MB: u64 = 128;

/// Connections open at once at most, unless configured: three quarters of the process's
/// file limit (each connection holds a descriptor; the store, the search index's segments
/// and the metrics port need the rest), at most 10,000.
pub fn default_max_connections() -> usize {
    #[cfg(target_os = "linux")]
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    #[cfg(not(target_os = "linux"))]
    let limit = 1024u64;
    usize::try_from(limit / 4 * 3)
        .unwrap_or(usize::MAX)
        .clamp(16, 10_000)
}

/// How often an idle HTTP/2 connection is pinged, and how long the answer may take before
/// the connection is closed.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// How long shutdown waits, after the store is closed, for search index merges in progress
/// (see [`SearchIndex::finish_merges`]). Merges are bounded (`search/merges.rs`), so this is
/// seconds at most; past it the process exits and the next start merges again.
pub(crate) const MERGE_WAIT: Duration = Duration::from_secs(30);

/// How long shutdown waits for the store's last users and file lock before it closes the
/// store without a checkpoint.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// The CORS policy for browsers calling through gRPC-Web from `origins`; `None` for none.
fn cors_layer(origins: &[String]) -> anyhow::Result<Option<tower_http::cors::CorsLayer>> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| {
                http::HeaderValue::from_str(o.trim())
                    .with_context(|| format!("{o:?} is not a valid CORS origin"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(values)
    };
    let header = http::HeaderName::from_static;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([http::Method::POST, http::Method::OPTIONS])
            .allow_headers([
                header("content-type"),
                header("x-grpc-web"),
                header("x-user-agent"),
                header("grpc-timeout"),
                header("authorization"),
            ])
            .expose_headers([
                header("grpc-status"),
                header("grpc-message"),
                header("grpc-status-details-bin"),
            ])
            .max_age(Duration::from_secs(24 * 3600)),
    ))
}

/// Compacts the change log to the retention every `every`, never past what the search
/// index has applied (it resumes from the log). Stops when `stop` turns true.
fn spawn_compactor(
    store: Arc<Store>,
    search: Arc<SearchIndex>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            let (store, search) = (store.clone(), search.clone());
            let compacted =
                tokio::task::spawn_blocking(move || store.compact(search.applied())).await;
            match compacted {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => tracing::error!(error = %err, "compacting the change log failed"),
                Err(err) => tracing::error!(error = %err, "the compaction task failed"),
            }
        }
    })
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
