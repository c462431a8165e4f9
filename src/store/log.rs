//! The replicated log a clustered store's writes go through (cluster mode).
//!
//! In embedded mode a store decides a write and applies it. In cluster mode the source of
//! truth is a log every node reads (`cluster/`, on NATS JetStream), so a decided write is
//! first *appended* to the log, fenced on the log position the deciding store has applied:
//! if another node appended first, the append is refused, the store applies what it missed
//! and decides again. Only an appended record is applied, so every node applies the same
//! records in the same order and holds the same state at the same position.
//!
//! The store knows the log only through [`Log`]; it records the position it has applied
//! (`~log-position`) in the same atomic batch as each record, so a restart resumes exactly
//! where it stopped: nothing applied twice, nothing skipped.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{ChangeRecord, Store, keys};
use crate::error::{Error, Result};

/// Where a clustered store's decided writes go before they are applied.
pub trait Log: Send + Sync {
    /// Appends `record` (an encoded [`ChangeRecord`]) if the log's last position is
    /// `after`; returns the position it was given. Blocks until the log acknowledged it.
    fn append(&self, after: u64, record: Vec<u8>) -> Result<u64, Refused>;

    /// Up to `max` records after position `after`, in order, with their positions;
    /// `head`, when known, is the log's last position (it saves asking).
    fn read_after(&self, after: u64, head: Option<u64>, max: usize) -> Result<Vec<(u64, Vec<u8>)>>;

    /// Whether something delivers this log's records to the store as they are appended
    /// (`Store::apply_logged`, from a subscription). A writer that lost a race then waits
    /// for it to apply the records that came first, instead of reading them a second time.
    fn delivered(&self) -> bool {
        false
    }
}

/// How long a writer that lost a race waits for the delivery of the records that came
/// first before it reads them itself: delivery normally takes milliseconds, unless the
/// subscription is being made again.
const DELIVERY_WAIT: Duration = Duration::from_millis(500);

/// Wakes writers waiting for the store's position to reach a record (see
/// [`Store::deciding`]). Beside `position_watch` because a writer waits on a blocking thread,
/// with a timeout, which tokio's watch channel offers only inside the runtime.
#[derive(Default)]
pub(super) struct Reached {
    lock: Mutex<()>,
    changed: Condvar,
}

impl Reached {
    /// Called after every apply.
    pub(super) fn notify(&self) {
        let _held = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.changed.notify_all();
    }

