//! Backups: a consistent copy of the whole store while it serves, and restoring one.
//!
//! sled has no point-in-time iterator, so the copy is taken under the writer lock: writes
//! wait while it is written (reads go on), and the copy is exactly the state after one
//! change-log sequence. It is written to a local file first, which is fast, and only then
//! streamed wherever it goes, so writers wait for the disk and not for a slow network.
//!
//! Format: `NEWSSTORE-BACKUP` and a format number, then each key and value with a
//! big-endian u32 length before it, then a u32::MAX end mark, the entry count (u64) and a
//! SHA-256 of everything before it. Restore refuses a file whose checksum or count does not
//! match, so a truncated or damaged backup is never half-restored silently.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::PoisonError;

use sha2::{Digest, Sha256};

use super::Store;
use super::hashing::Hashing;
use crate::error::{Error, Result};

const MAGIC: &[u8] = b"NEWSSTORE-BACKUP";
const FORMAT: u32 = 1;
const END: u32 = u32::MAX;

/// Longer keys than this are never written (ids are bounded), so a backup holding one was
/// not made by newsstore.
const MAX_KEY_BYTES: usize = 4096;

/// Whether one restored record is what the store would have written: articles, entities
/// and change-log entries decode and sit under the key they give, and every article id
/// (of articles, past revisions, changes) keeps the article-id rule.
fn validate_record(key: &[u8], value: &[u8]) -> std::result::Result<(), String> {
    match key.first() {
        Some(&super::keys::ARTICLE) => {
            let article: crate::model::Article = super::codec::decode(value)
                .map_err(|e| format!("an article record does not decode ({e})"))?;
            if !crate::model::is_valid_article_id(&article.id) {
                return Err(format!(
                    "it holds article id {}, which breaks the article-id rule",
                    crate::error::quoted(&article.id)
                ));
            }
            if key != super::keys::article(&article.id).as_slice() {
                return Err(format!(
                    "article {} is stored under another article's key",
                    crate::error::quoted(&article.id)
                ));
            }
        }
        Some(&super::keys::ENTITY) => {
            let entity: crate::model::Entity = super::codec::decode(value)
                .map_err(|e| format!("an entity record does not decode ({e})"))?;
            if key != super::keys::entity(&entity.id).as_slice() {
                return Err(format!(
                    "entity {} is stored under another entity's key",
                    crate::error::quoted(&entity.id)
                ));
            }
        }
        Some(&super::keys::REVISION) => {
            // Past revisions are keyed by their article's id: it keeps the rule too.
            let id = key[1..].split(|&b| b == 0).next().unwrap_or_default();
            let valid = std::str::from_utf8(id).is_ok_and(crate::model::is_valid_article_id);
            if !valid {
                return Err(format!(
                    "a past revision is keyed by article id {}, which breaks the article-id \
                     rule",
                    crate::error::quoted(&String::from_utf8_lossy(id))
                ));
            }
        }
        Some(&super::keys::CHANGE) => {
            let change: crate::model::Change = super::codec::decode(value)
                .map_err(|e| format!("a change-log record does not decode ({e})"))?;
            if key != super::keys::change(change.seq).as_slice() {
                return Err(format!("change {} is stored under another key", change.seq));
            }
            if change.kind.is_article() && !crate::model::is_valid_article_id(&change.article_id) {
                return Err(format!(
                    "change {} names article id {}, which breaks the article-id rule",
                    change.seq,
                    crate::error::quoted(&change.article_id)
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// What a backup or restore covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupSummary {
    pub entries: u64,
    /// The change-log sequence the copy is the state after.
    pub sequence: u64,
    /// The log position it is the state after (cluster mode; the change-log sequence
    /// otherwise).
    pub position: u64,
}

fn io(context: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::internal(context, e)
}

impl Store {
    /// Writes a consistent copy of the store to `path`. Writes wait meanwhile.
    pub fn backup_to(&self, path: &Path) -> Result<BackupSummary> {
        let file = std::fs::File::create(path).map_err(io("creating the backup file"))?;
        let mut out: Hashing<_, Sha256> = Hashing::new(BufWriter::new(file));
        let write = io("writing the backup");
        out.put(MAGIC).map_err(&write)?;
        out.put(&FORMAT.to_be_bytes()).map_err(&write)?;
        let summary = {
            let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let sequence = self.last_seq();
            let position = self.position();
            let mut entries = 0u64;
            for entry in self.tree.iter() {
                let (key, value) = entry?;
                for part in [&key[..], &value[..]] {
                    let len = u32::try_from(part.len())
                        .map_err(|_| Error::Internal("a record is over 4 GiB".into()))?;
                    out.put(&len.to_be_bytes()).map_err(&write)?;
                    out.put(part).map_err(&write)?;
                }
                entries += 1;
            }
            BackupSummary {
                entries,
                sequence,
                position,
            }
        };
        out.put(&END.to_be_bytes()).map_err(&write)?;
        out.put(&summary.entries.to_be_bytes()).map_err(&write)?;
        let digest = out.hash.clone().finalize();
        out.inner.write_all(&digest).map_err(&write)?;
        let file = out
            .inner
            .into_inner()
            .map_err(|e| Error::internal("writing the backup", e.error()))?;
        file.sync_all().map_err(io("syncing the backup"))?;
        Ok(summary)
    }

    /// Restores the backup at `backup` into a new store in `dir`, which must not hold one.
    /// The store is built in a sibling folder and renamed into place once whole, so a
    /// failed restore (a truncated or damaged file, a full disk) leaves nothing behind and
    /// can be run again into the same folder.
    pub fn restore(dir: &Path, backup: &Path) -> Result<BackupSummary> {
        let is_empty = |dir: &Path| -> Result<bool> {
            Ok(!dir.exists()
                || std::fs::read_dir(dir)
                    .map_err(io("reading the target folder"))?
                    .next()
                    .is_none())
        };
        if !is_empty(dir)? {
            return Err(Error::Internal(format!(
                "{} is not empty; restore into a new folder (move the old data aside first)",
                dir.display()
            )));
        }
        let name = dir
            .file_name()
            .ok_or_else(|| Error::Internal(format!("cannot restore into {}", dir.display())))?;
        let staging = dir.with_file_name(format!(".{}.restoring", name.to_string_lossy()));
        // A leftover of an interrupted restore is not data.
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(io("clearing an unfinished restore"))?;
        }
        match Self::restore_into(&staging, backup) {
            Ok(summary) => {
                if dir.exists() {
                    std::fs::remove_dir(dir).map_err(io("replacing the empty target folder"))?;
                }
                std::fs::rename(&staging, dir)
                    .map_err(io("moving the restored store into place"))?;
                Ok(summary)
            }
            Err(err) => {
                let _ = std::fs::remove_dir_all(&staging);
                Err(err)
            }
        }
    }

    /// Restores the backup at `backup` into a new store in `dir`.
    fn restore_into(dir: &Path, backup: &Path) -> Result<BackupSummary> {
        let opening = format!("opening the backup {}", backup.display());
        let file = std::fs::File::open(backup).map_err(io(&opening))?;
        let mut input = BufReader::new(file);
        let mut hash = Sha256::new();
        let bad = |why: &str| {
            Error::Internal(format!(
                "{} is not a usable newsstore backup: {why}",
                backup.display()
            ))
        };
        // Never more than the file holds: a length is only trusted as far as bytes follow.
        let mut read = |len: usize, hash: &mut Sha256| -> Result<Vec<u8>> {
            let mut buf = Vec::with_capacity(len.min(1 << 20));
            (&mut input)
                .take(len as u64)
                .read_to_end(&mut buf)
                .map_err(|_| bad("it cannot be read"))?;
            if buf.len() != len {
                return Err(bad("it ends early (truncated?)"));
            }
            hash.update(&buf);
            Ok(buf)
        };
        let magic = read(MAGIC.len() + 4, &mut hash)?;
        if &magic[..MAGIC.len()] != MAGIC {
            return Err(bad("it does not start with the backup header"));
        }
        if magic[MAGIC.len()..] != FORMAT.to_be_bytes() {
            return Err(bad("it is of another format version"));
        }
        let db = sled::Config::new().path(dir).open()?;
        let tree = db.open_tree("newsstore")?;
        let mut entries = 0u64;
        let mut batch = sled::Batch::default();
        let mut in_batch = 0;
        loop {
            let len = u32::from_be_bytes(read(4, &mut hash)?.try_into().unwrap_or([0; 4]));
            if len == END {
                break;
            }
            if len as usize > MAX_KEY_BYTES {
                return Err(bad(&format!(
                    "a key of {len} bytes is longer than any the store writes"
                )));
            }
            let key = read(len as usize, &mut hash)?;
            let value_len = u32::from_be_bytes(read(4, &mut hash)?.try_into().unwrap_or([0; 4]));
            let value = read(value_len as usize, &mut hash)?;
            // The checksum only says the file is whole, not that its maker was honest: each
            // record is held to what the store itself would have written, so no id that
            // could escape a folder or loop an export is ever restored.
            validate_record(&key, &value).map_err(|why| bad(&why))?;
            batch.insert(key, value);
            entries += 1;
            in_batch += 1;
            if in_batch == 10_000 {
                tree.apply_batch(std::mem::take(&mut batch))?;
                in_batch = 0;
            }
        }
        let count = u64::from_be_bytes(read(8, &mut hash)?.try_into().unwrap_or([0; 8]));
        let expected = hash.finalize();
        let mut digest = [0u8; 32];
        input
            .read_exact(&mut digest)
            .map_err(|_| bad("its checksum is missing (truncated?)"))?;
        if count != entries || digest[..] != expected[..] {
            return Err(bad("its checksum does not match (damaged?)"));
        }
        tree.apply_batch(batch)?;
        db.flush()?;
        // Read here rather than by opening the store again: sled releases its file lock only
        // once its background threads let go of the database, some time after the drop.
        let sequence = match tree.scan_prefix([super::keys::CHANGE]).next_back() {
            Some(entry) => super::keys::seq_of_change_key(&entry?.0).unwrap_or(0),
            None => 0,
        };
        let position = match tree.get(super::keys::META_LOG_POSITION)? {
            Some(bytes) => u64::from_be_bytes(
                bytes
                    .as_ref()
                    .try_into()
                    .map_err(|_| bad("its log position is damaged"))?,
            ),
            None => sequence,
        };
        Ok(BackupSummary {
            entries,
            sequence,
            position,
        })
    }
}
