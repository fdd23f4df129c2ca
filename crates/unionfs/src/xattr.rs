//! Extended attributes: read from the object's topmost layer, written after
//! copy-up, with the overlay's private names never visible.

use crate::fs::UnionFs;
use crate::sys::{self, Errno, SysResult};
use crate::whiteout::is_private_xattr;

/// The answer to a size-probing xattr call.
pub(crate) enum XattrReply {
    Size(u32),
    Data(Vec<u8>),
}

fn fit(value: Vec<u8>, size: u32) -> SysResult<XattrReply> {
    if size == 0 {
        Ok(XattrReply::Size(value.len() as u32))
    } else if value.len() > size as usize {
        Err(Errno(libc::ERANGE))
    } else {
        Ok(XattrReply::Data(value))
    }
}

impl UnionFs {
    fn xattrs_on(&self) -> SysResult<()> {
        if self.xattrs {
            Ok(())
        } else {
            Err(Errno(libc::EOPNOTSUPP))
        }
    }

    pub(crate) fn do_getxattr(&self, ino: u64, name: &[u8], size: u32) -> SysResult<XattrReply> {
        self.xattrs_on()?;
        if is_private_xattr(name) {
            return Err(Errno(libc::ENODATA));
        }
        if name == b"security.capability" && self.nodes.lock().no_caps(ino) {
            return Err(Errno(libc::ENODATA));
        }
        let n = self.node(ino)?;
        fit(
            sys::lgetxattr(self.layers.fd(n.layer), &n.path, name)?,
            size,
        )
    }

    pub(crate) fn do_listxattr(&self, ino: u64, size: u32) -> SysResult<XattrReply> {
        self.xattrs_on()?;
        let n = self.node(ino)?;
        let raw = sys::llistxattr(self.layers.fd(n.layer), &n.path)?;
        let mut out = Vec::with_capacity(raw.len());
        for name in raw.split(|&b| b == 0).filter(|n| !n.is_empty()) {
            if !is_private_xattr(name) {
                out.extend_from_slice(name);
                out.push(0);
            }
        }
        fit(out, size)
    }

    pub(crate) fn do_setxattr(
        &self,
        ino: u64,
        name: &[u8],
        value: &[u8],
        flags: i32,
    ) -> SysResult<()> {
        self.xattrs_on()?;
        self.writable()?;
        if is_private_xattr(name) {
            return Err(Errno(libc::EPERM));
        }
        let n = self.copy_up(ino, false)?;
        self.nodes.lock().set_no_caps(ino, false);
        sys::lsetxattr(self.layers.upper_fd()?, &n.path, name, value, flags)
    }

    pub(crate) fn do_removexattr(&self, ino: u64, name: &[u8]) -> SysResult<()> {
        self.xattrs_on()?;
        self.writable()?;
        if is_private_xattr(name) {
            return Err(Errno(libc::ENODATA));
        }
        let n = self.node(ino)?;
        // Nothing to remove: answer without a copy-up.
        sys::lgetxattr(self.layers.fd(n.layer), &n.path, name)?;
        let n = self.copy_up(ino, false)?;
        sys::lremovexattr(self.layers.upper_fd()?, &n.path, name)
    }
}
