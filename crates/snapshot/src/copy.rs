//! Copying filesystem entries with everything that makes them what they are:
//! contents (reflinked or copied in the kernel where possible), owner, mode,
//! xattrs, times, hard links, symlinks and device nodes.
//!
//! What the process may not do (chown to an unmapped id, a trusted. xattr
//! without privilege, a device node in a user namespace) is skipped, as
//! rootless tools do; everything else is an error.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_overridestat::{OverrideStat, OVERRIDE_XATTR};
use rustix::fs::{AtFlags, Mode, Timestamps, CWD};

use crate::error::{Context, Result};
use crate::sys;

/// Hard links seen so far: (device, inode) of a source → the first copy.
#[derive(Default)]
pub(crate) struct Links(HashMap<(u64, u64), PathBuf>);

/// Copies non-directory `src` (described by `meta`) to `dst`, which must not
/// exist. A source with other links already copied becomes a link to the
/// copy.
pub(crate) fn copy_node(src: &Path, meta: &Metadata, dst: &Path, links: &mut Links) -> Result<()> {
    if meta.nlink() > 1 {
        let id = (meta.dev(), meta.ino());
        if let Some(first) = links.0.get(&id) {
            return std::fs::hard_link(first, dst).ctx("linking", dst);
        }
        links.0.insert(id, dst.to_path_buf());
    }
    let ft = meta.file_type();
    if ft.is_file() {
        copy_file(src, dst)?;
    } else if ft.is_symlink() {
        let target = std::fs::read_link(src).ctx("reading link", src)?;
        std::os::unix::fs::symlink(&target, dst).ctx("creating symlink", dst)?;
    } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() || ft.is_socket() {
        let kind = rustix::fs::FileType::from_raw_mode(meta.mode());
        match rustix::fs::mknodat(CWD, dst, kind, Mode::from_raw_mode(0o600), meta.rdev()) {
            Ok(()) => {}
            // Device nodes need CAP_MKNOD in the initial namespace.
            Err(rustix::io::Errno::PERM) if ft.is_char_device() || ft.is_block_device() => {
                log::debug!("skipping device node {}: not permitted", dst.display());
                return Ok(());
            }
            Err(e) => return Err(e).ctx("creating node", dst),
        }
    }
    copy_metadata(src, meta, dst)
}

/// Copies what directory `src` holds into the existing directory `dst`
/// (a new volume seeded from its image), everything kept as
/// [`copy_node`] keeps it, then gives `dst` the owner and mode of `src`.
/// Symlinks are copied as links, never followed.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    fn contents(src: &Path, dst: &Path, links: &mut Links) -> Result<()> {
        for entry in std::fs::read_dir(src).ctx("listing", src)? {
            let from = entry.ctx("listing", src)?.path();
            let to = dst.join(from.file_name().expect("a listed entry has a name"));
            let meta = from.symlink_metadata().ctx("reading", &from)?;
            if meta.is_dir() {
                make_dir(&to)?;
                contents(&from, &to, links)?;
                copy_metadata(&from, &meta, &to)?;
            } else {
                copy_node(&from, &meta, &to, links)?;
            }
        }
        Ok(())
    }
    contents(src, dst, &mut Links::default())?;
    let meta = src.symlink_metadata().ctx("reading", src)?;
    copy_metadata(src, &meta, dst)
}

/// Makes directory `dst` for source directory `meta`, writable by us until
/// [`copy_metadata`] sets the real mode once its contents are in.
pub(crate) fn make_dir(dst: &Path) -> Result<()> {
    std::fs::create_dir(dst).ctx("creating directory", dst)?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o700)).ctx("chmod", dst)
}

fn copy_file(src: &Path, dst: &Path) -> Result<()> {
    let from = File::open(src).ctx("opening", src)?;
    let to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode_0600()
        .open(dst)
        .ctx("creating", dst)?;
    // A reflink shares the blocks (btrfs, xfs): instant and no extra space.
    if rustix::fs::ioctl_ficlone(&to, &from).is_ok() {
        return Ok(());
    }
    let len = from.metadata().ctx("reading", src)?.len();
    let mut left = len;
    let mut in_kernel = true;
    while left > 0 && in_kernel {
        match rustix::fs::copy_file_range(&from, None, &to, None, left as usize) {
            Ok(0) => break,
            Ok(n) => left -= n as u64,
            // Across filesystems on old kernels, or special files: fall back.
            Err(rustix::io::Errno::XDEV)
            | Err(rustix::io::Errno::INVAL)
            | Err(rustix::io::Errno::NOSYS)
            | Err(rustix::io::Errno::OPNOTSUPP) => in_kernel = false,
            Err(e) => return Err(e).ctx("copying to", dst),
        }
    }
    if left > 0 {
        let mut from = from;
        let mut to = to;
        io::Seek::seek(&mut from, io::SeekFrom::Start(len - left)).ctx("seeking", src)?;
        io::Seek::seek(&mut to, io::SeekFrom::Start(len - left)).ctx("seeking", dst)?;
        io::copy(&mut from, &mut to).ctx("copying to", dst)?;
    }
    Ok(())
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}
impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

/// Gives `dst` the owner, xattrs, mode and times of `src`. Last, because
/// writing contents changes times and chown clears set-id bits.
/// The owner a rootless unpack recorded for `path` (see
/// `berth_overridestat`), if it has one; only regular files and
/// directories can.
fn recorded_owner(path: &Path, meta: &Metadata) -> Option<OverrideStat> {
    if !(meta.is_file() || meta.is_dir()) {
        return None;
    }
    let value = sys::get_xattr(path, OVERRIDE_XATTR).ok()??;
    OverrideStat::parse(&value)
}

