//! File I/O: open (with copy-up for writers), read, write, fsync, fallocate,
//! lseek, and FUSE passthrough.
//!
//! Where the kernel allows passthrough (it needs CAP_SYS_ADMIN), reads and
//! writes never reach this process. The kernel insists that every
//! passthrough open of one inode share one backing file, so backings are
//! shared per inode; an open that would need a different one (the file was
//! copied up while a reader kept the lower copy open) falls back to direct
//! I/O, which the kernel accepts alongside passthrough.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Weak};

use fuser::{BackingId, FopenFlags};
use parking_lot::Mutex;

use crate::fs::{Handle, UnionFs};
use crate::sys::{self, Errno, SysResult};

/// How an open file is served.
pub(crate) enum OpenMode {
    /// Through this process, with the kernel's page cache kept.
    Cached,
    /// Through this process, bypassing the page cache.
    Direct,
    /// Straight to the backing file.
    Passthrough(Arc<BackingId>),
}

/// Live passthrough backings by st_ino (and whether they are upper files).
#[derive(Default)]
pub(crate) struct Backings(Mutex<HashMap<u64, (Weak<BackingId>, bool)>>);

impl UnionFs {
    /// Opens node `ino` with host open flags; returns the fd and whether it
    /// is an upper-layer file.
    pub(crate) fn open_fd(&self, ino: u64, flags: i32) -> SysResult<(OwnedFd, bool)> {
        let acc = flags & libc::O_ACCMODE;
        let writes = acc != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        let n = if writes {
            self.writable()?;
            self.copy_up(ino, flags & libc::O_TRUNC != 0)?
        } else {
            self.node(ino)?
        };
        let flags = flags
            & !(libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_DIRECT | libc::O_NOFOLLOW);
        let fd = sys::openat(self.layers.fd(n.layer), &n.path, flags, 0)?;
        Ok((fd, self.layers.is_upper(n.layer)))
    }

    /// Decides how to serve a fresh open; `register` turns an fd into a
    /// kernel backing id (the reply object does that in fuser).
    pub(crate) fn open_mode(
        &self,
        ino: u64,
        fd: &OwnedFd,
        upper: bool,
        register: impl FnOnce(&OwnedFd) -> std::io::Result<BackingId>,
    ) -> OpenMode {
        if !self.passthrough.load(std::sync::atomic::Ordering::Relaxed) {
            return OpenMode::Cached;
        }
        let mut map = self.backings.0.lock();
        if let Some((weak, was_upper)) = map.get(&ino) {
            if let Some(b) = weak.upgrade() {
                return if *was_upper == upper {
                    OpenMode::Passthrough(b)
                } else {
                    OpenMode::Direct
                };
            }
        }
        match register(fd) {
            Ok(b) => {
                let b = Arc::new(b);
                map.insert(ino, (Arc::downgrade(&b), upper));
                OpenMode::Passthrough(b)
            }
            Err(e) => {
                log::info!("FUSE passthrough unavailable ({e}); serving I/O in process");
                self.passthrough
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                OpenMode::Cached
            }
        }
    }

    /// Drops dead backing entries so the map follows open files only.
    pub(crate) fn release_backing(&self, ino: u64) {
        let mut map = self.backings.0.lock();
        if map.get(&ino).is_some_and(|(w, _)| w.strong_count() == 0) {
            map.remove(&ino);
        }
    }

    /// Stores an open file; returns its handle and the FOPEN flags to send.
    pub(crate) fn add_file(&self, fd: OwnedFd, mode: &OpenMode) -> (u64, FopenFlags) {
        let (flags, backing) = match mode {
            // Nobody changes the layers behind our back, so cached pages stay
            // valid across opens.
            OpenMode::Cached => (FopenFlags::FOPEN_KEEP_CACHE, None),
            OpenMode::Direct => (FopenFlags::FOPEN_DIRECT_IO, None),
            OpenMode::Passthrough(b) => (FopenFlags::empty(), Some(b.clone())),
        };
        // FLUSH has nothing to do here (writes reach the host file as they
        // come, and locks are the kernel's): spare the round trip per close.
        let flags = flags | FopenFlags::FOPEN_NOFLUSH;
        let fh = self.add_handle(Handle::File {
            fd,
            _backing: backing,
        });
        (fh, flags)
    }

    fn file_fd(&self, fh: u64) -> SysResult<Arc<Handle>> {
        let h = self.handle(fh)?;
        match &*h {
            Handle::File { .. } => Ok(h),
            Handle::Dir { .. } => Err(Errno(libc::EISDIR)),
        }
    }

