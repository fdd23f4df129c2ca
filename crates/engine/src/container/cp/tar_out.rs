//! The source side of a copy: one file, symlink or directory tree as a tar
//! whose first entry carries the name the copy gives it. Below the resource
//! itself nothing is followed: every entry is opened relative to its
//! parent's descriptor with `O_NOFOLLOW`.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};
use tar::{EntryType, Header};

use super::tree::read_link;

/// Writes the resource open (`O_PATH`) as `resource` into a tar on `w`,
/// named `name` (`.` for a directory whose contents are wanted). `reopen`
/// opens the resource for reading when it is a regular file.
pub(super) fn write_resource<W: Write>(
    resource: &OwnedFd,
    reopen: impl FnOnce() -> io::Result<OwnedFd>,
    name: &Path,
    w: W,
) -> io::Result<W> {
    let st = rustix::fs::fstat(resource)?;
    let mut out = TarOut {
        builder: tar::Builder::new(w),
        links: HashMap::new(),
    };
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            let dir = rustix::fs::openat(
                resource,
                ".",
                OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            out.dir(dir, &st, name)?;
        }
        FileType::RegularFile => {
            let file = reopen()?;
            let again = rustix::fs::fstat(&file)?;
            if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino) {
                return Err(io::Error::other("the source changed while it was copied"));
            }
            out.file(file, &st, name)?;
        }
        FileType::Symlink => {
            let target = read_link(resource.as_fd(), OsStr::new(""))?;
            out.symlink(&st, name, &target)?;
        }
        _ => out.special(&st, name)?,
    }
    out.builder.into_inner()
}

struct TarOut<W: Write> {
    builder: tar::Builder<W>,
    /// First name of each multiply-linked file, to write the others as links.
    links: HashMap<(u64, u64), PathBuf>,
}

fn header(st: &Stat, kind: EntryType) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid.into());
    h.set_gid(st.st_gid.into());
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

impl<W: Write> TarOut<W> {
    /// A directory and everything below it, children in name order.
    fn dir(&mut self, fd: OwnedFd, st: &Stat, name: &Path) -> io::Result<()> {
        let mut h = header(st, EntryType::Directory);
        let mut slashed = name.as_os_str().to_owned();
        if !slashed.as_bytes().ends_with(b"/") {
            slashed.push("/");
        }
        self.builder
            .append_data(&mut h, Path::new(&slashed), io::empty())?;
        let mut names = Vec::new();
        for entry in Dir::read_from(&fd)? {
            let entry = entry?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(OsStr::from_bytes(n).to_os_string());
            }
        }
        names.sort();
        for child in names {
            self.child(fd.as_fd(), &child, &name.join(&child))?;
        }
        Ok(())
    }

    fn child(&mut self, parent: BorrowedFd<'_>, name: &OsStr, path: &Path) -> io::Result<()> {
        let st = match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // Deleted since it was listed: as if it had never been there.
            Err(rustix::io::Errno::NOENT) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let open = |flags: OFlags| {
            rustix::fs::openat(
                parent,
                name,
                flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => self.dir(open(OFlags::DIRECTORY | OFlags::RDONLY)?, &st, path),
            // NONBLOCK: should it have become a FIFO since, do not hang on it.
            FileType::RegularFile => self.file(open(OFlags::RDONLY | OFlags::NONBLOCK)?, &st, path),
            FileType::Symlink => {
                let target = read_link(parent, name)?;
                self.symlink(&st, path, &target)
            }
            _ => self.special(&st, path),
        }
    }

    fn file(&mut self, fd: OwnedFd, st: &Stat, name: &Path) -> io::Result<()> {
        if st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                let first = first.clone();
                let mut h = header(st, EntryType::Link);
                return self.builder.append_link(&mut h, name, &first);
            }
            self.links.insert(key, name.to_path_buf());
        }
        let mut h = header(st, EntryType::Regular);
        let size = st.st_size.max(0) as u64;
        h.set_size(size);
        // A file that shrinks while it is read is padded, one that grows
        // is cut: the header's size is what the archive promises.
        let data = std::fs::File::from(fd)
            .take(size)
            .chain(io::repeat(0))
            .take(size);
        self.builder.append_data(&mut h, name, data)
    }

    fn symlink(&mut self, st: &Stat, name: &Path, target: &Path) -> io::Result<()> {
        let mut h = header(st, EntryType::Symlink);
        self.builder.append_link(&mut h, name, target)
    }

    /// Devices and FIFOs; sockets cannot be archived and are left out.
    fn special(&mut self, st: &Stat, name: &Path) -> io::Result<()> {
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::CharacterDevice => EntryType::Char,
            FileType::BlockDevice => EntryType::Block,
            FileType::Fifo => EntryType::Fifo,
            _ => {
                log::debug!("not copying {}: a socket", name.display());
                return Ok(());
            }
        };
        let mut h = header(st, kind);
        if kind != EntryType::Fifo {
            h.set_device_major(rustix::fs::major(st.st_rdev))?;
            h.set_device_minor(rustix::fs::minor(st.st_rdev))?;
        }
        self.builder.append_data(&mut h, name, io::empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(tar: &[u8]) -> Vec<(String, EntryType, String)> {
        tar::Archive::new(tar)
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let link = e
                    .link_name()
                    .unwrap()
                    .map(|l| l.display().to_string())
                    .unwrap_or_default();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().entry_type(),
                    link,
                )
            })
            .collect()
    }

    fn opath(p: &Path, flags: OFlags) -> OwnedFd {
        rustix::fs::open(p, OFlags::PATH | OFlags::CLOEXEC | flags, Mode::empty()).unwrap()
    }

    #[test]
    fn a_tree_is_named_as_asked_and_links_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/a"), b"aaa").unwrap();
        std::fs::hard_link(src.join("sub/a"), src.join("b")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
        let fd = opath(&src, OFlags::empty());
        let no_reopen = || -> io::Result<OwnedFd> { unreachable!() };
        let tar = write_resource(&fd, no_reopen, Path::new("renamed"), Vec::new()).unwrap();
        let got = entries(&tar);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "renamed/",
                "renamed/b",
                "renamed/link",
                "renamed/sub/",
                "renamed/sub/a"
            ]
        );
        assert_eq!(got[2].1, EntryType::Symlink);
        assert_eq!(got[2].2, "/etc/passwd");
        assert_eq!(got[4].1, EntryType::Link, "the second name is a link");
        assert_eq!(got[4].2, "renamed/b");

        let tar = write_resource(&fd, no_reopen, Path::new("."), Vec::new()).unwrap();
        let names: Vec<String> = entries(&tar).into_iter().map(|e| e.0).collect();
        assert_eq!(names[0], "./");
        assert_eq!(names[1], "b");
    }

    #[test]
    fn a_file_or_symlink_alone() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"hello").unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
        let fd = opath(&f, OFlags::empty());
        let reopen = || Ok(rustix::fs::open(&f, OFlags::RDONLY, Mode::empty())?);
        let tar = write_resource(&fd, reopen, Path::new("g"), Vec::new()).unwrap();
        let mut a = tar::Archive::new(&tar[..]);
        let mut e = a.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(e.path().unwrap(), Path::new("g"));
        let mut text = String::new();
        e.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello");

        let fd = opath(&dir.path().join("l"), OFlags::NOFOLLOW);
        let tar = write_resource(&fd, || unreachable!(), Path::new("l"), Vec::new()).unwrap();
        assert_eq!(
            entries(&tar),
            [("l".to_string(), EntryType::Symlink, "f".to_string())]
        );
    }
}
