//! The task that keeps the search index in step with the store.
//!
//! It wakes when the store's durable sequence number moves, waits out the rest of the
//! refresh interval so that a burst of writes becomes one commit, then applies everything
//! new. Only durable changes are indexed, so the index never runs ahead of what a crash
//! would keep.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::SearchIndex;
use crate::store::Store;

/// Change-log entries applied per commit at most, bounding the work of one step.
const BATCH: usize = 5_000;

/// Starts the follower. It stops, after a last catch-up, when `shutdown` turns true.
pub fn spawn_follower(
    index: Arc<SearchIndex>,
    store: Arc<Store>,
    refresh: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut durable = store.subscribe();
        let mut last_commit = Instant::now() - refresh;
        // `wait_for` looks at the current value too, so a stop signalled while a step was
        // running is never missed.
        loop {
            if *shutdown.borrow() {
                break;
            }
            if index.applied() >= *durable.borrow_and_update() {
                tokio::select! {
                    changed = durable.changed() => if changed.is_err() { break },
                    _ = shutdown.wait_for(|stop| *stop) => break,
                }
            }
            // A burst of writes becomes one commit, unless a writer waits for its change.
            let wait = refresh.saturating_sub(last_commit.elapsed());
            if !wait.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = index.refresh.notified() => {}
                    _ = shutdown.wait_for(|stop| *stop) => break,
                }
            }
            // A full batch means more is waiting: carry on without waiting out the interval.
            while step(&index, &store).await == BATCH {}
            last_commit = Instant::now();
        }
        // Index whatever was acknowledged before shutdown, so a clean restart has no lag.
        while step(&index, &store).await > 0 {}
        tracing::debug!(applied = index.applied(), "search follower stopped");
    })
}

/// Applies the next batch of changes on a blocking thread; returns how many.
async fn step(index: &Arc<SearchIndex>, store: &Arc<Store>) -> usize {
    let (index, store) = (index.clone(), store.clone());
    let outcome = tokio::task::spawn_blocking(move || index.catch_up(&store, BATCH)).await;
    match outcome {
        Ok(Ok(applied)) => applied,
        Ok(Err(err)) => {
            tracing::error!(error = %err, "the search index could not apply changes; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            0
        }
        Err(err) => {
            tracing::error!(error = %err, "the search index task failed");
            0
        }
    }
}
