//! Serving a `fuse.berth-unionfs` mount from this process.
//!
//! The session runs on threads of its own. They are started from a thread
//! that first unshares its filesystem context (`CLONE_FS`): berth-unionfs
//! sets the umask to 0 (the kernel has already applied the caller's), and
//! that must not leak into the rest of the process, which may be creating
//! files of its own.

use std::path::Path;

use crate::error::{Context, Result, SnapshotError};
use crate::mount::Mount;
use crate::overlayfs::OverlayOptions;

/// Mounts `m` on `target` and serves it until [`unmount`].
pub(crate) fn mount(m: &Mount, target: &Path) -> Result<fuser::BackgroundSession> {
    let parsed = OverlayOptions::parse(&m.fstype, &m.options)?;
    let mut opts = berth_unionfs::Options {
        lowerdirs: parsed.lowers,
        upperdir: parsed.upper,
        workdir: parsed.work,
        fsname: m.source.clone(),
        ..Default::default()
    };
    for o in &parsed.other {
        match o.as_str() {
            "ro" => opts.read_only = true,
            "xattr_permissions=0" => opts.override_stat = false,
            "xattr_permissions=1" | "xattr_permissions=2" => opts.override_stat = true,
            // Kernel overlay options a FUSE overlay has no use for.
            "userxattr" | "index=off" | "redirect_dir=off" | "metacopy=off" => {}
            other => {
                return Err(SnapshotError::BadMount {
                    fstype: m.fstype.clone(),
                    reason: format!("unknown option {other:?}"),
                })
            }
        }
    }
    let target = target.to_path_buf();
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: CLONE_FS only gives this thread (and the session threads
            // it starts) their own cwd, root and umask.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }
                .ctx("unsharing the umask for", &target)?;
            berth_unionfs::spawn(&opts, &target).map_err(|source| SnapshotError::Fuse {
                path: target.clone(),
                source,
            })
        })
        .join()
        .unwrap_or_else(|_| {
            Err(SnapshotError::BadMount {
                fstype: m.fstype.clone(),
                reason: "FUSE mount thread panicked".into(),
            })
        })
    })
}

/// Unmounts and stops serving. A busy mount is detached lazily and its
/// session left to end when the kernel lets go of it.
pub(crate) fn unmount(session: fuser::BackgroundSession, target: &Path) -> Result<()> {
    match session.umount_and_join() {
        Ok(()) => Ok(()),
        Err(e) if crate::mount::is_mount_point(target) => {
            log::debug!("unmounting {}: {e}; detaching", target.display());
            crate::mount::unmount(target)
        }
        Err(e) => Err(e).ctx("stopping the FUSE session of", target),
    }
}
