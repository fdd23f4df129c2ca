//! Copy-up: giving a lower object an upper copy before it changes.
//!
//! The copy is built in the work dir (data with holes kept, owner, mode,
//! xattrs, times), fsynced, and renamed into place, so the upper layer never
//! holds half a file: a crash leaves either no copy or a whole one, and the
//! work dir's leftovers are swept at the next mount.

use std::os::fd::{AsRawFd, RawFd};

use crate::fs::UnionFs;
use crate::inode::Node;
use crate::lane;
use crate::sys::{self, Errno, SysResult};
use crate::whiteout;

impl UnionFs {
    /// Ensures node `ino` lives in the upper layer; returns its new state.
    /// With `skip_data` a regular file's content is not copied (it is about
    /// to be truncated to zero).
    pub(crate) fn copy_up(&self, ino: u64, skip_data: bool) -> SysResult<Node> {
        self.writable()?;
        let n = self.node(ino)?;
        if self.layers.is_upper(n.layer) {
            return Ok(n);
        }
        let mut known = None;
        let _g = if lane::on_session_thread() {
            // A long copy must not stall every other request: hand the
            // operation to a worker before anything has changed.
            if n.kind == libc::S_IFREG && !skip_data {
                let st = sys::fstatat(self.layers.fd(n.layer), &n.path)?;
                if st.st_size > lane::QUICK_COPY_BYTES {
                    return Err(lane::MOVE_TO_POOL);
                }
                known = Some((n.layer, st));
            }
            self.copy_lock.try_lock().ok_or(lane::MOVE_TO_POOL)?
        } else {
            self.copy_lock.lock()
        };
        // Another thread may have finished it while we waited.
        let n = self.node(ino)?;
        if self.layers.is_upper(n.layer) {
            return Ok(n);
        }
        let (parent, _) = sys::split(&n.path);
        if !self.upper_dir_known(parent) {
            self.ensure_upper_dir(parent)?;
        }
        let known = known.filter(|(l, _)| *l == n.layer).map(|(_, st)| st);
        let st = self.copy_object(n.layer, &n.path, skip_data, known)?;
        self.nodes.lock().copied_up(
            ino,
            self.layers.all[0].dev,
            st.st_ino,
            self.writes_clean_dirs(),
        );
        self.node(ino)
    }

    /// Whether the node table already knows directory `path` to have an
    /// upper copy (a copy-up of many files in one directory then costs no
    /// stat of the directory each).
    fn upper_dir_known(&self, path: &[u8]) -> bool {
        path == b"."
            || self.nodes.lock().at_path(path).is_some_and(|(_, d)| {
                d.is_dir()
                    && d.dir_layers
                        .first()
                        .is_some_and(|&l| self.layers.is_upper(l))
            })
    }

    /// Makes sure directory `path` (and its ancestors) exist in the upper
    /// layer, copying their attributes from the topmost lower copy.
    pub(crate) fn ensure_upper_dir(&self, path: &[u8]) -> SysResult<()> {
        self.upper_dir(path).map(drop)
    }

    /// [`ensure_upper_dir`](Self::ensure_upper_dir), returning the upper
    /// directory's stat (a create needs its mode and group anyway).
    pub(crate) fn upper_dir(&self, path: &[u8]) -> SysResult<libc::stat> {
        let up = self.layers.upper_fd()?;
        if let Ok(st) = sys::fstatat(up, path) {
            if is_dir(&st) {
                return Ok(st);
            }
        }
        if path == b"." {
            return Err(Errno(libc::ENOTDIR));
        }
        let (parent, _) = sys::split(path);
        self.ensure_upper_dir(parent)?;
        let src = (self.layers.first_lower()..self.layers.all.len())
            .find(|&l| sys::fstatat(self.layers.fd(l), path).is_ok_and(|st| is_dir(&st)))
            .ok_or(Errno(libc::ENOENT))?;
        let st = self.copy_object(src, path, true, None)?;
        self.nodes
            .lock()
            .dir_now_in_upper(path, self.writes_clean_dirs());
        Ok(st)
    }

