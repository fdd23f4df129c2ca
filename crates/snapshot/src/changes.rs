//! What a container changed, for `berth diff` and `berth commit`.
//!
//! Docker's A/C/D rules: a deleted entry is D; an entry that exists in the
//! image (the merged lower layers) is C; anything else is A; and every
//! directory above a change is C. Two sources: an overlay-format upper dir
//! (overlay and fuse drivers), or a full copy compared with the lowers (vfs).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::copy::{self, Links};
use crate::error::{Context, Result};
use crate::lowers::{Found, LowerView};
use crate::sys;

/// How an entry differs from the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// New in the container (`A`).
    Added,
    /// Present in the image and modified, or a directory above a change (`C`).
    Changed,
    /// Present in the image and deleted (`D`).
    Deleted,
}

/// One line of `berth diff`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The absolute path inside the container, e.g. `/etc/passwd`.
    pub path: PathBuf,
}

impl std::fmt::Display for Change {
    /// Docker's form: `C /etc`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let k = match self.kind {
            ChangeKind::Added => 'A',
            ChangeKind::Changed => 'C',
            ChangeKind::Deleted => 'D',
        };
        write!(f, "{k} {}", self.path.display())
    }
}

/// Changes keyed by relative path; a BTreeMap of paths orders them like a
/// directory walk (component by component), as Docker prints them.
type ChangeMap = BTreeMap<PathBuf, ChangeKind>;

/// Changes recorded in an overlay-format `upper` dir over `lowers` (highest
/// first).
pub(crate) fn upper_changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    let view = LowerView::new(lowers);
    let root = view.root()?;
    let mut out = ChangeMap::new();
    walk_upper(upper, Path::new(""), root.as_ref(), &view, &mut out)?;
    Ok(finish(out))
}

fn walk_upper(
    upper: &Path,
    rel: &Path,
    lower: Option<&Found>,
    view: &LowerView,
    out: &mut ChangeMap,
) -> Result<()> {
    let dir = upper.join(rel);
    let mut present = BTreeSet::new();
    for entry in read_sorted(&dir)? {
        let (name, meta) = entry;
        let path = rel.join(&name);
        let lower_child = |n: &OsString| -> Result<Option<Found>> {
            match lower {
                Some(l) => view.child(l, rel, n),
                None => Ok(None),
            }
        };
        if name == sys::WH_OPAQUE {
            continue;
        }
        if let Some(target) = sys::oci_whiteout_target(&name) {
            if lower_child(&target)?.is_some() {
                out.insert(rel.join(&target), ChangeKind::Deleted);
            }
            present.insert(target);
            continue;
        }
        present.insert(name.clone());
        if sys::is_whiteout_dev(&meta) {
            if lower_child(&name)?.is_some() {
                out.insert(path, ChangeKind::Deleted);
            }
            continue;
        }
        match lower_child(&name)? {
            Some(l) if meta.is_dir() && l.meta.is_dir() => {
                if dir_differs(&meta, &l.meta) {
                    out.insert(path.clone(), ChangeKind::Changed);
                }
                walk_upper(upper, &path, Some(&l), view, out)?;
            }
            Some(_) => {
                out.insert(path.clone(), ChangeKind::Changed);
                if meta.is_dir() {
                    walk_upper(upper, &path, None, view, out)?;
                }
            }
            None => {
                out.insert(path.clone(), ChangeKind::Added);
                if meta.is_dir() {
                    walk_upper(upper, &path, None, view, out)?;
                }
            }
        }
    }
    // An opaque directory hides everything below it that it does not hold.
    if let Some(l) = lower {
        if !rel.as_os_str().is_empty() && sys::is_opaque_dir(&dir) {
            for name in view.list(l, rel)?.into_keys() {
                if !present.contains(&name) {
                    out.insert(rel.join(name), ChangeKind::Deleted);
                }
            }
        }
    }
    Ok(())
}

/// Changes of the full tree `fs` compared with `lowers` (highest first).
pub(crate) fn tree_changes(fs: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    let view = LowerView::new(lowers);
    let root = view.root()?;
    let mut out = ChangeMap::new();
    walk_tree(fs, Path::new(""), root.as_ref(), &view, &mut out)?;
    Ok(finish(out))
}

fn walk_tree(
    fs: &Path,
    rel: &Path,
    lower: Option<&Found>,
    view: &LowerView,
    out: &mut ChangeMap,
) -> Result<()> {
    let mut below = match lower {
        Some(l) => view.list(l, rel)?,
        None => BTreeMap::new(),
    };
    for (name, meta) in read_sorted(&fs.join(rel))? {
        let path = rel.join(&name);
        match below.remove(&name) {
            Some(l) => {
                if node_differs(&fs.join(&path), &meta, &l)? {
                    out.insert(path.clone(), ChangeKind::Changed);
                }
                if meta.is_dir() {
                    let l = l.meta.is_dir().then_some(l);
                    walk_tree(fs, &path, l.as_ref(), view, out)?;
                }
            }
            None => {
                out.insert(path.clone(), ChangeKind::Added);
                if meta.is_dir() {
                    walk_tree(fs, &path, None, view, out)?;
                }
            }
        }
    }
    for name in below.into_keys() {
        out.insert(rel.join(name), ChangeKind::Deleted);
    }
    Ok(())
}

