//! `container prune`: every container that is not running goes, and the
//! space their writable layers held is reported as Docker reports it.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::error::{CResult, ContainerError};
use super::state::Record;
use super::{rootless, run};
use crate::Engine;

/// What `container prune` did.
#[derive(Debug, Default)]
pub struct ContainerPruneReport {
    /// Full IDs of the containers removed.
    pub deleted: Vec<String>,
    /// Bytes their writable layers held.
    pub reclaimed: u64,
}

impl Engine {
    /// `container prune`: removes the stopped (exited or created) containers.
    pub fn prune_containers(&self) -> CResult<ContainerPruneReport> {
        let mut report = ContainerPruneReport::default();
        for record in self.list_containers()? {
            if run::is_running(&record) {
                continue;
            }
            let size = self
                .writable_sizes(std::slice::from_ref(&record))
                .map(|s| s[0])
                .unwrap_or_else(|e| {
                    log::warn!("measuring container {}: {e}", &record.id[..12]);
                    0
                });
            match self.remove_container(&record.id, false) {
                Ok(id) => {
                    report.deleted.push(id);
                    report.reclaimed += size;
                }
                // Started or removed by someone else meanwhile.
                Err(ContainerError::Running(_) | ContainerError::NoSuchContainer(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// Docker's `SizeRw` of each record: the bytes in its writable layer.
    /// Rootless with a union driver, those layers hold files of subordinate
    /// ids that only root of a user namespace may read: all are measured
    /// in one.
    pub(crate) fn writable_sizes(&self, records: &[Record]) -> CResult<Vec<u64>> {
        let mut mounts = Vec::with_capacity(records.len());
        for r in records {
            mounts.push(self.store.mount(&r.id)?.map(|m| m.mount_id));
        }
        let snapshotter = self.snapshotter()?;
        let measure = || -> CResult<Vec<u64>> {
            let mut sizes = Vec::with_capacity(mounts.len());
            for m in &mounts {
                sizes.push(match m {
                    Some(id) => dir_size(&snapshotter.upper_dir(id)?, &mut HashSet::new()),
                    None => 0,
                });
            }
            Ok(sizes)
        };
        if !rootless::needs_userns(self) {
            return measure();
        }
        let bytes =
            rootless::in_userns(|| Ok(measure()?.iter().flat_map(|s| s.to_le_bytes()).collect()))?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect())
    }
}

/// Sizes of everything below `dir` but directories, each inode once, not
/// following symlinks (Go's `directory.Size`).
fn dir_size(dir: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if meta.is_dir() {
            total += dir_size(&entry.path(), seen);
        } else if seen.insert((meta.dev(), meta.ino())) {
            total += meta.size();
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_counts_files_and_links_once() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/a"), vec![0u8; 1000]).unwrap();
        std::fs::hard_link(d.path().join("sub/a"), d.path().join("b")).unwrap();
        std::os::unix::fs::symlink("sub/a", d.path().join("l")).unwrap();
        assert_eq!(dir_size(d.path(), &mut HashSet::new()), 1000 + 5);
    }
}
