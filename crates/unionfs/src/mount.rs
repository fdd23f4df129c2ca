//! Turning [`Options`] into a mounted FUSE session.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use fuser::{Config, MountOption, Session, SessionACL, SessionUnmounter};

use crate::fs::UnionFs;
use crate::lane::Served;
use crate::layers::LayerError;
use crate::options::Options;
use crate::sys;

/// Why a mount failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A layer or the work dir cannot be used.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// The kernel (or fusermount3) refused the mount.
    #[error("mounting {path}: {source}")]
    Mount {
        /// The mount point.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// A mounted, not yet served, overlay (see [`mount`]).
pub struct Mounted {
    session: Session<Served>,
    /// Set when we mounted it ourselves (not through fuser/fusermount3),
    /// so unmounting is ours too.
    direct: Option<PathBuf>,
}

impl Mounted {
    /// A handle that unmounts from any thread (for signal handlers).
    pub fn unmounter(&mut self) -> Unmounter {
        match &self.direct {
            Some(p) => Unmounter(UnmountBy::Direct(p.clone())),
            None => Unmounter(UnmountBy::Fuser(self.session.unmount_callable())),
        }
    }

    /// Serves requests until the filesystem is unmounted.
    pub fn run(self) -> std::io::Result<()> {
        self.session.run()
    }
}

/// Unmounts a [`Mounted`] overlay; the serving [`Mounted::run`] then returns.
pub struct Unmounter(UnmountBy);

enum UnmountBy {
    Fuser(SessionUnmounter),
    Direct(PathBuf),
}

impl Unmounter {
    /// Unmounts (lazily when the mount is busy).
    pub fn unmount(&mut self) -> std::io::Result<()> {
        match &mut self.0 {
            UnmountBy::Fuser(u) => u.unmount(),
            UnmountBy::Direct(p) => {
                let c = sys::cpath(p.as_os_str().as_bytes()).map_err(errno_io)?;
                // SAFETY: a valid C string.
                if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
                    return Ok(());
                }
                // SAFETY: as above.
                if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
                    return Ok(());
                }
                Err(std::io::Error::last_os_error())
            }
        }
    }
}

fn errno_io(e: sys::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.0)
}

/// The filesystem type the mount shows (`fuse.SUBTYPE`, as fuse-overlayfs's
/// `fuse.fuse-overlayfs`), so tools can tell our mounts apart.
pub const FSTYPE: &str = "fuse.berth-unionfs";

/// Opens the layers and mounts them at `mountpoint` through fuser (a
/// direct mount there shows the bare type `fuse`). The mount is ready (the
/// kernel's INIT is answered) when this returns; call [`Session::run`] or
/// [`Session::spawn`] to serve it. [`mount`] is the same with the type
/// `fuse.berth-unionfs` everywhere.
pub fn session(opts: &Options, mountpoint: &Path) -> Result<Session<Served>, MountError> {
    let (fs, config) = prepare(opts)?;
    Session::new(Served::new(fs), mountpoint, &config).map_err(|source| MountError::Mount {
        path: mountpoint.to_path_buf(),
        source,
    })
}

/// Like [`session`], but a direct mount carries the subtype ([`FSTYPE`]),
/// as fusermount3's always does: fuser mounts with the bare type `fuse`, so
/// where mount(2) is permitted we make the call ourselves.
pub fn mount(opts: &Options, mountpoint: &Path) -> Result<Mounted, MountError> {
    let (fs, config) = prepare(opts)?;
    let mount_err = |source| MountError::Mount {
        path: mountpoint.to_path_buf(),
        source,
    };
    let acl = config.acl;
    if let Some(fd) = mount_direct(opts, mountpoint, acl).map_err(mount_err)? {
        return match Session::from_fd(Served::new(fs), fd, acl, config) {
            Ok(session) => Ok(Mounted {
                session,
                direct: Some(mountpoint.to_path_buf()),
            }),
            Err(e) => {
                let _ = Unmounter(UnmountBy::Direct(mountpoint.to_path_buf())).unmount();
                Err(mount_err(e))
            }
        };
    }
    let session = Session::new(Served::new(fs), mountpoint, &config).map_err(mount_err)?;
    Ok(Mounted {
        session,
        direct: None,
    })
}

/// The filesystem and the session settings for `opts`.
fn prepare(opts: &Options) -> Result<(UnionFs, Config), MountError> {
    // Modes arrive already masked by the caller's umask; ours must not mask
    // them again.
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0) };
    let fs = UnionFs::new(opts)?;
    let root = is_root();
    let mut mount_options = vec![
        MountOption::FSName(opts.fsname.clone()),
        MountOption::Subtype("berth-unionfs".into()),
        MountOption::DefaultPermissions,
    ];
    if opts.is_read_only() {
        mount_options.push(MountOption::RO);
    }
    if root {
        // Container root filesystems need device nodes and setuid binaries.
        mount_options.push(MountOption::Dev);
        mount_options.push(MountOption::Suid);
    }
    let mut config = Config::default();
    config.mount_options = mount_options;
    config.acl = if root || opts.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    // One thread reads and answers; slow work moves to `fs.threads`
    // workers (see `lane`).
    config.n_threads = Some(1);
    Ok((fs, config))
}

fn is_root() -> bool {
    // SAFETY: trivial getter.
    unsafe { libc::geteuid() == 0 }
}

/// mount(2) of `/dev/fuse` as [`FSTYPE`]; `None` when not permitted.
fn mount_direct(
    opts: &Options,
    mountpoint: &Path,
    acl: SessionACL,
) -> std::io::Result<Option<OwnedFd>> {
    let root = is_root();
    let mnt = sys::cpath(mountpoint.as_os_str().as_bytes()).map_err(errno_io)?;
    let root_mode = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(mountpoint)?.mode() & libc::S_IFMT
    };
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")?;
    let fd = OwnedFd::from(dev);
    // SAFETY: trivial getters.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut data = format!(
        "fd={},rootmode={:o},user_id={uid},group_id={gid},default_permissions",
        fd.as_raw_fd(),
        root_mode
    );
    if acl != SessionACL::Owner {
        data.push_str(",allow_other");
    }
    let mut flags = 0;
    if !root {
        flags |= libc::MS_NOSUID | libc::MS_NODEV;
    }
    if opts.is_read_only() {
        flags |= libc::MS_RDONLY;
    }
    let source = sys::cpath(opts.fsname.as_bytes()).map_err(errno_io)?;
    let fstype = sys::cpath(FSTYPE.as_bytes()).map_err(errno_io)?;
    let data = sys::cpath(data.as_bytes()).map_err(errno_io)?;
    // SAFETY: valid C strings; the kernel copies them.
    let r = unsafe {
        libc::mount(
            source.as_ptr(),
            mnt.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if r == 0 {
        return Ok(Some(fd));
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => Ok(None),
        _ => Err(e),
    }
}
