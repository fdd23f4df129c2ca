//! `export`: a container's merged root filesystem as one plain tar, which
//! `import` turns back into the same filesystem.

use std::io::Write;

use super::error::{CResult, ContainerError};
use super::state::Record;
use crate::error::EngineError;
use crate::Engine;

impl Engine {
    /// `export`: writes the tar to `out` and returns its size.
    pub fn export_container<W: Write>(&self, query: &str, mut out: W) -> CResult<u64> {
        let record = self.container(query)?;
        // Rootless with a union driver, the files are reached as root of the
        // container's user namespace (see `rootless`).
        let bytes = super::rootless::in_container_userns(self, &record, || {
            let size = self.export_record(&record, &mut out)?;
            out.flush()
                .map_err(|e| ContainerError::io("writing the export", e))?;
            Ok(size.to_le_bytes().to_vec())
        })?;
        let size: [u8; 8] = bytes
            .try_into()
            .map_err(|_| ContainerError::io("exporting", std::io::Error::other("bad size")))?;
        Ok(u64::from_le_bytes(size))
    }

    fn export_record(&self, record: &Record, out: &mut dyn Write) -> CResult<u64> {
        let rootfs = self.open_rootfs(record)?;
        let written = berth_archive::write_tree(rootfs.path(), out);
        // Unmount even when writing failed; the write's error comes first.
        let closed = rootfs.close();
        let size = written.map_err(EngineError::from)?;
        closed?;
        Ok(size)
    }
}
