//! Resolving a container path inside the rootfs, symlinks included, without
//! ever leaving it: an image may hold `/proc -> /etc`, and a mount destination
//! must then land on `<rootfs>/etc`, not on the host's `/etc`.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

const MAX_SYMLINKS: usize = 40;

/// Joins `path` to `root`, following symlinks as if `root` were `/`.
/// Missing components are kept as they are (they will be created).
pub fn secure_join(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let mut pending: VecDeque<OsString> = components(path);
    let mut resolved = PathBuf::new();
    let mut hops = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let full = root.join(&candidate);
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = std::fs::read_link(&full)?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                for c in components(&target).into_iter().rev() {
                    pending.push_front(c);
                }
            }
            _ => resolved = candidate,
        }
    }
    Ok(root.join(resolved))
}

fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn plain_paths_are_joined() {
        let root = tempfile::tempdir().unwrap();
        let got = secure_join(root.path(), Path::new("/a/b")).unwrap();
        assert_eq!(got, root.path().join("a/b"));
    }

    #[test]
    fn absolute_symlinks_and_dotdot_stay_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        symlink("/etc", root.path().join("proc")).unwrap();
        symlink("../../../..", root.path().join("up")).unwrap();
        assert_eq!(
            secure_join(root.path(), Path::new("/proc/x")).unwrap(),
            root.path().join("etc/x")
        );
        assert_eq!(
            secure_join(root.path(), Path::new("/up/etc")).unwrap(),
            root.path().join("etc")
        );
        assert_eq!(
            secure_join(root.path(), Path::new("/../../etc")).unwrap(),
            root.path().join("etc")
        );
    }

    #[test]
    fn symlink_loops_are_an_error() {
        let root = tempfile::tempdir().unwrap();
        symlink("/b", root.path().join("a")).unwrap();
        symlink("/a", root.path().join("b")).unwrap();
        let err = secure_join(root.path(), Path::new("/a")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }
}
