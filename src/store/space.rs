//! The free-space reserve: writes are refused while the disk holding the store has less
//! free space than the reserve, before sled or the search index meets a full disk.
//!
//! sled 0.34 treats a failed write to its log as fatal for the open database: every later
//! write returns the same error until the process reopens it, even once space is free
//! again. So a full disk must be met here, by a check before each write, rather than in
//! sled. The reserve also leaves the search index room to commit and merge what was
//! already acknowledged. Reads never check it. Checking is one `statvfs` call.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// With no reserve, the space that counts as "space again" after a write met a full disk.
const MIN_ROOM: u64 = 1 << 20;

pub struct Space {
    dir: PathBuf,
    /// Writes need at least this many bytes free; 0 turns the check off.
    reserve: u64,
    /// A write was refused for lack of space and none has succeeded since.
    full: AtomicBool,
}

impl Space {
    pub fn new(dir: &Path, reserve: u64) -> Space {
        Space {
            dir: dir.to_path_buf(),
            reserve,
            full: AtomicBool::new(false),
        }
    }

    /// Refuses a write with [`Error::StorageFull`] while free space is under the reserve.
    pub fn check(&self) -> Result<()> {
        if self.reserve == 0 {
            return Ok(());
        }
        match available(&self.dir) {
            Some(free) if free < self.reserve => {
                self.full.store(true, Ordering::Release);
                Err(Error::StorageFull(format!(
                    "the disk holding the data is full: {} MiB free, and writes need at \
                     least {} MiB (--min-free-mb); free space, and writes resume by \
                     themselves. Reads go on",
                    free >> 20,
                    self.reserve >> 20
                )))
            }
            _ => Ok(()),
        }
    }

    /// Notes how a write ended: a full disk, or success.
    pub fn note<T>(&self, outcome: &Result<T>) {
        match outcome {
            Err(Error::StorageFull(_)) => self.full.store(true, Ordering::Release),
            Ok(_) => self.full.store(false, Ordering::Release),
            Err(_) => {}
        }
    }

    /// Whether writes would be refused for lack of space now: free space is under the
    /// reserve, or a write met a full disk (beneath the reserve, or with none) and no write
    /// has succeeded since nor has space come back. Looks at the disk each time, so the
    /// answer turns by itself once space is freed.
    pub fn full(&self) -> bool {
        let Some(free) = available(&self.dir) else {
            return self.full.load(Ordering::Acquire);
        };
        if free < self.reserve {
            return true;
        }
        if self.full.load(Ordering::Acquire) && free >= self.reserve.max(MIN_ROOM) {
            self.full.store(false, Ordering::Release);
        }
        self.full.load(Ordering::Acquire)
    }
}

/// Bytes available to this process on the file system holding `dir`; `None` when unknown.
#[cfg(target_os = "linux")]
fn available(dir: &Path) -> Option<u64> {
    let stats = rustix::fs::statvfs(dir).ok()?;
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

#[cfg(not(target_os = "linux"))]
fn available(_dir: &Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_larger_than_the_disk_refuses_writes_until_it_fits() {
        let dir = tempfile::tempdir().unwrap();
        let space = Space::new(dir.path(), u64::MAX);
        let refused = space.check();
        assert!(matches!(refused, Err(Error::StorageFull(_))), "{refused:?}");
        assert!(space.full());
        let roomy = Space::new(dir.path(), 1);
        assert!(roomy.check().is_ok());
        assert!(!roomy.full());
        roomy.note(&Err::<(), _>(Error::StorageFull("x".into())));
        assert!(!roomy.full(), "space was found again");
        let unreserved = Space::new(dir.path(), 0);
        assert!(!unreserved.full());
    }
}
