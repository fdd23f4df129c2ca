//! `cp`: files between a container and the host, or a tar stream, with
//! Docker 20.10's rules for what lands where (`pkg/archive/copy.go`): a
//! source is archived under the name it should end up with, then extracted
//! into the destination directory. Paths inside a container resolve inside
//! its root filesystem (see [`tree`]), stopped or running.

mod tar_in;
mod tar_out;
mod tree;

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, OFlags};

use super::error::{CResult, ContainerError};
use super::state::Record;
use crate::Engine;
use tar_in::{describe, Owner};
use tree::{bytes, clean, is_missing, split, Tree};

/// `cp` flags.
#[derive(Debug, Default, Clone, Copy)]
pub struct CopyOptions {
    /// `-a`: keep the owners the source has.
    pub archive: bool,
    /// `-L`: copy what a source symlink points to, not the link.
    pub follow_link: bool,
}

/// Where a copy out of a container goes.
pub enum CopyOut<'a> {
    /// A host path, as the user wrote it (relative to the working dir).
    Path(&'a Path),
    /// A tar stream of the source (`-`).
    Tar(&'a mut dyn Write),
}

/// Where a copy into a container comes from.
pub enum CopyIn<'a> {
    /// A host path, as the user wrote it.
    Path(&'a Path),
    /// A tar stream to extract into the destination directory (`-`).
    Tar(&'a mut dyn Read),
}

impl Engine {
    /// `cp CONTAINER:PATH DEST`.
    pub fn copy_from_container(
        &self,
        container: &str,
        path: &str,
        to: CopyOut<'_>,
        opts: &CopyOptions,
    ) -> CResult<()> {
        let shown = format!("{container}:{path}");
        let record = self.copy_container(container, &shown)?;
        if super::rootless::needs_userns(self) {
            // As root of the container's user namespace (see `rootless`).
            super::rootless::in_container_userns(self, &record, || {
                match to {
                    CopyOut::Tar(w) => {
                        self.copy_from_container(container, path, CopyOut::Tar(&mut *w), opts)?;
                        w.flush()
                            .map_err(|e| ContainerError::io("writing the tar", e))?;
                    }
                    path_to => self.copy_from_container(container, path, path_to, opts)?,
                }
                Ok(Vec::new())
            })?;
            return Ok(());
        }
        let rootfs = self.open_rootfs(&record)?;
        let copied = copy_out(rootfs.path(), path, &shown, to, opts);
        let closed = rootfs.close();
        copied?;
        closed
    }

    /// `cp SRC CONTAINER:PATH`.
    pub fn copy_into_container(
        &self,
        from: CopyIn<'_>,
        container: &str,
        path: &str,
        opts: &CopyOptions,
    ) -> CResult<()> {
        let shown = format!("{container}:{path}");
        let record = self.copy_container(container, &shown)?;
        if record.host_config.readonly_rootfs {
            return Err(ContainerError::InvalidArgument(
                "container rootfs is marked read-only".into(),
            ));
        }
        if super::rootless::needs_userns(self) {
            // As root of the container's user namespace (see `rootless`).
            super::rootless::in_container_userns(self, &record, || {
                self.copy_into_container(from, container, path, opts)?;
                Ok(Vec::new())
            })?;
            return Ok(());
        }
        let rootfs = self.open_rootfs(&record)?;
        let copied = copy_in(from, rootfs.path(), container, path, opts);
        let closed = rootfs.close();
        copied?;
        closed
    }

    /// The container, or Docker's `No such container:path` for any miss.
    fn copy_container(&self, container: &str, shown: &str) -> CResult<Record> {
        self.container(container).map_err(|e| match e {
            ContainerError::NoSuchContainer(_) => ContainerError::NoSuchPath(shown.to_string()),
            other => other,
        })
    }
}

fn copy_out(
    rootfs: &Path,
    path: &str,
    shown: &str,
    to: CopyOut<'_>,
    opts: &CopyOptions,
) -> CResult<()> {
    let tree = Tree::container(rootfs).map_err(|e| io_error(rootfs, e))?;
    let up = UserPath::parse(Path::new(path), None);
    let source = Source::open(&tree, &up, opts.follow_link)
        .map_err(|e| source_error(e, || ContainerError::NoSuchPath(shown.to_string())))?;
    match to {
        CopyOut::Tar(w) => {
            tar_out::write_resource(&source.fd, || source.reopen(&tree), &source.name, w)
                .map_err(|e| ContainerError::io(format!("copying {shown}"), e))?;
            Ok(())
        }
        CopyOut::Path(dest) => {
            let host = Tree::host().map_err(|e| io_error(Path::new("/"), e))?;
            let dst = UserPath::parse(dest, Some(&cwd()?));
            let parent = split(&dst.clean).map(|(p, _)| p).unwrap_or_default();
            if host
                .lstat(&parent)
                .map_err(|e| io_error(&parent, e))?
                .is_none()
            {
                return Err(ContainerError::InvalidArgument(format!(
                    "invalid output path: directory {:?} does not exist",
                    parent.display().to_string()
                )));
            }
            let info = DestInfo::of(&host, &dst).map_err(|e| io_error(dest, e))?;
            let place = place(&source.name, source.is_dir, &info)
                .map_err(|m| ContainerError::InvalidArgument(m.into()))?;
            let owner = if opts.archive {
                Owner::Archive
            } else {
                Owner::Caller
            };
            pipe_copy(
                &tree,
                &source,
                &place.name,
                shown,
                &host,
                &place.dir,
                owner,
                "",
            )
        }
    }
}

fn copy_in(
    from: CopyIn<'_>,
    rootfs: &Path,
    container: &str,
    path: &str,
    opts: &CopyOptions,
) -> CResult<()> {
    let tree = Tree::container(rootfs).map_err(|e| io_error(rootfs, e))?;
    let dst = UserPath::parse(Path::new(path), None);
    let info = DestInfo::of(&tree, &dst).map_err(|e| io_error(Path::new(path), e))?;
    // Docker makes copies into a container belong to its root unless -a.
    let owner = if opts.archive {
        Owner::Archive
    } else {
        Owner::Fixed(0, 0)
    };
    let label = format!("{container}:");
    match from {
        CopyIn::Tar(r) => {
            if !(info.exists && info.is_dir) {
                return Err(ContainerError::InvalidArgument(format!(
                    "destination \"{container}:{path}\" must be a directory"
                )));
            }
            tar_in::extract(r, &tree, &info.path, owner)
                .map_err(|e| ContainerError::InvalidArgument(describe(e, &label)))
        }
        CopyIn::Path(src) => {
            let host = Tree::host().map_err(|e| io_error(Path::new("/"), e))?;
            let up = UserPath::parse(src, Some(&cwd()?));
            let source = Source::open(&host, &up, opts.follow_link).map_err(|e| {
                source_error(e, || {
                    ContainerError::InvalidArgument(format!(
                        "lstat {}: no such file or directory",
                        up.clean.display()
                    ))
                })
            })?;
            let place = place(&source.name, source.is_dir, &info)
                .map_err(|m| ContainerError::InvalidArgument(m.into()))?;
            // Docker's daemon: the directory extracted into must be there.
            let shown_dir = format!("{container}:{}", place.dir.display());
            match tree.open_at(&place.dir, OFlags::PATH) {
                Ok(fd) if is_dir(&fd) => {}
                Ok(_) => {
                    return Err(ContainerError::InvalidArgument(
                        "extraction point is not a directory".into(),
                    ))
                }
                Err(e) if is_missing(&e) => return Err(ContainerError::NoSuchPath(shown_dir)),
                Err(e) => return Err(io_error(&place.dir, e)),
            }
            let shown_src = up.clean.display().to_string();
            pipe_copy(
                &host,
                &source,
                &place.name,
                &shown_src,
                &tree,
                &place.dir,
                owner,
                &label,
            )
        }
    }
}

/// Archives `source` from `from` in one thread and extracts it into `dir`
/// of `to` in this one, through a pipe.
#[allow(clippy::too_many_arguments)]
fn pipe_copy(
    from: &Tree,
    source: &Source,
    name: &Path,
    shown_src: &str,
    to: &Tree,
    dir: &Path,
    owner: Owner,
    label: &str,
) -> CResult<()> {
    let (read, write) =
        rustix::pipe::pipe().map_err(|e| ContainerError::io("making a pipe", e.into()))?;
    std::thread::scope(|s| {
        let writer = s.spawn(move || {
            tar_out::write_resource(&source.fd, || source.reopen(from), name, File::from(write))
                .map(drop)
        });
        let extracted = tar_in::extract(File::from(read), to, dir, owner);
        let written = writer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        match (written, extracted) {
            // The extraction stopped reading first: its error is the cause.
            (Err(e), Err(x)) if e.kind() == io::ErrorKind::BrokenPipe => {
                Err(ContainerError::InvalidArgument(describe(x, label)))
            }
            (Err(e), _) => Err(ContainerError::io(format!("copying {shown_src}"), e)),
            (Ok(()), Err(x)) => Err(ContainerError::InvalidArgument(describe(x, label))),
            (Ok(()), Ok(())) => Ok(()),
        }
    })
}

fn cwd() -> CResult<PathBuf> {
    std::env::current_dir().map_err(|e| ContainerError::io("finding the working directory", e))
}

fn io_error(path: &Path, e: io::Error) -> ContainerError {
    ContainerError::io(path.display().to_string(), e)
}

/// A missing source is `missing()`, other failures are what they are.
fn source_error(e: SourceError, missing: impl FnOnce() -> ContainerError) -> ContainerError {
    match e {
        SourceError::Io(e) if is_missing(&e) => missing(),
        SourceError::Io(e) => ContainerError::io("opening the source", e),
        SourceError::NotDir(p) => {
            ContainerError::InvalidArgument(format!("{}: not a directory", p.display()))
        }
    }
}

fn is_dir(fd: &OwnedFd) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
}

/// A path as the user wrote it, with what its ending asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UserPath {
    /// Absolute and lexically clean.
    clean: PathBuf,
    /// Ends in `/.`: the directory's contents rather than the directory.
    dot: bool,
    /// Ends in `/`: it must be a directory (a symlink to one is followed).
    slash: bool,
}

