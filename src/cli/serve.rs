//! `serve`, the default command: its flags and how they become the server's `Config`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::files::SeedArgs;
use crate::api::layers::auth::AuthConfig;
use crate::app::{self, Application, Config};
use crate::cluster::{self, ClusterConfig};
use crate::ingest::Limits;
use crate::store::Retention;

#[derive(Debug, Clone, Args)]
pub(super) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "NEWSSTORE_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    #[command(flatten)]
    seed: SeedArgs,
    /// Do not load the seeds folder at startup.
    #[arg(long, env = "NEWSSTORE_NO_SEED")]
    no_seed: bool,
    /// Log every call at INFO in the `newsstore::access` target (method, code, time taken,
    /// request id, token name). Off by default; RUST_LOG does not turn it on or off.
    #[arg(long, env = "NEWSSTORE_ACCESS_LOG")]
    pub(super) access_log: bool,
    /// Longest time, in milliseconds, before a written article is searchable.
    #[arg(long, env = "NEWSSTORE_INDEX_REFRESH_MS", default_value_t = 500)]
    index_refresh_ms: u64,
    /// Largest article body accepted, in bytes.
    #[arg(long, env = "NEWSSTORE_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Most articles in one BatchCreateArticles call.
    #[arg(long, env = "NEWSSTORE_MAX_BATCH", default_value_t = 1000)]
    max_batch: usize,
    /// Largest gRPC message accepted or sent, in bytes.
    #[arg(long, env = "NEWSSTORE_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024)]
    max_message_bytes: usize,
    /// Seconds shutdown waits for in-flight calls and open streams before closing them.
    #[arg(long, env = "NEWSSTORE_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    shutdown_grace_secs: u64,
    /// Seconds a change-feed reader may leave its buffer full before its stream ends with
    /// RESOURCE_EXHAUSTED saying where to resume.
    #[arg(long, env = "NEWSSTORE_WATCH_SLOW_READER_SECS", default_value_t = 30)]
    watch_slow_reader_secs: u64,
    /// Change-log entries kept at most; older ones are compacted away (watchers resuming
    /// before the oldest kept get OUT_OF_RANGE).
    #[arg(
        long,
        env = "NEWSSTORE_CHANGE_RETENTION_COUNT",
        default_value_t = 10_000_000
    )]
    change_retention_count: u64,
    /// Days a change-log entry is kept at most.
    #[arg(long, env = "NEWSSTORE_CHANGE_RETENTION_DAYS", default_value_t = 30.0)]
    change_retention_days: f64,
    /// Hours a request_id is remembered, so a retry within them is answered with the
    /// first result.
    #[arg(
        long,
        env = "NEWSSTORE_REQUEST_ID_RETENTION_HOURS",
        default_value_t = 24.0
    )]
    request_id_retention_hours: f64,
    /// Seconds between change-log compactions.
    #[arg(long, env = "NEWSSTORE_COMPACT_EVERY_SECS", default_value_t = 60)]
    compact_every_secs: u64,
    /// Origins browsers may call the API from through gRPC-Web, comma-separated (for
    /// example https://cms.example.com), or * for any. gRPC-Web itself is always served;
    /// without this, browsers only allow it from the server's own origin.
    #[arg(long, env = "NEWSSTORE_CORS_ORIGINS", value_delimiter = ',')]
    cors_origins: Vec<String>,
    /// A JSON file of bearer tokens and their scopes: {"tokens": [{"name": "cms", "token":
    /// "…", "scope": "write"}], "open_reads": false}. Scopes: read < write (articles) < editor
    /// (entity decisions) < admin (purge, re-extraction, backup); docs/operations.md has the
    /// table. Without --auth-file and --tokens every call is allowed; given but yielding no
    /// token, the server refuses to start. The scheme is matched in any case.
    #[arg(long, env = "NEWSSTORE_AUTH_FILE")]
    auth_file: Option<PathBuf>,
    /// Tokens as name:token:scope, comma-separated (added to --auth-file's).
    #[arg(long, env = "NEWSSTORE_TOKENS", hide_env_values = true)]
    tokens: Option<String>,
    /// Let reads through without a token (writes still need one).
    #[arg(long, env = "NEWSSTORE_OPEN_READS")]
    open_reads: bool,
    /// Serve TLS with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "NEWSSTORE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "NEWSSTORE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Calls in flight at most; more are refused at once with RESOURCE_EXHAUSTED (health
    /// checks never are). 0 turns the limit off.
    #[arg(long, env = "NEWSSTORE_MAX_IN_FLIGHT", default_value_t = 512)]
    max_in_flight: usize,
    /// Change streams one client address may hold open; more get RESOURCE_EXHAUSTED.
    #[arg(long, env = "NEWSSTORE_MAX_WATCHERS_PER_CLIENT", default_value_t = 256)]
    max_watchers_per_client: usize,
    /// Serve Prometheus metrics at http://ADDR/metrics (for example 127.0.0.1:9090).
    #[arg(long, env = "NEWSSTORE_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Require client certificates signed by this PEM CA (mutual TLS).
    #[arg(long, env = "NEWSSTORE_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Connections open at once at most; past it new connections are closed at once (and
    /// logged). Defaults to three quarters of the process's file limit, at most 10,000.
    #[arg(long, env = "NEWSSTORE_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Seconds a new connection has to start talking (the HTTP/2 preface, an HTTP/1.1
    /// request, a TLS handshake) before it is closed.
    #[arg(long, env = "NEWSSTORE_HANDSHAKE_TIMEOUT_SECS", default_value_t = 10)]
    handshake_timeout_secs: u64,
    /// Free disk space, in MiB, that writes must leave on the data folder's disk: below it
    /// writes get RESOURCE_EXHAUSTED (STORAGE_FULL), the health name newsstore.v1.Writes
    /// turns NOT_SERVING, reads go on, and writes resume by themselves once space is freed.
    /// 0 turns the check off.
    #[arg(long, env = "NEWSSTORE_MIN_FREE_MB", default_value_t = app::DEFAULT_MIN_FREE_MB)]
    min_free_mb: u64,
    /// Serve a database that lost acknowledged changes (its storage log was damaged)
    /// instead of refusing to start: what is left is served, sequence numbers continue
    /// above the last acknowledged one, and the search index is rebuilt. Restoring the
    /// last backup loses less; use this only when there is none. No environment variable,
    /// so it is never left on by accident.
    #[arg(long)]
    accept_data_loss: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Cluster mode (docs/cluster.md).
