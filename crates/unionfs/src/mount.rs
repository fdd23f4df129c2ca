//! Turning [`Options`] into a mounted FUSE session.

use std::path::Path;

use fuser::{Config, MountOption, Session, SessionACL};

use crate::fs::UnionFs;
use crate::layers::LayerError;
use crate::options::Options;

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

/// Opens the layers and mounts them at `mountpoint`. The mount is ready
/// (the kernel's INIT is answered) when this returns; call
/// [`Session::run`] to serve it.
pub fn session(opts: &Options, mountpoint: &Path) -> Result<Session<UnionFs>, MountError> {
    // Modes arrive already masked by the caller's umask; ours must not mask
    // them again.
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0) };
    let fs = UnionFs::new(opts)?;
    // SAFETY: trivial getter.
    let root = unsafe { libc::geteuid() } == 0;
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
    config.n_threads = Some(fs.threads);
    config.clone_fd = true;
    Session::new(fs, mountpoint, &config).map_err(|source| MountError::Mount {
        path: mountpoint.to_path_buf(),
        source,
    })
}
