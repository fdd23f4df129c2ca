//! The store's error type: every variant names the path or ID it is about.

use std::io;
use std::path::PathBuf;

use berth_digest::{ChainId, Digest, ImageId};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid storage driver name {0:?}")]
    BadDriver(String),
    #[error("invalid container ID {0:?}")]
    BadContainerId(String),
    #[error("corrupt store file {}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("content mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("unpacking layer: {0}")]
    Unpack(#[from] berth_archive::ArchiveError),
    #[error("parent layer {0} does not exist")]
    ParentMissing(ChainId),
    #[error("no such layer: {0}")]
    NoSuchLayer(ChainId),
    #[error("layer {0} has no kept blob to read its tar from")]
    NoBlob(ChainId),
    #[error("image {image} needs layer {chain}, which is not in the store")]
    LayerMissing { image: ImageId, chain: ChainId },
    #[error("invalid image config {id}: {source}")]
    BadConfig {
        id: ImageId,
        #[source]
        source: serde_json::Error,
    },
    #[error("No such image: {0}")]
    NoSuchImage(ImageId),
    #[error("unable to delete {id}: image is referenced by {}", names.join(", "))]
    ImageReferenced { id: ImageId, names: Vec<String> },
    #[error("invalid reference name {0:?}")]
    BadReference(String),
    #[error("container mount {0} already exists")]
    MountExists(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Adds the operation and path to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| StoreError::Io {
            op,
            path: path.into(),
            source,
        })
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(io::Error::from).ctx(op, path)
    }
}
