//! Mounts as data ([`Mount`]) and performing them ([`mount_all`]), with a
//! guard that undoes them.
//!
//! A snapshotter only describes mounts; whoever owns the container's root
//! filesystem (the per-container monitor) performs them, so the same list can
//! be shown, stored, or handed to another process.

use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

use crate::error::{Context, Result, SnapshotError};
use crate::{fuse, overlayfs};

/// One mount to perform, in containerd's shape.
///
/// * `overlay`: kernel overlayfs; options `lowerdir=A:B` (highest first, `:`
///   and `\` escaped with `\`), `upperdir=`, `workdir=` and plain overlay
///   options. [`mount_all`] adds `userxattr` inside a user namespace.
/// * `fuse.berth-unionfs`: the same options, served by berth-unionfs.
/// * `bind`: `source` bound on the target; option `ro` makes it read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `overlay`, `fuse.berth-unionfs` or `bind`.
    pub fstype: String,
    /// The mount's source: a directory for `bind`, a label otherwise.
    pub source: String,
    /// Mount options (see the type's documentation).
    pub options: Vec<String>,
}

/// The fstype of mounts served by berth-unionfs.
pub const FUSE_FSTYPE: &str = "fuse.berth-unionfs";

/// Performs `mounts` in order on `target` (later ones stack on earlier
/// ones). On error, what was already mounted is unmounted again.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<MountGuard> {
    let target = std::path::absolute(target).ctx("resolving", target)?;
    let mut guard = MountGuard {
        target: target.clone(),
        mounted: Vec::new(),
    };
    for m in mounts {
        let done = match m.fstype.as_str() {
            "overlay" => {
                overlayfs::mount(m, &target)?;
                Mounted::Kernel
            }
            FUSE_FSTYPE => Mounted::Fuse(fuse::mount(m, &target)?),
            "bind" => {
                bind(m, &target)?;
                Mounted::Kernel
            }
            other => {
                return Err(SnapshotError::BadMount {
                    fstype: other.to_string(),
                    reason: "berth mounts only overlay, fuse.berth-unionfs and bind".into(),
                })
            }
        };
        guard.mounted.push(done);
    }
    Ok(guard)
}

/// What one performed mount needs to be undone.
enum Mounted {
    /// A kernel mount: unmount the target.
    Kernel,
    /// An in-process FUSE session: unmount and stop serving.
    Fuse(fuser::BackgroundSession),
}

/// Mounts made by [`mount_all`]; dropping it unmounts them (last first).
/// Use [`MountGuard::unmount`] to see errors instead of logging them.
#[must_use = "dropping the guard unmounts at once"]
pub struct MountGuard {
    target: PathBuf,
    mounted: Vec<Mounted>,
}

impl std::fmt::Debug for MountGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountGuard")
            .field("target", &self.target)
            .field("mounts", &self.mounted.len())
            .finish()
    }
}

impl MountGuard {
    /// Where the mounts are.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Unmounts everything, reporting the first failure (the rest is still
    /// attempted).
    pub fn unmount(mut self) -> Result<()> {
        self.unmount_all()
    }

    fn unmount_all(&mut self) -> Result<()> {
        let mut first = Ok(());
        while let Some(m) = self.mounted.pop() {
            let r = match m {
                Mounted::Kernel => unmount(&self.target),
                Mounted::Fuse(session) => fuse::unmount(session, &self.target),
            };
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_all() {
            log::warn!("{e}");
        }
    }
}

/// Unmounts `target`; when it is busy, detaches it lazily so it goes away
/// once its last user does (a leaked mount is worse than a late one).
pub(crate) fn unmount(target: &Path) -> Result<()> {
    match rustix::mount::unmount(target, UnmountFlags::empty()) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::BUSY) => {
            rustix::mount::unmount(target, UnmountFlags::DETACH).ctx("unmounting", target)
        }
        Err(e) => Err(e).ctx("unmounting", target),
    }
}

/// Whether `path` is a mount point (its own mount, per /proc/self/mountinfo).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(path) = path.canonicalize() else {
        return false;
    };
    mount_points().contains(&path)
}

/// Where this process sees a mount, in /proc/self/mountinfo's order (none
/// when it cannot be read).
pub fn mount_points() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|info| {
            info.lines()
                .filter_map(|l| l.split(' ').nth(4))
                .map(|p| PathBuf::from(unescape_mountinfo(p)))
                .collect()
        })
        .unwrap_or_default()
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn bind(m: &Mount, target: &Path) -> Result<()> {
    let source = Path::new(&m.source);
    let mut read_only = false;
    for o in &m.options {
        match o.as_str() {
            "ro" => read_only = true,
            "rw" | "bind" | "rbind" => {}
            other => {
                return Err(SnapshotError::BadMount {
                    fstype: "bind".into(),
                    reason: format!("unknown option {other:?}"),
                })
            }
        }
    }
    rustix::mount::mount_bind_recursive(source, target).ctx("bind-mounting", source)?;
    if read_only {
        // A bind mount takes its flags from the source; remounting read-only
        // must repeat the ones a user namespace may not drop (nodev, ...).
        let mut flags = MountFlags::BIND | MountFlags::RDONLY;
        let locked = rustix::fs::statvfs(target)
            .ctx("inspecting", target)?
            .f_flag;
        for (st, mf) in [
            (rustix::fs::StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
            (rustix::fs::StatVfsMountFlags::NODEV, MountFlags::NODEV),
            (rustix::fs::StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
            (rustix::fs::StatVfsMountFlags::NOATIME, MountFlags::NOATIME),
            (
                rustix::fs::StatVfsMountFlags::NODIRATIME,
                MountFlags::NODIRATIME,
            ),
            (
                rustix::fs::StatVfsMountFlags::RELATIME,
                MountFlags::RELATIME,
            ),
        ] {
            if locked.contains(st) {
                flags |= mf;
            }
        }
        if let Err(e) = rustix::mount::mount_remount(target, flags, "") {
            let _ = unmount(target);
            return Err(e).ctx("remounting read-only", target);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), "/a b");
        assert_eq!(unescape_mountinfo(r"/a\\"), r"/a\\");
        assert_eq!(unescape_mountinfo(r"/x\134y"), r"/x\y");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo(r"/end\04"), r"/end\04");
    }

    #[test]
    fn unknown_fstype_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mount {
            fstype: "ext4".into(),
            source: "/dev/sda".into(),
            options: vec![],
        };
        let err = mount_all(&[m], dir.path()).unwrap_err();
        assert!(matches!(err, SnapshotError::BadMount { .. }), "{err}");
    }

    #[test]
    fn bad_bind_option_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mount {
            fstype: "bind".into(),
            source: dir.path().display().to_string(),
            options: vec!["exec-please".into()],
        };
        let err = mount_all(&[m], dir.path()).unwrap_err();
        assert!(err.to_string().contains("exec-please"), "{err}");
    }
}