    pub(crate) fn do_read(&self, fh: u64, off: u64, size: u32) -> SysResult<Vec<u8>> {
        let h = self.file_fd(fh)?;
        let Handle::File { fd, .. } = &*h else {
            return Err(Errno(libc::EBADF));
        };
        let mut buf = vec![0u8; size as usize];
        let mut got = 0;
        while got < buf.len() {
            let n = sys::pread(fd.as_raw_fd(), &mut buf[got..], off + got as u64)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        buf.truncate(got);
        Ok(buf)
    }

    /// Reads `size` bytes at `off` if the page cache holds them all (or the
    /// file ends before), without waiting for the disk (`RWF_NOWAIT`).
    /// None: not cached, or not known to be; [`Self::do_read`] then.
    pub(crate) fn read_cached(&self, fh: u64, off: u64, size: u32) -> Option<Vec<u8>> {
        let h = self.file_fd(fh).ok()?;
        let Handle::File { fd, .. } = &*h else {
            return None;
        };
        let mut buf = Vec::<u8>::with_capacity(size as usize);
        let iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: size as usize,
        };
        // SAFETY: the iovec covers buf's capacity, all the kernel may write.
        let n = unsafe { libc::preadv2(fd.as_raw_fd(), &iov, 1, off as i64, libc::RWF_NOWAIT) };
        // A short read is the end of the file or the end of what is
        // cached: only a full one (or none at all, the end) is an answer.
        if n < 0 || (n > 0 && n as usize != size as usize) {
            return None;
        }
        // SAFETY: the kernel wrote n bytes.
        unsafe { buf.set_len(n as usize) };
        Some(buf)
    }

    /// Writes at `off`; `kill_setid` (FUSE_WRITE_KILL_SUIDGID: the writer
    /// may not keep them) then clears set-user-ID and group-executable
    /// set-group-ID, as a local filesystem would.
    pub(crate) fn do_write(
        &self,
        fh: u64,
        off: u64,
        data: &[u8],
        kill_setid: bool,
    ) -> SysResult<u32> {
        let h = self.file_fd(fh)?;
        let Handle::File { fd, .. } = &*h else {
            return Err(Errno(libc::EBADF));
        };
        let mut done = 0;
        while done < data.len() {
            done += sys::pwrite(fd.as_raw_fd(), &data[done..], off + done as u64)?;
        }
        if kill_setid {
            let st = sys::fstat(fd.as_raw_fd())?;
            let mode = st.st_mode & 0o7777;
            let mut keep = mode & !libc::S_ISUID;
            if mode & libc::S_IXGRP != 0 {
                keep &= !libc::S_ISGID;
            }
            // SAFETY: plain syscall on an fd we own.
            if keep != mode && unsafe { libc::fchmod(fd.as_raw_fd(), keep) } != 0 {
                return Err(Errno::last());
            }
        }
        Ok(done as u32)
    }

    pub(crate) fn do_fsync(&self, fh: u64, datasync: bool) -> SysResult<()> {
        if !self.fsync {
            return Ok(());
        }
        let h = self.file_fd(fh)?;
        let Handle::File { fd, .. } = &*h else {
            return Err(Errno(libc::EBADF));
        };
        // SAFETY: plain syscalls on an fd we own.
        let r = unsafe {
            if datasync {
                libc::fdatasync(fd.as_raw_fd())
            } else {
                libc::fsync(fd.as_raw_fd())
            }
        };
        if r != 0 {
            return Err(Errno::last());
        }
        Ok(())
    }

    pub(crate) fn do_fallocate(&self, fh: u64, off: u64, len: u64, mode: i32) -> SysResult<()> {
        let h = self.file_fd(fh)?;
        let Handle::File { fd, .. } = &*h else {
            return Err(Errno(libc::EBADF));
        };
        // SAFETY: plain syscall on an fd we own.
        if unsafe { libc::fallocate(fd.as_raw_fd(), mode, off as i64, len as i64) } != 0 {
            return Err(Errno::last());
        }
        Ok(())
    }

    pub(crate) fn do_lseek(&self, fh: u64, off: i64, whence: i32) -> SysResult<i64> {
        let h = self.file_fd(fh)?;
        let Handle::File { fd, .. } = &*h else {
            return Err(Errno(libc::EBADF));
        };
        // SAFETY: plain syscall; only SEEK_DATA/SEEK_HOLE reach us, which do
        // not depend on a shared file position.
        let r = unsafe { libc::lseek(fd.as_raw_fd(), off, whence) };
        if r < 0 {
            return Err(Errno::last());
        }
        Ok(r)
    }

    pub(crate) fn do_release(&self, ino: u64, fh: u64) {
        self.handles.lock().remove(&fh);
        self.release_backing(ino);
    }
}
