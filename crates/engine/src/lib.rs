//! berth-engine: Docker's semantics over berth's store. It resolves names
//! the way Docker does, builds image configs, imports, saves and loads
//! images, and answers `images`, `inspect`, `history`, `info` and `system df`
//! with Docker-shaped data. It prints nothing: the CLI formats what it
//! returns.

mod changes;
mod container;
mod error;
mod fetch;
mod images;
mod inspect;
mod lockfile;
mod system;
mod transfer;
mod volumes;

use std::path::PathBuf;

use berth_store::Store;

pub use berth_digest::{ChainId, DiffId, Digest, ImageId};
pub use changes::{parse_change, Change};
pub use container::{flags, ResourceOptions};
pub use container::{
    parse_signal, CResult, ChangeKind, CommitOptions, ContainerChange, ContainerError,
    ContainerExecOptions, ContainerPruneReport, ContainerRecord, ContainerState, ContainerStats,
    CopyIn, CopyOptions, CopyOut, CreateOptions, HostConfig, LogEntry, LogOptions, LogStream,
    MONITOR_COMMAND,
};
pub use error::{EngineError, Result};
pub use fetch::open_url;
pub use images::{
    HistoryRow, ImageSummary, ImportOptions, ImportSource, ListFilter, PruneReport, RemoveEvent,
};
pub use system::{DiskUsage, Info};
pub use transfer::LoadReport;
pub use volumes::{Volume, VolumeCreateOptions, VolumeError, VolumeFilter, VolumePruneReport};

/// The storage drivers berth knows, in the order auto-selection tries them.
pub const DRIVERS: &[&str] = &["overlay", "fuse", "vfs"];

/// How to open the engine: the CLI's global flags.
#[derive(Debug, Default, Clone)]
pub struct EngineOptions {
    /// `--root` / `BERTH_ROOT`; the platform default when absent.
    pub root: Option<PathBuf>,
    /// `--storage-driver` / `BERTH_STORAGE_DRIVER`; auto-selected when absent.
    pub storage_driver: Option<String>,
}

/// An open berth root. Cheap to open: every command opens one.
pub struct Engine {
    store: Store,
    rootless: bool,
}

impl Engine {
    pub fn open(opts: &EngineOptions) -> Result<Engine> {
        let root = opts.root.clone().unwrap_or_else(Store::default_root);
        let driver = match &opts.storage_driver {
            Some(d) if DRIVERS.contains(&d.as_str()) => d.clone(),
            Some(d) => {
                return Err(EngineError::InvalidArgument(format!(
                    "unknown storage driver {d:?} (choose one of {})",
                    DRIVERS.join(", ")
                )))
            }
            None => pick_driver(&root),
        };
        let store = Store::open(&root, &driver)?;
        Ok(Engine {
            store,
            rootless: !is_root(),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn driver(&self) -> &str {
        self.store.driver()
    }

    pub fn rootless(&self) -> bool {
        self.rootless
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The driver a root already uses, else the first this machine supports:
/// kernel overlayfs, then berth-unionfs over /dev/fuse, then plain copies.
fn pick_driver(root: &std::path::Path) -> String {
    for d in DRIVERS {
        if root.join("image").join(d).is_dir() {
            return (*d).to_string();
        }
    }
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if filesystems
        .lines()
        .any(|l| l.trim_end().ends_with("\toverlay"))
    {
        return "overlay".into();
    }
    if std::path::Path::new("/dev/fuse").exists() {
        return "fuse".into();
    }
    "vfs".into()
}
