//! Applying a layer tarball to a directory in one streaming pass: decompress,
//! hash (the diffID), unpack and translate whiteouts, all from the same read.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use berth_digest::{DiffId, HashingReader};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps, XattrFlags};
use rustix::io::Errno;
use tar::EntryType;

use crate::compress::{Compression, Decoder};
use crate::fsops;
use crate::split::{Recorder, SharedSplit, SplitOptions, SplitState};
use crate::whiteout::{parse_whiteout, Whiteout, WHITEOUT_PREFIX};
use crate::ArchiveError;
use berth_overridestat::{OverrideKind, OverrideStat, OVERRIDE_XATTR};

/// Which xattr namespace marks an opaque directory: kernel overlayfs reads
/// `trusted.overlay.opaque` as real root and `user.overlay.opaque` with `userxattr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpaquePrefix {
    Trusted,
    User,
}

impl OpaquePrefix {
    /// The full name of the opaque-directory xattr.
    pub fn opaque_xattr(self) -> &'static str {
        match self {
            OpaquePrefix::Trusted => "trusted.overlay.opaque",
            OpaquePrefix::User => "user.overlay.opaque",
        }
    }
}

/// How whiteouts in the tarball are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutFormat {
    /// Overlay storage: a 0/0 char device per deleted name, an xattr per opaque dir.
    Overlay { xattr_prefix: OpaquePrefix },
    /// vfs storage: the target holds the parent's content; whiteouts delete from it.
    Delete,
}

/// How to apply a layer.
pub struct ApplyOptions<'a> {
    pub whiteouts: WhiteoutFormat,
    /// Keep the owners recorded in the tarball (false: files belong to the caller).
    pub chown: bool,
    /// Where an owner cannot be written (not chowning, or chown not
    /// permitted), record it with the mode in `user.containers.override_stat`
    /// (see [`crate::OVERRIDE_XATTR`]), and keep device nodes that cannot be
    /// made as empty files described there. Root-owned entries need none.
    pub record_owners: bool,
    /// Called with the number of (compressed) input bytes consumed so far.
    pub progress: Option<&'a (dyn Fn(u64) + Sync)>,
}

/// What applying a layer found out about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedLayer {
    /// sha256 of the whole decompressed stream, trailing bytes included.
    pub diff_id: DiffId,
    /// Bytes in the decompressed stream.
    pub size: u64,
    pub compression: Compression,
}

const BLOCK: u64 = 512;
const COPY_BUFFER: usize = 1 << 20;
const DIR_CACHE_MAX: usize = 64;

/// Reads a possibly-compressed layer tar from `r` and unpacks it into `dest`
/// (an existing directory), hashing the WHOLE decompressed stream (the
/// end-of-archive blocks and any trailing bytes too) in the same pass.
///
/// On error `dest` holds a partial layer: the caller unpacks into a scratch
/// directory and deletes it.
pub fn apply_layer<R: Read>(
    r: R,
    dest: &Path,
    opts: &ApplyOptions<'_>,
) -> Result<AppliedLayer, ArchiveError> {
    apply(r, dest, opts, None)
}

/// [`apply_layer`], also recording the tar-split of the stream (see
/// [`crate::reassemble`]) so the exact stream can be rebuilt later from the
/// unpacked files.
pub fn apply_layer_split<R: Read>(
    r: R,
    dest: &Path,
    opts: &ApplyOptions<'_>,
    split: &SplitOptions<'_>,
) -> Result<AppliedLayer, ArchiveError> {
    apply(r, dest, opts, Some(split))
}

