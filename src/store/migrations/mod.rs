//! Layout upgrades: a database written by an older build is brought to the current key
//! layout at open, one layout at a time, one file per upgrade (as Meilisearch keeps its
//! upgrades). Each upgrade records its layout only once it is done, so an interrupted one
//! simply runs again at the next open.

mod layout_2;
mod layout_3;
mod layout_4;
mod layout_5;
mod layout_6;

use std::path::Path;

use super::keys;
use crate::error::{Error, Result};

/// The tree's key layout version, checked at open so an incompatible build refuses the data
/// instead of misreading it.
pub(super) const LAYOUT_VERSION: u64 = 6;

/// Brings the tree in `dir` to [`LAYOUT_VERSION`]; a new tree is stamped with it. A layout
/// this build does not know is refused.
pub(super) fn upgrade(tree: &sled::Tree, dir: &Path) -> Result<()> {
    loop {
        let layout = tree.get(keys::META_LAYOUT)?;
        let version = layout
            .as_deref()
            .map(|v| <[u8; 8]>::try_from(v).map(u64::from_be_bytes));
        match version {
            None => {
                tree.insert(keys::META_LAYOUT, &LAYOUT_VERSION.to_be_bytes())?;
                return Ok(());
            }
            Some(Ok(LAYOUT_VERSION)) => return Ok(()),
            Some(Ok(1)) => layout_2::upgrade(tree)?,
            Some(Ok(2)) => layout_3::upgrade(tree)?,
            Some(Ok(3)) => layout_4::upgrade(tree)?,
            Some(Ok(4)) => layout_5::upgrade(tree)?,
            Some(Ok(5)) => layout_6::upgrade(tree)?,
            _ => {
                return Err(Error::Internal(format!(
                    "the database in {} has key layout {:?}, this build reads layout \
                     {LAYOUT_VERSION}; use the matching newsstore version",
                    dir.display(),
                    layout.as_deref().unwrap_or_default()
                )));
            }
        }
    }
}

/// Removes every key under each of `prefixes`, then records `layout`.
pub(super) fn drop_key_spaces(tree: &sled::Tree, prefixes: &[&[u8]], layout: u64) -> Result<()> {
    tracing::info!(layout, "upgrading the database: dropping key spaces");
    let mut removed = 0u64;
    for prefix in prefixes {
        let mut batch = sled::Batch::default();
        for key in tree.scan_prefix(prefix).keys() {
            batch.remove(key?);
            removed += 1;
            if removed.is_multiple_of(10_000) {
                tree.apply_batch(std::mem::take(&mut batch))?;
            }
        }
        tree.apply_batch(batch)?;
    }
    tree.insert(keys::META_LAYOUT, &layout.to_be_bytes())?;
    tree.flush()?;
    tracing::info!(removed, layout, "database upgraded");
    Ok(())
}
