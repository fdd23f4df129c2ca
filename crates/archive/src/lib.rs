//! berth-archive: the layer tarball codec.
//!
//! [`apply_layer`] unpacks a (plain, gzip or zstd) layer tarball into a
//! directory in one streaming pass, hashing the decompressed stream into the
//! layer's diffID as it goes and converting OCI/AUFS whiteouts (`.wh.NAME`,
//! `.wh..wh..opq`) into berth's on-disk layer format (overlay style: a 0/0
//! character device per deleted name, an `overlay.opaque` xattr per opaque
//! directory) or, for the vfs driver, into deletions. Extraction never writes
//! or follows anything outside the target directory: every path is resolved
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` relative to it.
//!
//! [`write_layer`] is the reverse (a layer directory into a tarball with
//! whiteouts), [`write_tree`] tars a plain directory tree.
//!
//! Not here: where layers live (berth-store), image archives (berth-image).

mod apply;
mod compress;
mod fsops;
mod split;
mod whiteout;
mod write;

use std::io;
use std::path::PathBuf;

pub use apply::{
    apply_layer, apply_layer_split, AppliedLayer, ApplyOptions, OpaquePrefix, WhiteoutFormat,
};
pub use berth_overridestat::{OverrideKind, OverrideStat, OVERRIDE_XATTR};
pub use compress::{decompress, sniff, Compression};
pub use split::{reassemble, Reassembled, SplitOptions};
pub use whiteout::{parse_whiteout, Whiteout};
pub use write::{write_layer, write_layer_filtered, write_tree};

/// Why a layer could not be applied or written.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A filesystem operation on `path` (relative to the target for apply) failed.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// The layer stream itself could not be read: bad compression, bad tar header.
    #[error("reading the layer: {0}")]
    Read(#[source] io::Error),
    /// The stream ended before the tar end-of-archive marker or inside an entry.
    #[error("truncated archive{}", after.as_ref().map(|p| format!(" (in or after {})", p.display())).unwrap_or_default())]
    Truncated { after: Option<PathBuf> },
    /// An entry would write or point outside the target directory.
    #[error("refusing to write outside the layer: {}: {reason}", path.display())]
    Unsafe { path: PathBuf, reason: &'static str },
    /// A hard link whose target cannot be linked (missing, a directory, ...).
    #[error("hard link {} -> {}: {source}", path.display(), target.display())]
    HardLink {
        path: PathBuf,
        target: PathBuf,
        source: io::Error,
    },
    /// A whiteout entry whose name cannot be a whiteout (`.wh.`, `.wh..`, ...).
    #[error("bad whiteout {name:?}: {reason}")]
    BadWhiteout { name: String, reason: &'static str },
}

impl ArchiveError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        ArchiveError::Io {
            path: path.into(),
            source,
        }
    }
}
