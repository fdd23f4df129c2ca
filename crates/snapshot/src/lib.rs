//! berth-snapshot: the storage drivers that turn an image's layer
//! directories into a container's root filesystem.
//!
//! Three drivers implement one [`Snapshotter`] trait, so nothing above this
//! crate branches on which is in use:
//!
//! * [`Overlay`]: kernel overlayfs, as root or inside a user namespace
//!   (`userxattr`); any number of layers (see [`mount_all`]).
//! * [`Fuse`]: berth-unionfs, served in-process, for rootless use where
//!   kernel overlayfs is not available.
//! * [`Vfs`]: a merged copy of the layers; works anywhere, costs space.
//!
//! [`detect`] picks the first that works here (or checks a forced one). A
//! snapshot is described as a list of [`Mount`]s; [`mount_all`] performs them
//! and returns a guard that undoes them.
//!
//! Layers are plain directories in the overlay on-disk format: a whiteout is
//! a character device 0/0, an opaque directory carries
//! `trusted.overlay.opaque=y` (as root) or `user.overlay.opaque=y`
//! (rootless). OCI-style `.wh.` names are understood too, since berth-unionfs
//! writes them when it may not create device nodes. This crate knows nothing
//! of the store, images or containers: the engine passes directories.

mod changes;
mod copy;
mod error;
mod fuse;
mod layout;
mod lowers;
mod mount;
mod overlayfs;
mod probe;
mod sys;
mod union;
mod vfs;

use std::path::PathBuf;

pub use changes::{Change, ChangeKind};
pub use copy::copy_tree;
pub use error::{Result, SnapshotError};
pub use mount::{is_mount_point, mount_all, mount_points, Mount, MountGuard, FUSE_FSTYPE};
pub use probe::{detect, open, probe_fuse, probe_overlay, DRIVERS};
pub use sys::in_user_namespace;
pub use union::{Fuse, Overlay};
pub use vfs::Vfs;

/// A storage driver, in containerd's shape. Keys name snapshots (a container
/// ID, say): plain names, no `/`, not starting with `.`. Layer lists are
/// given highest first, as overlay's `lowerdir` takes them.
pub trait Snapshotter: Send + Sync {
    /// The driver's name, as `--storage-driver` and `berth info` spell it.
    fn name(&self) -> &'static str;

    /// Creates writable snapshot `key` over `lowers` and returns the mounts
    /// that present it. An existing key is an error.
    fn prepare(&self, key: &str, lowers: &[PathBuf]) -> Result<Vec<Mount>>;

    /// Creates read-only snapshot `key` over `lowers`.
    fn view(&self, key: &str, lowers: &[PathBuf]) -> Result<Vec<Mount>>;

    /// The mounts of an existing snapshot (as `prepare`/`view` returned).
    fn mounts(&self, key: &str) -> Result<Vec<Mount>>;

    /// The container's changes in the overlay layer format, ready to be
    /// tarred for commit: the upper dir itself for the union drivers, a
    /// freshly computed diff for vfs. Views have none.
    fn upper_dir(&self, key: &str) -> Result<PathBuf>;

    /// Docker's `diff` of snapshot `key` against the image's `lowers`,
    /// ordered like a directory walk.
    fn changes(&self, key: &str, lowers: &[PathBuf]) -> Result<Vec<Change>>;

    /// Unmounts whatever is mounted inside the snapshot's directory and
    /// deletes it. Removing a missing key succeeds.
    fn remove(&self, key: &str) -> Result<()>;
}

#[cfg(test)]
mod driver_tests;