    /// Copies one object from `layer` to the upper layer at the same path;
    /// `known` is its stat when the caller just took it.
    fn copy_object(
        &self,
        layer: usize,
        path: &[u8],
        skip_data: bool,
        known: Option<libc::stat>,
    ) -> SysResult<libc::stat> {
        let up = self.layers.upper_fd()?;
        let work = self.layers.work_fd().ok_or(Errno(libc::EROFS))?;
        let lfd = self.layers.fd(layer);
        let st = match known {
            Some(st) => st,
            None => sys::fstatat(lfd, path)?,
        };
        let tmp = self.layers.tmp_name();
        let mode = st.st_mode & 0o7777;
        let result = (|| {
            match st.st_mode & libc::S_IFMT {
                libc::S_IFREG => {
                    // Born with its final mode when no chown follows and
                    // no set-id bit is involved (a chown, or our own write
                    // as an unprivileged owner, would clear those).
                    let ours = self.owns(st.st_uid, st.st_gid)
                        && mode & (libc::S_ISUID | libc::S_ISGID) == 0;
                    let dst = sys::openat(
                        work,
                        &tmp,
                        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                        if ours { mode } else { 0o600 },
                    )?;
                    if !skip_data && st.st_size > 0 {
                        let src = sys::openat(lfd, path, libc::O_RDONLY, 0)?;
                        copy_data(
                            src.as_raw_fd(),
                            dst.as_raw_fd(),
                            st.st_size as u64,
                            self.fsync,
                        )?;
                    }
                    if !ours {
                        self.own(work, &tmp, st.st_uid, st.st_gid)?;
                        // SAFETY: plain syscall; chmod after chown, which clears setuid.
                        if unsafe { libc::fchmod(dst.as_raw_fd(), mode) } != 0 {
                            return Err(Errno::last());
                        }
                    }
                    self.copy_xattrs(lfd, path, work, &tmp);
                    set_times_fd(dst.as_raw_fd(), &st)?;
                    // Data must be on disk before the rename publishes it;
                    // an empty copy has no data, and its inode is journaled
                    // together with the rename.
                    if self.fsync && !skip_data && st.st_size > 0 {
                        sys::fsync(dst.as_raw_fd())?;
                    }
                }
                libc::S_IFDIR => {
                    sys::mkdirat(work, &tmp, 0o700)?;
                    self.own(work, &tmp, st.st_uid, st.st_gid)?;
                    sys::chmodat(work, &tmp, mode)?;
                    self.copy_xattrs(lfd, path, work, &tmp);
                    set_times(work, &tmp, &st)?;
                }
                libc::S_IFLNK => {
                    let target = sys::readlinkat(lfd, path)?;
                    sys::symlinkat(&target, work, &tmp)?;
                    self.own(work, &tmp, st.st_uid, st.st_gid)?;
                    self.copy_xattrs(lfd, path, work, &tmp);
                    set_times(work, &tmp, &st)?;
                }
                kind => {
                    sys::mknodat(work, &tmp, kind | mode, st.st_rdev)?;
                    self.own(work, &tmp, st.st_uid, st.st_gid)?;
                    sys::chmodat(work, &tmp, mode)?;
                    self.copy_xattrs(lfd, path, work, &tmp);
                    set_times(work, &tmp, &st)?;
                }
            }
            sys::renameat2(work, &tmp, up, path, 0)
        })();
        if let Err(e) = result {
            let _ = crate::layers::remove_tree(work, &tmp);
            return Err(e);
        }
        sys::fstatat(up, path)
    }

    /// Copies user-visible xattrs; failures (e.g. security.* without
    /// privilege) are not fatal, like the kernel's copy-up.
    fn copy_xattrs(&self, sfd: RawFd, spath: &[u8], dfd: RawFd, dpath: &[u8]) {
        let Ok(list) = sys::llistxattr(sfd, spath) else {
            return;
        };
        for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
            // The recorded owner is the object's, not the overlay's: it
            // goes along.
            if whiteout::is_private_xattr(name) && name != crate::owners::OVERRIDE_XATTR {
                continue;
            }
            if let Ok(v) = sys::lgetxattr(sfd, spath, name) {
                if let Err(e) = sys::lsetxattr(dfd, dpath, name, &v, 0) {
                    log::debug!("copy-up xattr {}: {e}", String::from_utf8_lossy(name));
                }
            }
        }
    }
}

