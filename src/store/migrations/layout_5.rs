//! Layout 5 moved the entity ranking (`r`) into memory too.
//! Upgrading removes the old keys.

use crate::error::Result;
use crate::store::keys;

pub(super) fn upgrade(tree: &sled::Tree) -> Result<()> {
    super::drop_key_spaces(tree, &[&[keys::RANK]], 5)
}
