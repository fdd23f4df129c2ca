//! The one error type of this crate: what failed, and on which path.

use std::io;
use std::path::PathBuf;

/// Why a snapshot operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A filesystem operation failed on `path`.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("creating", "mounting overlay on", ...).
        op: &'static str,
        /// Where.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// A snapshot key that could escape the driver's directory.
    #[error("invalid snapshot key {0:?}: must be a non-empty name without '/'")]
    InvalidKey(String),
    /// `prepare`/`view` on a key that is already in use.
    #[error("snapshot {0:?} already exists")]
    Exists(String),
    /// An operation on a key that was never prepared.
    #[error("snapshot {0:?} does not exist")]
    NotFound(String),
    /// A read-only view has no upper layer to diff or commit.
    #[error("snapshot {0:?} is a read-only view: it has no changes")]
    ReadOnly(String),
    /// A forced or requested driver that cannot work here.
    #[error("storage driver {driver:?} cannot be used here: {reason}")]
    DriverUnavailable {
        /// The driver's name.
        driver: String,
        /// Why (in words a user can act on).
        reason: String,
    },
    /// A driver name berth does not know.
    #[error("unknown storage driver {0:?} (known: overlay, fuse, vfs)")]
    UnknownDriver(String),
    /// A [`crate::Mount`] this crate cannot perform.
    #[error("unsupported mount {fstype:?}: {reason}")]
    BadMount {
        /// The mount's type.
        fstype: String,
        /// What is wrong with it.
        reason: String,
    },
    /// berth-unionfs refused to mount.
    #[error("mounting berth-unionfs on {path}: {source}")]
    Fuse {
        /// The mount point.
        path: PathBuf,
        /// The union filesystem's reason.
        source: berth_unionfs::MountError,
    },
}

/// Shorthand for this crate's results.
pub type Result<T, E = SnapshotError> = std::result::Result<T, E>;

/// Attaches an operation and a path to an I/O error.
pub(crate) trait Context<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T, E: Into<io::Error>> Context<T> for std::result::Result<T, E> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| SnapshotError::Io {
            op,
            path: path.into(),
            source: e.into(),
        })
    }
}
