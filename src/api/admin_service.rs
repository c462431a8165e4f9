//! `newsstore.v1.AdminService`: maintenance that runs while the server serves.

use std::pin::Pin;

use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use std::path::PathBuf;
use std::sync::Arc;

use super::audit::Audit;
use super::proto::{self, admin_service_server::AdminService};
use crate::error::Error;
use crate::ingest::{Ingest, Reextraction};
use crate::store::Store;

pub struct AdminApi {
    ingest: Ingest,
    store: Arc<Store>,
    /// Where backups are written before they are streamed.
    scratch: PathBuf,
}

impl AdminApi {
    pub fn new(ingest: Ingest, store: Arc<Store>, scratch: PathBuf) -> Self {
        AdminApi {
            ingest,
            store,
            scratch,
        }
    }
}

/// Bytes per backup chunk.
const CHUNK: usize = 1 << 20;

fn progress(state: Reextraction, done: bool) -> proto::ReextractArticlesResponse {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    proto::ReextractArticlesResponse {
        articles_total: count(state.total),
        articles_done: count(state.done),
        articles_changed: count(state.changed),
        articles_skipped: count(state.skipped),
        done,
    }
}

type ProgressStream =
    Pin<Box<dyn Stream<Item = Result<proto::ReextractArticlesResponse, Status>> + Send>>;

type BackupStream = Pin<Box<dyn Stream<Item = Result<proto::BackupResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AdminService for AdminApi {
    type ReextractArticlesStream = ProgressStream;
    type BackupStream = BackupStream;

    async fn backup(
        &self,
        request: Request<proto::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        let audit = Audit::of(&request, "Backup");
        std::fs::create_dir_all(&self.scratch)
            .map_err(|e| Error::internal("creating the backup folder", e))?;
        let path = self
            .scratch
            .join(format!("backup-{}.partial", uuid::Uuid::now_v7()));
        let (store, file) = (self.store.clone(), path.clone());
        let written = tokio::task::spawn_blocking(move || store.backup_to(&file))
            .await
            .map_err(|e| Error::internal("the backup task failed", e))?;
        let summary = match written {
            Ok(summary) => summary,
            Err(err) => {
                let _ = std::fs::remove_file(&path);
                return Err(err.into());
            }
        };
        // Whoever holds a backup holds every article: who took one is on the record.
        audit.record(format_args!(
            "{} entries up to change {}",
            summary.entries, summary.sequence
        ));
        tracing::info!(
            entries = summary.entries,
            sequence = summary.sequence,
            "backup written; streaming it"
        );
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            let result = async {
                let mut file = tokio::fs::File::open(&path).await?;
                loop {
                    let mut data = vec![0u8; CHUNK];
                    let n = file.read(&mut data).await?;
                    if n == 0 {
                        return Ok::<_, std::io::Error>(());
                    }
                    data.truncate(n);
                    let chunk = proto::BackupResponse {
                        data,
                        sequence: count(summary.sequence),
                        entries: count(summary.entries),
                    };
                    if sender.send(Ok(chunk)).await.is_err() {
                        return Ok(());
                    }
                }
            }
            .await;
            if let Err(err) = result {
                let _ = sender
                    .send(Err(Status::from(Error::internal(
                        "reading the backup",
                        err,
                    ))))
                    .await;
            }
            let _ = tokio::fs::remove_file(&path).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn reextract_articles(
        &self,
        request: Request<proto::ReextractArticlesRequest>,
    ) -> Result<Response<Self::ReextractArticlesStream>, Status> {
        let audit = Audit::of(&request, "ReextractArticles");
        // A small buffer: progress is only worth sending while someone reads it, and a
        // slow reader must not hold up the work (stale updates are dropped).
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let ingest = self.ingest.clone();
        tokio::spawn(async move {
            let updates = sender.clone();
            let result = ingest
                .reextract_all(|state| {
                    // A full buffer only means a slow reader; a closed one, a cancelled call.
                    let _ = updates.try_send(Ok(progress(state, false)));
                    !updates.is_closed()
                })
                .await;
            let last = match result {
                Ok(state) => {
                    audit.record(format_args!(
                        "{} articles ({} changed, {} skipped)",
                        state.total, state.changed, state.skipped
                    ));
                    tracing::info!(
                        total = state.total,
                        changed = state.changed,
                        skipped = state.skipped,
                        "re-extraction finished"
                    );
                    Ok(progress(state, true))
                }
                Err(err) => Err(Status::from(err)),
            };
            let _ = sender.send(last).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}
