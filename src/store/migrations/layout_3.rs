//! Layout 3 dropped the all-kinds entity ranking, which lists of every kind now merge
//! from the per-kind rankings.
//! Upgrading removes the old keys.

use crate::error::Result;
use crate::store::keys;

pub(super) fn upgrade(tree: &sled::Tree) -> Result<()> {
    super::drop_key_spaces(tree, &[&[keys::RANK, keys::RANK_ALL_BEFORE_LAYOUT_3]], 3)
}