impl UnionFs {
    /// Whether the upper directories this mount creates stay free of
    /// `.wh.NAME` files (it writes character-device whiteouts).
    pub(crate) fn writes_clean_dirs(&self) -> bool {
        self.layers.style == crate::layers::WhiteoutStyle::CharDev
    }
}

fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn times_of(st: &libc::stat) -> [libc::timespec; 2] {
    [
        libc::timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec,
        },
        libc::timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec,
        },
    ]
}

fn set_times(dirfd: RawFd, path: &[u8], st: &libc::stat) -> SysResult<()> {
    sys::utimensat(dirfd, path, &times_of(st))
}

/// [`set_times`] on an open file: no path walk.
fn set_times_fd(fd: RawFd, st: &libc::stat) -> SysResult<()> {
    let t = times_of(st);
    // SAFETY: an fd we own and two timespecs.
    if unsafe { libc::futimens(fd, t.as_ptr()) } != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Copies `size` bytes, skipping holes so sparse files stay sparse. With
/// `durable`, writeback of each copied chunk starts at once (the caller
/// fsyncs at the end): the disk writes while the rest is read, where a
/// copy followed by one fsync, the kernel's way, does one after the other.
pub(crate) fn copy_data(src: RawFd, dst: RawFd, size: u64, durable: bool) -> SysResult<()> {
    let mut off: i64 = 0;
    let end = size as i64;
    while off < end {
        // SAFETY: plain lseek on an fd we own.
        let data = unsafe { libc::lseek(src, off, libc::SEEK_DATA) };
        if data < 0 {
            let e = Errno::last();
            if e.0 == libc::ENXIO {
                break; // only a hole remains
            }
            // No SEEK_DATA support: copy everything.
            copy_range(src, dst, off, end - off, durable)?;
            break;
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(src, data, libc::SEEK_HOLE) };
        let hole = if hole < 0 { end } else { hole.min(end) };
        copy_range(src, dst, data, hole - data, durable)?;
        off = hole;
    }
    // SAFETY: plain syscall; sets the size past any trailing hole.
    if unsafe { libc::ftruncate(dst, end) } != 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// How much [`copy_range`] copies between starting writebacks.
const WRITEBACK_CHUNK: i64 = 8 << 20;

fn copy_range(src: RawFd, dst: RawFd, start: i64, len: i64, durable: bool) -> SysResult<()> {
    let mut off_in = start;
    let mut off_out = start;
    let mut left = len;
    while left > 0 {
        let want = if durable {
            left.min(WRITEBACK_CHUNK)
        } else {
            left
        };
        let from = off_out;
        // SAFETY: offsets are valid pointers; fds are ours.
        let n =
            unsafe { libc::copy_file_range(src, &mut off_in, dst, &mut off_out, want as usize, 0) };
        if n < 0 {
            let e = Errno::last();
            if matches!(
                e.0,
                libc::EXDEV | libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP
            ) {
                return copy_rw(src, dst, off_in, left);
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        if durable {
            // Only a head start: the fsync that follows is what makes the
            // copy durable, so a failure here changes nothing.
            // SAFETY: plain syscall on our fd.
            unsafe { libc::sync_file_range(dst, from, n as i64, libc::SYNC_FILE_RANGE_WRITE) };
        }
        left -= n as i64;
    }
    Ok(())
}

fn copy_rw(src: RawFd, dst: RawFd, start: i64, len: i64) -> SysResult<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut off = start as u64;
    let end = (start + len) as u64;
    while off < end {
        let want = buf.len().min((end - off) as usize);
        let n = sys::pread(src, &mut buf[..want], off)?;
        if n == 0 {
            break;
        }
        let mut w = 0;
        while w < n {
            w += sys::pwrite(dst, &buf[w..n], off + w as u64)?;
        }
        off += n as u64;
    }
    Ok(())
}
