//! Turning [`Options`] into a mounted FUSE session.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuser::{BackgroundSession, Config, MountOption, Session, SessionACL, SessionUnmounter};

use crate::fs::UnionFs;
use crate::lane::Served;
use crate::layers::LayerError;
use crate::options::Options;
use crate::spin::Spin;
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
    /// Polls the session's device while requests keep coming.
    spin: Arc<Spin>,
    /// Set when we mounted it ourselves (not through fuser/fusermount3),
    /// so unmounting is ours too.
    direct: Option<PathBuf>,
    /// The mount point, canonical, and our mount's device there
    /// (`major:minor` as mountinfo spells it).
    at: PathBuf,
    dev: Option<String>,
}

impl Mounted {
    /// A handle that unmounts from any thread (for signal handlers).
    pub fn unmounter(&mut self) -> Unmounter {
        let how = match &self.direct {
            Some(p) => UnmountBy::Direct(p.clone()),
            None => UnmountBy::Fuser(self.session.unmount_callable()),
        };
        Unmounter {
            how,
            at: self.at.clone(),
            dev: self.dev.clone(),
        }
    }

    /// Serves requests until the filesystem is unmounted.
    pub fn run(self) -> std::io::Result<()> {
        self.spin.start(self.session.as_fd());
        self.session.run()
    }
}

/// Unmounts a [`Mounted`] overlay; the serving [`Mounted::run`] then returns.
pub struct Unmounter {
    how: UnmountBy,
    at: PathBuf,
    dev: Option<String>,
}

enum UnmountBy {
    Fuser(SessionUnmounter),
    Direct(PathBuf),
}

impl Unmounter {
    /// Unmounts (lazily when the mount is busy), unless our mount is no
    /// longer the one at the mount point: once detached (`umount -l`) a
    /// daemon may live on while files stay open, and someone may have
    /// mounted there since; unmounting by path would take theirs.
    pub fn unmount(&mut self) -> std::io::Result<()> {
        if let Some(dev) = &self.dev {
            if top_mount_dev(&self.at).as_ref() != Some(dev) {
                return Ok(());
            }
        }
        match &mut self.how {
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

/// Like [`session`], served on threads of its own (and polling the device
/// while requests keep coming, see `spin`) until the returned session is
/// unmounted and joined.
pub fn spawn(opts: &Options, mountpoint: &Path) -> Result<BackgroundSession, MountError> {
    let (fs, config) = prepare(opts)?;
    let served = Served::new(fs);
    let spin = served.spin.clone();
    let mount_err = |source| MountError::Mount {
        path: mountpoint.to_path_buf(),
        source,
    };
    let session = Session::new(served, mountpoint, &config).map_err(mount_err)?;
    spin.start(session.as_fd());
    session.spawn().map_err(mount_err)
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
    // Canonical before mounting: afterwards resolving it would ask us.
    let at = std::fs::canonicalize(mountpoint).map_err(mount_err)?;
    let acl = config.acl;
    if let Some(fd) = mount_direct(opts, mountpoint, acl).map_err(mount_err)? {
        let dev = top_mount_dev(&at);
        let served = Served::new(fs);
        let spin = served.spin.clone();
        return match Session::from_fd(served, fd, acl, config) {
            Ok(session) => Ok(Mounted {
                session,
                spin,
                direct: Some(mountpoint.to_path_buf()),
                at,
                dev,
            }),
            Err(e) => {
                let _ = Unmounter {
                    how: UnmountBy::Direct(mountpoint.to_path_buf()),
                    at,
                    dev,
                }
                .unmount();
                Err(mount_err(e))
            }
        };
    }
    let served = Served::new(fs);
    let spin = served.spin.clone();
    let session = Session::new(served, mountpoint, &config).map_err(mount_err)?;
    let dev = top_mount_dev(&at);
    Ok(Mounted {
        session,
        spin,
        direct: None,
        at,
        dev,
    })
}

/// The device (`major:minor`) of the topmost mount at `path` (canonical),
/// from /proc/self/mountinfo, which later mounts on the same point follow.
fn top_mount_dev(path: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = path.as_os_str().as_bytes();
    info.lines().rev().find_map(|l| {
        let mut f = l.split(' ');
        let dev = f.nth(2)?;
        let point = f.nth(1)?;
        (unescape_mountinfo(point) == want).then(|| dev.to_string())
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space and the like).
fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b/c"), b"/a b/c");
        assert_eq!(unescape_mountinfo("/x\\134y"), b"/x\\y");
        assert_eq!(unescape_mountinfo("/end\\04"), b"/end\\04");
    }

    #[test]
    fn top_mount_of_root_is_found() {
        assert!(top_mount_dev(Path::new("/")).is_some());
        assert!(top_mount_dev(Path::new("/no/such/mount/point")).is_none());
    }
}