fn apply<R: Read>(
    r: R,
    dest: &Path,
    opts: &ApplyOptions<'_>,
    split_opts: Option<&SplitOptions<'_>>,
) -> Result<AppliedLayer, ArchiveError> {
    let root = rustix::fs::open(
        dest,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ArchiveError::io(dest, e.into()))?;
    let input = Progress {
        inner: r,
        report: opts.progress,
        total: 0,
    };
    let decoder = Decoder::new(input).map_err(ArchiveError::Read)?;
    let compression = decoder.compression();
    // The buffer sits under the hasher so the hasher sees exactly what tar
    // consumed: its byte count is then the archive position.
    let hashing = HashingReader::new(BufReader::with_capacity(256 << 10, decoder));
    let split = split_opts.map(|s| SplitState::new(s.stash));
    let recorder = Recorder {
        inner: hashing,
        state: split.clone(),
    };
    let mut archive = tar::Archive::new(recorder);
    let mut unpacker = Unpacker::new(root, opts, split.clone());

    let mut end_of_entries = 0u64;
    let mut last: Option<PathBuf> = None;
    for entry in archive.entries().map_err(ArchiveError::Read)? {
        let mut entry = entry.map_err(|e| read_error(e, &last))?;
        let raw = PathBuf::from(OsStr::from_bytes(&entry.path_bytes()));
        end_of_entries = entry
            .raw_file_position()
            .saturating_add(entry.size().div_ceil(BLOCK).saturating_mul(BLOCK));
        unpacker.entry(&mut entry, &raw)?;
        last = Some(raw);
    }
    let mut recorder = archive.into_inner();
    // tar stops quietly at EOF on a block boundary; only a zero block read
    // after the last entry tells a complete archive from a cut one.
    if recorder.inner.len() < end_of_entries.saturating_add(BLOCK) {
        return Err(ArchiveError::Truncated { after: last });
    }
    io::copy(&mut recorder, &mut io::sink()).map_err(|e| read_error(e, &last))?;
    unpacker.finish()?;
    let (digest, size, _) = recorder.inner.finish();
    if let (Some(split), Some(to)) = (split, split_opts) {
        split
            .borrow()
            .write(to.file, size)
            .map_err(|e| ArchiveError::io(to.file, e))?;
    }
    Ok(AppliedLayer {
        diff_id: DiffId::new(digest),
        size,
        compression,
    })
}

fn read_error(e: io::Error, last: &Option<PathBuf>) -> ArchiveError {
    let text = e.to_string();
    if e.kind() == io::ErrorKind::UnexpectedEof
        || text.contains("unexpected EOF")
        || text.contains("failed to read entire block")
    {
        ArchiveError::Truncated {
            after: last.clone(),
        }
    } else {
        ArchiveError::Read(e)
    }
}

/// Reports consumed input bytes to the caller's progress callback.
struct Progress<'a, R> {
    inner: R,
    report: Option<&'a (dyn Fn(u64) + Sync)>,
    total: u64,
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        if let Some(report) = self.report {
            report(self.total);
        }
        Ok(n)
    }
}

/// Metadata of one entry, PAX records applied.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: rustix::fs::Timespec,
    xattrs: Vec<(String, Vec<u8>)>,
}

struct Unpacker<'o> {
    root: OwnedFd,
    opts: &'o ApplyOptions<'o>,
    /// Open parent directories by relative path: consecutive entries mostly
    /// share a parent, so this spares a path walk per file.
    dirs: HashMap<PathBuf, Rc<OwnedFd>>,
    /// Everything this layer wrote: an opaque marker (vfs) must keep these.
    written: HashSet<PathBuf>,
    /// Directory metadata, applied at the end so writing content into a
    /// directory neither bumps its mtime nor trips over a read-only mode.
    dir_meta: Vec<(PathBuf, Meta)>,
    buf: Vec<u8>,
    /// The tar-split being recorded, told where file bodies are.
    split: Option<SharedSplit>,
}

