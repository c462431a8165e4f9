//! Group commit: writers wait until their change is on disk, and share the flushes.
//!
//! A write is acknowledged only after `sled::Db::flush` has returned for a flush that began
//! after the write was applied. Flushing is the slow part of a write, so concurrent writers
//! do not flush one after another: the first waiter becomes the leader and flushes
//! everything applied so far; the others wait, and when the flush covers their sequence
//! number they return without flushing at all.

use std::sync::{Condvar, Mutex, PoisonError};

use crate::error::{Error, Result};

#[derive(Default)]
struct State {
    /// Every change up to this sequence number is on disk.
    durable: u64,
    /// A leader is flushing right now.
    flushing: bool,
}

#[derive(Default)]
pub struct GroupCommit {
    state: Mutex<State>,
    flushed: Condvar,
}

impl GroupCommit {
    pub fn new(durable: u64) -> Self {
        GroupCommit {
            state: Mutex::new(State {
                durable,
                flushing: false,
            }),
            flushed: Condvar::new(),
        }
    }

    /// The highest sequence number known to be on disk.
    #[cfg(test)]
    pub fn durable(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .durable
    }

    /// Blocks until every change up to `seq` is durable. `applied` reads the highest sequence
    /// number applied so far; `flush` makes everything applied up to the number it is given
    /// durable.
    pub fn wait(
        &self,
        seq: u64,
        applied: impl Fn() -> u64,
        flush: impl Fn(u64) -> Result<()>,
    ) -> Result<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if state.durable >= seq {
                return Ok(state.durable);
            }
            if state.flushing {
                state = self
                    .flushed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Lead a flush of everything applied up to now.
            state.flushing = true;
            let target = applied();
            drop(state);
            let outcome = flush(target);
            state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.flushing = false;
            if outcome.is_ok() {
                state.durable = state.durable.max(target);
            }
            self.flushed.notify_all();
            match outcome {
                Ok(()) => {}
                Err(Error::Internal(err)) => {
                    return Err(Error::internal("flushing the store to disk", err));
                }
                Err(err) => return Err(err),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn concurrent_writers_share_flushes() {
        let commit = Arc::new(GroupCommit::new(0));
        let applied = Arc::new(AtomicU64::new(0));
        let flushes = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (1..=16u64)
            .map(|seq| {
                let (commit, applied, flushes) = (commit.clone(), applied.clone(), flushes.clone());
                applied.fetch_max(seq, Ordering::SeqCst);
                std::thread::spawn(move || {
                    commit
                        .wait(
                            seq,
                            || applied.load(Ordering::SeqCst),
                            |_| {
                                flushes.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_millis(20));
                                Ok(())
                            },
                        )
                        .unwrap()
                })
            })
            .collect();
        for thread in threads {
            assert!(thread.join().unwrap() >= 1);
        }
        assert_eq!(commit.durable(), 16);
        assert!(
            flushes.load(Ordering::SeqCst) < 16,
            "flushes were not shared"
        );
    }

    #[test]
    fn a_failed_flush_is_reported_and_not_counted_as_durable() {
        let commit = GroupCommit::new(0);
        let result = commit.wait(1, || 1, |_| Err(Error::Internal("disk full".into())));
        assert!(result.is_err());
        assert_eq!(commit.durable(), 0);
    }
}
