//! `newsstore.v1.AdminService`: maintenance that runs while the server serves.

use std::pin::Pin;

use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::proto::{self, admin_service_server::AdminService};
use crate::ingest::{Ingest, Reextraction};

pub struct AdminApi {
    ingest: Ingest,
}

impl AdminApi {
    pub fn new(ingest: Ingest) -> Self {
        AdminApi { ingest }
    }
}

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

#[tonic::async_trait]
impl AdminService for AdminApi {
    type ReextractArticlesStream = ProgressStream;

    async fn reextract_articles(
        &self,
        _request: Request<proto::ReextractArticlesRequest>,
    ) -> Result<Response<Self::ReextractArticlesStream>, Status> {
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
