//! Calling the filesystem without a mount.
//!
//! The FUSE glue (`dispatch`) is one client of the overlay logic; this is
//! another: the same lookup, listing, attribute and copy-up code, called
//! with node ids and names, for tools that want to inspect a stack of layers
//! and for the micro-benchmarks under `benches/` that keep the hot paths'
//! cost visible without a kernel round trip in the measurement.
//!
//! Node ids follow FUSE's rules: [`ROOT_INO`] always exists, and every
//! successful [`lookup`](UnionFs::lookup) holds one reference that
//! [`forget`](UnionFs::forget) drops.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use fuser::FileAttr;

use crate::fs::UnionFs;
use crate::sys::Errno;

/// The root directory's node id.
pub const ROOT_INO: u64 = crate::inode::ROOT;

/// One entry of a merged directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedEntry {
    /// The name in the merged view.
    pub name: OsString,
    /// The inode number `readdir` reports for it.
    pub ino: u64,
}

fn io_err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.0)
}

impl UnionFs {
    /// Looks `name` up in directory `parent` through the layer stack and
    /// takes one reference on the node found.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> io::Result<FileAttr> {
        self.do_lookup(parent, name.as_bytes()).map_err(io_err)
    }

    /// Drops `count` references taken by [`lookup`](Self::lookup).
    pub fn forget(&self, ino: u64, count: u64) {
        self.nodes.lock().forget(ino, count);
    }

    /// The attributes of a node, as the mount shows them.
    pub fn getattr(&self, ino: u64) -> io::Result<FileAttr> {
        self.do_getattr(ino).map_err(io_err)
    }

    /// The merged listing of directory `ino`: higher layers hide lower
    /// entries of the same name, whiteouts hide lower entries and are not
    /// listed, opaque directories stop the merge. `.` and `..` are not
    /// included.
    pub fn list_dir(&self, ino: u64) -> io::Result<Vec<ListedEntry>> {
        let n = self.node(ino).map_err(io_err)?;
        if !n.is_dir() {
            return Err(io_err(Errno(libc::ENOTDIR)));
        }
        Ok(self
            .list(&n)
            .map_err(io_err)?
            .into_iter()
            .map(|e| ListedEntry {
                name: OsString::from_vec(e.name),
                ino: e.ino,
            })
            .collect())
    }

    /// Gives node `ino` an upper-layer copy (data, owner, mode, xattrs,
    /// times) if it has none yet, exactly as a first write would.
    pub fn copy_up_node(&self, ino: u64) -> io::Result<()> {
        self.copy_up(ino, false).map(drop).map_err(io_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Options;

    #[test]
    fn lookup_list_and_copy_up_without_a_mount() {
        let t = tempfile::tempdir().unwrap();
        let (l0, l1, u, w) = (
            t.path().join("l0"),
            t.path().join("l1"),
            t.path().join("u"),
            t.path().join("w"),
        );
        for d in [&l0, &l1, &u, &w] {
            std::fs::create_dir_all(d.join("d")).unwrap();
        }
        std::fs::write(l0.join("d/a"), "top").unwrap();
        std::fs::write(l1.join("d/a"), "hidden").unwrap();
        std::fs::write(l1.join("d/b"), "low").unwrap();
        std::fs::write(l0.join("d/.wh.c"), "").unwrap();
        std::fs::write(l1.join("d/c"), "gone").unwrap();
        let opts = Options::parse(&format!(
            "lowerdir={}:{},upperdir={},workdir={}",
            l0.display(),
            l1.display(),
            u.display(),
            w.display()
        ))
        .unwrap();
        let fs = UnionFs::new(&opts).unwrap();

        let d = fs.lookup(ROOT_INO, OsStr::new("d")).unwrap().ino.0;
        let mut names: Vec<_> = fs
            .list_dir(d)
            .unwrap()
            .into_iter()
            .map(|e| e.name.into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(
            fs.lookup(d, OsStr::new("c")).unwrap_err().raw_os_error(),
            Some(libc::ENOENT)
        );

        let b = fs.lookup(d, OsStr::new("b")).unwrap();
        fs.copy_up_node(b.ino.0).unwrap();
        assert_eq!(std::fs::read_to_string(u.join("d/b")).unwrap(), "low");
        // Copy-up keeps the inode number.
        assert_eq!(fs.getattr(b.ino.0).unwrap().ino, b.ino);
        fs.forget(b.ino.0, 1);
        assert!(fs.getattr(b.ino.0).is_err());
        assert_eq!(
            fs.list_dir(b.ino.0).unwrap_err().raw_os_error(),
            Some(libc::ESTALE)
        );
    }
}
