//! Container errors, with the exit code Docker's CLI gives each.

use crate::error::EngineError;

/// What went wrong with a container command.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    /// `cp`: the container or the path in it (`CONTAINER:PATH`) is missing.
    #[error("No such container:path: {0}")]
    NoSuchPath(String),
    #[error("Conflict. The container name \"/{0}\" is already in use. You have to remove (or rename) that container to be able to reuse that name.")]
    NameInUse(String),
    #[error("You cannot remove a running container {0}. Stop the container before attempting removal or force remove")]
    Running(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// A rootless union mount asked for outside the container's user
    /// namespace, where it cannot be made (a bug if ever seen).
    #[error("rootless: the container's root filesystem can only be mounted in its user namespace")]
    RootlessUnsupported,
    /// A detached start that failed, as its monitor reported it.
    #[error("{message}")]
    StartFailed { code: u8, message: String },
    #[error("Container {0} is not running")]
    NotRunning(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Launch(#[from] berth_launch::Error),
    #[error(transparent)]
    Snapshot(#[from] berth_snapshot::SnapshotError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<berth_store::StoreError> for ContainerError {
    fn from(e: berth_store::StoreError) -> Self {
        ContainerError::Engine(e.into())
    }
}

impl From<serde_json::Error> for ContainerError {
    fn from(e: serde_json::Error) -> Self {
        ContainerError::Engine(e.into())
    }
}

impl ContainerError {
    /// Docker's code: 127 for a command not found, 126 for one that cannot
    /// be invoked, 125 when berth itself failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            ContainerError::Launch(e) => e.exit_code().clamp(0, 255) as u8,
            ContainerError::StartFailed { code, .. } => *code,
            _ => 125,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ContainerError::Io {
            context: context.into(),
            source,
        }
    }
}

pub type CResult<T> = std::result::Result<T, ContainerError>;
