//! berth-unionfs: a userspace overlay filesystem over FUSE.
//!
//! It merges read-only *lower* directories and one writable *upper* directory
//! the way the kernel's overlayfs does (with `redirect_dir=off`), for rootless
//! containers on kernels whose overlayfs they cannot use. It speaks
//! fuse-overlayfs's command line (see [`Cli`]) so it can stand in for it.
//!
//! # Design
//!
//! * **Layers** ([`layers`](crate)) are held as one `O_PATH` directory fd each;
//!   every operation is an `*at` call on a layer fd plus a path relative to it,
//!   so no request re-walks from `/` and nothing below the mount is followed.
//! * **Nodes** (`inode`) are what the kernel holds: node id = st_ino, computed
//!   from the host inode and the layer's filesystem, so numbers are stable
//!   without a table of every file ever seen. A node records its topmost layer,
//!   its relative path and, for a directory, the layers that contribute to it;
//!   it is dropped when the kernel forgets it. Copy-up keeps the number.
//! * **Lookup** (`lookup`) walks the parent's contributing layers, stops at a
//!   whiteout (character device 0/0 or `.wh.NAME`) or a non-directory, and
//!   merges directories until an opaque one (xattr or `.wh..wh..opq`).
//! * **Readdir** (`dir`) merges the listings once per open directory handle and
//!   serves readdirplus from the layer each entry came from.
//! * **Copy-up** (`copyup`) builds the copy in the work dir (holes, owner, mode,
//!   xattrs, times), fsyncs it and renames it into place.
//! * **Whiteouts** (`whiteout`) are written as the kernel writes them when the
//!   process may create device nodes, and as OCI `.wh.` files otherwise.
//! * **Speed** comes from the kernel: entry/attr timeouts, kept page and
//!   directory caches (the layers only change through us), readdirplus,
//!   one session thread for the quick requests with workers for the slow
//!   ones (`lane`: cheaper round trips than many readers), a session
//!   thread that polls /dev/fuse while requests keep coming instead of
//!   being woken for each (`spin`), and FUSE passthrough for file I/O where
//!   the kernel grants it. Round trips the
//!   kernel can skip are skipped: no FLUSH (`FOPEN_NOFLUSH`), no GETATTR
//!   before chown (`FUSE_HANDLE_KILLPRIV`: we drop set-id bits ourselves),
//!   and a reopened directory is listed from the kernel's cache without a
//!   merge in the daemon.
//!
//! The same operations can be called without a mount ([`UnionFs::lookup`],
//! [`UnionFs::list_dir`], [`UnionFs::copy_up_node`]), for tools and for the
//! micro-benchmarks of the hot paths.
//!
//! Assumption, as for overlayfs: nothing else changes the layers while mounted.

mod copyup;
mod dir;
mod direct;
mod dispatch;
mod file;
mod fs;
mod idmap;
mod inode;
mod lane;
mod layers;
mod lookup;
mod mount;
mod names;
mod options;
mod owners;
mod spin;
mod sys;
mod whiteout;
mod xattr;

pub use direct::{ListedEntry, ROOT_INO};
pub use fs::UnionFs;
pub use idmap::IdMap;
pub use lane::Served;
pub use layers::LayerError;
pub use mount::{mount, session, spawn, MountError, Mounted, Unmounter, FSTYPE};
pub use options::{Cli, OptionError, Options};
