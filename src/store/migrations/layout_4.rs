//! Layout 4 moved the entity indexes by time (`m`) and by salience (`l`) out of sled into
//! memory (see docs/design/entity-index-in-memory.md).
//! Upgrading removes the old keys.

use crate::error::Result;
use crate::store::keys;

pub(super) fn upgrade(tree: &sled::Tree) -> Result<()> {
    super::drop_key_spaces(tree, &[&[keys::MENTION], &[keys::SALIENCE]], 4)
}