impl UserPath {
    /// `raw` made absolute against `cwd` (host paths) or `/` (container
    /// paths, which Docker takes relative to the container's root).
    fn parse(raw: &Path, cwd: Option<&Path>) -> UserPath {
        let b = bytes(raw);
        let slash = b.ends_with(b"/");
        let mut trimmed = b;
        while trimmed.len() > 1 && trimmed.ends_with(b"/") {
            trimmed = &trimmed[..trimmed.len() - 1];
        }
        let dot = trimmed == b"." || trimmed.ends_with(b"/.");
        let joined = match cwd {
            Some(cwd) if !raw.is_absolute() => cwd.join(raw),
            _ => raw.to_path_buf(),
        };
        UserPath {
            clean: clean(&joined),
            dot,
            slash,
        }
    }

    fn asserts_dir(&self) -> bool {
        self.dot || self.slash
    }

    /// The name a copy of it is archived under: `.` for contents.
    fn name(&self) -> PathBuf {
        match self.clean.file_name() {
            Some(n) if !self.dot => PathBuf::from(n),
            _ => PathBuf::from("."),
        }
    }
}

/// The source of a copy, open.
struct Source {
    /// `O_PATH`: the resource itself, or the symlink when not following.
    fd: OwnedFd,
    is_dir: bool,
    /// The name it is archived under.
    name: PathBuf,
    path: PathBuf,
    follow: bool,
}