    /// Waits until `reached()` holds, for at most `timeout`; whether it does.
    fn wait(&self, reached: impl Fn() -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut held = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        while !reached() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            held = self
                .changed
                .wait_timeout(held, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

/// What committing a decided write came to.
enum Committed {
    /// Appended (or, embedded, just applied).
    Yes,
    /// Another node's write came first; the log's head was then `head`, if it said.
    Moved { head: Option<u64> },
}

/// What deciding a write came to.
pub(super) enum Decided<T> {
    /// Nothing to write (a retry answered from its record, an unchanged re-extraction).
    Nothing(T),
    /// This record to commit, and the answer once it is.
    Record(ChangeRecord, T),
}

/// Why a record was not appended.
#[derive(Debug)]
pub enum Refused {
    /// The log has moved past the position the record was decided at (to `head`, if the
    /// log said): apply what came since, and decide again.
    Moved { head: Option<u64> },
    /// The log could not acknowledge it (no leader, no quorum, a timeout): the record may
    /// or may not be in the log. The caller's retry, under the same request id, is safe.
    Failed(Error),
}

/// How often one write may lose the race to another node before it gives up (each loss
/// means another node's write went in first, so the cluster as a whole progresses). At
/// about ten milliseconds a round, seconds of losing.
const MAX_DECISIONS: usize = 1_000;

/// Records applied from the log per writer-lock hold while catching up.
const CATCH_UP_BATCH: usize = 256;

impl Store {
    /// Makes this store follow `log`: from now on writes are appended to it before they are
    /// applied. A store that holds writes made without a log (embedded mode) cannot start
    /// following one, nor can one that followed a different log (`log_id`).
    pub fn follow(&self, log: Arc<dyn Log>, log_id: &str) -> Result<()> {
        let recorded = self.tree.get(keys::META_LOG_ID)?;
        match recorded {
            Some(id) if id.as_ref() == log_id.as_bytes() => {}
            Some(id) => {
                return Err(Error::Internal(format!(
                    "this data folder holds a node of another cluster log ({}), not of \
                     {log_id}; give this node an empty data folder to join {log_id}",
                    String::from_utf8_lossy(&id)
                )));
            }
            None if self.last_seq() > 0 => {
                return Err(Error::Internal(format!(
                    "this data folder holds an embedded store ({} changes) that never \
                     followed a cluster log; a node must start from an empty data folder (it \
                     then loads the cluster's state), or run without --cluster",
                    self.last_seq()
                )));
            }
            None => {
                self.tree.insert(keys::META_LOG_ID, log_id.as_bytes())?;
                self.db.flush()?;
            }
        }
        self.log
            .set(log)
            .map_err(|_| Error::Internal("the store already follows a log".into()))
    }

    /// The cluster log this store's data came from, if it is a cluster node's.
    pub fn followed_log(&self) -> Result<Option<String>> {
        Ok(self
            .tree
            .get(keys::META_LOG_ID)?
            .map(|id| String::from_utf8_lossy(&id).into_owned()))
    }

    /// Whether writes go through a replicated log.
    pub fn clustered(&self) -> bool {
        self.log.get().is_some()
    }

    /// The log position applied: the consistency token a write's answer carries. Without a
    /// log, the change-log sequence number.
    pub fn position(&self) -> u64 {
        if self.clustered() {
            self.position.load(Ordering::Acquire)
        } else {
            self.last_seq()
        }
    }

    /// Follows [`Store::position`].
    pub fn watch_position(&self) -> tokio::sync::watch::Receiver<u64> {
        self.position_watch.subscribe()
    }

    /// Commits a decided write: appends it to the log if there is one, then applies it.
    fn commit(&self, next_seq: &mut u64, record: ChangeRecord) -> Result<Committed> {
        let Some(log) = self.log.get() else {
            self.apply(next_seq, record, None)?;
            return Ok(Committed::Yes);
        };
        let after = self.position.load(Ordering::Acquire);
        match log.append(after, record.encode()?) {
            Ok(position) if position == after + 1 => {
                self.apply(next_seq, record, Some(position))?;
                Ok(Committed::Yes)
            }
            Ok(position) => Err(Error::DataLoss(format!(
                "the cluster log acknowledged a write decided at position {after} at position \
                 {position}; the log's fence did not hold, and this node stops writing"
            ))),
            Err(Refused::Moved { head }) => Ok(Committed::Moved { head }),
            // It may be in the log after all: applying it then is the catch-up's job.
            Err(Refused::Failed(err)) => Err(err),
        }
    }

    /// Runs `decide` under the writer lock (`writer`, handed back with the outcome) until
    /// its write is committed: again each time another node's write came first, against
    /// the state that includes it. The records that came first are applied by whatever
    /// delivers the log, if something does, while this writer waits off the lock; otherwise
    /// (or if delivery is slow) the writer reads them from the log itself.
    pub(super) fn deciding<'a, T>(
        &'a self,
        mut writer: MutexGuard<'a, u64>,
        mut decide: impl FnMut(&mut u64) -> Result<Decided<T>>,
    ) -> (MutexGuard<'a, u64>, Result<T>) {
        for _ in 0..MAX_DECISIONS {
            let head = match decide(&mut writer) {
                Ok(Decided::Nothing(outcome)) => return (writer, Ok(outcome)),
                Ok(Decided::Record(record, outcome)) => match self.commit(&mut writer, record) {
                    Ok(Committed::Yes) => return (writer, Ok(outcome)),
                    Ok(Committed::Moved { head }) => head,
                    Err(err) => return (writer, Err(err)),
                },
                Err(err) => return (writer, Err(err)),
            };
            let delivered = self.log.get().is_some_and(|log| log.delivered());
            if let Some(head) = head
                && delivered
            {
                drop(writer);
                self.reached.wait(
                    || self.position.load(Ordering::Acquire) >= head,
                    DELIVERY_WAIT,
                );
                writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            }
            if let Err(err) = self.catch_up_locked(&mut writer, head, usize::MAX) {
                return (writer, Err(err));
            }
        }
        (
            writer,
            Err(Error::Conflict(format!(
                "other nodes' writes came first {MAX_DECISIONS} times in a row; retry the \
                 write (with the same request_id it is safe)"
            ))),
        )
    }

    /// Applies log records `(position, record)` delivered in order (by a subscription):
    /// those at or below the store's position are skipped (applied already), a gap is
    /// filled from the log first. Returns the position reached. What is applied is not
    /// flushed here (see [`Store::settle`]): the log holds it durably, so a node flushes its
    /// copy on its own schedule.
    pub fn apply_logged(&self, records: Vec<(u64, Vec<u8>)>) -> Result<u64> {
        let mut next_seq = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        for (position, bytes) in records {
            let at = self.position.load(Ordering::Acquire);
            if position <= at {
                continue;
            }
            if position > at + 1 {
                self.catch_up_locked(&mut next_seq, None, usize::MAX)?;
                if position <= self.position.load(Ordering::Acquire) {
                    continue;
                }
            }
            self.apply_encoded(&mut next_seq, position, &bytes)?;
        }
        Ok(self.position.load(Ordering::Acquire))
    }

    fn catch_up_locked(&self, next_seq: &mut u64, head: Option<u64>, max: usize) -> Result<usize> {
        let Some(log) = self.log.get() else {
            return Ok(0);
        };
        let mut applied = 0;
        while applied < max {
            let after = self.position.load(Ordering::Acquire);
            // Up to the head the log named, if it did; the decision that follows finds out
            // whether more came since.
            if head.is_some_and(|head| head <= after) {
                break;
            }
            let records = log.read_after(after, head, CATCH_UP_BATCH.min(max - applied))?;
            if records.is_empty() {
                break;
            }
            for (position, bytes) in records {
                if position != self.position.load(Ordering::Acquire) + 1 {
                    return Err(Error::DataLoss(format!(
                        "the cluster log skips from position {} to {position}: the records \
                         between were removed (trimmed below what this node applied?); wipe \
                         this node's data folder so it joins again from a snapshot",
                        self.position.load(Ordering::Acquire)
                    )));
                }
                self.apply_encoded(next_seq, position, &bytes)?;
                applied += 1;
            }
        }
        Ok(applied)
    }

    fn apply_encoded(&self, next_seq: &mut u64, position: u64, bytes: &[u8]) -> Result<()> {
        let record = ChangeRecord::decode(bytes).map_err(|err| {
            Error::DataLoss(format!(
                "record {position} of the cluster log cannot be read ({err}); this node \
                 stops applying the log there"
            ))
        })?;
        self.apply(next_seq, record, Some(position))
    }
}
