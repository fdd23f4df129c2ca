//! Merged lookup and attributes.
//!
//! A name is searched in the parent's contributing layers, topmost first. A
//! whiteout (either style) ends the search; a non-directory is final; a
//! directory keeps collecting lower directories of the same name until one is
//! opaque or a non-directory/whiteout hides the rest.

use fuser::{FileAttr, TimeOrNow};

use crate::fs::UnionFs;
use crate::inode::Node;
use crate::sys::{self, Errno, SysResult};
use crate::whiteout;

/// What a lookup found.
pub(crate) struct Found {
    pub(crate) path: Vec<u8>,
    pub(crate) layer: usize,
    pub(crate) st: libc::stat,
    /// Directories only: contributing layers, topmost first.
    pub(crate) dir_layers: Vec<usize>,
    /// The layer/stat whose host inode names the object (for a merged
    /// directory, the topmost lower one, so copy-up does not renumber it).
    ino_src: (usize, libc::stat),
}

impl Found {
    pub(crate) fn is_dir(&self) -> bool {
        self.st.st_mode & libc::S_IFMT == libc::S_IFDIR
    }

    pub(crate) fn has_lower(&self, fs: &UnionFs) -> bool {
        self.dir_layers.iter().any(|&l| !fs.layers.is_upper(l))
    }
}

impl UnionFs {
    /// Looks `name` up under `parent`, starting at the parent's layer list
    /// entry `start` (readdir already knows no layer above it has the name).
    pub(crate) fn find_from(
        &self,
        parent: &Node,
        name: &[u8],
        start: usize,
    ) -> SysResult<Option<Found>> {
        self.search(parent, name, start, None)
    }

