//! The filesystem object: layers, node table, open handles and the settings
//! every operation consults.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{BackingId, FileAttr, FileType, INodeNo};
use parking_lot::Mutex;

use crate::idmap::IdMap;
use crate::inode::{self, Node, Nodes};
use crate::layers::{LayerError, Layers};
use crate::options::Options;
use crate::sys::{self, Errno, SysResult};
use crate::whiteout;

/// An open file or directory.
pub(crate) enum Handle {
    File {
        fd: OwnedFd,
        /// Keeps the kernel's passthrough registration alive until release.
        _backing: Option<Arc<BackingId>>,
    },
    Dir {
        /// The directory's node id.
        ino: u64,
        /// The merged listing, built at the first READDIR: with the
        /// kernel's directory cache kept, a reopened directory is listed
        /// from the cache and the handle never needs one.
        entries: Mutex<Option<Arc<Vec<crate::dir::DirEntry>>>>,
    },
}

/// The overlay filesystem served over FUSE.
pub struct UnionFs {
    pub(crate) layers: Layers,
    pub(crate) nodes: Mutex<Nodes>,
    pub(crate) handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_fh: AtomicU64,
    /// Serialises copy-ups so two writers never copy the same file twice.
    pub(crate) copy_lock: Mutex<()>,
    pub(crate) ttl: Duration,
    pub(crate) read_only: bool,
    pub(crate) xattrs: bool,
    pub(crate) fsync: bool,
    pub(crate) threads: usize,
    pub(crate) spin: Duration,
    pub(crate) passthrough: AtomicBool,
    pub(crate) backings: crate::file::Backings,
    /// Owners recorded in `user.containers.override_stat` are shown and
    /// kept (see `owners`).
    pub(crate) override_stat: bool,
    uid_map: IdMap,
    gid_map: IdMap,
    squash_uid: Option<u32>,
    squash_gid: Option<u32>,
    /// Our own ids: a create whose owner equals them needs no chown.
    euid: u32,
    egid: u32,
}

