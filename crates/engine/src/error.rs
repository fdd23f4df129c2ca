//! Engine errors, worded like Docker's so scripts and people recognise them.

/// What went wrong, with the object it went wrong with.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("{0}")]
    InvalidReference(String),
    #[error("conflict: unable to delete {id} (must be forced) - {reason}")]
    Conflict { id: String, reason: String },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidArchive(String),
    #[error(transparent)]
    Store(#[from] berth_store::StoreError),
    #[error(transparent)]
    Archive(#[from] berth_archive::ArchiveError),
    #[error(transparent)]
    Archive2(#[from] berth_image::ImageArchiveError),
    #[error("invalid image config: {0}")]
    Config(#[from] serde_json::Error),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
