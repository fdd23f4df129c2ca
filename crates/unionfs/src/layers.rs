//! The layer stack: one `O_PATH` directory fd per layer, the work dir, and the
//! capabilities probed at mount time (which whiteout style may be written).
//!
//! Layer index 0 is the upper layer when there is one; lowers follow, highest
//! first. Every path below is relative to a layer's root.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sys::{self, Errno, SysResult};

/// How this mount writes whiteouts and opaque markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhiteoutStyle {
    /// Character device 0/0 and an `overlay.opaque` xattr (kernel overlayfs's format).
    CharDev,
    /// `.wh.NAME` files and `.wh..wh..opq` (the OCI layer format), for rootless mounts.
    Files,
}

/// A layer that cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {source}")]
pub struct LayerError {
    what: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

pub(crate) struct Layer {
    fd: OwnedFd,
    /// st_dev of the layer root: identifies its filesystem.
    pub(crate) dev: u64,
    /// Small per-filesystem number folded into st_ino so inode numbers from
    /// different filesystems never collide.
    pub(crate) tag: u64,
}

impl Layer {
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

pub(crate) struct Layers {
    pub(crate) all: Vec<Layer>,
    pub(crate) has_upper: bool,
    work: Option<OwnedFd>,
    pub(crate) style: WhiteoutStyle,
    /// The xattr this mount writes to mark a directory opaque (CharDev style).
    pub(crate) opaque_xattr: &'static [u8],
    tmp_seq: AtomicU64,
    /// Our pid, part of every scratch name (asked once: it is a syscall).
    pid: u32,
    /// Host inode of the whiteout this mount links for every whiteout it
    /// writes (0 until there is one); see `whiteout::link_shared_whiteout`.
    pub(crate) shared_whiteout: AtomicU64,
}

/// Name of our scratch directory inside the work dir, apart from the
/// kernel's own `work`/`index` so one work dir can serve either.
const WORK_SUBDIR: &str = "berth-unionfs";

fn open_dir(path: &Path, what: &'static str) -> Result<OwnedFd, LayerError> {
    let err = |source| LayerError {
        what,
        path: path.to_path_buf(),
        source,
    };
    let c = sys::cpath(path.as_os_str().as_encoded_bytes())
        .map_err(|e| err(std::io::Error::from_raw_os_error(e.0)))?;
    // SAFETY: valid C string; fd ownership is taken below.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    // SAFETY: fd was just opened.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

impl Layers {
    /// Opens every layer and prepares the work dir.
    pub(crate) fn open(
        upper: Option<&Path>,
        work: Option<&Path>,
        lowers: &[PathBuf],
    ) -> Result<Layers, LayerError> {
        let mut fds = Vec::new();
        if let Some(u) = upper {
            fds.push(open_dir(u, "upperdir")?);
        }
        for l in lowers {
            fds.push(open_dir(l, "lowerdir")?);
        }
        let mut devs: Vec<u64> = Vec::new();
        let mut all = Vec::with_capacity(fds.len());
        for fd in fds {
            let st = sys::fstat(fd.as_raw_fd()).map_err(|e| LayerError {
                what: "stat layer",
                path: PathBuf::new(),
                source: std::io::Error::from_raw_os_error(e.0),
            })?;
            let dev = st.st_dev;
            let tag = match devs.iter().position(|&d| d == dev) {
                Some(i) => i as u64 + 1,
                None => {
                    devs.push(dev);
                    devs.len() as u64
                }
            };
            all.push(Layer { fd, dev, tag });
        }
        let work = match work {
            Some(w) => Some(prepare_work(w)?),
            None => None,
        };
        let mut layers = Layers {
            all,
            has_upper: upper.is_some(),
            work,
            style: WhiteoutStyle::Files,
            opaque_xattr: b"user.overlay.opaque",
            tmp_seq: AtomicU64::new(0),
            pid: std::process::id(),
            shared_whiteout: AtomicU64::new(0),
        };
        layers.probe();
        Ok(layers)
    }

    /// Decides the whiteout style by trying what the kernel's format needs.
    fn probe(&mut self) {
        let Some(work) = self.work_fd() else { return };
        let name = self.tmp_name();
        if sys::mknodat(work, &name, libc::S_IFCHR, 0).is_ok() {
            let _ = sys::unlinkat(work, &name, 0);
            self.style = WhiteoutStyle::CharDev;
        }
        if sys::mkdirat(work, &name, 0o700).is_ok() {
            if sys::lsetxattr(work, &name, b"trusted.overlay.opaque", b"y", 0).is_ok() {
                self.opaque_xattr = b"trusted.overlay.opaque";
            }
            let _ = sys::unlinkat(work, &name, libc::AT_REMOVEDIR);
        }
    }

    pub(crate) fn fd(&self, layer: usize) -> RawFd {
        self.all[layer].fd()
    }

    pub(crate) fn upper_fd(&self) -> SysResult<RawFd> {
        if self.has_upper {
            Ok(self.fd(0))
        } else {
            Err(Errno(libc::EROFS))
        }
    }

    pub(crate) fn is_upper(&self, layer: usize) -> bool {
        self.has_upper && layer == 0
    }

    pub(crate) fn first_lower(&self) -> usize {
        usize::from(self.has_upper)
    }

    pub(crate) fn work_fd(&self) -> Option<RawFd> {
        self.work.as_ref().map(|f| f.as_raw_fd())
    }

    /// Whether host inode `ino` of the upper layer is our shared whiteout.
    pub(crate) fn is_shared_whiteout(&self, ino: u64) -> bool {
        ino != 0 && self.shared_whiteout.load(Ordering::Relaxed) == ino
    }

    /// A fresh name inside the work dir.
    pub(crate) fn tmp_name(&self) -> Vec<u8> {
        let n = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        format!("{WORK_SUBDIR}/t{}-{n}", self.pid).into_bytes()
    }
}

/// Creates `WORK/berth-unionfs` and empties it: anything left there is a
/// copy-up or removal that a crash interrupted, never visible data.
fn prepare_work(w: &Path) -> Result<OwnedFd, LayerError> {
    let fd = open_dir(w, "workdir")?;
    let sub = WORK_SUBDIR.as_bytes();
    match sys::mkdirat(fd.as_raw_fd(), sub, 0o700) {
        Ok(()) | Err(Errno(libc::EEXIST)) => {}
        Err(e) => {
            return Err(LayerError {
                what: "workdir",
                path: w.to_path_buf(),
                source: std::io::Error::from_raw_os_error(e.0),
            })
        }
    }
    if let Ok(d) = sys::openat(fd.as_raw_fd(), sub, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
        if let Ok(entries) = sys::read_dir(d) {
            for (name, ..) in entries {
                let p = sys::join(sub, &name);
                let _ = remove_tree(fd.as_raw_fd(), &p);
            }
        }
    }
    Ok(fd)
}

/// Removes a file or directory tree relative to `dirfd`.
pub(crate) fn remove_tree(dirfd: RawFd, path: &[u8]) -> SysResult<()> {
    match sys::unlinkat(dirfd, path, 0) {
        Err(Errno(libc::EISDIR)) | Err(Errno(libc::EPERM)) => {}
        other => return other,
    }
    match sys::unlinkat(dirfd, path, libc::AT_REMOVEDIR) {
        Err(Errno(libc::ENOTEMPTY)) | Err(Errno(libc::EEXIST)) => {}
        other => return other,
    }
    let d = sys::openat(dirfd, path, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    for (name, ..) in sys::read_dir(d)? {
        remove_tree(dirfd, &sys::join(path, &name))?;
    }
    sys::unlinkat(dirfd, path, libc::AT_REMOVEDIR)
}
