//! Rootless containers (overlay, fuse and vfs alike): their root
//! filesystem is mounted inside the container's user namespace, and their
//! writable layer holds files owned by subordinate ids (a file chowned to
//! 1000 inside belongs to 100999 on the host), which the user can only
//! touch as root of such a namespace. Work on those files runs in a
//! short-lived child that enters one (see
//! [`berth_launch::run_in_rootless_namespaces`]).
//!
//! Image layers are unpacked without chown when rootless: their files belong
//! to the user (root inside), and the image's other owners (and set-id bits)
//! are recorded in `user.containers.override_stat`, which the fuse driver
//! shows (`xattr_permissions=2`) and commit reads back; vfs gives its copies
//! those owners for real (it copies as root of a user namespace); kernel
//! overlay cannot, and shows root. Layers are never written through a
//! container.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::error::CResult;
use super::run;
use super::state::Record;
use super::{ChangeKind, ContainerChange};
use crate::Engine;

/// Whether this engine's containers live in a user namespace of their own
/// monitor, which mounts their root filesystem there: rootless, on every
/// driver (a vfs container's files belong to subordinate ids too).
pub(crate) fn in_monitor_userns(engine: &Engine) -> bool {
    engine.rootless
}

/// Whether touching a container's files needs a user namespace first:
/// rootless, and this process not already root of one.
pub(crate) fn needs_userns(engine: &Engine) -> bool {
    in_monitor_userns(engine) && !rustix::process::geteuid().is_root()
}

/// Runs `f` as root of a fresh rootless user namespace and returns its bytes.
pub(crate) fn in_userns(f: impl FnOnce() -> CResult<Vec<u8>>) -> CResult<Vec<u8>> {
    Ok(berth_launch::run_in_rootless_namespaces(|| {
        f().map_err(|e| e.to_string())
    })?)
}

/// Runs `f` where a rootless union container's files can be reached: in
/// its monitor's user and mount namespaces while it runs (its root
/// filesystem is mounted there only), else in fresh rootless namespaces.
/// Where no namespace is needed (root, vfs, already root of one), `f` runs
/// here.
pub(crate) fn in_container_userns(
    engine: &Engine,
    record: &Record,
    f: impl FnOnce() -> CResult<Vec<u8>>,
) -> CResult<Vec<u8>> {
    if !needs_userns(engine) {
        return f();
    }
    let f = || f().map_err(|e| e.to_string());
    Ok(match monitor_of(record) {
        Some(monitor) => berth_launch::run_in_namespaces_of(monitor, f)?,
        None => berth_launch::run_in_rootless_namespaces(f)?,
    })
}

/// The monitor of a running container: its init's parent, while that lives
/// in the init's user namespace (the init of a monitor that died is
/// someone else's child, and its mount is gone).
fn monitor_of(record: &Record) -> Option<i32> {
    if !run::is_running(record) {
        return None;
    }
    let pid = record.state.pid;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let parent: i32 = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))?
        .trim()
        .parse()
        .ok()?;
    let userns = |p: i32| {
        std::fs::metadata(format!("/proc/{p}/ns/user"))
            .ok()
            .map(|m| (m.dev(), m.ino()))
    };
    (userns(parent)? == userns(pid)?).then_some(parent)
}

/// Changes as bytes, to cross a pipe: a kind letter, the path, a NUL each.
pub(crate) fn encode_changes(changes: &[ContainerChange]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in changes {
        out.push(match c.kind {
            ChangeKind::Added => b'A',
            ChangeKind::Changed => b'C',
            ChangeKind::Deleted => b'D',
        });
        out.extend_from_slice(c.path.as_os_str().as_bytes());
        out.push(0);
    }
    out
}

/// The inverse of [`encode_changes`]; malformed records are dropped.
pub(crate) fn decode_changes(bytes: &[u8]) -> Vec<ContainerChange> {
    bytes
        .split(|b| *b == 0)
        .filter_map(|rec| {
            let (kind, path) = rec.split_first()?;
            let kind = match kind {
                b'A' => ChangeKind::Added,
                b'C' => ChangeKind::Changed,
                b'D' => ChangeKind::Deleted,
                _ => return None,
            };
            Some(ContainerChange {
                kind,
                path: PathBuf::from(OsStr::from_bytes(path)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_any_path() {
        let c = |kind, p: &str| ContainerChange {
            kind,
            path: PathBuf::from(p),
        };
        let changes = vec![
            c(ChangeKind::Changed, "/etc"),
            c(ChangeKind::Deleted, "/etc/pass wd"),
            c(ChangeKind::Added, "/new\nline"),
        ];
        assert_eq!(decode_changes(&encode_changes(&changes)), changes);
        assert!(decode_changes(b"").is_empty());
        assert!(decode_changes(b"X/bad\0").is_empty());
    }
}
