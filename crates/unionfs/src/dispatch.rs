//! The `fuser::Filesystem` glue: decode each request, call the operation,
//! encode the reply. No overlay logic lives here.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::fs::{file_type, UnionFs};
use crate::lane::{quick, Served, MOVE_TO_POOL};
use crate::names::New;
use crate::sys;
use crate::xattr::XattrReply;

const GEN: Generation = Generation(0);

fn e(err: sys::Errno) -> Errno {
    Errno::from_i32(err.0)
}

fn b(s: &OsStr) -> &[u8] {
    s.as_bytes()
}

impl UnionFs {
    fn reply_entry(&self, r: sys::SysResult<fuser::FileAttr>, reply: ReplyEntry) {
        match r {
            Ok(attr) => reply.entry(&self.ttl, &attr, GEN),
            Err(err) => reply.error(e(err)),
        }
    }

    fn reply_xattr(r: sys::SysResult<XattrReply>, reply: ReplyXattr) {
        match r {
            Ok(XattrReply::Size(n)) => reply.size(n),
            Ok(XattrReply::Data(d)) => reply.data(&d),
            Err(err) => reply.error(e(err)),
        }
    }
}

fn negative_attr() -> fuser::FileAttr {
    fuser::FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: SystemTime::UNIX_EPOCH,
        mtime: SystemTime::UNIX_EPOCH,
        ctime: SystemTime::UNIX_EPOCH,
        crtime: SystemTime::UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 0,
        flags: 0,
    }
}

fn empty(r: sys::SysResult<()>, reply: ReplyEmpty) {
    match r {
        Ok(()) => reply.ok(),
        Err(err) => reply.error(e(err)),
    }
}