/// Owner, group and mode as a container sees `path`: the recorded ones
/// where a rootless unpack kept them beside the file.
pub(crate) fn shown_owner_and_mode(path: &Path, meta: &Metadata) -> (u32, u32, u32) {
    match recorded_owner(path, meta) {
        Some(o) => (o.uid, o.gid, (meta.mode() & libc::S_IFMT) | o.mode),
        None => (meta.uid(), meta.gid(), meta.mode()),
    }
}

/// Where the copy `dst` carries a recorded owner and this process may give
/// it away (root of a rootless user namespace), the copy gets that owner
/// and mode for real and loses the record, which would otherwise go stale.
/// Without the privilege the record stays, as it was.
fn apply_recorded_owner(dst: &Path) -> Result<()> {
    let meta = dst.symlink_metadata().ctx("reading", dst)?;
    let Some(o) = recorded_owner(dst, &meta) else {
        return Ok(());
    };
    match rustix::fs::chownat(
        CWD,
        dst,
        Some(rustix::fs::Uid::from_raw(o.uid)),
        Some(rustix::fs::Gid::from_raw(o.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    ) {
        Ok(()) => {}
        Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::PERM) => return Ok(()),
        Err(e) => return Err(e).ctx("chown", dst),
    }
    rustix::fs::chmod(dst, Mode::from_raw_mode(o.mode)).ctx("chmod", dst)?;
    match rustix::fs::lremovexattr(dst, OVERRIDE_XATTR) {
        Ok(()) | Err(rustix::io::Errno::NODATA) => Ok(()),
        Err(e) => Err(e).ctx("removing the recorded owner of", dst),
    }
}

pub(crate) fn copy_metadata(src: &Path, meta: &Metadata, dst: &Path) -> Result<()> {
    let is_link = meta.file_type().is_symlink();
    match rustix::fs::chownat(
        CWD,
        dst,
        Some(rustix::fs::Uid::from_raw(meta.uid())),
        Some(rustix::fs::Gid::from_raw(meta.gid())),
        AtFlags::SYMLINK_NOFOLLOW,
    ) {
        Ok(()) => {}
        // An id with no mapping in this user namespace, or no privilege.
        Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::PERM) => {}
        Err(e) => return Err(e).ctx("chown", dst),
    }
    for name in sys::list_xattrs(src).ctx("listing xattrs of", src)? {
        if sys::is_overlay_xattr(&name) {
            continue;
        }
        let Some(name) = name.to_str() else { continue };
        let Some(value) = sys::get_xattr(src, name).ctx("reading xattrs of", src)? else {
            continue;
        };
        match rustix::fs::lsetxattr(dst, name, &value, rustix::fs::XattrFlags::empty()) {
            Ok(()) => {}
            Err(rustix::io::Errno::PERM) | Err(rustix::io::Errno::NOTSUP) => {
                log::debug!("skipping xattr {name} on {}: not permitted", dst.display());
            }
            Err(e) => return Err(e).ctx("setting xattrs on", dst),
        }
    }
    if !is_link {
        rustix::fs::chmod(dst, Mode::from_raw_mode(meta.mode() & 0o7777)).ctx("chmod", dst)?;
        apply_recorded_owner(dst)?;
    }
    let times = Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec() as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec() as _,
        },
    };
    rustix::fs::utimensat(CWD, dst, &times, AtFlags::SYMLINK_NOFOLLOW).ctx("setting times on", dst)
}

/// Removes `path` whatever it is; nothing there is fine.
pub(crate) fn remove_any(path: &Path) -> Result<()> {
    let meta = match path.symlink_metadata() {
        Ok(m) => m,
        Err(e) if crate::lowers::is_absent(&e) => return Ok(()),
        Err(e) => return Err(e).ctx("reading", path),
    };
    if meta.is_dir() {
        match std::fs::remove_dir_all(path) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                make_removable(path)?;
                std::fs::remove_dir_all(path).ctx("removing", path)
            }
            r => r.ctx("removing", path),
        }
    } else {
        std::fs::remove_file(path).ctx("removing", path)
    }
}

/// Read-only directories (0555, as images often have) cannot be emptied
/// by a non-root owner: open them up first.
fn make_removable(dir: &Path) -> Result<()> {
    let meta = dir.symlink_metadata().ctx("reading", dir)?;
    if meta.mode() & 0o700 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).ctx("chmod", dir)?;
    }
    for entry in std::fs::read_dir(dir).ctx("listing", dir)? {
        let entry = entry.ctx("listing", dir)?;
        if entry.file_type().ctx("reading", entry.path())?.is_dir() {
            make_removable(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_tree_keeps_modes_and_links_and_follows_no_symlink() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        std::fs::create_dir(src.path().join("sub")).unwrap();
        std::fs::write(src.path().join("sub/f"), b"data").unwrap();
        std::fs::set_permissions(src.path().join("sub/f"), PermissionsExt::from_mode(0o640))
            .unwrap();
        std::fs::hard_link(src.path().join("sub/f"), src.path().join("hard")).unwrap();
        std::os::unix::fs::symlink(outside.path(), src.path().join("out")).unwrap();
        std::fs::set_permissions(src.path(), PermissionsExt::from_mode(0o711)).unwrap();
        copy_tree(src.path(), dst.path()).unwrap();
        let d = dst.path();
        assert_eq!(std::fs::read(d.join("sub/f")).unwrap(), b"data");
        let meta = d.join("sub/f").metadata().unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o640);
        assert_eq!(meta.ino(), d.join("hard").metadata().unwrap().ino());
        assert!(d.join("out").symlink_metadata().unwrap().is_symlink());
        assert_eq!(std::fs::read_link(d.join("out")).unwrap(), outside.path());
        assert_eq!(d.metadata().unwrap().mode() & 0o7777, 0o711);
    }
}
