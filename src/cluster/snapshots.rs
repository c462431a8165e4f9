//! Snapshots of the state, so a new node need not replay the log from its start, and the
//! log can be trimmed below the oldest one.
//!
//! A snapshot is the store's backup (`store/backup.rs`: a checksummed copy of every key,
//! taken under the writer lock, so exactly the state after one log position) kept in a
//! JetStream object-store bucket beside the stream, named by its position and carrying it
//! as metadata. Every node offers to take one each interval; it does only when the newest
//! in the bucket is older than the interval and behind its own position, so the cluster as a
//! whole takes about one per interval (two nodes racing both upload; the bucket keeps the
//! newest [`KEEP`]). A node whose data folder is empty starts from the newest snapshot and
//! then follows the log from its position.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::object_store::{self, ObjectMetadata, ObjectStore};
use async_nats::jetstream::stream::StorageType;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::ClusterConfig;
use crate::store::Store;

/// Snapshots kept in the bucket: the newest and one before it, in case the newest turns
/// out unreadable.
pub const KEEP: usize = 2;

/// Object chunks: large, since each chunk's acknowledgement is awaited in turn (within the
/// NATS servers' default `max_payload` of 1 MiB, headers included).
const CHUNK_BYTES: usize = 1000 * 1024;

/// The bucket's name for a stream.
pub fn bucket(stream: &str) -> String {
    format!("{stream}-snapshots")
}

fn object_name(position: u64) -> String {
    format!("snapshot-{position:020}")
}

/// A snapshot in the bucket.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub name: String,
    pub position: u64,
    /// When it was written, as seconds since the Unix epoch.
    pub written: i64,
}

/// Opens the snapshot bucket of `cluster`'s stream, making it if missing.
pub async fn open_bucket(
    client: &async_nats::Client,
    cluster: &ClusterConfig,
) -> anyhow::Result<ObjectStore> {
    let name = bucket(&cluster.stream);
    let js = async_nats::jetstream::new(client.clone());
    if let Ok(bucket) = js.get_object_store(&name).await {
        return Ok(bucket);
    }
    js.create_object_store(object_store::Config {
        bucket: name.clone(),
        description: Some("newsstore snapshots (see docs/cluster.md)".into()),
        storage: StorageType::File,
        num_replicas: cluster.min_replicas.max(1),
        ..Default::default()
    })
    .await
    .with_context(|| format!("cannot create the snapshot bucket {name}"))
}

/// The snapshots in `bucket`, newest position first.
pub async fn list(bucket: &ObjectStore) -> anyhow::Result<Vec<Snapshot>> {
    let mut found = Vec::new();
    let mut objects = bucket.list().await.context("listing snapshots")?;
    while let Some(info) = objects.next().await {
        let info = info.context("listing snapshots")?;
        if info.deleted {
            continue;
        }
        let Some(position) = info.metadata.get("position").and_then(|p| p.parse().ok()) else {
            continue;
        };
        found.push(Snapshot {
            name: info.name,
            position,
            written: info.modified.map_or(0, |t| t.unix_timestamp()),
        });
    }
    found.sort_by_key(|s| std::cmp::Reverse(s.position));
    Ok(found)
}

/// Takes a snapshot of `store` into `bucket` (through a file in `scratch`); returns it.
pub async fn take(
    bucket: &ObjectStore,
    store: &Arc<Store>,
    scratch: &Path,
) -> anyhow::Result<Snapshot> {
    let file = scratch.join(".snapshot.upload");
    let (store, path) = (store.clone(), file.clone());
    let summary = tokio::task::spawn_blocking(move || store.backup_to(&path)).await??;
    let meta = ObjectMetadata {
        name: object_name(summary.position),
        description: Some(format!(
            "newsstore state after log position {} (change {})",
            summary.position, summary.sequence
        )),
        chunk_size: Some(CHUNK_BYTES),
        metadata: HashMap::from([
            ("position".to_string(), summary.position.to_string()),
            ("sequence".to_string(), summary.sequence.to_string()),
        ]),
        ..Default::default()
    };
    let mut reader = tokio::fs::File::open(&file).await?;
    let uploaded = bucket.put(meta, &mut reader).await;
    let _ = tokio::fs::remove_file(&file).await;
    uploaded.context("uploading the snapshot")?;
    // The oldest go; a node joining from one of them at this moment fails its download
    // and starts over from the newest.
    for old in list(bucket).await?.into_iter().skip(KEEP) {
        if let Err(err) = bucket.delete(&old.name).await {
            tracing::warn!(snapshot = %old.name, error = %err, "removing an old snapshot failed");
        }
    }
    Ok(Snapshot {
        name: object_name(summary.position),
        position: summary.position,
        written: unix_now(),
    })
}

/// Restores the newest snapshot in `bucket` into the empty store folder `dir`; returns it,
/// or `None` when the bucket has none.
pub async fn restore_newest(bucket: &ObjectStore, dir: &Path) -> anyhow::Result<Option<Snapshot>> {
    let Some(newest) = list(bucket).await?.into_iter().next() else {
        return Ok(None);
    };
    let file = dir.with_extension("snapshot.download");
    let mut object = bucket
        .get(&newest.name)
        .await
        .with_context(|| format!("downloading snapshot {}", newest.name))?;
    let mut out = tokio::fs::File::create(&file).await?;
    // The object store checks the object's SHA-256 digest at its end.
    tokio::io::copy(&mut object, &mut out)
        .await
        .with_context(|| format!("downloading snapshot {}", newest.name))?;
    out.sync_all().await?;
    drop(out);
    let (dir, path) = (dir.to_path_buf(), file.clone());
    let restored = tokio::task::spawn_blocking(move || Store::restore(&dir, &path)).await?;
    let _ = tokio::fs::remove_file(&file).await;
    let summary = restored.with_context(|| format!("restoring snapshot {}", newest.name))?;
    anyhow::ensure!(
        summary.position == newest.position,
        "snapshot {} holds the state after position {}, not {}",
        newest.name,
        summary.position,
        newest.position
    );
    Ok(Some(newest))
}

/// Offers a snapshot every `every` (with jitter, so nodes do not all look at once) until
/// `stop` turns true.
pub fn spawn_snapshotter(
    bucket: ObjectStore,
    store: Arc<Store>,
    scratch: std::path::PathBuf,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let jitter = Duration::from_millis(u64::from(uuid::Uuid::now_v7().as_bytes()[15]) * 4);
            tokio::select! {
                () = tokio::time::sleep(every / 2 + jitter) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            let newest = match list(&bucket).await {
                Ok(found) => found.into_iter().next(),
                Err(err) => {
                    tracing::warn!(error = %err, "listing snapshots failed");
                    continue;
                }
            };
            let age = newest
                .as_ref()
                .map(|s| unix_now().saturating_sub(s.written));
            let behind = newest
                .as_ref()
                .is_none_or(|s| s.position < store.position());
            let due = age.is_none_or(|age| age >= every.as_secs() as i64);
            if !(behind && due) || store.position() == 0 {
                continue;
            }
            match take(&bucket, &store, &scratch).await {
                Ok(snapshot) => tracing::info!(position = snapshot.position, "snapshot taken"),
                Err(err) => tracing::warn!(error = %err, "taking a snapshot failed"),
            }
        }
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
