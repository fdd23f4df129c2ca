//! berth-store: the content-addressed image store.
//!
//! Laid out like Docker's `/var/lib/docker`, so people who know one know the
//! other (see DESIGN.md, "On disk"):
//!
//! ```text
//! image/<driver>/imagedb/content/sha256/<image-id>      config JSON, verbatim
//! image/<driver>/imagedb/metadata/sha256/<image-id>/    parent, lastUpdated
//! image/<driver>/layerdb/sha256/<chain-id>/             diff, size, cache-id, parent, blob,
//!                                                       tar-split.zst, unsynced
//! image/<driver>/layerdb/mounts/<container-id>/         mount-id, init-id, parent
//! image/<driver>/repositories.json                      name -> image ID
//! blobs/sha256/<hex>                                    raw blobs as received
//! <driver>/<cache-id>/diff                              an unpacked layer
//! tmp/                                                  temp entries (same filesystem)
//! ```
//!
//! Crash safety: every file is written under `tmp/` and renamed into place;
//! image configs, metadata and references are synced first. A layer becomes
//! visible only when its layerdb directory is renamed in, after all its
//! files are complete; it is not synced (a `syncfs` per layer cost more than
//! the import on a busy disk) but marked `unsynced` with the boot ID. A
//! crashed process loses nothing that way. A crash of the machine (power
//! cut, kernel panic) can lose the layers committed in the last seconds
//! before it (the kernel's writeback window, ~30 s): after the reboot each
//! layer marked by an earlier boot is rebuilt from its tar-split and checked
//! against its diffID on first use, kept if it matches and removed if not,
//! so a layer under a valid chainID is never incomplete; an image whose
//! layer was removed that way reports the layer missing until it is
//! imported, loaded or pulled again. Without a boot ID (no /proc) layers are
//! synced with one `syncfs` before they are published. Concurrency: readers take no lock (they only ever
//! see renamed-in entries); mutations of references, imagedb and layerdb and
//! gc hold an `flock` on `image/<driver>/.lock` for a short critical section.
//! A layer already present by chainID is never stored twice, and a layer a
//! live handle has just committed is leased to it, so another process's gc
//! cannot remove it before an image names it.
//!
//! Not here: reference parsing and image formats (berth-image), tar handling
//! (berth-archive), mounting (berth-snapshot).

mod blob;
mod error;
mod fsutil;
mod gc;
mod image;
mod layer;
mod lease;
mod mounts;
mod refs;
mod unsynced;

#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_digest::Digest;

pub use blob::BlobWriter;
pub use error::{Result, StoreError};
pub use gc::{GcReport, Problem};
pub use image::ImageMeta;
pub use layer::{LayerInfo, PendingLayer};
pub use mounts::MountInfo;
pub use refs::References;

use error::IoContext;

/// Names under the root that a driver directory must not shadow.
const RESERVED: &[&str] = &["image", "blobs", "tmp", "containers", "volumes"];

/// An open image store rooted at one directory, for one storage driver.
///
/// Cheap to clone and share between threads: every operation opens what it
/// needs.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    driver: String,
    /// Shared by clones: one lease per handle opened with [`Store::open`].
    lease: Arc<Mutex<Option<lease::Lease>>>,
}

impl Store {
    /// Opens (creating when needed) the store at `root` for `driver`, and
    /// removes temp entries abandoned by crashed processes.
    pub fn open(root: &Path, driver: &str) -> Result<Store> {
        let valid = !driver.is_empty()
            && !driver.starts_with('.')
            && !RESERVED.contains(&driver)
            && driver
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            return Err(StoreError::BadDriver(driver.to_owned()));
        }
        fs::create_dir_all(root).ctx("creating store root", root)?;
        let root = fs::canonicalize(root).ctx("resolving store root", root)?;
        let store = Store {
            root,
            driver: driver.to_owned(),
            lease: Arc::default(),
        };
        for dir in [
            store.imagedb_content_dir(),
            store.imagedb_metadata_dir(),
            store.layerdb_dir(),
            store.mounts_dir(),
            store.blobs_dir().join("sha256"),
            store.driver_dir(),
            store.tmp_dir(),
        ] {
            fs::create_dir_all(&dir).ctx("creating store dir", &dir)?;
        }
        // Leftovers of a crash are invisible anyway (nothing refers to them);
        // failing to remove them must not stop anyone from using the store.
        if let Err(e) = fsutil::clean_temps(&store.tmp_dir()) {
            log::warn!("cleaning temp entries: {e}");
        }
        fsutil::spread_subdirs(&store.tmp_dir());
        Ok(store)
    }

    /// Where the store lives unless told otherwise: `$BERTH_ROOT`, else
    /// `/var/lib/berth` as root, else `$XDG_DATA_HOME/berth` or
    /// `~/.local/share/berth`.
    pub fn default_root() -> PathBuf {
        let var = |name: &str| std::env::var_os(name);
        default_root_from(var, rustix::process::geteuid().is_root())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn driver(&self) -> &str {
        &self.driver
    }

    /// Where the blob with this digest is (or would be) kept.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir()
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    fn image_dir(&self) -> PathBuf {
        self.root.join("image").join(&self.driver)
    }

    fn imagedb_content_dir(&self) -> PathBuf {
        self.image_dir().join("imagedb/content/sha256")
    }

    fn imagedb_metadata_dir(&self) -> PathBuf {
        self.image_dir().join("imagedb/metadata/sha256")
    }

    fn layerdb_dir(&self) -> PathBuf {
        self.image_dir().join("layerdb/sha256")
    }

    fn mounts_dir(&self) -> PathBuf {
        self.image_dir().join("layerdb/mounts")
    }

    fn repositories_path(&self) -> PathBuf {
        self.image_dir().join("repositories.json")
    }

    fn lock_path(&self) -> PathBuf {
        self.image_dir().join(".lock")
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    fn driver_dir(&self) -> PathBuf {
        self.root.join(&self.driver)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Takes the store-wide lock for one mutation.
    fn lock(&self) -> Result<fsutil::StoreLock> {
        fsutil::StoreLock::acquire(&self.lock_path())
    }
}

/// [`Store::default_root`] with the environment and privilege given.
fn default_root_from(var: impl Fn(&str) -> Option<OsString>, is_root: bool) -> PathBuf {
    let var = |name: &str| var(name).filter(|v| !v.is_empty());
    if let Some(root) = var("BERTH_ROOT") {
        return PathBuf::from(root);
    }
    if is_root {
        return PathBuf::from("/var/lib/berth");
    }
    if let Some(data) = var("XDG_DATA_HOME") {
        return PathBuf::from(data).join("berth");
    }
    let home = var("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    home.join(".local/share/berth")
}
