//! Leases: layers a live store handle has committed (or found present) and
//! may be about to use in an image. Without them, a gc in another process
//! (`berth rmi` next to `berth import`) could remove a fresh layer between
//! `commit_layer` and `put_image`.
//!
//! Each handle lazily creates a locked `tmp/lease-*` file and appends every
//! chainID it commits, always under the store lock, so gc (also under the
//! lock) sees a consistent picture. A lease ends with its handle or process:
//! once its lock is gone the file is ignored, then cleaned up as an abandoned
//! temp entry. A handle's own gc ignores its own lease: within one process the
//! caller orders its own work.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::sync::PoisonError;

use berth_digest::ChainId;
use rustix::fs::{FlockOperation, Mode, OFlags};

use crate::error::{IoContext, Result};
use crate::fsutil::TempEntry;
use crate::Store;

const PREFIX: &str = "lease-";

#[derive(Debug)]
pub(crate) struct Lease {
    entry: TempEntry,
    file: File,
}

impl Store {
    /// Records that this handle uses `chain`. Call with the store lock held.
    pub(crate) fn hold(&self, chain: &ChainId) -> Result<()> {
        let mut slot = self.lease.lock().unwrap_or_else(PoisonError::into_inner);
        let lease = match &mut *slot {
            Some(lease) => lease,
            None => {
                let (entry, file) = TempEntry::file(&self.tmp_dir(), PREFIX.trim_end_matches('-'))?;
                slot.insert(Lease { entry, file })
            }
        };
        writeln!(lease.file, "{chain}").ctx("writing lease", lease.entry.path())
    }

    /// chainIDs leased by other live handles. Call with the store lock held.
    pub(crate) fn leased_by_others(&self) -> Result<BTreeSet<ChainId>> {
        let own = self
            .lease
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|l| l.entry.path().to_owned());
        let tmp = self.tmp_dir();
        let mut out = BTreeSet::new();
        for entry in fs::read_dir(&tmp).ctx("listing", &tmp)? {
            let path = entry.ctx("listing", &tmp)?.path();
            let is_lease = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PREFIX));
            if !is_lease || Some(&path) == own.as_ref() {
                continue;
            }
            let Ok(fd) = rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            else {
                continue;
            };
            // Lockable means its holder is gone, and so is the lease.
            if rustix::fs::flock(&fd, FlockOperation::NonBlockingLockShared).is_ok() {
                continue;
            }
            let text = fs::read_to_string(&path).ctx("reading lease", &path)?;
            out.extend(text.lines().filter_map(|l| l.parse().ok()));
        }
        Ok(out)
    }
}
