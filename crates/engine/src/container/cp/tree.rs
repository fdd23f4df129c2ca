//! One side of a copy: a directory tree opened as a root, in which every
//! path is resolved with `openat2(RESOLVE_IN_ROOT)`: symlinks (absolute or
//! `..`) resolve as if the tree were `/`, so nothing reaches outside it.
//! The host is the tree rooted at `/`.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

/// A tree to copy from or into.
pub(super) struct Tree {
    root: OwnedFd,
    resolve: ResolveFlags,
}

impl Tree {
    /// The host's own filesystem.
    pub(super) fn host() -> io::Result<Tree> {
        Tree::open(Path::new("/"), ResolveFlags::empty())
    }

    /// A container's root filesystem at `dir`.
    pub(super) fn container(dir: &Path) -> io::Result<Tree> {
        Tree::open(dir, ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS)
    }

    fn open(dir: &Path, resolve: ResolveFlags) -> io::Result<Tree> {
        let root = rustix::fs::open(
            dir,
            OFlags::DIRECTORY | OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Tree { root, resolve })
    }

    /// Opens the absolute in-tree `path`, following every symlink inside
    /// the tree (the last one too unless `flags` has `NOFOLLOW`).
    pub(super) fn open_at(&self, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
        let rel = relative(path);
        loop {
            match rustix::fs::openat2(
                &self.root,
                rel,
                flags | OFlags::CLOEXEC,
                Mode::empty(),
                self.resolve,
            ) {
                // IN_ROOT gives up when a rename races a `..`: just retry.
                Err(Errno::AGAIN) => continue,
                other => return other.map_err(io::Error::from),
            }
        }
    }

    /// Opens directory `path` for reading its entries and as a `*at` base.
    pub(super) fn open_dir(&self, path: &Path) -> io::Result<OwnedFd> {
        self.open_at(path, OFlags::DIRECTORY | OFlags::RDONLY)
    }

    /// The entry `path` names, not following a final symlink; `None` when
    /// it (or a directory above it) does not exist.
    pub(super) fn lstat(&self, path: &Path) -> io::Result<Option<Stat>> {
        let found = match split(path) {
            None => rustix::fs::fstat(&self.root).map_err(io::Error::from),
            Some((parent, name)) => self.open_dir(&parent).and_then(|dir| {
                rustix::fs::statat(&dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(io::Error::from)
            }),
        };
        match found {
            Ok(st) => Ok(Some(st)),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The target of symlink `path`.
    pub(super) fn readlink(&self, path: &Path) -> io::Result<PathBuf> {
        let (parent, name) = split(path).ok_or_else(|| io::Error::from(Errno::INVAL))?;
        let dir = self.open_dir(&parent)?;
        read_link(dir.as_fd(), &name)
    }
}

/// A symlink's target.
pub(super) fn read_link(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<PathBuf> {
    let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
    Ok(PathBuf::from(OsString::from_vec(target.into_bytes())))
}

/// ENOENT, or ENOTDIR for a path through a non-directory: both mean the
/// path names nothing.
pub(super) fn is_missing(e: &io::Error) -> bool {
    let code = e.raw_os_error();
    code == Some(Errno::NOENT.raw_os_error()) || code == Some(Errno::NOTDIR.raw_os_error())
}

/// `path` without its leading `/`, `.` for the root.
fn relative(path: &Path) -> &Path {
    match path.strip_prefix("/") {
        Ok(p) if p.as_os_str().is_empty() => Path::new("."),
        Ok(p) => p,
        Err(_) => path,
    }
}

/// A clean absolute path's parent and last name; `None` for `/`.
pub(super) fn split(path: &Path) -> Option<(PathBuf, OsString)> {
    let name = path.file_name()?.to_os_string();
    let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    Some((parent, name))
}

/// Go's `filepath.Clean` of `path` made absolute: no empty, `.` or `..`
/// components (`..` at the top stays at the top).
pub(super) fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// The bytes of a path, for looking at how the user ended it.
pub(super) fn bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_is_lexical_and_stays_inside() {
        assert_eq!(clean(Path::new("etc//passwd")), Path::new("/etc/passwd"));
        assert_eq!(clean(Path::new("/a/./b/../c/")), Path::new("/a/c"));
        assert_eq!(clean(Path::new("/../../x")), Path::new("/x"));
        assert_eq!(clean(Path::new("")), Path::new("/"));
        assert_eq!(clean(Path::new("/dir/.")), Path::new("/dir"));
    }

    #[test]
    fn split_names_parent_and_base() {
        assert_eq!(
            split(Path::new("/etc/passwd")),
            Some((PathBuf::from("/etc"), OsString::from("passwd")))
        );
        assert_eq!(
            split(Path::new("/x")),
            Some((PathBuf::from("/"), OsString::from("x")))
        );
        assert_eq!(split(Path::new("/")), None);
    }

    #[test]
    fn symlinks_resolve_inside_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), b"inside").unwrap();
        std::fs::write(dir.path().join("secret"), b"outside").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../etc", root.join("up")).unwrap();
        std::os::unix::fs::symlink("../secret", root.join("escape")).unwrap();
        let tree = Tree::container(&root).unwrap();
        for p in ["/abs/passwd", "/up/passwd", "/../etc/passwd"] {
            let fd = tree.open_at(Path::new(p), OFlags::RDONLY).unwrap();
            let text = std::io::read_to_string(std::fs::File::from(fd)).unwrap();
            assert_eq!(text, "inside", "{p}");
        }
        let err = tree
            .open_at(Path::new("/escape"), OFlags::RDONLY)
            .unwrap_err();
        assert!(is_missing(&err), "{err}");
        assert!(tree.lstat(Path::new("/escape")).unwrap().is_some());
        assert!(tree.lstat(Path::new("/nope/x")).unwrap().is_none());
        assert!(tree.lstat(Path::new("/etc/passwd/x")).unwrap().is_none());
        assert_eq!(
            tree.readlink(Path::new("/escape")).unwrap(),
            Path::new("../secret")
        );
    }
}
