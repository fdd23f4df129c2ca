//! The destination side of a copy: a tar extracted into a directory of a
//! tree as Docker's `Untar` with `NoOverwriteDirNonDir` does: a directory
//! merges with one already there, anything else replaces what was there,
//! but a directory never replaces a non-directory or the other way round.
//! Each entry's parent is resolved inside the tree, the entry itself is
//! never followed.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;
use tar::EntryType;

use super::tree::{split, Tree};

/// Whose files the copies become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    /// Whoever runs berth (no chown).
    Caller,
    /// The owners recorded in the archive (`cp -a`).
    Archive,
    /// This uid and gid (the container's root, for copies into it).
    Fixed(u32, u32),
}

/// Why an extraction stopped.
#[derive(Debug)]
pub(super) enum ExtractError {
    /// The archive could not be read.
    Read(io::Error),
    /// An entry could not be written; `path` is in the tree.
    Write { path: PathBuf, source: io::Error },
    /// An entry that Docker refuses too.
    Refused(String),
}

impl std::fmt::Display for ExtractError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExtractError::Read(e) => write!(f, "reading the archive: {e}"),
            ExtractError::Write { path, source } => write!(f, "{}: {source}", path.display()),
            ExtractError::Refused(m) => f.write_str(m),
        }
    }
}

/// Extracts the tar on `r` into directory `dest` (an in-tree path).
pub(super) fn extract<R: Read>(
    r: R,
    tree: &Tree,
    dest: &Path,
    owner: Owner,
) -> Result<(), ExtractError> {
    let privileged = rustix::process::geteuid().is_root();
    let owner = if privileged { owner } else { Owner::Caller };
    let mut x = Extractor {
        tree,
        dest,
        owner,
        privileged,
        cached: None,
        dirs: Vec::new(),
    };
    let mut archive = tar::Archive::new(r);
    for entry in archive.entries().map_err(ExtractError::Read)? {
        let mut entry = entry.map_err(ExtractError::Read)?;
        x.entry(&mut entry)?;
    }
    // Directory modes and times last: their entries changed them.
    for (path, mode, mtime) in x.dirs.drain(..).rev() {
        let at = |source: io::Error| ExtractError::Write {
            path: path.clone(),
            source,
        };
        let fd = tree.open_at(&path, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW);
        let fd = fd.map_err(at)?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(|e| at(e.into()))?;
        rustix::fs::futimens(&fd, &times(mtime)).map_err(|e| at(e.into()))?;
    }
    Ok(())
}

struct Extractor<'a> {
    tree: &'a Tree,
    dest: &'a Path,
    owner: Owner,
    privileged: bool,
    /// The last parent directory opened, by in-tree path.
    cached: Option<(PathBuf, OwnedFd)>,
    /// Directories written, with their mode and mtime, in archive order.
    dirs: Vec<(PathBuf, u32, i64)>,
}

/// The entry name as a relative path: no `..`, leading `/` and `.` dropped.
fn entry_name(raw: &[u8], dest: &Path) -> Result<PathBuf, ExtractError> {
    let mut out = PathBuf::new();
    for c in Path::new(std::ffi::OsStr::from_bytes(raw)).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                return Err(ExtractError::Refused(format!(
                    "{:?} is outside of {:?}",
                    String::from_utf8_lossy(raw),
                    dest.display().to_string()
                )))
            }
            _ => {}
        }
    }
    Ok(out)
}

