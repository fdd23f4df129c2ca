//! Whiteouts and opaque directories, in both styles.
//!
//! Read side: any layer may hide lower entries with a character device 0/0 or
//! a `.wh.NAME` file, and may make a directory opaque with the
//! `trusted.overlay.opaque`/`user.overlay.opaque` xattr set to `y` or with a
//! `.wh..wh..opq` file. Write side: the style probed at mount time
//! ([`WhiteoutStyle`]). Every write is atomic where the kernel lets it be: a
//! whiteout replaces an upper entry by a rename from the work dir.

use std::os::fd::RawFd;

use crate::layers::{Layers, WhiteoutStyle};
use crate::sys::{self, Errno, SysResult};

pub(crate) const WH_PREFIX: &[u8] = b".wh.";
pub(crate) const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// The xattrs that mark an opaque directory; never shown through the mount.
const OPAQUE_XATTRS: [&[u8]; 2] = [b"trusted.overlay.opaque", b"user.overlay.opaque"];

pub(crate) fn is_whiteout_stat(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

/// `.wh.NAME` for NAME.
pub(crate) fn wh_name(name: &[u8]) -> Vec<u8> {
    let mut v = WH_PREFIX.to_vec();
    v.extend_from_slice(name);
    v
}

/// True for names that are overlay metadata and never listed.
pub(crate) fn is_meta_name(name: &[u8]) -> bool {
    name.starts_with(WH_PREFIX)
}

/// Whether `path` (a directory in `dirfd`'s layer) is opaque.
pub(crate) fn is_opaque(dirfd: RawFd, path: &[u8]) -> bool {
    for x in OPAQUE_XATTRS {
        if let Ok(v) = sys::lgetxattr(dirfd, path, x) {
            if v == b"y" {
                return true;
            }
        }
    }
    sys::exists(dirfd, &sys::join(path, OPAQUE_MARKER))
}

impl Layers {
    /// Marks upper directory `path` opaque.
    pub(crate) fn set_opaque(&self, path: &[u8]) -> SysResult<()> {
        let up = self.upper_fd()?;
        self.set_opaque_at(up, path)
    }

    pub(crate) fn set_opaque_at(&self, dirfd: RawFd, path: &[u8]) -> SysResult<()> {
        if self.style == WhiteoutStyle::CharDev
            && sys::lsetxattr(dirfd, path, self.opaque_xattr, b"y", 0).is_ok()
        {
            return Ok(());
        }
        let fd = sys::openat(
            dirfd,
            &sys::join(path, OPAQUE_MARKER),
            libc::O_WRONLY | libc::O_CREAT,
            0o000,
        )?;
        drop(fd);
        Ok(())
    }

    /// Replaces whatever non-directory sits at upper `path` (or nothing) with
    /// a whiteout.
    pub(crate) fn whiteout(&self, path: &[u8]) -> SysResult<()> {
        let up = self.upper_fd()?;
        match self.style {
            WhiteoutStyle::CharDev => {
                let work = self.work_fd().ok_or(Errno(libc::EROFS))?;
                // Where nothing sits yet, creating the name is atomic by
                // itself; like overlayfs, link one shared whiteout inode
                // rather than allocating an inode per whiteout.
                match self.link_shared_whiteout(work, up, path) {
                    Err(Errno(libc::EEXIST)) => {}
                    r => return r,
                }
                let tmp = self.tmp_name();
                sys::mknodat(work, &tmp, libc::S_IFCHR, 0)?;
                sys::renameat2(work, &tmp, up, path, 0).inspect_err(|_| {
                    let _ = sys::unlinkat(work, &tmp, 0);
                })
            }
            WhiteoutStyle::Files => {
                let (dir, name) = sys::split(path);
                let wh = sys::join(dir, &wh_name(name));
                drop(sys::openat(up, &wh, libc::O_WRONLY | libc::O_CREAT, 0o000)?);
                match sys::unlinkat(up, path, 0) {
                    Ok(()) | Err(Errno(libc::ENOENT)) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        }
    }

    fn link_shared_whiteout(&self, work: RawFd, up: RawFd, path: &[u8]) -> SysResult<()> {
        const SHARED: &[u8] = b"berth-unionfs/whiteout";
        for _ in 0..2 {
            match sys::linkat(work, SHARED, up, path) {
                Err(Errno(libc::ENOENT)) => {}
                Err(Errno(libc::EMLINK)) => {
                    // Link count exhausted: retire it and start a new one.
                    let _ = sys::unlinkat(work, SHARED, 0);
                }
                Err(Errno(libc::EEXIST)) => return Err(Errno(libc::EEXIST)),
                // Links unsupported or refused: a private whiteout will do.
                Err(_) => return sys::mknodat(up, path, libc::S_IFCHR, 0),
                Ok(()) => return Ok(()),
            }
            match sys::mknodat(work, SHARED, libc::S_IFCHR, 0) {
                Ok(()) | Err(Errno(libc::EEXIST)) => {
                    // Remember it so listings know its links without a stat
                    // (the work dir shares the upper layer's filesystem).
                    if let Ok(st) = sys::fstatat(work, SHARED) {
                        if crate::whiteout::is_whiteout_stat(&st) {
                            self.shared_whiteout
                                .store(st.st_ino, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
                Err(_) => return sys::mknodat(up, path, libc::S_IFCHR, 0),
            }
        }
        sys::mknodat(up, path, libc::S_IFCHR, 0)
    }

    /// Removes any whiteout for `path` from the upper layer. Returns whether
    /// one was there (then a new directory at `path` must be opaque).
    pub(crate) fn clear_whiteout(&self, path: &[u8]) -> SysResult<bool> {
        let up = self.upper_fd()?;
        let mut had = false;
        if let Ok(st) = sys::fstatat(up, path) {
            if is_whiteout_stat(&st) {
                sys::unlinkat(up, path, 0)?;
                had = true;
            }
        }
        let (dir, name) = sys::split(path);
        match sys::unlinkat(up, &sys::join(dir, &wh_name(name)), 0) {
            Ok(()) => had = true,
            Err(Errno(libc::ENOENT)) => {}
            Err(e) => return Err(e),
        }
        Ok(had)
    }
}

/// True for xattr names that belong to the overlay itself and are hidden.
pub(crate) fn is_private_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.")
        || name.starts_with(b"user.overlay.")
        || name.starts_with(b"user.berth-unionfs.")
        || name == b"user.containers.override_stat"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(wh_name(b"a"), b".wh.a");
        assert!(is_meta_name(b".wh.a"));
        assert!(is_meta_name(OPAQUE_MARKER));
        assert!(!is_meta_name(b"a.wh."));
        assert!(is_private_xattr(b"trusted.overlay.opaque"));
        assert!(is_private_xattr(b"user.overlay.origin"));
        assert!(!is_private_xattr(b"user.foo"));
    }
}
