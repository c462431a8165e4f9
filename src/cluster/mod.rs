//! Cluster mode: several nodes materialising one replicated log, on NATS JetStream.
//!
//! The log is a JetStream stream ([`stream`]): Raft-replicated, acknowledged by a quorum,
//! with an optimistic fence (`Nats-Expected-Last-Sequence`) and de-duplication
//! (`Nats-Msg-Id`). newsstore writes no consensus of its own. Each node keeps its own sled
//! store, entity indexes and search index, all derived from the log:
//!
//! - A write is decided by the node that takes it, against the log position it has applied,
//!   and appended with that position as the fence ([`log::NatsLog`]); a node that lost the
//!   race applies what it missed and decides again (`store/log.rs`).
//! - Every node applies every record through the store's one apply path, as the log
//!   delivers them ([`follower`]), recording the position in the same batch. Since the log
//!   holds every record durably, the node's own copy is flushed in the background
//!   ([`flusher`]); a node that crashes re-applies what it lost.
//!
//! Only this module knows NATS; the store sees the log through `store::Log`.

pub mod flusher;
pub mod follower;
pub mod log;
pub mod snapshots;
pub mod stream;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::store::Store;
pub use follower::Follower;
pub use log::NatsLog;

/// How a node joins a cluster (`newsstore serve --cluster …`).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://host:4222`, `tls://…`); any one of the cluster will do,
    /// the client learns the others.
    pub urls: Vec<String>,
    /// The JetStream stream holding the log.
    pub stream: String,
    /// Replicas the stream must have; a stream with fewer is refused (1 for a trial on one
    /// NATS server).
    pub min_replicas: usize,
    /// A NATS credentials file (JWT and NKey seed).
    pub credentials: Option<PathBuf>,
    /// A PEM CA the NATS servers' certificates must chain to (only it is trusted).
    pub tls_ca: Option<PathBuf>,
    /// A client certificate and key, for NATS servers that require one.
    pub tls_client: Option<(PathBuf, PathBuf)>,
    /// How long a write waits for the log's acknowledgement (a stream leader election
    /// takes seconds) before it is answered with UNAVAILABLE.
    pub append_timeout: Duration,
    /// This node's name, in NATS connection names and the logs.
    pub node_name: String,
    /// How often the cluster takes a snapshot (see [`snapshots`]); zero: this node never
    /// offers to.
    pub snapshot_every: Duration,
}

impl ClusterConfig {
    pub fn new(urls: Vec<String>) -> Self {
        ClusterConfig {
            urls,
            stream: stream::DEFAULT_STREAM.to_string(),
            min_replicas: 3,
            credentials: None,
            tls_ca: None,
            tls_client: None,
            append_timeout: Duration::from_secs(15),
            node_name: String::from("newsstore"),
            snapshot_every: Duration::from_secs(600),
        }
    }
}

/// A node's connection to the cluster's log.
pub struct Cluster {
    client: async_nats::Client,
    stream: async_nats::jetstream::stream::Stream,
    /// The snapshot bucket (see [`snapshots`]).
    snapshots: async_nats::jetstream::object_store::ObjectStore,
    config: ClusterConfig,
}

impl Cluster {
    /// Connects to NATS and opens (creating it if missing) the log's stream, refusing one
    /// with fewer replicas than configured.
    pub async fn connect(config: ClusterConfig) -> anyhow::Result<Cluster> {
        if config.urls.is_empty() {
            anyhow::bail!("--cluster names no NATS server; give nats://HOST:PORT[,…]");
        }
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("newsstore {}", config.node_name))
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None);
        if let Some(path) = &config.credentials {
            options = options.credentials_file(path).await.with_context(|| {
                format!("cannot read the NATS credentials file {}", path.display())
            })?;
        }
        if let Some(ca) = &config.tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some((cert, key)) = &config.tls_client {
            options = options
                .add_client_certificate(cert.clone(), key.clone())
                .require_tls(true);
        }
        let client = options
            .connect(config.urls.clone())
            .await
            .with_context(|| {
                format!(
                    "cannot connect to the NATS cluster at {}",
                    config.urls.join(",")
                )
            })?;
        let stream = stream::open(&client, &config).await?;
        let snapshots = snapshots::open_bucket(&client, &config).await?;
        Ok(Cluster {
            client,
            stream,
            snapshots,
            config,
        })
    }

    /// The log's identity: the stream's name and creation time. A stream deleted and made
    /// again is another log, which a node's store refuses to follow.
    pub fn log_id(&self) -> String {
        let info = self.stream.cached_info();
        format!(
            "{}@{}",
            info.config.name,
            info.created.unix_timestamp_nanos()
        )
    }

    /// Makes `store` write through this cluster's log.
    pub fn attach(&self, store: &Store) -> anyhow::Result<()> {
        let log = NatsLog::new(
            self.client.clone(),
            self.stream.clone(),
            &self.config,
            tokio::runtime::Handle::current(),
        );
        store
            .follow(Arc::new(log), &self.log_id())
            .map_err(|err| anyhow::anyhow!("{err}"))
    }

    /// The log's last position now (one request to the stream's leader).
    pub async fn head(&self) -> anyhow::Result<u64> {
        Ok(self.stream.get_info().await?.state.last_sequence)
    }

    pub fn stream(&self) -> &async_nats::jetstream::stream::Stream {
        &self.stream
    }

    /// The snapshot bucket.
    pub fn snapshots(&self) -> &async_nats::jetstream::object_store::ObjectStore {
        &self.snapshots
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }
}
