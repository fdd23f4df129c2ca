//! Layers published before their files reached the disk.
//!
//! Syncing a layer's files before publishing it costs more than unpacking it
//! on a busy disk (`syncfs` waits for everything dirty on the filesystem),
//! and Docker does not sync at all. So a layer is published without a sync,
//! with an `unsynced` file in its layerdb entry naming the boot it was
//! written in. While the machine stays up, the page cache is the truth and a
//! crashed process loses nothing. After a reboot (another boot ID), such a
//! layer may have lost file contents in a power cut: its first reader
//! rebuilds its tar and checks it against the diffID. A layer that passes is
//! kept (and the mark dropped: what was just read came from the disk); one
//! that fails is removed, as if its import had never finished. A layer with
//! a damaged or unreadable mark counts as from another boot.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::OnceLock;

use berth_digest::{Algorithm, ChainId, Hasher};

use crate::error::{IoContext, Result};
use crate::fsutil;
use crate::layer::LayerInfo;
use crate::Store;

/// In a layerdb entry: the boot ID of a layer not yet known to be on disk.
pub(crate) const UNSYNCED: &str = "unsynced";

/// This boot's ID, if the kernel tells it (not without /proc).
pub(crate) fn boot_id() -> Option<&'static str> {
    static ID: OnceLock<Option<String>> = OnceLock::new();
    ID.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    })
    .as_deref()
}

/// Whether the layer entry at `dir` was written in an earlier boot without
/// being synced, so its content must be checked before use.
pub(crate) fn needs_check(dir: &Path) -> bool {
    match fs::read_to_string(dir.join(UNSYNCED)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Ok(mark) => Some(mark.trim()) != boot_id(),
        Err(_) => true,
    }
}

impl Store {
    /// Checks a layer left unsynced by an earlier boot (`info` is `None`
    /// when even its entry is unreadable): keeps it (returns true) if its
    /// tar still matches its diffID, removes it otherwise.
    pub(crate) fn check_unsynced(&self, chain: &ChainId, info: Option<&LayerInfo>) -> Result<bool> {
        let dir = self.layer_dir(chain);
        if info.is_some_and(|info| self.layer_matches(info)) {
            match fs::remove_file(dir.join(UNSYNCED)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).ctx("removing unsynced mark", &dir),
            }
            return Ok(true);
        }
        log::warn!("layer {chain} was not complete on disk after a restart: removing it");
        let _lock = self.lock()?;
        if !needs_check(&dir) {
            // Another process checked it meanwhile.
            return Ok(dir.is_dir());
        }
        // Out of sight first (the commit point, reversed), then deleted.
        let gone = self
            .tmp_dir()
            .join(format!("removed-{}", fsutil::random_hex()));
        fs::rename(&dir, &gone).ctx("removing incomplete layer", &dir)?;
        fsutil::remove_any(&gone).ctx("removing incomplete layer", &gone)?;
        // Without a readable cache-id, gc finds the unpacked dir an orphan.
        if let Some(info) = info {
            let cache = self.driver_dir().join(&info.cache_id);
            fsutil::remove_any(&cache).ctx("removing incomplete layer", &cache)?;
        }
        Ok(false)
    }

    fn layer_matches(&self, info: &LayerInfo) -> bool {
        let Ok(mut tar) = self.open_layer_tar(info) else {
            return false;
        };
        let mut hasher = Hasher::new(Algorithm::Sha256);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match io::Read::read(&mut tar, &mut buf) {
                Ok(0) => break,
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        &hasher.finish() == info.diff_id.digest()
    }
}
