//! Checksummed files: a reader or writer that hashes every piece it passes, so a file's
//! last bytes can say whether the rest is whole. Backups hash with SHA-256 (a backup is
//! kept for long and travels between machines); the entity index's snapshot with FxHash (it
//! only has to catch damage to a file that is rebuilt when damaged, at the speed of loading
//! ten million entries).
//!
//! Pieces are hashed exactly as the caller puts and takes them, never as the buffers
//! underneath happen to split them: FxHash's result depends on where the pieces end, so
//! the reader must take the same pieces the writer put.

use std::hash::Hasher;
use std::io::{Read, Write};

/// A running checksum.
pub(super) trait Checksum: Default {
    fn update(&mut self, bytes: &[u8]);
}

impl Checksum for sha2::Sha256 {
    fn update(&mut self, bytes: &[u8]) {
        sha2::Digest::update(self, bytes);
    }
}

impl Checksum for rustc_hash::FxHasher {
    fn update(&mut self, bytes: &[u8]) {
        self.write(bytes);
    }
}

/// A reader or writer and the checksum of what passed through it.
pub(super) struct Hashing<T, H> {
    pub(super) inner: T,
    pub(super) hash: H,
}

impl<T, H: Checksum> Hashing<T, H> {
    pub(super) fn new(inner: T) -> Self {
        Hashing {
            inner,
            hash: H::default(),
        }
    }
}

impl<W: Write, H: Checksum> Hashing<W, H> {
    pub(super) fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hash.update(bytes);
        self.inner.write_all(bytes)
    }
}

impl<R: Read, H: Checksum> Hashing<R, H> {
    pub(super) fn take(&mut self, into: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_exact(into)?;
        self.hash.update(into);
        Ok(())
    }
}
