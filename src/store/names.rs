//! The name index (`n` keys) as the writer reads it: entity ids by exact name key, kept in
//! memory between writes.
//!
//! Every extracted name of every article is resolved against the name index, and a sled
//! prefix scan per name cost 7 % of the server's CPU while loading (perf, 30,000 articles,
//! 2026-12-06, README): sled's iterator finds and copies a leaf node for each scan. News
//! repeats its names, so the ids a scan found are kept until a write changes a key of that
//! name.
//!
//! The cache is only ever a copy of what sled holds: [`NameCache::forget`] runs after
//! every applied batch for the names the batch touched, and a load holds the lock until its
//! answer is stored, so a forget cannot slip between the two and leave an old answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::Result;

/// Names kept at most; past it the cache starts over. About 100 bytes a name, so about
/// 10 MB: the names of a working day's news, not of the whole archive.
const MAX_NAMES: usize = 100_000;

#[derive(Default)]
pub(super) struct NameCache {
    ids: Mutex<HashMap<String, Arc<[String]>>>,
}

impl NameCache {
    /// The entity ids under `name_key`, in key order, from the cache or from `load`.
    pub(super) fn get_or_load(
        &self,
        name_key: &str,
        load: impl FnOnce() -> Result<Vec<String>>,
    ) -> Result<Arc<[String]>> {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = ids.get(name_key) {
            return Ok(Arc::clone(found));
        }
        let loaded: Arc<[String]> = load()?.into();
        if ids.len() >= MAX_NAMES {
            ids.clear();
        }
        ids.insert(name_key.to_string(), Arc::clone(&loaded));
        Ok(loaded)
    }

    /// Drops what is known of `name_keys`: a batch changed their keys.
    pub(super) fn forget(&self, name_keys: &[String]) {
        if name_keys.is_empty() {
            return;
        }
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        for key in name_keys {
            ids.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_loaded_once_until_forgotten() {
        let cache = NameCache::default();
        let mut loads = 0;
        for _ in 0..3 {
            let ids = cache
                .get_or_load("kerry", || {
                    loads += 1;
                    Ok(vec!["john-kerry".to_string()])
                })
                .unwrap();
            assert_eq!(&ids[..], ["john-kerry".to_string()]);
        }
        assert_eq!(loads, 1);
        cache.forget(&["kerry".to_string()]);
        let ids = cache.get_or_load("kerry", || Ok(Vec::new())).unwrap();
        assert!(ids.is_empty(), "a forgotten name is read again");
    }

    #[test]
    fn name_index_keys_give_their_name_key() {
        use crate::store::keys;
        let key = keys::name("john kerry", "john-kerry");
        assert_eq!(keys::name_key_of(&key), Some("john kerry"));
        assert_eq!(keys::name_key_of(&keys::entity("john-kerry")), None);
        assert_eq!(keys::name_key_of(&keys::name_prefix("kerry")), None);
    }

    #[test]
    fn a_failed_load_is_not_kept() {
        let cache = NameCache::default();
        let failed = cache.get_or_load("kerry", || {
            Err(crate::error::Error::Internal("disk".into()))
        });
        assert!(failed.is_err());
        let ids = cache
            .get_or_load("kerry", || Ok(vec!["john-kerry".to_string()]))
            .unwrap();
        assert_eq!(ids.len(), 1);
    }
}