#[derive(Debug, Clone, Args)]
pub(super) struct ClusterArgs {
    /// Join a cluster: NATS server URLs, comma-separated (nats://HOST:PORT, tls://…). The
    /// node then writes through, and applies, the replicated log on that JetStream; its data
    /// folder must be empty or hold a node of the same log. Without it: embedded mode.
    #[arg(long = "cluster", env = "NEWSSTORE_CLUSTER", value_delimiter = ',')]
    urls: Vec<String>,
    /// The JetStream stream holding the log (created if missing).
    #[arg(long = "cluster-stream", env = "NEWSSTORE_CLUSTER_STREAM", default_value = cluster::stream::DEFAULT_STREAM)]
    stream: String,
    /// Replicas the stream must have; the node refuses a stream with fewer. Lower it only
    /// for a trial on fewer than three NATS servers.
    #[arg(
        long = "cluster-min-replicas",
        env = "NEWSSTORE_CLUSTER_MIN_REPLICAS",
        default_value_t = 3
    )]
    min_replicas: usize,
    /// A NATS credentials file (JWT and NKey seed) to connect with.
    #[arg(long = "cluster-credentials", env = "NEWSSTORE_CLUSTER_CREDENTIALS")]
    credentials: Option<PathBuf>,
    /// Connect to NATS over TLS, trusting only this PEM CA.
    #[arg(long = "cluster-tls-ca", env = "NEWSSTORE_CLUSTER_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// A PEM client certificate for NATS servers that require one (needs --cluster-tls-key).
    #[arg(
        long = "cluster-tls-cert",
        env = "NEWSSTORE_CLUSTER_TLS_CERT",
        requires = "cluster_tls_key"
    )]
    cluster_tls_cert: Option<PathBuf>,
    /// The PEM private key of --cluster-tls-cert.
    #[arg(
        long = "cluster-tls-key",
        env = "NEWSSTORE_CLUSTER_TLS_KEY",
        requires = "cluster_tls_cert"
    )]
    cluster_tls_key: Option<PathBuf>,
    /// Seconds a write waits for the log's acknowledgement (a NATS leader election takes
    /// seconds) before it is answered with UNAVAILABLE (LOG_UNAVAILABLE).
    #[arg(
        long = "cluster-append-timeout-secs",
        env = "NEWSSTORE_CLUSTER_APPEND_TIMEOUT_SECS",
        default_value_t = 15
    )]
    append_timeout_secs: u64,
    /// Seconds between the cluster's snapshots (kept in a JetStream object store; a node with
    /// an empty data folder starts from the newest). Each node offers one when the newest is
    /// older than this; 0: this node never does.
    #[arg(
        long = "cluster-snapshot-every-secs",
        env = "NEWSSTORE_CLUSTER_SNAPSHOT_EVERY_SECS",
        default_value_t = 600
    )]
    snapshot_every_secs: u64,
    /// This node's name in NATS connection names and logs (default: the listen address).
    #[arg(long = "node-name", env = "NEWSSTORE_NODE_NAME")]
    node_name: Option<String>,
}

