//! Layout 2 added the salience index (`l`). Layout 4 keeps that index in memory, built at
//! open, so upgrading to 2 now only records the number.

use crate::error::Result;
use crate::store::keys;

/// Records layout 2, whose salience index (`l`) layout 4 keeps in memory, built at open.
pub(super) fn upgrade(tree: &sled::Tree) -> Result<()> {
    tree.insert(keys::META_LAYOUT, &2u64.to_be_bytes())?;
    Ok(())
}