fn times(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

impl Extractor<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ExtractError> {
        let kind = entry.header().entry_type();
        if !matches!(
            kind,
            EntryType::Regular
                | EntryType::Continuous
                | EntryType::Directory
                | EntryType::Symlink
                | EntryType::Link
                | EntryType::Char
                | EntryType::Block
                | EntryType::Fifo
        ) {
            return Ok(());
        }
        let rel = entry_name(&entry.path_bytes(), self.dest)?;
        let path = self.dest.join(&rel);
        let w = |source: io::Error| ExtractError::Write {
            path: path.clone(),
            source,
        };
        let is_dir = kind == EntryType::Directory;

        // The destination directory itself (`./`): Docker leaves it as it is.
        let Some((parent, name)) = split(&path).filter(|_| !rel.as_os_str().is_empty()) else {
            if is_dir {
                return Ok(());
            }
            return Err(ExtractError::Refused(format!(
                "cannot overwrite directory {:?} with non-directory {:?}",
                path.display().to_string(),
                self.dest.display().to_string()
            )));
        };
        let dir_fd = self.parent_dir(&parent).map_err(w)?;
        let done = self.write_entry(entry, &path, &rel, dir_fd.as_fd(), &name);
        self.cached = Some((parent, dir_fd));
        done
    }

    fn write_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &Path,
        rel: &Path,
        dir: BorrowedFd<'_>,
        name: &OsStr,
    ) -> Result<(), ExtractError> {
        let w = |source: io::Error| ExtractError::Write {
            path: path.to_path_buf(),
            source,
        };
        let header = entry.header();
        let kind = header.entry_type();
        let is_dir = kind == EntryType::Directory;
        let mode = header.mode().map_err(ExtractError::Read)? & 0o7777;
        let mtime = header.mtime().map_err(ExtractError::Read)? as i64;
        // Only `-a` looks at owners: an archive without them means root.
        let ids = (
            header.uid().unwrap_or(0) as u32,
            header.gid().unwrap_or(0) as u32,
        );
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let existing_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                let shown = |p: &Path| format!("{:?}", p.display().to_string());
                if existing_dir && !is_dir {
                    return Err(ExtractError::Refused(format!(
                        "cannot overwrite directory {} with non-directory {}",
                        shown(path),
                        shown(self.dest)
                    )));
                }
                if !existing_dir && is_dir {
                    return Err(ExtractError::Refused(format!(
                        "cannot overwrite non-directory {} with directory {}",
                        shown(path),
                        shown(self.dest)
                    )));
                }
                if !existing_dir {
                    rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(|e| w(e.into()))?;
                }
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(w(e.into())),
        }

        let owner = self.owner;
        let chown = |at: &dyn Fn(Option<Uid>, Option<Gid>) -> rustix::io::Result<()>| {
            let (uid, gid) = match owner {
                Owner::Caller => return Ok(()),
                Owner::Archive => ids,
                Owner::Fixed(u, g) => (u, g),
            };
            at(Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
        };
        match kind {
            EntryType::Directory => {
                match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(w(e.into())),
                }
                chown(&|u, g| rustix::fs::chownat(dir, name, u, g, AtFlags::SYMLINK_NOFOLLOW))
                    .map_err(|e| w(e.into()))?;
                self.dirs.push((path.to_path_buf(), mode, mtime));
            }
            EntryType::Regular | EntryType::Continuous => {
                let fd = rustix::fs::openat(
                    dir,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| w(e.into()))?;
                let mut file = std::fs::File::from(fd);
                io::copy(entry, &mut file).map_err(ExtractError::Read)?;
                // chown first: it clears set-id bits that chmod then sets.
                chown(&|u, g| rustix::fs::fchown(&file, u, g)).map_err(|e| w(e.into()))?;
                rustix::fs::fchmod(&file, Mode::from_raw_mode(mode)).map_err(|e| w(e.into()))?;
                rustix::fs::futimens(&file, &times(mtime)).map_err(|e| w(e.into()))?;
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| {
                    ExtractError::Refused(format!("symlink {} has no target", rel.display()))
                })?;
                rustix::fs::symlinkat(&*target, dir, name).map_err(|e| w(e.into()))?;
                chown(&|u, g| rustix::fs::chownat(dir, name, u, g, AtFlags::SYMLINK_NOFOLLOW))
                    .map_err(|e| w(e.into()))?;
                rustix::fs::utimensat(dir, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| w(e.into()))?;
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().ok_or_else(|| {
                    ExtractError::Refused(format!("hard link {} has no target", rel.display()))
                })?;
                let target = self.dest.join(entry_name(&target, self.dest)?);
                let Some((tparent, tname)) = split(&target) else {
                    return Err(ExtractError::Refused(format!(
                        "hard link {} to a directory",
                        rel.display()
                    )));
                };
                let tdir = self.tree.open_dir(&tparent).map_err(w)?;
                rustix::fs::linkat(&tdir, &tname, dir, name, AtFlags::empty())
                    .map_err(|e| w(e.into()))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let file_type = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                // Only root may make devices, as in Docker's rootless mode.
                if file_type != FileType::Fifo && !self.privileged {
                    return Ok(());
                }
                let dev = rustix::fs::makedev(
                    entry.header().device_major().ok().flatten().unwrap_or(0),
                    entry.header().device_minor().ok().flatten().unwrap_or(0),
                );
                rustix::fs::mknodat(dir, name, file_type, Mode::from_raw_mode(0o600), dev)
                    .map_err(|e| w(e.into()))?;
                chown(&|u, g| rustix::fs::chownat(dir, name, u, g, AtFlags::SYMLINK_NOFOLLOW))
                    .map_err(|e| w(e.into()))?;
                rustix::fs::chmodat(dir, name, Mode::from_raw_mode(mode), AtFlags::empty())
                    .map_err(|e| w(e.into()))?;
                rustix::fs::utimensat(dir, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| w(e.into()))?;
            }
            _ => unreachable!("filtered above"),
        }
        Ok(())
    }

    /// The directory `path` (in the tree), made with its missing parents
    /// (0755) when the archive did not list them first.
    /// Taken out of the cache; the caller puts it back.
    fn parent_dir(&mut self, path: &Path) -> io::Result<OwnedFd> {
        if let Some((p, fd)) = self.cached.take() {
            if p == path {
                return Ok(fd);
            }
        }
        match self.tree.open_dir(path) {
            Ok(fd) => Ok(fd),
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => self.make_dirs(path),
            Err(e) => Err(e),
        }
    }

    fn make_dirs(&mut self, path: &Path) -> io::Result<OwnedFd> {
        let Some((parent, name)) = split(path) else {
            return self.tree.open_dir(path);
        };
        let up = match self.tree.open_dir(&parent) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                self.make_dirs(&parent)?
            }
            Err(e) => return Err(e),
        };
        match rustix::fs::mkdirat(&up, &name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        if let Owner::Fixed(u, g) = self.owner {
            rustix::fs::chownat(
                &up,
                &name,
                Some(Uid::from_raw(u)),
                Some(Gid::from_raw(g)),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
        self.tree.open_dir(path)
    }
}

/// Turns an extraction error into a message naming paths as the user sees
/// them (`label` prefixes in-tree paths, e.g. `web:`).
pub(super) fn describe(e: ExtractError, label: &str) -> String {
    match e {
        ExtractError::Write { path, source } => format!("{label}{}: {source}", path.display()),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8], mode: u32) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, name, data).unwrap();
    }

    fn dir(b: &mut tar::Builder<Vec<u8>>, name: &str, mode: u32) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(EntryType::Directory);
        h.set_mode(mode);
        h.set_mtime(1_600_000_000);
        h.set_size(0);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, name, io::empty()).unwrap();
    }

    fn symlink(b: &mut tar::Builder<Vec<u8>>, name: &str, target: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(EntryType::Symlink);
        h.set_mode(0o777);
        h.set_mtime(1_700_000_000);
        h.set_size(0);
        h.set_uid(0);
        h.set_gid(0);
        b.append_link(&mut h, name, target).unwrap();
    }

    #[test]
    fn extracts_merges_and_keeps_modes() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("dst/d")).unwrap();
        std::fs::write(root.join("dst/d/old"), b"old").unwrap();
        let tar = tar_of(|b| {
            dir(b, "./", 0o755);
            dir(b, "d/", 0o750);
            file(b, "d/new", b"new", 0o640);
            file(b, "deep/er/x", b"x", 0o600);
            symlink(b, "l", "/etc/passwd");
        });
        let tree = Tree::container(&root).unwrap();
        extract(&tar[..], &tree, Path::new("/dst"), Owner::Caller).unwrap();
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let d = root.join("dst");
        assert_eq!(std::fs::read(d.join("d/old")).unwrap(), b"old", "merged");
        assert_eq!(std::fs::read(d.join("d/new")).unwrap(), b"new");
        let m = std::fs::metadata(d.join("d/new")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o640);
        assert_eq!(m.mtime(), 1_700_000_000);
        let m = std::fs::metadata(d.join("d")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o750);
        assert_eq!(m.mtime(), 1_600_000_000);
        assert_eq!(std::fs::read(d.join("deep/er/x")).unwrap(), b"x");
        assert_eq!(
            std::fs::read_link(d.join("l")).unwrap(),
            Path::new("/etc/passwd")
        );
    }

    #[test]
    fn refuses_dir_file_swaps_and_escapes() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("dst/adir")).unwrap();
        std::fs::write(root.join("dst/afile"), b"").unwrap();
        let tree = Tree::container(&root).unwrap();
        let dest = Path::new("/dst");
        let err = extract(
            &tar_of(|b| file(b, "adir", b"", 0o644))[..],
            &tree,
            dest,
            Owner::Caller,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("cannot overwrite directory \"/dst/adir\" with non-directory"),
            "{err}"
        );
        let err = extract(
            &tar_of(|b| dir(b, "afile/", 0o755))[..],
            &tree,
            dest,
            Owner::Caller,
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("cannot overwrite non-directory"), "{err}");
        // The tar crate refuses to write `..`; a raw header does not.
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..9].copy_from_slice(b"../escape");
        h.set_entry_type(EntryType::Regular);
        h.set_size(0);
        h.set_cksum();
        let mut raw = h.as_bytes().to_vec();
        raw.extend_from_slice(&[0; 1024]);
        let err = extract(&raw[..], &tree, dest, Owner::Caller)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is outside of"), "{err}");
        assert!(!t.path().join("escape").exists());
    }

    #[test]
    fn parents_resolve_inside_the_tree() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        // An absolute symlink in the container points into the container.
        std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
        let tree = Tree::container(&root).unwrap();
        let tar = tar_of(|b| file(b, "link/x", b"in", 0o644));
        extract(&tar[..], &tree, Path::new("/"), Owner::Caller).unwrap();
        assert_eq!(std::fs::read(root.join("etc/x")).unwrap(), b"in");
        assert!(!t.path().join("etc/x").exists());
    }
}
