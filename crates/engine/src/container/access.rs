//! A container's merged root filesystem reached from the host, for `export`
//! and `cp`: the live mount of a running container, the plain directory of
//! a vfs snapshot, or else a temporary mount of the container's snapshot in
//! a private directory under the container's own, undone when done (and by
//! `rm`, should a killed berth have left it).

use std::fs;
use std::path::{Path, PathBuf};

use berth_snapshot::MountGuard;

use super::error::{CResult, ContainerError};
use super::run;
use super::state::Record;
use crate::Engine;

/// Names of the temporary mount points in a container's directory.
const TEMP_PREFIX: &str = "mnt-";

/// The root filesystem of one container, as a host path.
pub(crate) struct Rootfs {
    path: PathBuf,
    temp: Option<TempMount>,
}

/// A mount made for one command; dropping it unmounts and removes the dir.
struct TempMount {
    guard: Option<MountGuard>,
    dir: PathBuf,
}

impl Rootfs {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Unmounts what was mounted for this access, reporting failures.
    pub(crate) fn close(mut self) -> CResult<()> {
        let Some(mut temp) = self.temp.take() else {
            return Ok(());
        };
        if let Some(guard) = temp.guard.take() {
            guard.unmount()?;
        }
        let dir = std::mem::take(&mut temp.dir);
        fs::remove_dir(&dir)
            .map_err(|e| ContainerError::io(format!("removing {}", dir.display()), e))
    }
}

impl Drop for TempMount {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            if let Err(e) = guard.unmount() {
                log::warn!("unmounting {}: {e}", self.dir.display());
            }
        }
        // Emptied by `close`, which removed it already.
        if self.dir.as_os_str().is_empty() {
            return;
        }
        if let Err(e) = fs::remove_dir(&self.dir) {
            log::warn!("removing {}: {e}", self.dir.display());
        }
    }
}

impl Engine {
    /// The root filesystem of `record`'s container, mounted if it must be.
    pub(crate) fn open_rootfs(&self, record: &Record) -> CResult<Rootfs> {
        let mount = self.store.mount(&record.id)?.ok_or_else(|| {
            ContainerError::InvalidArgument(format!("container {} has no layer", record.id))
        })?;
        let mounts = self.snapshotter()?.mounts(&mount.mount_id)?;
        // A plain directory (vfs, or a union of nothing) needs no mount.
        if let [m] = mounts.as_slice() {
            if m.fstype == "bind" {
                return Ok(Rootfs {
                    path: PathBuf::from(&m.source),
                    temp: None,
                });
            }
        }
        let dir = self.container_dir(&record.id);
        let live = dir.join("rootfs");
        if run::is_running(record) && berth_snapshot::is_mount_point(&live) {
            return Ok(Rootfs {
                path: live,
                temp: None,
            });
        }
        // (Rootless with a union driver, callers come here as root of the
        // container's user namespace: see `rootless::in_container_userns`.)
        if super::rootless::needs_userns(self) {
            return Err(ContainerError::RootlessUnsupported);
        }
        let target = dir.join(format!("{TEMP_PREFIX}{}", &super::random_hex()[..16]));
        fs::create_dir(&target)
            .map_err(|e| ContainerError::io(format!("creating {}", target.display()), e))?;
        let mut temp = TempMount {
            guard: None,
            dir: target.clone(),
        };
        temp.guard = Some(berth_snapshot::mount_all(&mounts, &target)?);
        Ok(Rootfs {
            path: target,
            temp: Some(temp),
        })
    }
}

/// Unmounts and removes the temporary mounts a killed `export` or `cp` left
/// in the container directory `dir`, before it is deleted.
pub(crate) fn remove_leftovers(dir: &Path) -> CResult<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ContainerError::io(format!("listing {}", dir.display()), e)),
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            run::unmount_rootfs(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("mnt-0123")).unwrap();
        fs::create_dir(dir.path().join("rootfs")).unwrap();
        remove_leftovers(dir.path()).unwrap();
        assert!(!dir.path().join("mnt-0123").exists());
        assert!(dir.path().join("rootfs").exists());
        remove_leftovers(&dir.path().join("gone")).unwrap();
    }
}
