//! Writes through a replicated log, with an in-memory log standing in for JetStream (the
//! real one is tested in tests/cluster/): two stores deciding against one log, the loser
//! catching up and deciding again, an append that fails, and a restart resuming from the
//! recorded position.

use std::sync::{Arc, Mutex};

use super::*;
use crate::store::{Log, Refused};

/// A log in memory with the fence JetStream applies: an append lands only if the log's
/// last position is the one the record was decided at. `fail` refuses appends as a log
/// without a leader would.
#[derive(Default)]
struct MemoryLog {
    records: Mutex<Vec<Vec<u8>>>,
    fail: std::sync::atomic::AtomicBool,
}

impl Log for MemoryLog {
    fn append(&self, after: u64, record: Vec<u8>) -> Result<u64, Refused> {
        if self.fail.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Refused::Failed(Error::LogUnavailable("no leader".into())));
        }
        let mut records = self.records.lock().unwrap();
        if records.len() as u64 != after {
            return Err(Refused::Moved {
                head: Some(records.len() as u64),
            });
        }
        records.push(record);
        Ok(records.len() as u64)
    }

    fn read_after(
        &self,
        after: u64,
        _head: Option<u64>,
        max: usize,
    ) -> crate::error::Result<Vec<(u64, Vec<u8>)>> {
        let records = self.records.lock().unwrap();
        Ok(records
            .iter()
            .enumerate()
            .skip(after as usize)
            .take(max)
            .map(|(i, r)| (i as u64 + 1, r.clone()))
            .collect())
    }
}

fn create(id: &str, body: &str) -> Write {
    Write::Create {
        id: id.into(),
        content: content(id, body, 1_000),
    }
}

#[test]
fn two_stores_on_one_log_decide_in_turn_and_end_the_same() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Store::open(a_dir.path(), 16 << 20).unwrap();
    let b = Store::open(b_dir.path(), 16 << 20).unwrap();
    let log = Arc::new(MemoryLog::default());
    a.follow(log.clone(), "test-log").unwrap();
    b.follow(log.clone(), "test-log").unwrap();

    // A decides at position 0 and lands; B, still at 0, loses the race, catches up with
    // A's record and decides again at 1: it now sees A's article and its entities.
    let first = a
        .write(vec![create("a1", BODIES[0])])
        .pop()
        .unwrap()
        .unwrap();
    assert_eq!((first.seq, a.position()), (1, 1));
    let taken = b.write(vec![create("a1", BODIES[1])]).pop().unwrap();
    assert!(
        matches!(taken, Err(Error::AlreadyExists { .. })),
        "B decided without A's write: {taken:?}"
    );
    assert_eq!(b.position(), 1, "B caught up while deciding");
    let second = b
        .write(vec![create("b1", BODIES[0])])
        .pop()
        .unwrap()
        .unwrap();
    assert_eq!((second.seq, b.position()), (2, 2));
    // John Kerry, first met by A, is the same entity on B.
    let kerry = |store: &Store| {
        store
            .get_article("b1")
            .unwrap()
            .unwrap()
            .derived
            .mentions
            .iter()
            .find(|m| m.name == "John Kerry")
            .map(|m| m.entity_id.clone())
    };
    assert_eq!(kerry(&b), Some("john-kerry".to_string()));

    // A request id recorded by B's write answers A's retry once A has caught up.
    let tagged = b
        .write_tagged(vec![(create("b2", BODIES[2]), tag("r1"))])
        .pop()
        .unwrap()
        .unwrap();
    let retried = a
        .write_tagged(vec![(create("b2", BODIES[2]), tag("r1"))])
        .pop()
        .unwrap()
        .unwrap();
    assert!(retried.replayed, "{retried:?}");
    assert_eq!(retried.seq, tagged.seq);

    // A log that cannot acknowledge: the write fails, nothing is applied.
    log.fail.store(true, std::sync::atomic::Ordering::Release);
    let failed = a.write(vec![create("a2", BODIES[3])]).pop().unwrap();
    assert!(
        matches!(failed, Err(Error::LogUnavailable(_))),
        "{failed:?}"
    );
    assert!(a.get_article("a2").unwrap().is_none());
    log.fail.store(false, std::sync::atomic::Ordering::Release);

    // Both catch up to the log's end and hold the same state.
    for store in [&a, &b] {
        let missed = log.read_after(store.position(), None, 100).unwrap();
        store.apply_logged(missed).unwrap();
    }
    assert_eq!(a.position(), 3);
    assert_eq!(a.digest().unwrap(), b.digest().unwrap());

    // Reopened, a store resumes from the position it recorded with its data.
    drop(b);
    let b = Store::open(b_dir.path(), 16 << 20).unwrap();
    assert_eq!(b.position(), 3);
    b.follow(log.clone(), "test-log").unwrap();
    let third = a
        .write(vec![create("a3", BODIES[3])])
        .pop()
        .unwrap()
        .unwrap();
    assert_eq!(third.seq, 4);
    assert_eq!(
        b.apply_logged(log.read_after(0, None, 100).unwrap())
            .unwrap(),
        4
    );
    assert_eq!(a.digest().unwrap(), b.digest().unwrap());

    // Another log's node, or an embedded store, is refused.
    let err = b.follow(log.clone(), "another-log").unwrap_err();
    assert!(err.to_string().contains("another cluster log"), "{err}");
    let c_dir = tempfile::tempdir().unwrap();
    let c = Store::open(c_dir.path(), 16 << 20).unwrap();
    c.write(vec![create("c1", BODIES[0])])
        .pop()
        .unwrap()
        .unwrap();
    let err = c.follow(log, "test-log").unwrap_err();
    assert!(err.to_string().contains("embedded store"), "{err}");
}
