//! The log's JetStream stream: its settings, and opening it.
//!
//! The settings keep every record: no limit on count, size or age (history is trimmed only
//! by an operator, below the oldest snapshot, docs/cluster.md), and if an operator sets a
//! limit anyway, `DiscardPolicy::New` refuses new writes rather than deleting old records.
//! File storage, three replicas, a two-minute duplicate window (longer than any append's
//! retries, so a retried append is recognised), and no per-message delete.

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{
    self,
    stream::{Config, DiscardPolicy, RetentionPolicy, StorageType, Stream},
};

use super::ClusterConfig;

/// The stream used unless configured.
pub const DEFAULT_STREAM: &str = "NEWSSTORE";

/// The one subject records are published on: `newsstore.<stream>.log`.
pub fn subject(stream: &str) -> String {
    format!("newsstore.{}.log", stream.to_lowercase())
}

/// The duplicate window: retried appends within it are recognised by their message id.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How long stream creation keeps retrying while a fresh NATS cluster elects its
/// meta-leader (seconds after the servers start).
const CREATE_PATIENCE: Duration = Duration::from_secs(30);

fn config(cluster: &ClusterConfig) -> Config {
    Config {
        name: cluster.stream.clone(),
        description: Some("newsstore's change log (see docs/cluster.md)".into()),
        subjects: vec![subject(&cluster.stream)],
        num_replicas: cluster.min_replicas.max(1),
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        max_messages: -1,
        max_bytes: -1,
        max_age: Duration::ZERO,
        max_message_size: -1,
        discard: DiscardPolicy::New,
        duplicate_window: DUPLICATE_WINDOW,
        deny_delete: true,
        ..Default::default()
    }
}

/// Opens the stream, creating it with [`config`] if missing, and refuses one with fewer
/// replicas than `cluster.min_replicas` or that could silently drop records.
pub async fn open(client: &async_nats::Client, cluster: &ClusterConfig) -> anyhow::Result<Stream> {
    let js = jetstream::new(client.clone());
    let started = std::time::Instant::now();
    let stream = loop {
        match js.get_or_create_stream(config(cluster)).await {
            Ok(stream) => break stream,
            Err(err) if started.elapsed() < CREATE_PATIENCE => {
                tracing::info!(error = %err, stream = %cluster.stream, "JetStream not ready yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => {
                return Err(err).with_context(|| {
                    format!(
                        "cannot open or create the JetStream stream {} (is JetStream enabled \
                         on the NATS servers, and do they form a cluster?)",
                        cluster.stream
                    )
                });
            }
        }
    };
    let found = &stream.cached_info().config;
    if found.num_replicas < cluster.min_replicas {
        anyhow::bail!(
            "the JetStream stream {} has {} replica(s), fewer than the {} required: an \
             acknowledged write would not survive the loss of one NATS server. Raise its \
             replicas (nats stream edit {} --replicas 3), or accept it with \
             --cluster-min-replicas {}",
            found.name,
            found.num_replicas,
            cluster.min_replicas,
            found.name,
            found.num_replicas
        );
    }
    let subject = subject(&cluster.stream);
    if !found.subjects.contains(&subject) {
        anyhow::bail!(
            "the JetStream stream {} does not take the subject {subject} (it takes {:?}); \
             it belongs to something else: choose another --cluster-stream",
            found.name,
            found.subjects
        );
    }
    let drops_history = found.max_messages > 0
        || found.max_bytes > 0
        || !found.max_age.is_zero()
        || found.max_messages_per_subject > 0;
    if drops_history && found.discard == DiscardPolicy::Old {
        anyhow::bail!(
            "the JetStream stream {} has a limit with the discard policy 'old': it would \
             silently delete records every node needs. Remove the limits, or set the \
             discard policy to 'new'",
            found.name
        );
    }
    Ok(stream)
}