impl<'o> Unpacker<'o> {
    fn new(root: OwnedFd, opts: &'o ApplyOptions<'o>, split: Option<SharedSplit>) -> Self {
        Unpacker {
            root,
            opts,
            split,
            dirs: HashMap::new(),
            written: HashSet::new(),
            dir_meta: Vec::new(),
            buf: vec![0; COPY_BUFFER],
        }
    }

    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw: &Path,
    ) -> Result<(), ArchiveError> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let rel = clean_path(raw)?;
        let meta = read_meta(entry).map_err(|e| ArchiveError::io(&rel, e))?;
        let (parent, name) = match (rel.parent(), rel.file_name()) {
            (Some(parent), Some(name)) => (parent.to_path_buf(), name.to_owned()),
            _ => {
                // The layer root itself (`./`): only its metadata can change.
                if kind != EntryType::Directory {
                    return Err(unsafe_entry(raw, "entry replaces the layer root"));
                }
                self.dir_meta.push((PathBuf::new(), meta));
                return Ok(());
            }
        };

        if name.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()) {
            let text = name.to_str().ok_or_else(|| ArchiveError::BadWhiteout {
                name: name.to_string_lossy().into_owned(),
                reason: "not UTF-8",
            })?;
            if let Some(whiteout) = parse_whiteout(text)? {
                return self.whiteout(&parent, whiteout, &meta);
            }
        }

        let pdir = self.parent_dir(&parent, raw)?;
        let pfd = pdir.as_fd();
        let at = |e: io::Error| ArchiveError::io(&rel, e);
        match kind {
            EntryType::Directory => {
                match rustix::fs::mkdirat(pfd, &name, Mode::from_raw_mode(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => {
                        if fsops::file_type_at(pfd, &name).map_err(at)? != Some(FileType::Directory)
                        {
                            self.remove(pfd, &name, &rel).map_err(at)?;
                            rustix::fs::mkdirat(pfd, &name, Mode::from_raw_mode(0o700))
                                .map_err(|e| at(e.into()))?;
                        }
                    }
                    Err(e) => return Err(at(e.into())),
                }
                if !meta.xattrs.is_empty() {
                    let dir = fsops::open_dir(pfd, Path::new(&name)).map_err(at)?;
                    set_xattrs(dir.as_fd(), &meta.xattrs, &rel);
                }
                self.dir_meta.push((rel.clone(), meta));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let file = self
                    .create_new(pfd, &name, &rel, || {
                        rustix::fs::openat(
                            pfd,
                            &name,
                            OFlags::CREATE
                                | OFlags::EXCL
                                | OFlags::WRONLY
                                | OFlags::NOFOLLOW
                                | OFlags::CLOEXEC,
                            Mode::from_raw_mode(0o600),
                        )
                    })
                    .map_err(at)?;
                let mut file = std::fs::File::from(file);
                if let (Some(split), true) = (&self.split, kind != EntryType::GNUSparse) {
                    // A sparse body is not the file's bytes: it stays in the record.
                    split
                        .borrow_mut()
                        .begin_body(entry.raw_file_position(), entry.size(), &rel);
                }
                let written = copy(entry, &mut file, &mut self.buf)
                    .map_err(|e| read_error(e, &Some(rel.clone())))?;
                if kind != EntryType::GNUSparse && written != entry.size() {
                    return Err(ArchiveError::Truncated { after: Some(rel) });
                }
                let chowned = self.chown_fd(file.as_fd(), &meta).map_err(at)?;
                let mode = self.disk_mode(file.as_fd(), &meta, chowned, OverrideKind::File, &rel);
                rustix::fs::fchmod(&file, Mode::from_raw_mode(mode)).map_err(|e| at(e.into()))?;
                set_xattrs(file.as_fd(), &meta.xattrs, &rel);
                rustix::fs::futimens(&file, &times(&meta)).map_err(|e| at(e.into()))?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| {
                        at(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "symlink without a target",
                        ))
                    })?
                    .into_owned();
                self.create_new(pfd, &name, &rel, || {
                    rustix::fs::symlinkat(OsStr::from_bytes(&target), pfd, &name)
                })
                .map_err(at)?;
                self.finish_node(pfd, &name, &meta, true).map_err(at)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| {
                        at(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "hard link without a target",
                        ))
                    })?
                    .into_owned();
                let target = clean_path(Path::new(OsStr::from_bytes(&target)))?;
                self.hard_link(pfd, &name, &rel, &target)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (file_type, dev) = match kind {
                    EntryType::Char => (FileType::CharacterDevice, device(entry)),
                    EntryType::Block => (FileType::BlockDevice, device(entry)),
                    _ => (FileType::Fifo, 0),
                };
                let made = self.create_new(pfd, &name, &rel, || {
                    rustix::fs::mknodat(pfd, &name, file_type, Mode::from_raw_mode(meta.mode), dev)
                });
                match made {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EPERM) && kind != EntryType::Fifo => {
                        if !self.opts.record_owners {
                            log::warn!(
                                "skipping device node {}: not permitted here",
                                rel.display()
                            );
                            return Ok(());
                        }
                        let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
                        let kind = match file_type {
                            FileType::BlockDevice => OverrideKind::Block { major, minor },
                            _ => OverrideKind::Char { major, minor },
                        };
                        self.device_stand_in(pfd, &name, &rel, &meta, kind)
                            .map_err(at)?;
                        self.written.insert(rel);
                        return Ok(());
                    }
                    Err(e) => return Err(at(e)),
                }
                self.finish_node(pfd, &name, &meta, false).map_err(at)?;
            }
            other => {
                log::warn!(
                    "skipping {}: unsupported tar entry type {:?}",
                    rel.display(),
                    other
                );
                return Ok(());
            }
        }
        self.written.insert(rel);
        Ok(())
    }

    fn whiteout(
        &mut self,
        parent: &Path,
        whiteout: Whiteout<'_>,
        meta: &Meta,
    ) -> Result<(), ArchiveError> {
        let pdir = self.parent_dir(parent, parent)?;
        let pfd = pdir.as_fd();
        match (whiteout, self.opts.whiteouts) {
            (Whiteout::Meta, _) => {}
            (Whiteout::Opaque, WhiteoutFormat::Overlay { xattr_prefix }) => {
                // The marker applies to the lower layers only: whatever this
                // layer already put in the directory stays.
                rustix::fs::fsetxattr(pfd, xattr_prefix.opaque_xattr(), b"y", XattrFlags::empty())
                    .map_err(|e| ArchiveError::io(parent, e.into()))?;
            }
            (Whiteout::Opaque, WhiteoutFormat::Delete) => {
                if let Some(split) = &self.split {
                    let written = &self.written;
                    // Bodies under children the marker clears go to the stash.
                    let kept = |p: &Path| {
                        let first = p
                            .strip_prefix(parent)
                            .ok()
                            .and_then(|rest| rest.components().next());
                        first.is_some_and(|c| written.contains(&parent.join(c)))
                    };
                    split
                        .borrow_mut()
                        .stash_under(self.root.as_fd(), parent, kept)
                        .map_err(|e| ArchiveError::io(parent, e))?;
                }
                let written = &self.written;
                fsops::clear_dir(pfd, |name| written.contains(&parent.join(name)))
                    .map_err(|e| ArchiveError::io(parent, e))?;
                self.dirs.clear();
            }
            (Whiteout::Remove(name), format) => {
                let rel = parent.join(name);
                let at = |e: io::Error| ArchiveError::io(&rel, e);
                self.remove(pfd, OsStr::new(name), &rel).map_err(at)?;
                if matches!(format, WhiteoutFormat::Overlay { .. }) {
                    rustix::fs::mknodat(pfd, name, FileType::CharacterDevice, Mode::empty(), 0)
                        .map_err(|e| at(e.into()))?;
                    self.finish_node(pfd, OsStr::new(name), meta, false)
                        .map_err(at)?;
                    self.written.insert(rel);
                }
            }
        }
        Ok(())
    }

    fn hard_link(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
        target: &Path,
    ) -> Result<(), ArchiveError> {
        let link_error = |source: io::Error| ArchiveError::HardLink {
            path: rel.to_path_buf(),
            target: target.to_path_buf(),
            source,
        };
        let (Some(tparent), Some(tname)) = (target.parent(), target.file_name()) else {
            return Err(unsafe_entry(rel, "hard link to the layer root"));
        };
        if target == rel {
            return Err(link_error(io::Error::from_raw_os_error(libc::EINVAL)));
        }
        // Never created here: a link target must already be in the layer.
        let tdir =
            fsops::open_dir(self.root.as_fd(), tparent).map_err(|e| match resolve_problem(&e) {
                Some(reason) => unsafe_entry(target, reason),
                None => link_error(e),
            })?;
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
        let link = || rustix::fs::linkat(&tdir, tname, pfd, name, AtFlags::empty());
        match link() {
            Err(Errno::EXIST) => {
                self.replace(pfd, name, rel)
                    .map_err(|e| ArchiveError::io(rel, e))?;
                link().map_err(|e| link_error(e.into()))
            }
            other => other.map_err(|e| link_error(e.into())),
        }
    }

    /// Owner, mode and times of a node without an fd of its own (symlink, device).
    fn finish_node(
        &self,
        pfd: BorrowedFd<'_>,
        name: &OsStr,
        meta: &Meta,
        symlink: bool,
    ) -> io::Result<()> {
        if self.opts.chown {
            match rustix::fs::chownat(
                pfd,
                name,
                Some(uid(meta.uid)),
                Some(gid(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            ) {
                // Symlinks and device nodes cannot carry a `user.` xattr:
                // their owner is lost, as with fuse-overlayfs.
                Err(Errno::PERM | Errno::INVAL) if self.opts.record_owners => {}
                other => other?,
            }
        }
        if !symlink {
            // mknod's mode went through the umask. Not a symlink (we just made
            // it), so chmodat cannot be redirected.
            rustix::fs::chmodat(pfd, name, Mode::from_raw_mode(meta.mode), AtFlags::empty())?;
        }
        rustix::fs::utimensat(pfd, name, &times(meta), AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }

    /// Gives an open file or directory the entry's owner, when chowning.
    /// Returns whether the owner is now on disk; a chown that is not
    /// permitted is not an error when owners can be recorded instead.
    fn chown_fd(&self, fd: BorrowedFd<'_>, meta: &Meta) -> io::Result<bool> {
        if !self.opts.chown {
            return Ok(false);
        }
        match rustix::fs::fchown(fd, Some(uid(meta.uid)), Some(gid(meta.gid))) {
            Ok(()) => Ok(true),
            Err(Errno::PERM | Errno::INVAL) if self.opts.record_owners => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The mode to give a file or directory on disk. When its owner could
    /// not be written and is not root, owner and mode go to the override
    /// xattr, and the disk copy loses its set-id bits: where the xattr is
    /// not read (kernel overlay), a set-id file of another user must not
    /// turn into a set-id file of root.
    fn disk_mode(
        &self,
        fd: BorrowedFd<'_>,
        meta: &Meta,
        chowned: bool,
        kind: OverrideKind,
        rel: &Path,
    ) -> u32 {
        let root_owned = meta.uid == 0 && meta.gid == 0;
        if chowned || root_owned || !self.opts.record_owners {
            return meta.mode;
        }
        match record_override(fd, meta, kind) {
            Ok(()) => meta.mode & !(libc::S_ISUID | libc::S_ISGID),
            Err(e) => {
                log::debug!("{}: owner not recorded: {e}", rel.display());
                meta.mode
            }
        }
    }

    /// A device node this process may not make: an empty file whose
    /// override xattr says what it is, as containers/storage stores one.
    fn device_stand_in(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
        meta: &Meta,
        kind: OverrideKind,
    ) -> io::Result<()> {
        let file = self.create_new(pfd, name, rel, || {
            rustix::fs::openat(
                pfd,
                name,
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
        })?;
        record_override(file.as_fd(), meta, kind)?;
        let mode = meta.mode & !(libc::S_ISUID | libc::S_ISGID);
        rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))?;
        rustix::fs::futimens(&file, &times(meta))?;
        Ok(())
    }

    /// Makes a new non-directory entry with `make`, clearing the way first
    /// only if something is in it: most names are new, so this spares an
    /// unlink per entry.
    fn create_new<T>(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
        make: impl Fn() -> rustix::io::Result<T>,
    ) -> io::Result<T> {
        match make() {
            Err(Errno::EXIST) => {
                self.replace(pfd, name, rel)?;
                Ok(make()?)
            }
            other => Ok(other?),
        }
    }

    /// Clears the way for a new non-directory entry called `name` (at `rel`).
    fn replace(&mut self, pfd: BorrowedFd<'_>, name: &OsStr, rel: &Path) -> io::Result<()> {
        self.save_bodies(rel)?;
        match rustix::fs::unlinkat(pfd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(Errno::ISDIR) | Err(Errno::PERM) => self.remove(pfd, name, rel),
            Err(e) => Err(e.into()),
        }
    }

    /// The file bodies this layer unpacked at or under `rel`, which is about
    /// to go, must stay readable for the tar-split.
    fn save_bodies(&mut self, rel: &Path) -> io::Result<()> {
        match &self.split {
            Some(split) => split
                .borrow_mut()
                .stash_under(self.root.as_fd(), rel, |_| false),
            None => Ok(()),
        }
    }

    fn remove(&mut self, pfd: BorrowedFd<'_>, name: &OsStr, rel: &Path) -> io::Result<()> {
        self.save_bodies(rel)?;
        if fsops::remove_all(pfd, name)? {
            // A cached fd may now point into the removed tree.
            self.dirs.clear();
        }
        Ok(())
    }

    fn parent_dir(&mut self, parent: &Path, raw: &Path) -> Result<Rc<OwnedFd>, ArchiveError> {
        if let Some(fd) = self.dirs.get(parent) {
            return Ok(fd.clone());
        }
        let fd =
            fsops::open_or_create_dir(self.root.as_fd(), parent).map_err(
                |e| match resolve_problem(&e) {
                    Some(reason) => unsafe_entry(raw, reason),
                    None => ArchiveError::io(parent, e),
                },
            )?;
        if self.dirs.len() >= DIR_CACHE_MAX {
            self.dirs.clear();
        }
        let fd = Rc::new(fd);
        self.dirs.insert(parent.to_path_buf(), fd.clone());
        Ok(fd)
    }

    /// Applies directory metadata, deepest first so a parent's mode cannot
    /// lock us out of its children.
    fn finish(mut self) -> Result<(), ArchiveError> {
        self.dirs.clear();
        let mut dirs = std::mem::take(&mut self.dir_meta);
        // Stable sort: for a directory listed twice, the later entry wins.
        dirs.sort_by_key(|(path, _)| std::cmp::Reverse(path.components().count()));
        for (rel, meta) in &dirs {
            let dir = match fsops::open_dir(self.root.as_fd(), rel) {
                Ok(dir) => dir,
                // Replaced or removed by a later entry.
                Err(_) => continue,
            };
            let at = |e: Errno| ArchiveError::io(rel, e.into());
            let chowned = self
                .chown_fd(dir.as_fd(), meta)
                .map_err(|e| ArchiveError::io(rel, e))?;
            let mode = self.disk_mode(dir.as_fd(), meta, chowned, OverrideKind::Dir, rel);
            rustix::fs::fchmod(&dir, Mode::from_raw_mode(mode)).map_err(at)?;
            rustix::fs::futimens(&dir, &times(meta)).map_err(at)?;
        }
        Ok(())
    }
}

/// Normalises an entry path: drops `.` and empty components, refuses `..`
/// and absolute paths.
fn clean_path(raw: &Path) -> Result<PathBuf, ArchiveError> {
    let mut out = PathBuf::new();
    for comp in raw.components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_entry(raw, "path contains `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_entry(raw, "absolute path"))
            }
        }
    }
    Ok(out)
}

fn unsafe_entry(path: &Path, reason: &'static str) -> ArchiveError {
    ArchiveError::Unsafe {
        path: path.to_path_buf(),
        reason,
    }
}

/// Errors of `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` that mean the
/// path tried to leave the layer or go through a symlink.
fn resolve_problem(e: &io::Error) -> Option<&'static str> {
    match e.raw_os_error() {
        Some(libc::ELOOP) => Some("path goes through a symlink"),
        Some(libc::EXDEV) => Some("path leads outside the layer"),
        _ => None,
    }
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let header = entry.header();
    let old = header.as_old();
    let mut meta = Meta {
        mode: numeric(&old.mode, header.mode().map(u64::from))? as u32 & 0o7777,
        uid: u32::try_from(numeric(&old.uid, header.uid())?)
            .map_err(|_| invalid("uid out of range"))?,
        gid: u32::try_from(numeric(&old.gid, header.gid())?)
            .map_err(|_| invalid("gid out of range"))?,
        mtime: rustix::fs::Timespec {
            tv_sec: i64::try_from(numeric(&old.mtime, header.mtime())?)
                .map_err(|_| invalid("mtime out of range"))?,
            tv_nsec: 0,
        },
        xattrs: Vec::new(),
    };
    let path = entry.path_bytes().into_owned();
    if let Some(extensions) = entry.pax_extensions()? {
        for ext in extensions {
            let Ok(ext) = ext else {
                // tar 0.4 splits PAX records at '\n', so a binary value holding
                // one (some security.capability values) cannot be read back.
                log::warn!(
                    "{}: unreadable PAX record, later records ignored",
                    String::from_utf8_lossy(&path)
                );
                break;
            };
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                meta.xattrs
                    .push((name.to_string(), ext.value_bytes().to_vec()));
            } else if key == "mtime" {
                if let Some(t) = ext.value().ok().and_then(parse_pax_time) {
                    meta.mtime = t;
                }
            }
        }
    }
    Ok(meta)
}

