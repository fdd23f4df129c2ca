//! Blobs: raw content (compressed layers as received, manifests) kept under
//! `blobs/sha256/<hex>`, named by the digest of their bytes.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use berth_digest::{Algorithm, Digest, Hasher};

use crate::error::{IoContext, Result, StoreError};
use crate::fsutil::{self, TempEntry};
use crate::Store;

/// Big enough that the many small reads of a tar reader do not each become a
/// write syscall.
const BUF_SIZE: usize = 256 * 1024;

/// Streams a blob into a temp file, hashing it on the way. Dropping it
/// without [`BlobWriter::commit`] discards the data.
pub struct BlobWriter {
    entry: TempEntry,
    out: BufWriter<File>,
    hasher: Hasher,
    len: u64,
    store: Store,
}

/// A fully written blob not yet renamed into `blobs/` (a pending layer's).
#[derive(Debug)]
pub(crate) struct WrittenBlob {
    pub(crate) entry: TempEntry,
    pub(crate) digest: Digest,
}

impl Store {
    /// A writer for a new blob.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        let (entry, file) = TempEntry::file(&self.tmp_dir(), "blob")?;
        Ok(BlobWriter {
            entry,
            out: BufWriter::with_capacity(BUF_SIZE, file),
            hasher: Hasher::new(Algorithm::Sha256),
            len: 0,
            store: self.clone(),
        })
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        File::open(&path).ctx("opening blob", path)
    }

    /// Moves a written blob into `blobs/` (keeping the existing copy if there
    /// is one: same name, same content). Call with the store lock held, so gc
    /// cannot remove an existing copy between this and its first use.
    pub(crate) fn install_blob(&self, blob: WrittenBlob) -> Result<Digest> {
        let dest = self.blob_path(&blob.digest);
        if fsutil::rename_noreplace(blob.entry.path(), &dest)? {
            blob.entry.keep();
            fsutil::fsync_parent(&dest)?;
        }
        Ok(blob.digest)
    }
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes the blob durable and stores it under its digest, which is
    /// returned. With `expected`, a different digest is an error and nothing
    /// is stored.
    pub fn commit(self, expected: Option<&Digest>) -> Result<Digest> {
        let store = self.store.clone();
        let blob = self.finish(true)?;
        if let Some(expected) = expected {
            if *expected != blob.digest {
                return Err(StoreError::DigestMismatch {
                    expected: expected.clone(),
                    actual: blob.digest,
                });
            }
        }
        let _lock = store.lock()?;
        store.install_blob(blob)
    }

    /// Flushes (and with `sync`, fsyncs) the temp file.
    pub(crate) fn finish(self, sync: bool) -> Result<WrittenBlob> {
        let BlobWriter {
            entry, out, hasher, ..
        } = self;
        let file = out
            .into_inner()
            .map_err(|e| e.into_error())
            .ctx("writing blob", entry.path())?;
        if sync {
            file.sync_all().ctx("syncing blob", entry.path())?;
        }
        Ok(WrittenBlob {
            entry,
            digest: hasher.finish(),
        })
    }

    pub(crate) fn temp_path(&self) -> &std::path::Path {
        self.entry.path()
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
