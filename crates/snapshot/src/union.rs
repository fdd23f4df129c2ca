//! The union drivers, `overlay` (kernel overlayfs) and `fuse`
//! (berth-unionfs): a snapshot is `<base>/<key>/{upper,work}` stacked on the
//! layers; nothing is copied. They differ only in who serves the mount.

use std::path::{Path, PathBuf};

use crate::changes::{self, Change};
use crate::error::{Context, Result, SnapshotError};
use crate::layout::{Layout, State};
use crate::mount::{Mount, FUSE_FSTYPE};
use crate::overlayfs::join_lowerdir;
use crate::{sys, Snapshotter};

/// Who serves the union.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Kernel,
    Fuse,
}

#[derive(Debug)]
struct Union {
    layout: Layout,
    server: Server,
}

/// Kernel overlayfs: the fastest driver, used whenever the kernel lets this
/// process mount it (as root, or in a user namespace on Linux 5.11+).
#[derive(Debug)]
pub struct Overlay(Union);

/// berth-unionfs over FUSE, served by the process that mounts it: for
/// rootless use where the kernel's overlayfs is not available.
#[derive(Debug)]
pub struct Fuse(Union);

impl Overlay {
    /// The driver keeping its snapshots under `base` (created if missing).
    pub fn new(base: &Path) -> Result<Overlay> {
        Ok(Overlay(Union {
            layout: Layout::new(base)?,
            server: Server::Kernel,
        }))
    }
}

impl Fuse {
    /// The driver keeping its snapshots under `base` (created if missing).
    pub fn new(base: &Path) -> Result<Fuse> {
        Ok(Fuse(Union {
            layout: Layout::new(base)?,
            server: Server::Fuse,
        }))
    }
}

impl Union {
    fn create(&self, key: &str, lowers: &[PathBuf], writable: bool) -> Result<Vec<Mount>> {
        let dir = self.layout.create(key, lowers, writable)?;
        let made = || -> Result<()> {
            for sub in if writable {
                &["upper", "work"][..]
            } else {
                &["empty"][..]
            } {
                std::fs::create_dir(dir.join(sub)).ctx("creating", dir.join(sub))?;
            }
            Ok(())
        };
        if let Err(e) = made() {
            let _ = self.layout.remove(key);
            return Err(e);
        }
        self.mounts(key)
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let state = self.layout.load(key)?;
        let dir = self.layout.dir(key)?;
        Ok(vec![self.mount_of(&dir, &state)])
    }

    fn mount_of(&self, dir: &Path, state: &State) -> Mount {
        let bind = |source: PathBuf, mode: &str| Mount {
            fstype: "bind".into(),
            source: source.display().to_string(),
            options: vec!["rbind".into(), mode.into()],
        };
        let (fstype, source) = match self.server {
            Server::Kernel => ("overlay", "overlay"),
            Server::Fuse => (FUSE_FSTYPE, "berth-unionfs"),
        };
        let mut options = vec![format!("lowerdir={}", join_lowerdir(&state.lowers))];
        if state.writable {
            // A union needs at least one lower layer: a snapshot of nothing
            // (FROM scratch) is its upper dir alone, as containerd does.
            if state.lowers.is_empty() {
                return bind(dir.join("upper"), "rw");
            }
            options.push(format!("upperdir={}", dir.join("upper").display()));
            options.push(format!("workdir={}", dir.join("work").display()));
        } else {
            // Overlay refuses a single lower without an upper; a read-only
            // bind of it is the same view.
            match state.lowers.as_slice() {
                [] => return bind(dir.join("empty"), "ro"),
                [only] => return bind(only.clone(), "ro"),
                _ => {}
            }
        }
        if self.server == Server::Fuse && rootless() {
            // A rootless store records the image's owners beside the files
            // (it cannot chown them): show them.
            options.push("xattr_permissions=2".into());
        }
        if self.server == Server::Kernel {
            if sys::in_user_namespace() {
                options.push("userxattr".into());
            } else {
                // Renamed directories and metadata-only copy-ups would leave
                // overlay-private xattrs in the upper that no layer tar can
                // carry: keep the upper a plain diff.
                options.extend(["index=off", "redirect_dir=off", "metacopy=off"].map(String::from));
            }
        }
        Mount {
            fstype: fstype.into(),
            source: source.into(),
            options,
        }
    }

    fn upper_dir(&self, key: &str) -> Result<PathBuf> {
        if !self.layout.load(key)?.writable {
            return Err(SnapshotError::ReadOnly(key.to_string()));
        }
        Ok(self.layout.dir(key)?.join("upper"))
    }

    fn changes(&self, key: &str, lowers: &[PathBuf]) -> Result<Vec<Change>> {
        let upper = self.upper_dir(key)?;
        changes::upper_changes(&upper, lowers)
    }
}

/// Unprivileged, or root of a user namespace only.
fn rootless() -> bool {
    !rustix::process::geteuid().is_root() || sys::in_user_namespace()
}

macro_rules! union_snapshotter {
    ($ty:ty, $name:literal) => {
        impl Snapshotter for $ty {
            fn name(&self) -> &'static str {
                $name
            }
            fn prepare(&self, key: &str, lowers: &[PathBuf]) -> Result<Vec<Mount>> {
                self.0.create(key, lowers, true)
            }
            fn view(&self, key: &str, lowers: &[PathBuf]) -> Result<Vec<Mount>> {
                self.0.create(key, lowers, false)
            }
            fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
                self.0.mounts(key)
            }
            fn upper_dir(&self, key: &str) -> Result<PathBuf> {
                self.0.upper_dir(key)
            }
            fn changes(&self, key: &str, lowers: &[PathBuf]) -> Result<Vec<Change>> {
                self.0.changes(key, lowers)
            }
            fn remove(&self, key: &str) -> Result<()> {
                self.0.layout.remove(key)
            }
        }
    };
}

union_snapshotter!(Overlay, "overlay");
union_snapshotter!(Fuse, "fuse");
