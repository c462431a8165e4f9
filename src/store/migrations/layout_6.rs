//! Layout 6 moved entities' counters from their records to the entity index (see
//! docs/design/derived-counters.md).

use crate::error::Result;
use crate::model::{Article, Entity};
use crate::store::records::{article_entities_record, entity_record};
use crate::store::{codec, keys};

/// Records layout 6, where an entity's counters are no longer in its record but counted by
/// the entity index from the `x` records, which gained each mention's count and kind: every
/// `x` record is written again from its article, and every entity record without its
/// counters. Interrupted, it simply runs again at the next open.
pub(super) fn upgrade(tree: &sled::Tree) -> Result<()> {
    tracing::info!(
        layout = 6,
        "upgrading the database: entity counters move to the entity index"
    );
    let mut rewritten = 0u64;
    let mut batch = sled::Batch::default();
    let mut put = |batch: &mut sled::Batch, key: &[u8], value: Vec<u8>| -> Result<()> {
        batch.insert(key, value);
        rewritten += 1;
        if rewritten.is_multiple_of(10_000) {
            tree.apply_batch(std::mem::take(batch))?;
        }
        Ok(())
    };
    for value in tree.scan_prefix([keys::ARTICLE]).values() {
        let article: Article = codec::decode(&value?)?;
        let key = keys::article_entities(&article.id);
        put(&mut batch, &key, article_entities_record(&article)?)?;
    }
    for entry in tree.scan_prefix([keys::ENTITY]) {
        let (key, value) = entry?;
        let entity: Entity = codec::decode(&value)?;
        put(&mut batch, &key, entity_record(&entity)?)?;
    }
    tree.apply_batch(batch)?;
    tree.insert(keys::META_LAYOUT, &6u64.to_be_bytes())?;
    tree.flush()?;
    tracing::info!(rewritten, layout = 6, "database upgraded");
    Ok(())
}
