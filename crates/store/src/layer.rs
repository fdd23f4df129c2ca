//! Layers: unpacked once into `<driver>/<cache-id>/diff`, recorded in
//! `layerdb/sha256/<chain-id>/`. The exact tar is read back from a tar-split
//! record (`tar-split.zst` in the layerdb entry: the tar headers and padding,
//! file bodies by path) and the unpacked files, so a layer is written once,
//! not twice. Compressed input is also kept as a blob (cheap, and what a
//! registry push wants); plain input is not. Layers stored before tar-split
//! have their raw input as a blob and are read back from it.
//!
//! Importing is two steps so layers can be unpacked in any order or in
//! parallel and chained afterwards: [`Store::unpack_layer`] (no lock, private
//! temp dir) and [`Store::commit_layer`] (short locked rename).

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use berth_archive::{ApplyOptions, Compression, SplitOptions};
use berth_digest::{ChainId, DiffId, Digest};

use crate::blob::{BlobWriter, WrittenBlob};
use crate::error::{IoContext, Result, StoreError};
use crate::fsutil::{self, TempEntry};
use crate::{unsynced, Store};

/// A layer unpacked into a temp dir, not yet part of the store. Dropping it
/// removes the unpacked files and the kept blob.
#[derive(Debug)]
pub struct PendingLayer {
    /// sha256 of the uncompressed tar stream.
    pub diff_id: DiffId,
    /// Bytes in the uncompressed tar stream.
    pub size: u64,
    /// Digest of the raw input as given, when it is kept (compressed input).
    pub blob: Option<Digest>,
    /// Bytes of the raw input.
    pub blob_size: u64,
    /// How the raw input was compressed.
    pub compression: Compression,
    dir: TempEntry,
    blob_file: Option<WrittenBlob>,
}

/// The tar-split record in a layerdb entry (and, before commit, in the
/// pending layer's temp dir).
const SPLIT_FILE: &str = "tar-split.zst";
/// Beside `diff`: bodies of files the layer replaced or removed itself.
const SPLIT_STASH: &str = "split-stash";

/// A committed layer, as recorded in its layerdb directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    pub chain_id: ChainId,
    pub diff_id: DiffId,
    /// Bytes in the uncompressed tar stream.
    pub size: u64,
    /// Name of the layer's directory under `<root>/<driver>/`.
    pub cache_id: String,
    pub parent: Option<ChainId>,
    /// The kept raw input, if any.
    pub blob: Option<Digest>,
}

impl Store {
    /// Unpacks a (plain, gzip or zstd) layer tar into a private temp dir,
    /// recording its tar-split and keeping compressed input as a blob, in
    /// the same pass.
    pub fn unpack_layer<R: Read>(&self, mut r: R, opts: &ApplyOptions<'_>) -> Result<PendingLayer> {
        let mut head = Vec::with_capacity(4);
        (&mut r)
            .take(4)
            .read_to_end(&mut head)
            .ctx("reading layer input", self.tmp_dir())?;
        let keep_blob = berth_archive::sniff(&head) != Compression::None;
        let input = io::Cursor::new(head).chain(r);
        self.unpack_inner(input, keep_blob, |src, dir| {
            let split = SplitOptions {
                file: &dir.join(SPLIT_FILE),
                stash: &dir.join(SPLIT_STASH),
            };
            let applied = berth_archive::apply_layer_split(src, &dir.join("diff"), opts, &split)?;
            Ok((applied.diff_id, applied.size, applied.compression))
        })
    }

    /// [`Store::unpack_layer`] with the unpacking step given: the seam tests
    /// use to exercise the store without depending on the tar codec. The
    /// raw input is always kept as a blob (there is no tar-split).
    #[cfg(test)]
    pub(crate) fn unpack_with<R: Read>(
        &self,
        r: R,
        apply: impl FnOnce(&mut dyn Read, &Path) -> Result<(DiffId, u64, Compression)>,
    ) -> Result<PendingLayer> {
        self.unpack_inner(r, true, |src, dir| apply(src, &dir.join("diff")))
    }

    /// Unpacks through `apply`, given the temp layer dir (which holds `diff`).
    fn unpack_inner<R: Read>(
        &self,
        r: R,
        keep_blob: bool,
        apply: impl FnOnce(&mut dyn Read, &Path) -> Result<(DiffId, u64, Compression)>,
    ) -> Result<PendingLayer> {
        let dir = TempEntry::dir(&self.tmp_dir(), "layer")?;
        let diff = dir.path().join("diff");
        fs::create_dir(&diff).ctx("creating layer dir", &diff)?;
        let mut blob = if keep_blob {
            Some(self.blob_writer()?)
        } else {
            None
        };
        let blob_path = blob.as_ref().map(|b| b.temp_path().to_owned());
        let mut tee = Tee {
            inner: r,
            blob: blob.as_mut(),
            len: 0,
            write_error: None,
        };
        let applied = apply(&mut tee, dir.path());
        let kept_blob_error = |e: io::Error| {
            let path = blob_path.clone().unwrap_or_default();
            Err(e).ctx("writing kept blob", path)
        };
        if let Some(e) = tee.write_error.take() {
            return kept_blob_error(e);
        }
        let (diff_id, size, compression) = applied?;
        // The unpacker may stop at the end of the compressed stream; whatever
        // follows is part of the input as given, so it belongs in the blob.
        let drained = io::copy(&mut tee, &mut io::sink());
        if let Some(e) = tee.write_error.take() {
            return kept_blob_error(e);
        }
        drained.ctx("reading layer input after", &diff)?;
        let blob_size = tee.len;
        // No fsync here: commit_layer makes everything durable at once.
        let blob_file = blob.map(|b| b.finish(false)).transpose()?;
        Ok(PendingLayer {
            diff_id,
            size,
            blob: blob_file.as_ref().map(|b| b.digest.clone()),
            blob_size,
            compression,
            dir,
            blob_file,
        })
    }

