//! The task that flushes a node's store to its disk in the background.
//!
//! In a cluster a write is acknowledged once the log holds it on a quorum and the node has
//! applied it (`Store::settle`), so neither the write path nor the follower waits for the
//! node's own disk: a node that crashes re-applies, from the position its store kept, what
//! it had not flushed. Flushing on a timer instead turns many small flushes into one, and
//! bounds how far the search index and the change feed, which only see durable changes,
//! trail what the node applied.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::Store;

/// How often a node flushes what it applied: the most the search index and the change feed
/// trail the node's store by, on top of the index's refresh interval.
pub const EVERY: Duration = Duration::from_millis(100);

/// Flushes `store` every [`EVERY`] while it has unflushed changes, and once more when `stop`
/// turns true.
pub fn spawn_flusher(store: Arc<Store>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = tokio::select! {
                _ = ticks.tick() => false,
                _ = stop.wait_for(|stop| *stop) => true,
            };
            if store.last_seq() > store.durable_seq() {
                let store = store.clone();
                match tokio::task::spawn_blocking(move || store.flush()).await {
                    Ok(Ok(())) => {}
                    // The next tick tries again; health reports a full disk (see `Space`).
                    Ok(Err(err)) => tracing::error!(error = %err, "flushing the store failed"),
                    Err(err) => tracing::error!(error = %err, "the flushing task failed"),
                }
            }
            if stopping {
                break;
            }
        }
    })
}
