//! What the writer reads from sled over and over, kept in memory between writes: the name
//! index's entries by name key (`n` keys) and entity records (`e` keys).
//!
//! Every extracted name of every article is resolved against the name index, and a sled
//! prefix scan per name cost 7 % of the server's CPU while loading (perf, 30,000 articles,
//! docs/bench/README.md): sled's iterator finds and copies a leaf node for each scan. Then
//! every candidate's entity record is read and decoded, 6.7 % of an import's CPU once the
//! records stopped being rewritten for every mention (perf, 17,000 articles; the run is in
//! docs/bench/history.md, "the AMD EPYC VM, with entities' counters out of their records").
//! News repeats its names and entities, so what a read found is kept until a write changes
//! that key.
//!
//! A cache is only ever a copy of what sled holds: [`WriterCache::forget`] runs after every
//! applied batch for the keys the batch touched, and a load holds the lock until its answer
//! is stored, so a forget cannot slip between the two and leave an old answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::Result;

/// Entries kept at most; past it a cache starts over. About 100 bytes a name and a few
/// hundred an entity record, so some 10 and 30 MB: the names and entities of a working
/// day's news, not of the whole archive.
pub(super) const MAX_ENTRIES: usize = 100_000;

/// A map from a key (a name key, an entity id) to what sled holds under it.
pub(super) struct WriterCache<V: ?Sized> {
    entries: Mutex<HashMap<String, Arc<V>>>,
}

impl<V: ?Sized> Default for WriterCache<V> {
    fn default() -> Self {
        WriterCache {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: ?Sized> WriterCache<V> {
    /// What is kept under `key`, or what `load` reads from sled (then kept).
    pub(super) fn get_or_load(
        &self,
        key: &str,
        load: impl FnOnce() -> Result<Arc<V>>,
    ) -> Result<Arc<V>> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = entries.get(key) {
            return Ok(Arc::clone(found));
        }
        let loaded = load()?;
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key.to_string(), Arc::clone(&loaded));
        Ok(loaded)
    }

    /// Drops what is known of `keys`: a batch changed them.
    pub(super) fn forget(&self, keys: &[String]) {
        if keys.is_empty() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_loaded_once_until_forgotten() {
        let cache = WriterCache::<[String]>::default();
        let mut loads = 0;
        for _ in 0..3 {
            let ids = cache
                .get_or_load("kerry", || {
                    loads += 1;
                    Ok(vec!["john-kerry".to_string()].into())
                })
                .unwrap();
            assert_eq!(&ids[..], ["john-kerry".to_string()]);
        }
        assert_eq!(loads, 1);
        cache.forget(&["kerry".to_string()]);
        let ids = cache
            .get_or_load("kerry", || Ok(Vec::new().into()))
            .unwrap();
        assert!(ids.is_empty(), "a forgotten name is read again");
    }

    #[test]
    fn name_and_entity_keys_give_what_the_caches_forget() {
        use crate::store::keys;
        let key = keys::name("john kerry", "john-kerry");
        assert_eq!(keys::name_key_of(&key), Some("john kerry"));
        assert_eq!(keys::name_key_of(&keys::entity("john-kerry")), None);
        assert_eq!(keys::name_key_of(&keys::name_prefix("kerry")), None);
        assert_eq!(
            keys::entity_of_key(&keys::entity("john-kerry")),
            Some("john-kerry")
        );
        assert_eq!(keys::entity_of_key(&key), None);
    }

    #[test]
    fn a_failed_load_is_not_kept() {
        let cache = WriterCache::<[String]>::default();
        let failed = cache.get_or_load("kerry", || {
            Err(crate::error::Error::Internal("disk".into()))
        });
        assert!(failed.is_err());
        let ids = cache
            .get_or_load("kerry", || Ok(vec!["john-kerry".to_string()].into()))
            .unwrap();
        assert_eq!(ids.len(), 1);
    }
}
