//! `export`: a container's merged root filesystem as one plain tar, which
//! `import` turns back into the same filesystem.

use std::io::Write;

use super::error::CResult;
use crate::error::EngineError;
use crate::Engine;

impl Engine {
    /// `export`: writes the tar to `out` and returns its size.
    pub fn export_container<W: Write>(&self, query: &str, out: W) -> CResult<u64> {
        let record = self.container(query)?;
        let rootfs = self.open_rootfs(&record)?;
        let written = berth_archive::write_tree(rootfs.path(), out);
        // Unmount even when writing failed; the write's error comes first.
        let closed = rootfs.close();
        let size = written.map_err(EngineError::from)?;
        closed?;
        Ok(size)
    }
}
