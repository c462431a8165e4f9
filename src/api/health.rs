//! What the gRPC health service reports beyond "the process answers".
//!
//! - Damage: once any call has answered DATA_LOSS (a stored record failed its checksum or
//!   did not decode), the server's overall status (`""`) and every service's turn
//!   NOT_SERVING, and so does `newsstore.v1.Storage`, until the store is restored and the
//!   server restarted: a damaged store must leave a load balancer's rotation, not keep
//!   answering as if whole.
//! - A full disk: while writes are refused for lack of space, `newsstore.v1.Writes` is
//!   NOT_SERVING; reads go on, so the overall status stays SERVING. It turns SERVING again
//!   by itself once the store has space, unless the storage engine itself met the full
//!   disk (see `Store::engine_failure`), which takes a restart.
//!
//! - Cluster mode: while the node is more than [`MAX_LAG`] records behind the log's head as
//!   it last heard of it, or has stopped applying the log (damage), the overall status and
//!   every service's are NOT_SERVING: its reads would be stale past the documented bound.
//!   `newsstore.v1.Log` is NOT_SERVING then too, and while the node's subscription to the
//!   log is down (NATS unreachable): writes cannot be acknowledged, reads go on.
//!
//! Shutdown turns everything NOT_SERVING (see `app.rs`); this monitor stops first.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::cluster::Follower;
use crate::store::Store;

/// The services the health service reports on, besides the overall `""`.
pub const SERVICES: [&str; 4] = [
    "newsstore.v1.ArticleService",
    "newsstore.v1.EntityService",
    "newsstore.v1.AdminService",
    "newsstore.v1.ChangeService",
];

/// The health name that is NOT_SERVING once damage has been found.
pub const STORAGE: &str = "newsstore.v1.Storage";
/// The health name that is NOT_SERVING while writes are refused for lack of disk space.
pub const WRITES: &str = "newsstore.v1.Writes";

/// The health name that is NOT_SERVING while a cluster node is behind or off the log.
pub const LOG: &str = "newsstore.v1.Log";

/// Records a cluster node may be behind the log's head and still report SERVING.
pub const MAX_LAG: u64 = 1_000;

/// How often the monitor looks at the store's condition.
const EVERY: Duration = Duration::from_millis(500);

/// What calls have found out about the store, shared with the layer that sees every answer.
#[derive(Debug, Default)]
pub struct Findings {
    damage: AtomicBool,
}

impl Findings {
    /// A call answered with `grpc_status` (its numeric code).
    pub fn answered(&self, grpc_status: &str) {
        if grpc_status == "15" && !self.damage.swap(true, Ordering::AcqRel) {
            tracing::error!(
                "a read found damaged data (DATA_LOSS): health turns NOT_SERVING; check the \
                 store (`newsstore check`) and restore the last backup"
            );
        }
    }

    pub fn damaged(&self) -> bool {
        self.damage.load(Ordering::Acquire)
    }
}

/// Sets every status at start, then follows the store's condition until `stop` turns true.
pub async fn spawn_monitor(
    reporter: HealthReporter,
    findings: Arc<Findings>,
    store: Arc<Store>,
    follower: Option<Arc<Follower>>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let mut shown = None;
    let mut engine_failed = false;
    let mut log_shown = None;
    show(&reporter, &mut shown, false, false).await;
    if follower.is_some() {
        let (behind, off) = log_state(follower.as_deref(), &store);
        show_log(&reporter, &mut log_shown, behind || off).await;
    }
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(EVERY) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            let probe = store.clone();
            let (full, failure) =
                tokio::task::spawn_blocking(move || (probe.storage_full(), probe.engine_failure()))
                    .await
                    .unwrap_or((false, None));
            if let Some(failure) = failure
                && !engine_failed
            {
                tracing::error!(error = %failure, "writes stopped until a restart");
                engine_failed = true;
            }
            if *stop.borrow() {
                return;
            }
            let (behind, off) = log_state(follower.as_deref(), &store);
            show(
                &reporter,
                &mut shown,
                findings.damaged() || behind,
                full || engine_failed || off,
            )
            .await;
            if follower.is_some() {
                show_log(&reporter, &mut log_shown, behind || off).await;
            }
        }
    })
}

/// Cluster mode: whether the node is behind the log (or stopped applying it), and whether
/// its subscription to the log is down.
fn log_state(follower: Option<&Follower>, store: &Store) -> (bool, bool) {
    match follower {
        Some(follower) => (
            follower.failure().is_some()
                || follower.head().saturating_sub(store.position()) > MAX_LAG,
            !follower.connected(),
        ),
        None => (false, false),
    }
}

async fn show_log(reporter: &HealthReporter, shown: &mut Option<bool>, bad: bool) {
    if *shown == Some(bad) {
        return;
    }
    let status = if bad {
        ServingStatus::NotServing
    } else {
        ServingStatus::Serving
    };
    reporter.set_service_status(LOG, status).await;
    *shown = Some(bad);
}

/// Publishes the statuses for `damaged` and `full`, if they differ from what was shown.
async fn show(
    reporter: &HealthReporter,
    shown: &mut Option<(bool, bool)>,
    damaged: bool,
    full: bool,
) {
    if *shown == Some((damaged, full)) {
        return;
    }
    let status = |bad: bool| {
        if bad {
            ServingStatus::NotServing
        } else {
            ServingStatus::Serving
        }
    };
    for service in std::iter::once("").chain(SERVICES).chain([STORAGE]) {
        reporter.set_service_status(service, status(damaged)).await;
    }
    reporter
        .set_service_status(WRITES, status(damaged || full))
        .await;
    if shown.is_some_and(|(_, was_full)| was_full != full) {
        if full {
            tracing::error!("the disk is full: writes are refused, reads go on");
        } else {
            tracing::info!("the disk has space again: writes resume");
        }
    }
    *shown = Some((damaged, full));
}