    /// The search behind [`find_from`](Self::find_from). `upper_whiteout`
    /// is set when the parent's upper directory holds a whiteout for the
    /// name (a create must then build over it); it is only looked for there,
    /// since in the last layer of the list a `.wh.` file hides nothing.
    fn search(
        &self,
        parent: &Node,
        name: &[u8],
        start: usize,
        mut upper_whiteout: Option<&mut bool>,
    ) -> SysResult<Option<Found>> {
        if name.len() > 255 {
            return Err(Errno(libc::ENAMETOOLONG));
        }
        let path = sys::join(&parent.path, name);
        let cpath = sys::cpath(&path)?;
        let mut found: Option<Found> = None;
        let last = parent.dir_layers.len().saturating_sub(1);
        for (pos, &l) in parent.dir_layers.iter().enumerate().skip(start) {
            let fd = self.layers.fd(l);
            let upper = self.layers.is_upper(l);
            match sys::fstatat_c(fd, &cpath) {
                Ok(st) => {
                    if whiteout::is_whiteout_stat(&st) {
                        if let Some(w) = upper_whiteout.as_deref_mut() {
                            *w |= upper;
                        }
                        break;
                    }
                    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
                    match found.as_mut() {
                        None => {
                            if !is_dir {
                                return Ok(Some(Found {
                                    path,
                                    layer: l,
                                    st,
                                    dir_layers: Vec::new(),
                                    ino_src: (l, st),
                                }));
                            }
                            found = Some(Found {
                                path: path.clone(),
                                layer: l,
                                st,
                                dir_layers: vec![l],
                                ino_src: (l, st),
                            });
                        }
                        Some(f) => {
                            if !is_dir {
                                break;
                            }
                            if f.dir_layers.len() == 1 && self.layers.is_upper(f.layer) {
                                f.ino_src = (l, st);
                            }
                            f.dir_layers.push(l);
                        }
                    }
                    // Opacity hides lower layers: the last one has none.
                    if pos < last && whiteout::is_opaque(fd, &path) {
                        break;
                    }
                }
                Err(Errno(libc::ENOENT)) | Err(Errno(libc::ENOTDIR)) => {
                    let want = (pos < last || (upper && upper_whiteout.is_some()))
                        && !(upper && parent.upper_clean);
                    if want && sys::exists(fd, &sys::join(&parent.path, &whiteout::wh_name(name))) {
                        if let Some(w) = upper_whiteout.as_deref_mut() {
                            *w |= upper;
                        }
                        break;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }

    pub(crate) fn find(&self, parent: &Node, name: &[u8]) -> SysResult<Option<Found>> {
        if whiteout::is_meta_name(name) {
            return Ok(None);
        }
        self.find_from(parent, name, 0)
    }

    /// Like [`find`](Self::find), also telling whether the parent's upper
    /// directory holds a whiteout for the name.
    pub(crate) fn find_for_create(
        &self,
        parent: &Node,
        name: &[u8],
    ) -> SysResult<(Option<Found>, bool)> {
        let mut wh = false;
        let f = if whiteout::is_meta_name(name) {
            None
        } else {
            self.search(parent, name, 0, Some(&mut wh))?
        };
        Ok((f, wh))
    }

    /// The st_ino a found object is shown with.
    pub(crate) fn ino_of(&self, f: &Found) -> u64 {
        self.ino_for(f.ino_src.0, &f.ino_src.1)
    }

    /// Registers a found object in the node table (one kernel reference) and
    /// returns its attributes.
    pub(crate) fn remember(&self, f: Found) -> FileAttr {
        let ino = self.ino_of(&f);
        let attr = self.attr_at(ino, &f.st, f.layer, &f.path);
        self.nodes.lock().remember(
            ino,
            f.path,
            f.layer,
            f.st.st_mode & libc::S_IFMT,
            f.dir_layers,
        );
        attr
    }

    pub(crate) fn do_lookup(&self, parent: u64, name: &[u8]) -> SysResult<FileAttr> {
        let p = self.node(parent)?;
        if !p.is_dir() {
            return Err(Errno(libc::ENOTDIR));
        }
        let f = self.find(&p, name)?.ok_or(Errno(libc::ENOENT))?;
        Ok(self.remember(f))
    }

    pub(crate) fn stat_node(&self, n: &Node) -> SysResult<libc::stat> {
        sys::fstatat(self.layers.fd(n.layer), &n.path)
    }

    pub(crate) fn do_getattr(&self, ino: u64) -> SysResult<FileAttr> {
        let n = self.node(ino)?;
        let st = self.stat_node(&n)?;
        Ok(self.attr_at(ino, &st, n.layer, &n.path))
    }

    pub(crate) fn do_readlink(&self, ino: u64) -> SysResult<Vec<u8>> {
        let n = self.node(ino)?;
        sys::readlinkat(self.layers.fd(n.layer), &n.path)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn do_setattr(
        &self,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        fh: Option<u64>,
        // Some(bare kill request) when the caller may not keep set-id bits.
        unprivileged: Option<bool>,
    ) -> SysResult<FileAttr> {
        self.writable()?;
        let n = self.copy_up(ino, size == Some(0))?;
        let fd = self.layers.upper_fd()?;
        self.set_owner_and_mode(fd, &n, mode, uid, gid)?;
        if let Some(sz) = size {
            self.truncate(&n, sz, fh)?;
        }
        if unprivileged.is_some_and(|bare_kill| bare_kill || size.is_some()) {
            self.kill_suid(fd, &n.path)?;
            self.kill_suid_recorded(fd, &n)?;
        }
        if atime.is_some() || mtime.is_some() {
            let ts = |t: Option<TimeOrNow>| match t {
                None => libc::timespec {
                    tv_sec: 0,
                    tv_nsec: libc::UTIME_OMIT,
                },
                Some(TimeOrNow::Now) => libc::timespec {
                    tv_sec: 0,
                    tv_nsec: libc::UTIME_NOW,
                },
                Some(TimeOrNow::SpecificTime(t)) => {
                    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                    libc::timespec {
                        tv_sec: d.as_secs() as i64,
                        tv_nsec: i64::from(d.subsec_nanos()),
                    }
                }
            };
            sys::utimensat(fd, &n.path, &[ts(atime), ts(mtime)])?;
        }
        let st = sys::fstatat(fd, &n.path)?;
        Ok(self.attr_at(ino, &st, 0, &n.path))
    }

    /// Clears set-user-ID (and group-executable set-group-ID) after a
    /// truncate or write by an unprivileged caller, as the kernel does for
    /// local files: with FUSE_HANDLE_KILLPRIV the kernel leaves that to us
    /// (chown needs nothing: the host's chown clears them itself).
    fn kill_suid(&self, fd: i32, path: &[u8]) -> SysResult<()> {
        let st = sys::fstatat(fd, path)?;
        let mode = st.st_mode & 0o7777;
        let mut keep = mode & !libc::S_ISUID;
        if mode & libc::S_IXGRP != 0 {
            keep &= !libc::S_ISGID;
        }
        if keep != mode && st.st_mode & libc::S_IFMT == libc::S_IFREG {
            sys::chmodat(fd, path, keep)?;
        }
        Ok(())
    }

    fn truncate(&self, n: &Node, size: u64, fh: Option<u64>) -> SysResult<()> {
        if let Some(fh) = fh {
            if let Ok(h) = self.handle(fh) {
                if let crate::fs::Handle::File { fd, .. } = &*h {
                    use std::os::fd::AsRawFd;
                    // SAFETY: plain syscall on an fd we own.
                    if unsafe { libc::ftruncate(fd.as_raw_fd(), size as i64) } == 0 {
                        return Ok(());
                    }
                }
            }
        }
        let f = sys::openat(self.layers.upper_fd()?, &n.path, libc::O_WRONLY, 0)?;
        use std::os::fd::AsRawFd;
        // SAFETY: plain syscall on an fd we own.
        if unsafe { libc::ftruncate(f.as_raw_fd(), size as i64) } != 0 {
            return Err(Errno::last());
        }
        Ok(())
    }

    pub(crate) fn do_statfs(&self) -> SysResult<libc::statvfs> {
        sys::fstatvfs(self.layers.fd(0))
    }
}
