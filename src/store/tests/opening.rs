//! Opening and closing: checkpoints, the acknowledged-sequence witness, refusals.

use super::*;

/// Closing checkpoints: the snapshot then covers every write, so the next open reads it
/// instead of replaying the log. A store still in use closes without one.
#[test]
fn closing_checkpoints_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), 16 << 20).unwrap());
    for i in 0..20 {
        store
            .write(vec![Write::Create {
                id: format!("a{i}"),
                content: content("Headline", BODIES[i % 4], i as i64),
            }])
            .pop()
            .unwrap()
            .unwrap();
    }
    let before = snapshot_lsn(dir.path());
    let held = store.clone();
    let wait = std::time::Duration::from_millis(100);
    assert!(!store.close(wait).unwrap(), "another handle is alive");
    assert_eq!(snapshot_lsn(dir.path()), before);
    assert!(held.close(std::time::Duration::from_secs(10)).unwrap());
    assert!(
        snapshot_lsn(dir.path()) > before,
        "the snapshot moved past the writes"
    );
    // sled may still be releasing its file lock from a background thread.
    let mut tries = 0;
    let store = loop {
        match Store::open(dir.path(), 16 << 20) {
            Ok(store) => break store,
            Err(err) if tries < 250 => {
                tries += 1;
                assert!(
                    err.to_string().contains("another newsstore process"),
                    "{err}"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(err) => panic!("{err}"),
        }
    };
    assert_eq!(store.last_seq(), 20);
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
}

#[test]
fn a_store_behind_its_witness_is_refused_and_an_accepted_loss_never_reuses_a_number() {
    use crate::store::OpenOptions;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 16 << 20).unwrap();
    create(&store, "a1", "Talks", BODIES[0], 1);
    create(&store, "a2", "Talks", BODIES[1], 2);
    store.flush().unwrap();
    let (id, last) = (store.id().to_string(), store.last_seq());
    drop(store);

    // The search index (another store's, or one behind) does not count against it.
    for witness in [("another-store".to_string(), last + 5), (id.clone(), last)] {
        let options = OpenOptions {
            cache_bytes: 16 << 20,
            witness: Some(witness),
            ..OpenOptions::default()
        };
        drop(Store::open_with(dir.path(), &options).unwrap());
    }
    let behind = OpenOptions {
        cache_bytes: 16 << 20,
        witness: Some((id.clone(), last + 3)),
        ..OpenOptions::default()
    };
    let refused = Store::open_with(dir.path(), &behind).err().unwrap();
    let message = refused.to_string();
    assert!(matches!(refused, Error::DataLoss(_)), "{message}");
    assert!(
        message.contains(&format!("ends at change {last}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("up to {}", last + 3)),
        "{message}"
    );

    let accepting = OpenOptions {
        accept_data_loss: true,
        ..behind
    };
    let store = Store::open_with(dir.path(), &accepting).unwrap();
    assert_ne!(
        store.id(),
        id,
        "derived indexes must not take it for the old store"
    );
    assert_eq!(store.last_seq(), last + 3);
    create(&store, "a3", "Talks", BODIES[2], 3);
    assert_eq!(
        store.last_seq(),
        last + 4,
        "numbering goes on above the loss"
    );
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
    store.flush().unwrap();
    drop(store);
    // The loss is recorded: the next plain open neither refuses nor renumbers.
    let store = Store::open(dir.path(), 16 << 20).unwrap();
    assert_eq!(store.last_seq(), last + 4);
    assert_eq!(store.check().unwrap(), Vec::<String>::new());
}

#[test]
fn the_acknowledged_record_follows_every_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 16 << 20).unwrap();
    create(&store, "a1", "Talks", BODIES[0], 1);
    store.flush().unwrap();
    let recorded =
        std::fs::read_to_string(dir.path().join(crate::store::acknowledged::FILE)).unwrap();
    assert!(
        recorded.starts_with(&format!("{:020} ", store.last_seq())),
        "{recorded:?}"
    );
}

#[test]
fn a_panic_while_opening_is_a_refusal_that_names_the_folder() {
    let dir = std::path::Path::new("/data/newsstore/store");
    let refused = crate::store::open::refuse_on_panic(dir, || -> crate::error::Result<()> {
        panic!("tried to serialize Uninitialized")
    })
    .unwrap_err();
    let message = refused.to_string();
    assert!(matches!(refused, Error::DataLoss(_)), "{message}");
    assert!(
        message.contains("/data/newsstore/store is damaged"),
        "{message}"
    );
    assert!(
        message.contains("tried to serialize Uninitialized"),
        "{message}"
    );
    assert!(message.contains("Restore the last backup"), "{message}");
}