enum SourceError {
    Io(io::Error),
    NotDir(PathBuf),
}

impl Source {
    fn open(tree: &Tree, up: &UserPath, follow_link: bool) -> Result<Source, SourceError> {
        let follow = follow_link || up.asserts_dir();
        let nofollow = if follow {
            OFlags::empty()
        } else {
            OFlags::NOFOLLOW
        };
        let fd = tree
            .open_at(&up.clean, OFlags::PATH | nofollow)
            .map_err(SourceError::Io)?;
        let is_dir = is_dir(&fd);
        if up.asserts_dir() && !is_dir {
            return Err(SourceError::NotDir(up.clean.clone()));
        }
        Ok(Source {
            fd,
            is_dir,
            name: up.name(),
            path: up.clean.clone(),
            follow,
        })
    }

    /// The (regular file) source opened for reading.
    fn reopen(&self, tree: &Tree) -> io::Result<OwnedFd> {
        let mut flags = OFlags::RDONLY | OFlags::NONBLOCK;
        if !self.follow {
            flags |= OFlags::NOFOLLOW;
        }
        tree.open_at(&self.path, flags)
    }
}

/// What the destination of a copy is, after following symlinks at its end
/// (as Docker does, at most 10).
#[derive(Debug, Clone, PartialEq, Eq)]
struct DestInfo {
    path: PathBuf,
    exists: bool,
    is_dir: bool,
    asserts_dir: bool,
}

impl DestInfo {
    fn of(tree: &Tree, up: &UserPath) -> io::Result<DestInfo> {
        let mut path = up.clean.clone();
        for _ in 0..=10 {
            let found = tree.lstat(&path)?;
            let kind = found.map(|st| FileType::from_raw_mode(st.st_mode));
            if kind == Some(FileType::Symlink) {
                let target = tree.readlink(&path)?;
                let base = split(&path).map(|(p, _)| p).unwrap_or_default();
                path = clean(&base.join(target));
                continue;
            }
            return Ok(DestInfo {
                path,
                exists: kind.is_some(),
                is_dir: kind == Some(FileType::Directory),
                asserts_dir: up.asserts_dir(),
            });
        }
        Err(io::Error::other(format!(
            "too many symlinks in {}",
            up.clean.display()
        )))
    }
}

