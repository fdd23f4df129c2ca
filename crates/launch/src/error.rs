//! The launcher's error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while starting or managing a container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec asks for something this launcher cannot do.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// A host-side step (pipes, clone, id maps, files) failed.
    #[error("{context}: {source}")]
    Io {
        /// What the launcher was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A step inside the new container failed before the command ran.
    #[error("container setup failed: {step}: {source}")]
    Setup {
        /// The step that failed, e.g. `mount proc on /proc`.
        step: String,
        /// The errno the kernel returned.
        #[source]
        source: io::Error,
    },
    /// The command does not exist in the container (Docker exit code 127).
    #[error("exec: {command:?}: executable file not found in $PATH")]
    CommandNotFound {
        /// The command as given in `process.args[0]`.
        command: String,
    },
    /// The command exists but cannot be executed (Docker exit code 126).
    #[error("exec: {command:?}: {source}")]
    CannotInvoke {
        /// The command as given in `process.args[0]`.
        command: String,
        /// Why the kernel refused it (usually permission denied).
        #[source]
        source: io::Error,
    },
    /// A cgroup file could not be read or written.
    #[error("cgroup {path}: {source}")]
    Cgroup {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The exit code Docker uses for this failure: 127 when the command is
    /// not found, 126 when it cannot be invoked, 125 for anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::CommandNotFound { .. } => 127,
            Error::CannotInvoke { .. } => 126,
            _ => 125,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