impl std::fmt::Debug for UnionFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnionFs")
            .field("layers", &self.layers.all.len())
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl UnionFs {
    /// Opens the layers named in `opts`. Nothing is mounted yet.
    pub fn new(opts: &Options) -> Result<UnionFs, LayerError> {
        let layers = Layers::open(
            opts.upperdir.as_deref(),
            opts.workdir.as_deref(),
            &opts.lowerdirs,
        )?;
        // The root merges every layer down to the first opaque one.
        let mut root_layers = Vec::new();
        for i in 0..layers.all.len() {
            root_layers.push(i);
            if whiteout::is_opaque(layers.fd(i), b".") {
                break;
            }
        }
        let (squash_uid, squash_gid) = if opts.squash_to_root {
            (Some(0), Some(0))
        } else {
            (opts.squash_to_uid, opts.squash_to_gid)
        };
        // SAFETY: trivial getters.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        Ok(UnionFs {
            layers,
            nodes: Mutex::new(Nodes::new(root_layers)),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            copy_lock: Mutex::new(()),
            ttl: opts.timeout,
            read_only: opts.is_read_only(),
            xattrs: opts.xattrs,
            fsync: opts.fsync,
            threads: opts.threads,
            spin: opts.spin,
            passthrough: AtomicBool::new(opts.passthrough),
            backings: Default::default(),
            override_stat: opts.override_stat,
            uid_map: opts.uid_map.clone(),
            gid_map: opts.gid_map.clone(),
            squash_uid,
            squash_gid,
            euid,
            egid,
        })
    }

    pub(crate) fn node(&self, ino: u64) -> SysResult<Node> {
        self.nodes.lock().get(ino)
    }

    pub(crate) fn writable(&self) -> SysResult<()> {
        if self.read_only {
            Err(Errno(libc::EROFS))
        } else {
            Ok(())
        }
    }

    pub(crate) fn add_handle(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().insert(fh, Arc::new(h));
        fh
    }

    pub(crate) fn handle(&self, fh: u64) -> SysResult<Arc<Handle>> {
        self.handles
            .lock()
            .get(&fh)
            .cloned()
            .ok_or(Errno(libc::EBADF))
    }

    /// The st_ino of an object found in `layer` with host stat `st`.
    pub(crate) fn ino_for(&self, layer: usize, st: &libc::stat) -> u64 {
        let l = &self.layers.all[layer];
        if self.layers.is_upper(layer) && st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            if let Some(ino) = self.nodes.lock().copied_ino(l.dev, st.st_ino) {
                return ino;
            }
        }
        inode::make_ino(l.tag, st.st_ino)
    }

    /// Converts a host stat to what the mount shows.
    pub(crate) fn attr(&self, ino: u64, st: &libc::stat) -> FileAttr {
        let (uid, gid) = self.shown_ids(st.st_uid, st.st_gid);
        FileAttr {
            ino: INodeNo(ino),
            size: st.st_size as u64,
            blocks: st.st_blocks as u64,
            atime: time(st.st_atime, st.st_atime_nsec),
            mtime: time(st.st_mtime, st.st_mtime_nsec),
            ctime: time(st.st_ctime, st.st_ctime_nsec),
            crtime: UNIX_EPOCH,
            kind: file_type(st.st_mode),
            perm: (st.st_mode & 0o7777) as u16,
            nlink: st.st_nlink as u32,
            uid,
            gid,
            rdev: st.st_rdev as u32,
            blksize: st.st_blksize as u32,
            flags: 0,
        }
    }

    /// The owner shown for on-disk ids.
    pub(crate) fn shown_ids(&self, uid: u32, gid: u32) -> (u32, u32) {
        (
            self.squash_uid
                .unwrap_or_else(|| self.uid_map.to_inside(uid)),
            self.squash_gid
                .unwrap_or_else(|| self.gid_map.to_inside(gid)),
        )
    }

    /// The on-disk owner for an id given through the mount.
    pub(crate) fn disk_ids(&self, uid: u32, gid: u32) -> SysResult<(u32, u32)> {
        Ok((self.disk_uid(uid)?, self.disk_gid(gid)?))
    }

    pub(crate) fn disk_uid(&self, uid: u32) -> SysResult<u32> {
        self.uid_map.to_disk(uid).ok_or(Errno(libc::EINVAL))
    }

    pub(crate) fn disk_gid(&self, gid: u32) -> SysResult<u32> {
        self.gid_map.to_disk(gid).ok_or(Errno(libc::EINVAL))
    }

    /// Whether objects we create are already owned by (`uid`, `gid`).
    pub(crate) fn owns(&self, uid: u32, gid: u32) -> bool {
        uid == self.euid && gid == self.egid
    }

    /// Sets the owner of a freshly created upper object, skipping the call
    /// when we already are that owner.
    pub(crate) fn own(&self, dirfd: i32, path: &[u8], uid: u32, gid: u32) -> SysResult<()> {
        if self.owns(uid, gid) {
            return Ok(());
        }
        match sys::lchown(dirfd, path, uid, gid) {
            // Rootless without a user namespace: we cannot give files away;
            // they stay ours, like fuse-overlayfs.
            Err(Errno(libc::EPERM)) | Err(Errno(libc::EINVAL)) => Ok(()),
            r => r,
        }
    }
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(nsecs as u64)
    }
}

pub(crate) fn file_type(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

/// d_type to S_IFMT bits (0 when unknown).
pub(crate) fn dtype_mode(t: u8) -> u32 {
    match t {
        libc::DT_DIR => libc::S_IFDIR,
        libc::DT_LNK => libc::S_IFLNK,
        libc::DT_CHR => libc::S_IFCHR,
        libc::DT_BLK => libc::S_IFBLK,
        libc::DT_FIFO => libc::S_IFIFO,
        libc::DT_SOCK => libc::S_IFSOCK,
        libc::DT_REG => libc::S_IFREG,
        _ => 0,
    }
}