/// Where a copy is extracted: into `dir`, its top entry named `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placement {
    dir: PathBuf,
    name: PathBuf,
}

/// Docker's `PrepareArchiveCopy`: into an existing directory under the
/// source's own name; otherwise in place of the destination, under its
/// name. Errors are Docker's words.
fn place(src_name: &Path, src_is_dir: bool, dst: &DestInfo) -> Result<Placement, &'static str> {
    if dst.exists && dst.is_dir {
        return Ok(Placement {
            dir: dst.path.clone(),
            name: src_name.to_path_buf(),
        });
    }
    if dst.exists && dst.asserts_dir {
        return Err("not a directory");
    }
    if dst.exists && src_is_dir {
        return Err("cannot copy directory");
    }
    if !dst.exists && !src_is_dir && dst.asserts_dir {
        return Err("no such directory");
    }
    let (dir, name) = split(&dst.path).unwrap_or_else(|| ("/".into(), OsStr::new(".").into()));
    Ok(Placement {
        dir,
        name: PathBuf::from(name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(raw: &str) -> UserPath {
        UserPath::parse(Path::new(raw), Some(Path::new("/work")))
    }

    #[test]
    fn user_paths_keep_what_their_ending_asks() {
        let p = up("dir/.");
        assert_eq!(
            (p.clean.as_path(), p.dot, p.slash),
            (Path::new("/work/dir"), true, false)
        );
        assert_eq!(p.name(), Path::new("."));
        let p = up("/etc/");
        assert_eq!(
            (p.clean.as_path(), p.dot, p.slash),
            (Path::new("/etc"), false, true)
        );
        assert_eq!(p.name(), Path::new("etc"));
        let p = up(".");
        assert_eq!(p.clean, Path::new("/work"));
        assert!(p.dot);
        assert_eq!(up("/").name(), Path::new("."));
        assert_eq!(up("a/b/../c").name(), Path::new("c"));
        let p = UserPath::parse(Path::new("etc/passwd"), None);
        assert_eq!(
            p.clean,
            Path::new("/etc/passwd"),
            "container paths are from /"
        );
    }

    fn dst(path: &str, exists: bool, is_dir: bool, asserts_dir: bool) -> DestInfo {
        DestInfo {
            path: path.into(),
            exists,
            is_dir,
            asserts_dir,
        }
    }

    fn at(dir: &str, name: &str) -> Result<Placement, &'static str> {
        Ok(Placement {
            dir: dir.into(),
            name: name.into(),
        })
    }

    #[test]
    fn docker_placement_rules() {
        let f = Path::new("f");
        let d = Path::new("d");
        let dot = Path::new(".");
        // File source.
        assert_eq!(
            place(f, false, &dst("/x", false, false, false)),
            at("/", "x")
        );
        assert_eq!(
            place(f, false, &dst("/x", false, false, true)),
            Err("no such directory")
        );
        assert_eq!(
            place(f, false, &dst("/x", true, false, false)),
            at("/", "x")
        );
        assert_eq!(
            place(f, false, &dst("/x", true, true, false)),
            at("/x", "f")
        );
        assert_eq!(
            place(f, false, &dst("/x", true, false, true)),
            Err("not a directory")
        );
        // Directory source.
        assert_eq!(
            place(d, true, &dst("/x", false, false, false)),
            at("/", "x")
        );
        assert_eq!(place(d, true, &dst("/x", false, false, true)), at("/", "x"));
        assert_eq!(
            place(d, true, &dst("/x", true, false, false)),
            Err("cannot copy directory")
        );
        assert_eq!(place(d, true, &dst("/x", true, true, false)), at("/x", "d"));
        // Contents (`dir/.`) go into an existing dir, or become the new one.
        assert_eq!(
            place(dot, true, &dst("/x", true, true, false)),
            at("/x", ".")
        );
        assert_eq!(
            place(dot, true, &dst("/a/x", false, false, false)),
            at("/a", "x")
        );
    }

    #[test]
    fn destinations_follow_symlinks_inside_the_tree() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::os::unix::fs::symlink("/real", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("real/new", root.join("dangling")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        let tree = Tree::container(&root).unwrap();
        let of = |p: &str| DestInfo::of(&tree, &UserPath::parse(Path::new(p), None));
        assert_eq!(of("/abs").unwrap(), dst("/real", true, true, false));
        assert_eq!(
            of("dangling").unwrap(),
            dst("/real/new", false, false, false)
        );
        assert_eq!(of("/nope/").unwrap(), dst("/nope", false, false, true));
        assert!(of("/loop")
            .unwrap_err()
            .to_string()
            .contains("too many symlinks"));
    }
}