/// A numeric header field; blank (all NUL or space) reads as 0, as Go's
/// archive/tar (hence Docker) reads it.
fn numeric(raw: &[u8], parsed: io::Result<u64>) -> io::Result<u64> {
    if raw.iter().all(|b| *b == 0 || *b == b' ') {
        Ok(0)
    } else {
        parsed
    }
}

/// PAX times are decimal seconds with an optional fraction: "1700000000.123".
fn parse_pax_time(text: &str) -> Option<rustix::fs::Timespec> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let mut tv_nsec: i64 = digits.parse().ok()?;
    if tv_sec < 0 && tv_nsec > 0 {
        tv_nsec = -tv_nsec;
    }
    Some(rustix::fs::Timespec { tv_sec, tv_nsec }).filter(|t| t.tv_nsec >= 0)
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn device<R: Read>(entry: &tar::Entry<'_, R>) -> rustix::fs::Dev {
    let h = entry.header();
    let major = h.device_major().ok().flatten().unwrap_or(0);
    let minor = h.device_minor().ok().flatten().unwrap_or(0);
    rustix::fs::makedev(major, minor)
}

fn times(meta: &Meta) -> Timestamps {
    Timestamps {
        last_access: meta.mtime,
        last_modification: meta.mtime,
    }
}

fn uid(raw: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(raw)
}

