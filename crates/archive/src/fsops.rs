//! Thin fd-relative filesystem helpers. Every path handed to the kernel here
//! is resolved beneath a directory fd and never through a symlink, so a
//! hostile layer cannot steer a write outside the target directory.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Beneath the dir fd, no symlinks at all (not even inside), no /proc magic.
pub(crate) const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

// No O_NOFOLLOW: RESOLVE_NO_SYMLINKS already refuses a trailing symlink, and
// with ELOOP (reported as unsafe) rather than O_NOFOLLOW's ENOTDIR.
const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::RDONLY)
    .union(OFlags::CLOEXEC);

/// Opens directory `rel` beneath `root`; `rel` empty means `root` itself.
pub(crate) fn open_dir(root: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    Ok(rustix::fs::openat2(
        root,
        rel,
        DIR_FLAGS,
        Mode::empty(),
        RESOLVE,
    )?)
}

/// Opens directory `rel` beneath `root`, creating missing components (0755).
pub(crate) fn open_or_create_dir(root: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    match open_dir(root, rel) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        other => return other,
    }
    let mut cur = open_dir(root, Path::new(""))?;
    for comp in rel.components() {
        let Component::Normal(name) = comp else {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        };
        match rustix::fs::mkdirat(&cur, name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        cur = open_dir(cur.as_fd(), Path::new(name))?;
    }
    Ok(cur)
}

/// File type of `name` in `dir` without following a symlink; `None` if absent.
pub(crate) fn file_type_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<FileType>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes `name` from `dir` recursively, like `rm -rf`. Returns whether a
/// directory was removed (callers holding cached dir fds must drop them).
pub(crate) fn remove_all(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(false),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    if file_type_at(dir, name)? != Some(FileType::Directory) {
        // EPERM on a non-directory is a real permission problem.
        rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
        return Ok(false);
    }
    let sub = open_dir(dir, Path::new(name))?;
    // Without write permission on the child we could not empty it (rootless).
    let _ = rustix::fs::fchmod(&sub, Mode::from_raw_mode(0o700));
    clear_dir(sub.as_fd(), |_| false)?;
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    Ok(true)
}

/// Removes every entry of `dir` for which `keep` returns false.
pub(crate) fn clear_dir(dir: BorrowedFd<'_>, keep: impl Fn(&OsStr) -> bool) -> io::Result<()> {
    let names = list_dir(dir)?;
    for name in names {
        if !keep(&name) {
            remove_all(dir, &name)?;
        }
    }
    Ok(())
}

/// Names in `dir` (without `.` and `..`), sorted bytewise.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<std::ffi::OsString>> {
    let fd = open_dir(dir, Path::new("."))?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_owned());
        }
    }
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}