impl ClusterArgs {
    fn config(&self, listen: SocketAddr) -> anyhow::Result<Option<ClusterConfig>> {
        let urls: Vec<String> = self
            .urls
            .iter()
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty() {
            if !self.urls.is_empty() {
                anyhow::bail!("--cluster (NEWSSTORE_CLUSTER) is set but names no NATS server");
            }
            return Ok(None);
        }
        if self.min_replicas == 0 {
            anyhow::bail!("--cluster-min-replicas must be at least 1");
        }
        let mut config = ClusterConfig::new(urls);
        config.stream.clone_from(&self.stream);
        config.min_replicas = self.min_replicas;
        config.credentials.clone_from(&self.credentials);
        config.tls_ca.clone_from(&self.tls_ca);
        config.tls_client = self
            .cluster_tls_cert
            .clone()
            .zip(self.cluster_tls_key.clone());
        config.append_timeout = Duration::from_secs(self.append_timeout_secs.max(1));
        config.node_name = self.node_name.clone().unwrap_or_else(|| listen.to_string());
        config.snapshot_every = Duration::from_secs(self.snapshot_every_secs);
        Ok(Some(config))
    }
}

impl ServeArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::new(self.listen, self.seed.data.data_dir.clone());
        config.seeds = (!self.no_seed).then(|| self.seed.seeds.clone());
        config.max_seed_bytes = self.seed.max_seed_bytes;
        config.cache_bytes = self.seed.data.cache_mb * 1024 * 1024;
        config.index_refresh = Duration::from_millis(self.index_refresh_ms);
        config.limits = Limits {
            max_body_bytes: self.max_body_bytes,
            max_batch: self.max_batch,
            ..Limits::default()
        };
        config.max_message_bytes = self.max_message_bytes;
        config.shutdown_grace = Duration::from_secs(self.shutdown_grace_secs);
        config.watch_slow_reader = Duration::from_secs(self.watch_slow_reader_secs);
        let hours =
            |h: f64| Duration::try_from_secs_f64(h.max(0.0) * 3600.0).unwrap_or(Duration::MAX);
        config.retention = Retention {
            changes: self.change_retention_count.max(1),
            change_age: hours(self.change_retention_days * 24.0),
            request_ids: hours(self.request_id_retention_hours),
        };
        config.compact_every = Duration::from_secs(self.compact_every_secs.max(1));
        config.cors_origins.clone_from(&self.cors_origins);
        let mut auth = match &self.auth_file {
            Some(path) => AuthConfig::from_file(path)?,
            None => AuthConfig::default(),
        };
        if let Some(tokens) = &self.tokens {
            auth.tokens.extend(AuthConfig::parse_tokens(tokens)?);
        }
        // Asked for authentication but given no token: refuse rather than serve open.
        if (self.auth_file.is_some() || self.tokens.is_some()) && auth.tokens.is_empty() {
            anyhow::bail!(
                "--auth-file/--tokens (NEWSSTORE_AUTH_FILE/NEWSSTORE_TOKENS) yield no token, \
                 which would leave every call open; add tokens, or remove the option to \
                 serve without authentication"
            );
        }
        auth.open_reads |= self.open_reads;
        auth.validate()?;
        config.auth = auth;
        config.metrics_listen = self.metrics_listen;
        config.max_in_flight = self.max_in_flight;
        config.max_watchers_per_client = self.max_watchers_per_client;
        config.accept_data_loss = self.accept_data_loss;
        config.min_free_bytes = self.min_free_mb.saturating_mul(1 << 20);
        if let Some(max) = self.max_connections {
            config.max_connections = max;
        }
        config.handshake_timeout = Duration::from_secs(self.handshake_timeout_secs.max(1));
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            config.tls = Some(app::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.tls_client_ca.clone(),
            });
        }
        config.cluster = self.cluster.config(self.listen)?;
        Ok(config)
    }
}

pub(super) async fn run(args: Box<ServeArgs>) -> anyhow::Result<()> {
    let app = Application::build(args.config()?).await?;
    app.run_until(app::shutdown_signal()).await
}
