//! Thin helpers over the system: who we are (real root or root of a user
//! namespace), whiteouts and opaque markers in the overlay on-disk format,
//! and extended attributes.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Prefix of the file names OCI layer tars use for whiteouts; berth-unionfs
/// also writes them when it may not create device nodes.
pub(crate) const WH_PREFIX: &str = ".wh.";
/// The OCI name that marks its directory opaque.
pub(crate) const WH_OPAQUE: &str = ".wh..wh..opq";

#[cfg(test)]
/// The xattr namespace overlayfs uses for its metadata in this process:
/// `trusted.` as real root, `user.` inside a user namespace (`userxattr`).
pub(crate) fn overlay_xattr_prefix() -> &'static str {
    if in_user_namespace() {
        "user."
    } else {
        "trusted."
    }
}

/// True when this process runs in a user namespace other than the initial
/// one, i.e. when its uid map is not the identity over the whole range.
pub fn in_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => !is_identity_map(&map),
        // Without /proc we cannot tell; assume the less privileged case.
        Err(_) => true,
    }
}

fn is_identity_map(map: &str) -> bool {
    let lines: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|f: &Vec<&str>| !f.is_empty())
        .collect();
    matches!(lines.as_slice(), [f] if f.as_slice() == ["0", "0", "4294967295"])
}

/// Whether `meta` describes an overlay whiteout (character device 0/0).
pub(crate) fn is_whiteout_dev(meta: &std::fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// The name an OCI-style whiteout file hides, if `name` is one (and not the
/// opaque marker).
pub(crate) fn oci_whiteout_target(name: &OsStr) -> Option<OsString> {
    let bytes = name.as_bytes();
    let rest = bytes.strip_prefix(WH_PREFIX.as_bytes())?;
    if name == WH_OPAQUE || rest.is_empty() {
        return None;
    }
    Some(OsStr::from_bytes(rest).to_os_string())
}

/// Whether directory `dir` is opaque in either style: the overlay xattr
/// (trusted. or user.) set to `y`, or an OCI `.wh..wh..opq` entry.
pub(crate) fn is_opaque_dir(dir: &Path) -> bool {
    for name in ["trusted.overlay.opaque", "user.overlay.opaque"] {
        if get_xattr(dir, name).ok().flatten().as_deref() == Some(b"y".as_slice()) {
            return true;
        }
    }
    dir.join(WH_OPAQUE).symlink_metadata().is_ok()
}

/// Creates an overlay whiteout (character device 0/0) at `path`. Allowed to
/// real root and, since Linux 5.8, inside a user namespace.
pub(crate) fn make_whiteout(path: &Path) -> io::Result<()> {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .map_err(io::Error::from)
}

#[cfg(test)]
/// Marks `dir` opaque with this process's overlay xattr prefix.
pub(crate) fn set_opaque(dir: &Path) -> io::Result<()> {
    let name = format!("{}overlay.opaque", overlay_xattr_prefix());
    rustix::fs::lsetxattr(dir, name.as_str(), b"y", rustix::fs::XattrFlags::empty())
        .map_err(io::Error::from)
}

/// Reads xattr `name` of `path` (not following symlinks); None when absent.
pub(crate) fn get_xattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::NOTSUP) => return Ok(None),
            Err(rustix::io::Errno::RANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Names of the xattrs of `path` (not following symlinks).
pub(crate) fn list_xattrs(path: &Path) -> io::Result<Vec<OsString>> {
    let mut buf = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(rustix::io::Errno::RANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            Err(e) => return Err(e.into()),
        }
    };
    Ok(buf[..n]
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| OsStr::from_bytes(s).to_os_string())
        .collect())
}

/// Whether an xattr is overlay metadata, which describes a layer rather than
/// the file and must not travel with a copy.
pub(crate) fn is_overlay_xattr(name: &OsStr) -> bool {
    let b = name.as_bytes();
    b.starts_with(b"trusted.overlay.") || b.starts_with(b"user.overlay.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_map_is_recognised() {
        assert!(is_identity_map("         0          0 4294967295\n"));
        assert!(!is_identity_map("         0       1001          1\n"));
        assert!(!is_identity_map("0 0 4294967295\n1 2 3\n"));
        assert!(!is_identity_map(""));
    }

    #[test]
    fn oci_whiteout_names() {
        assert_eq!(
            oci_whiteout_target(OsStr::new(".wh.foo")),
            Some(OsString::from("foo"))
        );
        assert_eq!(oci_whiteout_target(OsStr::new(WH_OPAQUE)), None);
        assert_eq!(oci_whiteout_target(OsStr::new(".wh.")), None);
        assert_eq!(oci_whiteout_target(OsStr::new("foo")), None);
    }
}