/// Writes the changes of `fs` over `lowers` into the empty dir `out` in the
/// overlay layer format (whiteouts as 0/0 devices), for commit.
pub(crate) fn write_diff(fs: &Path, lowers: &[PathBuf], out: &Path) -> Result<()> {
    let changes = tree_changes(fs, lowers)?;
    let mut links = Links::default();
    let mut dirs = Vec::new();
    for c in &changes {
        let rel = c.path.strip_prefix("/").unwrap_or(&c.path);
        let dst = out.join(rel);
        if c.kind == ChangeKind::Deleted {
            sys::make_whiteout(&dst).ctx("creating whiteout", &dst)?;
            continue;
        }
        let src = fs.join(rel);
        let meta = src.symlink_metadata().ctx("reading", &src)?;
        if meta.is_dir() {
            copy::make_dir(&dst)?;
            dirs.push((src, meta, dst));
        } else {
            copy::copy_node(&src, &meta, &dst, &mut links)?;
        }
    }
    // Directory times last: filling a directory changes them.
    for (src, meta, dst) in dirs.iter().rev() {
        copy::copy_metadata(src, meta, dst)?;
    }
    Ok(())
}

/// Adds every directory above a change as C, and makes paths absolute.
fn finish(mut found: ChangeMap) -> Vec<Change> {
    let parents: Vec<PathBuf> = found
        .keys()
        .flat_map(|p| p.ancestors().skip(1))
        .filter(|a| !a.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .collect();
    for p in parents {
        found.entry(p).or_insert(ChangeKind::Changed);
    }
    found
        .into_iter()
        .map(|(p, kind)| Change {
            kind,
            path: Path::new("/").join(p),
        })
        .collect()
}

fn read_sorted(dir: &Path) -> Result<Vec<(OsString, Metadata)>> {
    let mut v = Vec::new();
    for entry in std::fs::read_dir(dir).ctx("listing", dir)? {
        let entry = entry.ctx("listing", dir)?;
        let meta = entry.metadata().ctx("reading", entry.path())?;
        v.push((entry.file_name(), meta));
    }
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

/// Whether a directory's own metadata changed (contents aside).
fn dir_differs(a: &Metadata, b: &Metadata) -> bool {
    a.mode() != b.mode()
        || a.uid() != b.uid()
        || a.gid() != b.gid()
        || (a.mtime(), a.mtime_nsec()) != (b.mtime(), b.mtime_nsec())
}

/// Whether copy `path` (`meta`) differs from lower entry `l`, by the stat
/// fields Docker compares, plus a symlink's target.
fn node_differs(path: &Path, meta: &Metadata, l: &Found) -> Result<bool> {
    let b = &l.meta;
    if copy::shown_owner_and_mode(path, meta) != copy::shown_owner_and_mode(&l.path, b) {
        return Ok(true);
    }
    if meta.is_dir() {
        return Ok((meta.mtime(), meta.mtime_nsec()) != (b.mtime(), b.mtime_nsec()));
    }
    if meta.rdev() != b.rdev()
        || meta.size() != b.size()
        || (meta.mtime(), meta.mtime_nsec()) != (b.mtime(), b.mtime_nsec())
    {
        return Ok(true);
    }
    if meta.file_type().is_symlink() {
        let mine = std::fs::read_link(path).ctx("reading link", path)?;
        let theirs = std::fs::read_link(&l.path).ctx("reading link", &l.path)?;
        return Ok(mine != theirs);
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(p: &Path, s: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    }

    fn strings(c: Vec<Change>) -> Vec<String> {
        c.iter().map(Change::to_string).collect()
    }

    /// OCI-style markers in an upper (what berth-unionfs writes when it may
    /// not create devices) count like overlay's; a chmod alone is a change.
    #[test]
    fn upper_with_oci_whiteouts_and_metadata_change() {
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("l"), t.path().join("u"));
        write(&lower.join("a/x"), "x");
        write(&lower.join("a/y"), "y");
        write(&lower.join("b/z"), "z");
        write(&lower.join("m/keep"), "k");
        write(&lower.join("top"), "t");
        write(&upper.join("a/.wh.x"), "");
        write(&upper.join("b/.wh..wh..opq"), "");
        write(&upper.join("b/new"), "n");
        write(&upper.join(".wh.gone"), ""); // not in the lowers: no change
        std::fs::create_dir(upper.join("m")).unwrap();
        std::fs::set_permissions(upper.join("m"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(lower.join("m"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let c = upper_changes(&upper, &[lower]).unwrap();
        assert_eq!(
            strings(c),
            ["C /a", "D /a/x", "C /b", "A /b/new", "D /b/z", "C /m"]
        );
    }

    /// vfs: a new symlink target is a change, a deleted directory is one D.
    #[test]
    fn tree_compare() {
        let t = tempfile::tempdir().unwrap();
        let (lower, fs) = (t.path().join("l"), t.path().join("fs"));
        write(&lower.join("d/deep/f"), "f");
        write(&lower.join("same"), "s");
        std::os::unix::fs::symlink("same", lower.join("ln")).unwrap();
        std::fs::create_dir(&fs).unwrap();
        crate::vfs::apply_layer(&lower, &fs).unwrap();
        assert!(tree_changes(&fs, std::slice::from_ref(&lower))
            .unwrap()
            .is_empty());
        std::fs::remove_file(fs.join("ln")).unwrap();
        std::os::unix::fs::symlink("other", fs.join("ln")).unwrap();
        std::fs::remove_dir_all(fs.join("d")).unwrap();
        let c = tree_changes(&fs, std::slice::from_ref(&lower)).unwrap();
        assert_eq!(strings(c), ["D /d", "C /ln"]);
        let out = t.path().join("diff");
        std::fs::create_dir(&out).unwrap();
        // Whiteouts are device nodes: root (or a user namespace's root) only.
        if !rustix::process::geteuid().is_root() {
            println!("skipped write_diff: needs root");
            return;
        }
        write_diff(&fs, &[lower], &out).unwrap();
        assert_eq!(
            std::fs::read_link(out.join("ln")).unwrap(),
            Path::new("other")
        );
        assert!(sys::is_whiteout_dev(
            &out.join("d").symlink_metadata().unwrap()
        ));
    }
}
