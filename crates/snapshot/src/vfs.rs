//! The `vfs` driver: every snapshot is a full copy of its layers, merged
//! bottom up, in `<base>/<key>/fs`, bind-mounted as the root filesystem.
//! Slow and large, but it needs nothing from the kernel; copies are reflinks
//! where the filesystem allows.

use std::path::{Path, PathBuf};

use crate::changes::{self, Change};
use crate::copy::{self, Links};
use crate::error::{Context, Result, SnapshotError};
use crate::layout::Layout;
use crate::mount::Mount;
use crate::{sys, Snapshotter};

/// Plain copies: the driver of last resort.
#[derive(Debug)]
pub struct Vfs {
    layout: Layout,
}

impl Vfs {
    /// The driver keeping its snapshots under `base` (created if missing).
    pub fn new(base: &Path) -> Result<Vfs> {
        Ok(Vfs {
            layout: Layout::new(base)?,
        })
    }

    fn create(&self, key: &str, lowers: &[PathBuf], writable: bool) -> Result<Vec<Mount>> {
        let dir = self.layout.create(key, lowers, writable)?;
        let fs = dir.join("fs");
        let fill = || -> Result<()> {
            std::fs::create_dir(&fs).ctx("creating", &fs)?;
            for layer in lowers.iter().rev() {
                apply_layer(layer, &fs)?;
            }
            Ok(())
        };
        if let Err(e) = fill() {
            let _ = self.layout.remove(key);
            return Err(e);
        }
        self.mounts(key)
    }
}

impl Snapshotter for Vfs {
    fn name(&self) -> &'static str {
        "vfs"
    }

    fn prepare(&self, key: &str, lowers: &[PathBuf]) -> Result<Vec<Mount>> {
        self.create(key, lowers, true)
    }

    fn view(&self, key: &str, lowers: &[PathBuf]) -> Result<Vec<Mount>> {
        self.create(key, lowers, false)
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let state = self.layout.load(key)?;
        let fs = self.layout.dir(key)?.join("fs");
        Ok(vec![Mount {
            fstype: "bind".into(),
            source: fs.display().to_string(),
            options: vec![
                "rbind".into(),
                if state.writable { "rw" } else { "ro" }.into(),
            ],
        }])
    }

    /// Computes the changes into `<base>/<key>/diff`, afresh on every call.
    fn upper_dir(&self, key: &str) -> Result<PathBuf> {
        let state = self.layout.load(key)?;
        if !state.writable {
            return Err(SnapshotError::ReadOnly(key.to_string()));
        }
        let dir = self.layout.dir(key)?;
        let diff = dir.join("diff");
        copy::remove_any(&diff)?;
        std::fs::create_dir(&diff).ctx("creating", &diff)?;
        changes::write_diff(&dir.join("fs"), &state.lowers, &diff)?;
        Ok(diff)
    }

    fn changes(&self, key: &str, lowers: &[PathBuf]) -> Result<Vec<Change>> {
        let state = self.layout.load(key)?;
        if !state.writable {
            return Err(SnapshotError::ReadOnly(key.to_string()));
        }
        changes::tree_changes(&self.layout.dir(key)?.join("fs"), lowers)
    }

    fn remove(&self, key: &str) -> Result<()> {
        self.layout.remove(key)
    }
}

/// Applies overlay-format layer dir `layer` on top of the tree `dest`:
/// whiteouts delete, opaque directories replace, everything else is copied
/// over what was there.
pub(crate) fn apply_layer(layer: &Path, dest: &Path) -> Result<()> {
    let mut links = Links::default();
    apply_dir(layer, dest, &mut links)?;
    let meta = layer.symlink_metadata().ctx("reading", layer)?;
    copy::copy_metadata(layer, &meta, dest)
}

fn apply_dir(src: &Path, dst: &Path, links: &mut Links) -> Result<()> {
    if sys::is_opaque_dir(src) {
        for entry in std::fs::read_dir(dst).ctx("listing", dst)? {
            copy::remove_any(&entry.ctx("listing", dst)?.path())?;
        }
    }
    for entry in std::fs::read_dir(src).ctx("listing", src)? {
        let entry = entry.ctx("listing", src)?;
        let name = entry.file_name();
        if name == sys::WH_OPAQUE {
            continue;
        }
        if let Some(target) = sys::oci_whiteout_target(&name) {
            copy::remove_any(&dst.join(target))?;
            continue;
        }
        let from = entry.path();
        let to = dst.join(&name);
        let meta = entry.metadata().ctx("reading", &from)?;
        if sys::is_whiteout_dev(&meta) {
            copy::remove_any(&to)?;
            continue;
        }
        if meta.is_dir() {
            // A directory merges with one below it; anything else is replaced.
            let existing = to.symlink_metadata().ok();
            if !existing.as_ref().is_some_and(|m| m.is_dir()) {
                copy::remove_any(&to)?;
                copy::make_dir(&to)?;
            }
            apply_dir(&from, &to, links)?;
            copy::copy_metadata(&from, &meta, &to)?;
        } else {
            copy::remove_any(&to)?;
            copy::copy_node(&from, &meta, &to, links)?;
        }
    }
    Ok(())
}