    /// Makes a pending layer part of the store on top of `parent` and returns
    /// its chainID. If that chainID is present already (imported earlier or
    /// by a concurrent process), the pending copy is discarded. Either way
    /// the layer is leased to this handle: no other process's gc removes it
    /// while the handle lives, so it can still be named by `put_image`.
    pub fn commit_layer(&self, pending: PendingLayer, parent: Option<&ChainId>) -> Result<ChainId> {
        let chain = ChainId::child(parent, &pending.diff_id);
        // `layer` drops an entry an earlier boot left incomplete.
        if self.layer(&chain)?.is_some() {
            let _lock = self.lock()?;
            // Checked again under the lock: a gc may just have removed it.
            if self.layer_dir(&chain).is_dir() {
                self.hold(&chain)?;
                return Ok(chain);
            }
        }
        let cache_id = fsutil::random_hex();
        let entry = TempEntry::dir(&self.tmp_dir(), "layerdb")?;
        let field = |name: &str, value: &str| {
            fsutil::write_file(&entry.path().join(name), value.as_bytes())
        };
        field("diff", &pending.diff_id.to_string())?;
        field("size", &pending.size.to_string())?;
        field("cache-id", &cache_id)?;
        if let Some(blob) = &pending.blob {
            field("blob", &blob.to_string())?;
        }
        let split = pending.dir.path().join(SPLIT_FILE);
        if split.exists() {
            let to = entry.path().join(SPLIT_FILE);
            fs::rename(&split, &to).ctx("moving tar-split record", &to)?;
        }
        if let Some(parent) = parent {
            field("parent", &parent.to_string())?;
        }
        let synced = match unsynced::boot_id() {
            // Published unsynced and checked after a reboot: see `unsynced`.
            Some(boot) => {
                field(unsynced::UNSYNCED, boot)?;
                false
            }
            None => {
                // Without a boot ID, one syncfs makes the unpacked files, the
                // blob and the entry durable: cheaper than an fsync per file.
                let root = fs::File::open(&self.root).ctx("opening store root", &self.root)?;
                rustix::fs::syncfs(&root).ctx("syncing store filesystem", &self.root)?;
                true
            }
        };

        let _lock = self.lock()?;
        if let Some(parent) = parent {
            if !self.layer_dir(parent).is_dir() {
                return Err(StoreError::ParentMissing(parent.clone()));
            }
        }
        let dest = self.layer_dir(&chain);
        if dest.is_dir() {
            self.hold(&chain)?;
            return Ok(chain);
        }
        let PendingLayer { dir, blob_file, .. } = pending;
        if let Some(blob_file) = blob_file {
            self.install_blob(blob_file)?;
        }
        let cache_dir = self.driver_dir().join(&cache_id);
        fs::rename(dir.path(), &cache_dir).ctx("moving layer into place", &cache_dir)?;
        dir.keep();
        if synced {
            fsutil::fsync_dir(&self.driver_dir())?;
        }
        // The commit point: the layer exists once its layerdb dir does.
        if !fsutil::rename_noreplace(entry.path(), &dest)? {
            fsutil::remove_any(&cache_dir).ctx("removing duplicate layer", &cache_dir)?;
            self.hold(&chain)?;
            return Ok(chain);
        }
        entry.keep();
        if synced {
            fsutil::fsync_dir(&self.layerdb_dir())?;
        }
        self.hold(&chain)?;
        Ok(chain)
    }

    /// The layer with this chainID, if present.
    pub fn layer(&self, chain: &ChainId) -> Result<Option<LayerInfo>> {
        let dir = self.layer_dir(chain);
        let read = match read_layer(chain, &dir) {
            // Readers take no lock: a gc may have removed the entry while we
            // read it, which makes it absent, not corrupt.
            Err(StoreError::Corrupt { .. }) if !dir.exists() => return Ok(None),
            other => other,
        };
        if !unsynced::needs_check(&dir) {
            return read;
        }
        // Written unsynced before a reboot: usable only if still complete.
        let info = read.ok().flatten();
        Ok(match self.check_unsynced(chain, info.as_ref())? {
            true => info,
            false => None,
        })
    }

    /// Every committed layer, sorted by chainID.
    pub fn layers(&self) -> Result<Vec<LayerInfo>> {
        let mut out = Vec::new();
        for chain in self.layer_ids()? {
            if let Some(info) = self.layer(&chain)? {
                out.push(info);
            }
        }
        Ok(out)
    }