fn gid(raw: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(raw)
}

/// Writes `meta`'s owner and mode to the override xattr of `fd`.
fn record_override(fd: BorrowedFd<'_>, meta: &Meta, kind: OverrideKind) -> io::Result<()> {
    let value = OverrideStat {
        uid: meta.uid,
        gid: meta.gid,
        mode: meta.mode,
        kind: Some(kind),
    }
    .format();
    rustix::fs::fsetxattr(fd, OVERRIDE_XATTR, value.as_bytes(), XattrFlags::empty())?;
    Ok(())
}

/// Sets xattrs where the filesystem and our privileges allow. Overlay's own
/// xattrs and the owner override are storage metadata: a tarball must not
/// forge an opaque dir or an owner.
fn set_xattrs(fd: BorrowedFd<'_>, xattrs: &[(String, Vec<u8>)], rel: &Path) {
    for (name, value) in xattrs {
        if name.starts_with("trusted.overlay.")
            || name.starts_with("user.overlay.")
            || name == OVERRIDE_XATTR
        {
            log::warn!(
                "{}: ignoring overlay xattr {name} from the tarball",
                rel.display()
            );
            continue;
        }
        if let Err(e) = rustix::fs::fsetxattr(fd, name.as_str(), value, XattrFlags::empty()) {
            log::debug!("{}: xattr {name} not set: {e}", rel.display());
        }
    }
}

/// Copies an entry's data with a large buffer (the default 8 KiB is the
/// bottleneck for big files).
fn copy(from: &mut impl Read, to: &mut impl Write, buf: &mut [u8]) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        let n = match from.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_parse_with_fractions() {
        let t = parse_pax_time("1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        let t = parse_pax_time("12").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (12, 0));
        assert!(parse_pax_time("1.x").is_none());
        assert!(parse_pax_time("").is_none());
    }

    #[test]
    fn clean_path_normalises_and_refuses_escapes() {
        assert_eq!(
            clean_path(Path::new("./a//b/./c/")).unwrap(),
            Path::new("a/b/c")
        );
        assert_eq!(clean_path(Path::new("./")).unwrap(), Path::new(""));
        assert!(matches!(
            clean_path(Path::new("a/../../b")),
            Err(ArchiveError::Unsafe { .. })
        ));
        assert!(matches!(
            clean_path(Path::new("/etc/passwd")),
            Err(ArchiveError::Unsafe { .. })
        ));
    }
}
