//! A driver's directory: one sub-directory per snapshot key, holding the
//! driver's files and a record of how it was made (its lowers, and whether
//! it is writable) so its mounts can be listed again later.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::copy;
use crate::error::{Context, Result, SnapshotError};
use crate::mount;

const LOWERS_FILE: &str = "lowers";
const VIEW_MARKER: &str = "view";

/// A snapshot's recorded shape.
pub(crate) struct State {
    /// Highest first.
    pub lowers: Vec<PathBuf>,
    pub writable: bool,
}

/// The snapshots of one driver under `base`.
#[derive(Debug)]
pub(crate) struct Layout {
    base: PathBuf,
}

impl Layout {
    pub(crate) fn new(base: &Path) -> Result<Layout> {
        std::fs::create_dir_all(base).ctx("creating", base)?;
        let base = base.canonicalize().ctx("resolving", base)?;
        Ok(Layout { base })
    }

    /// The directory of `key`, once the key is known to be a plain name.
    pub(crate) fn dir(&self, key: &str) -> Result<PathBuf> {
        // Dot names are ours (probes); a '/' or NUL could leave `base`.
        if key.is_empty() || key.starts_with('.') || key.contains(['/', '\0']) {
            return Err(SnapshotError::InvalidKey(key.to_string()));
        }
        Ok(self.base.join(key))
    }

    /// Creates the directory of a new snapshot and records its shape.
    pub(crate) fn create(&self, key: &str, lowers: &[PathBuf], writable: bool) -> Result<PathBuf> {
        let dir = self.dir(key)?;
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(SnapshotError::Exists(key.to_string()))
            }
            Err(e) => return Err(e).ctx("creating", dir),
        }
        let record = || -> Result<()> {
            let mut list = Vec::new();
            for l in lowers {
                let l = std::path::absolute(l).ctx("resolving", l)?;
                if l.as_os_str().as_bytes().contains(&b'\n') {
                    return Err(SnapshotError::Io {
                        op: "recording",
                        path: l,
                        source: std::io::Error::other("layer path contains a newline"),
                    });
                }
                list.extend_from_slice(l.as_os_str().as_bytes());
                list.push(b'\n');
            }
            let file = dir.join(LOWERS_FILE);
            std::fs::write(&file, list).ctx("writing", &file)?;
            if !writable {
                let marker = dir.join(VIEW_MARKER);
                std::fs::write(&marker, b"").ctx("writing", &marker)?;
            }
            Ok(())
        };
        if let Err(e) = record() {
            let _ = copy::remove_any(&dir);
            return Err(e);
        }
        Ok(dir)
    }

    /// The recorded shape of `key`.
    pub(crate) fn load(&self, key: &str) -> Result<State> {
        let dir = self.dir(key)?;
        let file = dir.join(LOWERS_FILE);
        let list = match std::fs::read(&file) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SnapshotError::NotFound(key.to_string()))
            }
            Err(e) => return Err(e).ctx("reading", file),
        };
        let lowers = list
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| PathBuf::from(OsStr::from_bytes(l)))
            .collect();
        Ok(State {
            lowers,
            writable: !dir.join(VIEW_MARKER).exists(),
        })
    }

    /// Unmounts whatever is mounted inside the snapshot's directory, then
    /// deletes it. A missing key is not an error (removal is idempotent).
    pub(crate) fn remove(&self, key: &str) -> Result<()> {
        let dir = self.dir(key)?;
        unmount_under(&dir)?;
        copy::remove_any(&dir)
    }
}

/// Unmounts every mount at or below `dir`, deepest first, so a recursive
/// delete never walks into a mounted filesystem (or a layer bound there).
fn unmount_under(dir: &Path) -> Result<()> {
    let mut points: Vec<PathBuf> = mount::mount_points()
        .into_iter()
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        mount::unmount(&p)?;
    }
    Ok(())
}