    /// The directory holding the layer's unpacked files.
    pub fn layer_diff_dir(&self, layer: &LayerInfo) -> PathBuf {
        self.driver_dir().join(&layer.cache_id).join("diff")
    }

    /// The layer's uncompressed tar, byte for byte as it was imported:
    /// rebuilt from its tar-split record and checked against its diffID as
    /// it streams (the reader fails if a file in the layer was changed), or
    /// for layers stored before tar-split, decompressed from the kept blob.
    pub fn open_layer_tar(&self, layer: &LayerInfo) -> Result<Box<dyn Read + Send>> {
        let split_path = self.layer_dir(&layer.chain_id).join(SPLIT_FILE);
        match fs::File::open(&split_path) {
            Ok(split) => {
                let diff = self.layer_diff_dir(layer);
                let stash = self.driver_dir().join(&layer.cache_id).join(SPLIT_STASH);
                let tar = berth_archive::reassemble(split, &diff, &stash, &layer.diff_id)
                    .ctx("reading tar-split record", &split_path)?;
                // Callers copy in small pieces (tar: 8 KiB); the buffer
                // makes that one read per file body instead of many.
                return Ok(Box::new(io::BufReader::with_capacity(1 << 20, tar)));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx("opening tar-split record", &split_path),
        }
        let blob = layer
            .blob
            .as_ref()
            .ok_or_else(|| StoreError::NoBlob(layer.chain_id.clone()))?;
        let file = self.open_blob(blob)?;
        let (_, tar) =
            berth_archive::decompress(file).ctx("decompressing blob", self.blob_path(blob))?;
        Ok(tar)
    }

    pub(crate) fn layer_dir(&self, chain: &ChainId) -> PathBuf {
        self.layerdb_dir().join(chain.hex())
    }

    /// chainIDs of the layerdb entries (names that are not IDs are skipped).
    pub(crate) fn layer_ids(&self) -> Result<Vec<ChainId>> {
        let dir = self.layerdb_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).ctx("listing", &dir)? {
            let name = entry.ctx("listing", &dir)?.file_name();
            match name.to_str().map(Digest::from_sha256_hex) {
                Some(Ok(d)) => out.push(ChainId::new(d)),
                _ => log::warn!("ignoring {:?} in {}", name, dir.display()),
            }
        }
        out.sort();
        Ok(out)
    }
}

fn read_layer(chain: &ChainId, dir: &Path) -> Result<Option<LayerInfo>> {
    let diff = match fsutil::read_optional(&dir.join("diff"))? {
        Some(diff) => diff,
        // No dir: absent.
        None if !dir.exists() => return Ok(None),
        // The dir may have been renamed into place, whole, between the two
        // looks (a concurrent commit): look once more. A dir that still
        // has no `diff` is broken.
        None => fsutil::read_optional(&dir.join("diff"))?
            .ok_or_else(|| corrupt(&dir.join("diff"), "missing"))?,
    };
    let diff_id = parse_field(&dir.join("diff"), &diff)?;
    let size_path = dir.join("size");
    let size = required(&size_path)?
        .trim()
        .parse()
        .map_err(|_| corrupt(&size_path, "not a number"))?;
    let cache_path = dir.join("cache-id");
    let cache_id = required(&cache_path)?.trim().to_owned();
    if !valid_name(&cache_id) {
        return Err(corrupt(&cache_path, "not a directory name"));
    }
    let parent = optional_field(&dir.join("parent"))?;
    let blob = optional_field(&dir.join("blob"))?;
    Ok(Some(LayerInfo {
        chain_id: chain.clone(),
        diff_id,
        size,
        cache_id,
        parent,
        blob,
    }))
}

/// Reads the input, counting it and copying every byte read into the blob
/// writer if there is one.
struct Tee<'a, R> {
    inner: R,
    blob: Option<&'a mut BlobWriter>,
    len: u64,
    /// Kept apart so a full disk is reported as such, not as a bad layer.
    write_error: Option<io::Error>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.len += n as u64;
        let Some(blob) = self.blob.as_mut() else {
            return Ok(n);
        };
        if let Err(e) = blob.write_all(&buf[..n]) {
            let kind = e.kind();
            self.write_error = Some(e);
            return Err(io::Error::new(kind, "writing the kept blob failed"));
        }
        Ok(n)
    }
}

pub(crate) fn corrupt(path: &Path, reason: &str) -> StoreError {
    StoreError::Corrupt {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Cache and mount IDs become directory names: no separators, no dot names.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

fn required(path: &Path) -> Result<String> {
    fsutil::read_optional(path)?.ok_or_else(|| corrupt(path, "missing"))
}

pub(crate) fn parse_field<T: std::str::FromStr>(path: &Path, text: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    text.trim()
        .parse()
        .map_err(|e: T::Err| corrupt(path, &e.to_string()))
}

pub(crate) fn optional_field<T: std::str::FromStr>(path: &Path) -> Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    fsutil::read_optional(path)?
        .map(|text| parse_field(path, &text))
        .transpose()
}
