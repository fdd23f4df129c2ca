//! Image tarballs: `docker save`'s docker-archive (written in Docker 20.10's
//! layout) and, for loading, also Docker 25+'s variant and OCI-layout
//! tarballs.
//!
//! Layers are never held in memory: the writer streams them from the
//! caller's `open` closures, the reader hands them to a [`LayerSink`] as they
//! go past.

use std::io::{self, Read};

use berth_digest::{DiffId, Digest, ImageId};

use crate::reference::ReferenceError;

mod read;
mod write;

pub use read::read_image_archive;
pub use write::write_docker_archive;

/// Largest JSON (config, manifest, index) kept in memory while loading.
pub const METADATA_SIZE_LIMIT: u64 = 32 << 20;

/// A layer to save: its diffID, the exact size of its uncompressed tar (tar
/// headers need it up front), and how to read it.
pub struct ArchiveLayer {
    pub diff_id: DiffId,
    pub size: u64,
    pub open: Box<dyn FnMut() -> io::Result<Box<dyn Read>>>,
}

/// An image to save.
pub struct ArchiveImage {
    /// The config bytes, verbatim; their sha256 must be `id`.
    pub config: Vec<u8>,
    pub id: ImageId,
    /// References to record (any form `Reference::parse` takes; written in
    /// Docker's familiar form). Each must carry a tag.
    pub repo_tags: Vec<String>,
    /// Bottom first.
    pub layers: Vec<ArchiveLayer>,
}

/// Identifies a layer a [`LayerSink`] received; the sink chooses the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LayerHandle(pub usize);

/// Receives layer blobs while an archive streams past.
pub trait LayerSink {
    /// Consumes one layer blob (possibly compressed; not verified). The
    /// reader errors with `UnexpectedEof` if the archive is cut short.
    fn layer(&mut self, r: &mut dyn Read) -> io::Result<LayerHandle>;
}

/// An image found in an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// Config bytes, verbatim.
    pub config: Vec<u8>,
    /// References to tag it with, as the archive spells them: familiar
    /// (`busybox:latest`) from manifest.json, full from
    /// `io.containerd.image.name`.
    pub repo_tags: Vec<String>,
    /// An OCI `org.opencontainers.image.ref.name` that is only a tag (no
    /// repository to attach it to); `None` otherwise.
    pub ref_name: Option<String>,
    /// Bottom first; a handle may repeat when images share layers.
    pub layers: Vec<LayerHandle>,
}

/// Why an image archive could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ImageArchiveError {
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("the archive is truncated (inside {entry})")]
    Truncated { entry: String },
    #[error("{file} is not valid: {source}")]
    Json {
        file: String,
        source: serde_json::Error,
    },
    #[error("no manifest.json or index.json in the archive: not a docker-archive or OCI layout")]
    MissingManifest,
    #[error("image {image}: {what} {path} is not in the archive")]
    Missing {
        image: String,
        what: &'static str,
        path: String,
    },
    #[error("{entry} is larger than {limit} bytes, too large for image metadata")]
    TooLarge { entry: String, limit: u64 },
    #[error("{entry}: too many levels of links")]
    LinkLoop { entry: String },
    #[error("loading layer {entry}: {source}")]
    Sink { entry: String, source: io::Error },
    #[error("image index {index}: no manifest for {platform}")]
    NoPlatform { index: String, platform: String },
    #[error("image {id}: config bytes have digest {actual}")]
    ConfigMismatch { id: ImageId, actual: Digest },
    #[error("image {id}: cannot record {tag:?}: {reason}")]
    BadTag {
        id: ImageId,
        tag: String,
        reason: TagProblem,
    },
}

/// Why a repo tag cannot go into `manifest.json`.
#[derive(Debug, thiserror::Error)]
pub enum TagProblem {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("it has no tag")]
    NoTag,
}

impl ImageArchiveError {
    fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> ImageArchiveError {
        let context = context.into();
        move |source| ImageArchiveError::Io { context, source }
    }
}

#[cfg(test)]
mod tests;