impl Filesystem for Served {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        for cap in [
            InitFlags::FUSE_DO_READDIRPLUS,
            // "Auto": plus for the first chunk, and for later ones only when
            // entries were stat'ed in between. Always-plus spares `rm -rf` a
            // LOOKUP per entry past the first chunk (3.6 -> 3.0 requests per
            // file) but makes a cold `ls` stat every entry on disk: the
            // cold readdir of 10k entries went from ~2x to ~4.6x the kernel.
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_CACHE_SYMLINKS,
            InitFlags::FUSE_ASYNC_DIO,
            InitFlags::FUSE_MAX_PAGES,
            // Direct-I/O fallback opens (see file.rs) must still mmap.
            InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP,
            // We kill suid/sgid on truncate and write ourselves (see
            // setattr), and the host's chown does on chown; the kernel then
            // needs no GETATTR before every chown to work out the new mode.
            InitFlags::FUSE_HANDLE_KILLPRIV,
            // v2 also lets the kernel remember that a file has no
            // security.capability (it sets SB_NOSEC, so S_NOSEC sticks
            // until the attributes are refreshed): without it, every write
            // and chown asked us for that xattr first, 3 of the 10 round
            // trips per file of an untar. The set-id bits to clear after an
            // unprivileged write then arrive as a flag on the WRITE.
            InitFlags::FUSE_HANDLE_KILLPRIV_V2,
        ] {
            let _ = config.add_capabilities(cap);
        }
        let _ = config.set_max_background(64);
        // SAFETY: trivial getter.
        let root = unsafe { libc::geteuid() } == 0;
        let want_pt = self.passthrough.load(std::sync::atomic::Ordering::Relaxed) && root;
        let pt = want_pt
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(1).is_ok();
        self.passthrough
            .store(pt, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.do_lookup(parent.0, b(name)) {
            // Node id 0 is a negative entry the kernel may cache for the
            // entry timeout: misses (PATH searches, `-e` tests) stay in the
            // kernel. Creating the name through the mount replaces it.
            Err(sys::Errno(libc::ENOENT)) if !self.ttl.is_zero() => {
                reply.entry(&self.ttl, &negative_attr(), GEN)
            }
            r => self.reply_entry(r, reply),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.nodes.lock().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let r = match fh.and_then(|fh| self.handle(fh.0).ok()) {
            Some(h) => match &*h {
                crate::fs::Handle::File { fd, .. } => {
                    use std::os::fd::AsRawFd;
                    sys::fstat(fd.as_raw_fd()).map(|st| self.attr_fd(ino.0, &st, fd.as_raw_fd()))
                }
                crate::fs::Handle::Dir { .. } => self.do_getattr(ino.0),
            },
            None => self.do_getattr(ino.0),
        };
        match r {
            Ok(a) => reply.attr(&self.ttl, &a),
            Err(err) => reply.error(e(err)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // With FUSE_HANDLE_KILLPRIV the kernel's "drop set-id bits" (after
        // a write by an unprivileged caller) reaches us as a SETATTR that
        // changes nothing else (at most ctime).
        let kill_privs = [mode, uid, gid].iter().all(Option::is_none)
            && size.is_none()
            && atime.is_none()
            && mtime.is_none();
        let unprivileged = (req.uid() != 0).then_some(kill_privs);
        let fh = fh.map(|f| f.0);
        let run = move |fs: &UnionFs| {
            fs.do_setattr(ino.0, mode, uid, gid, size, atime, mtime, fh, unprivileged)
        };
        let finish = |fs: &UnionFs, r: sys::SysResult<fuser::FileAttr>, reply: ReplyAttr| match r {
            Ok(a) => reply.attr(&fs.ttl, &a),
            Err(err) => reply.error(e(err)),
        };
        match quick(|| run(self)) {
            Err(MOVE_TO_POOL) => self.on_worker(move |fs| finish(fs, run(fs), reply)),
            r => finish(self, r, reply),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.do_readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(err) => reply.error(e(err)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let what = New::Special(mode & libc::S_IFMT, u64::from(rdev));
        let r = self.create_node(parent.0, b(name), what, mode, req.uid(), req.gid());
        self.reply_entry(r.map(|(a, _)| a), reply);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        self.reply_entry(
            self.do_mkdir(parent.0, b(name), mode, req.uid(), req.gid()),
            reply,
        );
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(self.do_unlink(parent.0, b(name)), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(self.do_rmdir(parent.0, b(name)), reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let what = New::Symlink(target.as_os_str().as_bytes());
        let r = self.create_node(parent.0, b(link_name), what, 0o777, req.uid(), req.gid());
        self.reply_entry(r.map(|(a, _)| a), reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (name, newname) = (b(name).to_vec(), b(newname).to_vec());
        let run =
            move |fs: &UnionFs| fs.do_rename(parent.0, &name, newparent.0, &newname, flags.bits());
        match quick(|| run(self)) {
            Err(MOVE_TO_POOL) => self.on_worker(move |fs| empty(run(fs), reply)),
            r => empty(r, reply),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let newname = b(newname).to_vec();
        let run = move |fs: &UnionFs| fs.do_link(ino.0, newparent.0, &newname);
        match quick(|| run(self)) {
            Err(MOVE_TO_POOL) => self.on_worker(move |fs| fs.reply_entry(run(fs), reply)),
            r => self.reply_entry(r, reply),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let finish = move |fs: &UnionFs, r: sys::SysResult<_>, reply: ReplyOpen| match r {
            Ok((fd, upper)) => {
                let mode = fs.open_mode(ino.0, &fd, upper, |fd| reply.open_backing(fd));
                let (fh, fl) = fs.add_file(fd, &mode);
                match &mode {
                    crate::file::OpenMode::Passthrough(bk) => {
                        reply.opened_passthrough(FileHandle(fh), fl, bk)
                    }
                    _ => reply.opened(FileHandle(fh), fl),
                }
            }
            Err(err) => reply.error(e(err)),
        };
        match quick(|| self.open_fd(ino.0, flags.0)) {
            Err(MOVE_TO_POOL) => {
                self.on_worker(move |fs| finish(fs, fs.open_fd(ino.0, flags.0), reply))
            }
            r => finish(self, r, reply),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // What the page cache holds is answered here; what may wait for the
        // disk goes to a worker, keeping the session thread free.
        if let Some(d) = self.read_cached(fh.0, offset, size) {
            return reply.data(&d);
        }
        self.on_worker(move |fs| match fs.do_read(fh.0, offset, size) {
            Ok(d) => reply.data(&d),
            Err(err) => reply.error(e(err)),
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let kill = write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID);
        match self.do_write(fh.0, offset, data, kill) {
            Ok(n) => reply.written(n),
            Err(err) => reply.error(e(err)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.do_release(ino.0, fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.on_worker(move |fs| empty(fs.do_fsync(fh.0, datasync), reply));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.do_opendir(ino.0) {
            // The kernel drops its cached listing itself whenever a change
            // goes through this mount, and nothing else changes the layers.
            Ok(fh) => reply.opened(
                FileHandle(fh),
                FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR,
            ),
            Err(err) => reply.error(e(err)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.dir_entries(fh.0) {
            Ok(x) => x,
            Err(err) => return reply.error(e(err)),
        };
        let dots = [
            (b".".as_slice(), FileType::Directory),
            (b"..", FileType::Directory),
        ];
        for (i, (name, kind)) in dots.iter().enumerate().skip(offset as usize) {
            if reply.add(ino, i as u64 + 1, *kind, sys::os(name)) {
                return reply.ok();
            }
        }
        let skip = (offset as usize).saturating_sub(2);
        for (i, ent) in entries.iter().enumerate().skip(skip) {
            let kind = if ent.kind == 0 {
                FileType::RegularFile
            } else {
                file_type(ent.kind)
            };
            if reply.add(INodeNo(ent.ino), i as u64 + 3, kind, sys::os(&ent.name)) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let (entries, dir) = match self
            .dir_entries(fh.0)
            .and_then(|x| Ok((x, self.node(ino.0)?)))
        {
            Ok(x) => x,
            Err(err) => return reply.error(e(err)),
        };
        if offset < 2 {
            let Ok(attr) = self.do_getattr(ino.0) else {
                return reply.error(Errno::from_i32(libc::ESTALE));
            };
            for (i, name) in [".", ".."].iter().enumerate().skip(offset as usize) {
                if reply.add(ino, i as u64 + 1, name, &Duration::ZERO, &attr, GEN) {
                    return reply.ok();
                }
            }
        }
        let skip = (offset as usize).saturating_sub(2);
        for (i, ent) in entries.iter().enumerate().skip(skip) {
            let attr = match self.entry_plus(&dir, ent) {
                Ok(Some(a)) => a,
                Ok(None) => continue,
                Err(err) => {
                    log::debug!("readdirplus {:?}: {err}", sys::os(&ent.name));
                    continue;
                }
            };
            if reply.add(
                attr.ino,
                i as u64 + 3,
                sys::os(&ent.name),
                &self.ttl,
                &attr,
                GEN,
            ) {
                // Not sent: the kernel holds no reference for it.
                self.nodes.lock().forget(attr.ino.0, 1);
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.handles.lock().remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.do_statfs() {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(err) => reply.error(e(err)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let (name, value) = (b(name).to_vec(), value.to_vec());
        let run = move |fs: &UnionFs| fs.do_setxattr(ino.0, &name, &value, flags);
        match quick(|| run(self)) {
            Err(MOVE_TO_POOL) => self.on_worker(move |fs| empty(run(fs), reply)),
            r => empty(r, reply),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        UnionFs::reply_xattr(self.do_getxattr(ino.0, b(name), size), reply);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        UnionFs::reply_xattr(self.do_listxattr(ino.0, size), reply);
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = b(name).to_vec();
        let run = move |fs: &UnionFs| fs.do_removexattr(ino.0, &name);
        match quick(|| run(self)) {
            Err(MOVE_TO_POOL) => self.on_worker(move |fs| empty(run(fs), reply)),
            r => empty(r, reply),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // The kernel checks permissions (default_permissions); only existence
        // is ours to answer.
        empty(self.node(ino.0).map(drop), reply);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let r = self.create_node(
            parent.0,
            b(name),
            New::File(flags),
            mode,
            req.uid(),
            req.gid(),
        );
        match r {
            Ok((attr, Some(fd))) => {
                let mode = self.open_mode(attr.ino.0, &fd, true, |fd| reply.open_backing(fd));
                let (fh, fl) = self.add_file(fd, &mode);
                match &mode {
                    crate::file::OpenMode::Passthrough(bk) => {
                        reply.created_passthrough(&self.ttl, &attr, GEN, FileHandle(fh), fl, bk)
                    }
                    _ => reply.created(&self.ttl, &attr, GEN, FileHandle(fh), fl),
                }
            }
            Ok((_, None)) => reply.error(Errno::from_i32(libc::EIO)),
            Err(err) => reply.error(e(err)),
        }
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        // Like overlayfs for the ioctls it does not forward (isatty probes
        // land here on every open by stdio libraries).
        reply.error(Errno::from_i32(libc::ENOTTY));
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.on_worker(move |fs| empty(fs.do_fallocate(fh.0, offset, length, mode), reply));
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        match self.do_lseek(fh.0, offset, whence) {
            Ok(o) => reply.offset(o),
            Err(err) => reply.error(e(err)),
        }
    }
}
