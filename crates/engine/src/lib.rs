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

/// The storage drivers berth knows (see [`preferred_driver`] for the
/// order auto-selection tries them).
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

/// The driver a root already uses, else the first this machine supports
/// (see [`preferred_driver`]).
fn pick_driver(root: &std::path::Path) -> String {
    for d in DRIVERS {
        if root.join("image").join(d).is_dir() {
            return (*d).to_string();
        }
    }
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let overlay = filesystems
        .lines()
        .any(|l| l.trim_end().ends_with("\toverlay"));
    let fuse = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_ok();
    preferred_driver(!is_root(), overlay, fuse).to_string()
}

/// As root: kernel overlayfs, then berth-unionfs, then plain copies.
/// Rootless, berth-unionfs comes first: a rootless unpack cannot chown, so
/// the image's other owners (a postgres data dir, a setuid binary) live in
/// an xattr that berth-unionfs shows and kernel overlayfs cannot; with
/// overlay every file would be root's inside the container.
fn preferred_driver(rootless: bool, overlay: bool, fuse: bool) -> &'static str {
    match (rootless, overlay, fuse) {
        (true, _, true) => "fuse",
        (_, true, _) => "overlay",
        (_, false, true) => "fuse",
        _ => "vfs",
    }
}

#[cfg(test)]
mod tests {
    use super::preferred_driver;

    #[test]
    fn root_prefers_overlay_and_rootless_prefers_fuse() {
        assert_eq!(preferred_driver(false, true, true), "overlay");
        assert_eq!(preferred_driver(false, false, true), "fuse");
        assert_eq!(preferred_driver(false, false, false), "vfs");
        assert_eq!(preferred_driver(true, true, true), "fuse");
        assert_eq!(preferred_driver(true, true, false), "overlay");
        assert_eq!(preferred_driver(true, false, false), "vfs");
    }
}
