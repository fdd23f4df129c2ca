//! Which drivers work here, found by trying them: a real mount in a scratch
//! directory under the driver's base (so on the filesystem the layers will
//! live on), undone at once.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::copy;
use crate::error::{Result, SnapshotError};
use crate::mount::{mount_all, Mount, FUSE_FSTYPE};
use crate::overlayfs::join_lowerdir;
use crate::{Fuse, Overlay, Snapshotter, Vfs};

/// The drivers in order of preference.
pub const DRIVERS: [&str; 3] = ["overlay", "fuse", "vfs"];

/// Whether kernel overlayfs mounts, with a whiteout and `userxattr` as
/// needed, on the filesystem of `base`.
pub fn probe_overlay(base: &Path) -> bool {
    try_driver("overlay", base).is_ok()
}

/// Whether berth-unionfs can be mounted by this process (`/dev/fuse` opens
/// and the kernel accepts the mount) on the filesystem of `base`.
pub fn probe_fuse(base: &Path) -> bool {
    try_driver("fuse", base).is_ok()
}

/// Picks the storage driver: `forced` (an error if it cannot work here),
/// else the first of overlay, fuse, vfs that does.
pub fn detect(base: &Path, forced: Option<&str>) -> Result<Box<dyn Snapshotter>> {
    if let Some(name) = forced {
        try_driver(name, base)?;
        return open(name, base);
    }
    for name in DRIVERS {
        match try_driver(name, base) {
            Ok(()) => return open(name, base),
            Err(e) => log::debug!("storage driver {name} not usable: {e}"),
        }
    }
    // vfs only fails when `base` itself is unusable: say so.
    try_driver("vfs", base)?;
    open("vfs", base)
}

/// Opens driver `name` without probing it.
pub fn open(name: &str, base: &Path) -> Result<Box<dyn Snapshotter>> {
    Ok(match name {
        "overlay" => Box::new(Overlay::new(base)?),
        "fuse" => Box::new(Fuse::new(base)?),
        "vfs" => Box::new(Vfs::new(base)?),
        other => return Err(SnapshotError::UnknownDriver(other.to_string())),
    })
}

/// Tries driver `name` for real; the error says why it cannot work.
fn try_driver(name: &str, base: &Path) -> Result<()> {
    if !DRIVERS.contains(&name) {
        return Err(SnapshotError::UnknownDriver(name.to_string()));
    }
    let unavailable = |reason: String| SnapshotError::DriverUnavailable {
        driver: name.to_string(),
        reason,
    };
    if name == "fuse" {
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
        {
            return Err(unavailable(format!("cannot open /dev/fuse: {e}")));
        }
    }
    std::fs::create_dir_all(base)
        .map_err(|e| unavailable(format!("creating {}: {e}", base.display())))?;
    let scratch = Scratch::new(base).map_err(|e| unavailable(e.to_string()))?;
    let r = scratch.try_mount(name);
    r.map_err(|e| unavailable(e.to_string()))
}

/// A scratch dir with two lowers (one holding a whiteout), an upper, a work
/// dir and a mount point; removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(base: &Path) -> Result<Scratch> {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = base.join(format!(
            ".probe-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let s = Scratch(dir);
        for sub in ["", "l1", "l2", "upper", "work", "merged"] {
            let p = s.0.join(sub);
            std::fs::create_dir(&p).map_err(|e| SnapshotError::Io {
                op: "creating",
                path: p,
                source: e,
            })?;
        }
        Ok(s)
    }

    fn try_mount(&self, name: &str) -> Result<()> {
        let d = &self.0;
        let m = match name {
            "vfs" => Mount {
                fstype: "bind".into(),
                source: d.join("l1").display().to_string(),
                options: vec!["rbind".into(), "rw".into()],
            },
            _ => Mount {
                fstype: if name == "overlay" {
                    "overlay"
                } else {
                    FUSE_FSTYPE
                }
                .into(),
                source: "berth-probe".into(),
                options: vec![
                    format!("lowerdir={}", join_lowerdir(&[d.join("l1"), d.join("l2")])),
                    format!("upperdir={}", d.join("upper").display()),
                    format!("workdir={}", d.join("work").display()),
                ],
            },
        };
        if name == "vfs" {
            // vfs needs a writable base and nothing else; the bind mount is
            // only used when a caller performs it.
            std::fs::write(d.join("l1/f"), b"x").map_err(|e| SnapshotError::Io {
                op: "writing",
                path: d.join("l1/f"),
                source: e,
            })?;
            return Ok(());
        }
        // A file in l2 deleted through the mount proves whiteouts work too.
        std::fs::write(d.join("l2/f"), b"x").map_err(|e| SnapshotError::Io {
            op: "writing",
            path: d.join("l2/f"),
            source: e,
        })?;
        let guard = mount_all(&[m], &d.join("merged"))?;
        let removed = std::fs::remove_file(d.join("merged/f"));
        guard.unmount()?;
        removed.map_err(|e| SnapshotError::Io {
            op: "deleting a lower file through",
            path: d.join("merged"),
            source: e,
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = copy::remove_any(&self.0) {
            log::warn!("removing probe dir: {e}");
        }
    }
}
