//! An independent, durable record of how far the change log was acknowledged.
//!
//! sled's recovery stops at the first damaged record of its log and serves what came
//! before it as if it were the whole database: a damaged log would silently roll the store
//! back, and new writes would reuse the lost sequence numbers. So the group commit also
//! writes, after every flush and before any write it covers is acknowledged, the highest
//! sequence number it made durable into a small file of its own (`acknowledged`, beside
//! sled's files), and syncs it. At open a store that ends before that number has lost
//! acknowledged changes, and is refused (see `Store::open_with`).
//!
//! The file holds one fixed-width line, readable by an operator:
//! `<sequence, 20 digits> <check, 16 hex digits>\n`. The check catches a damaged file; a
//! rewrite is one write of the same length at offset 0.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The file's name, in the store's folder.
pub const FILE: &str = "acknowledged";

/// The length of the one line the file holds.
const LINE_LEN: usize = 20 + 1 + 16 + 1;

/// The open record file.
pub struct Acknowledged {
    file: File,
    path: PathBuf,
}

/// What the file said when it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// No file yet: a new store, or one written by a build that kept none.
    Nothing,
    /// Every change up to this sequence number was acknowledged to a caller.
    Upto(u64),
}

impl Acknowledged {
    /// Opens (creating if needed) the record in `dir` and reads what it holds. A file that
    /// is not one line of the expected form is an error: what was acknowledged is unknown.
    pub fn open(dir: &Path) -> Result<(Acknowledged, Recorded)> {
        let path = dir.join(FILE);
        let io = |what: &'static str| {
            let path = path.clone();
            move |e: std::io::Error| Error::Internal(format!("{what} {}: {e}", path.display()))
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("cannot open the acknowledged-sequence record"))?;
        let mut text = Vec::new();
        file.by_ref()
            .take(LINE_LEN as u64 + 1)
            .read_to_end(&mut text)
            .map_err(io("cannot read the acknowledged-sequence record"))?;
        let recorded = if text.is_empty() {
            Recorded::Nothing
        } else {
            Recorded::Upto(parse(&text).ok_or_else(|| {
                Error::DataLoss(format!(
                    "the acknowledged-sequence record {} is damaged ({:?}), so it is unknown \
                     how far the change log was acknowledged. Restore the last backup into a \
                     new folder (`newsstore restore`), or, to serve this database as it is, \
                     check it (`newsstore check`) and remove that file",
                    path.display(),
                    String::from_utf8_lossy(&text[..text.len().min(64)])
                ))
            })?)
        };
        Ok((Acknowledged { file, path }, recorded))
    }

    /// Records durably that every change up to `seq` is acknowledged. Called after the
    /// store's flush and before the writes it covers are answered.
    pub fn record(&self, seq: u64) -> Result<()> {
        self.file
            .write_all_at(line(seq).as_bytes(), 0)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| {
                Error::from_io(
                    &format!(
                        "writing the acknowledged-sequence record {}",
                        self.path.display()
                    ),
                    e,
                )
            })
    }
}

fn check(seq: u64) -> u64 {
    // Any fixed mixing will do: this catches damage, not tampering.
    (seq ^ 0x6e65_7773_7374_6f72).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn line(seq: u64) -> String {
    format!("{seq:020} {:016x}\n", check(seq))
}

fn parse(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?;
    if text.len() != LINE_LEN {
        return None;
    }
    let (seq, rest) = text.split_at(20);
    let seq: u64 = seq.parse().ok()?;
    let stored = u64::from_str_radix(rest.strip_prefix(' ')?.strip_suffix('\n')?, 16).ok()?;
    (stored == check(seq)).then_some(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (record, recorded) = Acknowledged::open(dir.path()).unwrap();
        assert_eq!(recorded, Recorded::Nothing);
        record.record(7).unwrap();
        record.record(12_345).unwrap();
        drop(record);
        let (_, recorded) = Acknowledged::open(dir.path()).unwrap();
        assert_eq!(recorded, Recorded::Upto(12_345));

        let path = dir.path().join(FILE);
        let mut text = std::fs::read(&path).unwrap();
        text[19] = b'6';
        std::fs::write(&path, &text).unwrap();
        let err = Acknowledged::open(dir.path()).err().unwrap();
        assert!(matches!(err, Error::DataLoss(_)), "{err}");
        assert!(err.to_string().contains("damaged"), "{err}");
    }
}
