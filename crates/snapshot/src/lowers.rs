//! The merged, read-only view of a stack of layer directories, computed
//! without mounting anything: what a path resolves to, and what a directory
//! lists, following overlay's rules (whiteouts hide, opaque directories and
//! non-directories stop the layers below).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::Metadata;
use std::path::{Path, PathBuf};

use crate::error::{Context, Result};
use crate::sys;

/// Layer directories, highest first.
pub(crate) struct LowerView<'a> {
    layers: &'a [PathBuf],
}

/// A path found in the view.
pub(crate) struct Found {
    /// The entry in the highest layer that has it.
    pub path: PathBuf,
    pub meta: Metadata,
    /// For a directory: the layers that contribute to its listing, highest
    /// first (the first is `path`'s).
    pub dir_layers: Vec<usize>,
}

impl<'a> LowerView<'a> {
    pub(crate) fn new(layers: &'a [PathBuf]) -> Self {
        LowerView { layers }
    }

    /// The root directory of the view, if there is any layer.
    pub(crate) fn root(&self) -> Result<Option<Found>> {
        let mut dir_layers = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            dir_layers.push(i);
            if sys::is_opaque_dir(layer) {
                break;
            }
        }
        let Some(top) = self.layers.first() else {
            return Ok(None);
        };
        let meta = top.symlink_metadata().ctx("reading layer", top)?;
        Ok(Some(Found {
            path: top.clone(),
            meta,
            dir_layers,
        }))
    }

    /// Resolves `name` inside directory `parent` (a [`Found`] directory of
    /// this view at relative path `rel`).
    pub(crate) fn child(
        &self,
        parent: &Found,
        rel: &Path,
        name: &OsString,
    ) -> Result<Option<Found>> {
        let mut found: Option<Found> = None;
        for &i in &parent.dir_layers {
            let dir = self.layers[i].join(rel);
            let path = dir.join(name);
            let meta = match path.symlink_metadata() {
                Ok(m) => Some(m),
                Err(e) if is_absent(&e) => None,
                Err(e) => return Err(e).ctx("reading", path),
            };
            let hidden_by_oci = meta.is_none()
                && dir
                    .join(format!("{}{}", sys::WH_PREFIX, name.to_string_lossy()))
                    .symlink_metadata()
                    .is_ok();
            match (&mut found, meta) {
                (None, Some(m)) if sys::is_whiteout_dev(&m) => return Ok(None),
                (None, None) if hidden_by_oci => return Ok(None),
                (None, None) => {}
                (None, Some(m)) => {
                    let is_dir = m.is_dir();
                    let opaque = is_dir && sys::is_opaque_dir(&path);
                    found = Some(Found {
                        path,
                        meta: m,
                        dir_layers: if is_dir { vec![i] } else { Vec::new() },
                    });
                    if !is_dir || opaque {
                        break;
                    }
                }
                (Some(f), Some(m)) if m.is_dir() => {
                    f.dir_layers.push(i);
                    if sys::is_opaque_dir(&path) {
                        break;
                    }
                }
                // Below a directory, a whiteout or non-directory ends the merge.
                (Some(_), Some(_)) => break,
                (Some(_), None) if hidden_by_oci => break,
                (Some(_), None) => {}
            }
        }
        Ok(found)
    }

    /// The visible names in directory `dir` (at relative path `rel`), each
    /// resolved.
    pub(crate) fn list(&self, dir: &Found, rel: &Path) -> Result<BTreeMap<OsString, Found>> {
        let mut names = std::collections::BTreeSet::new();
        for &i in &dir.dir_layers {
            let d = self.layers[i].join(rel);
            for entry in std::fs::read_dir(&d).ctx("listing", &d)? {
                let entry = entry.ctx("listing", &d)?;
                let name = entry.file_name();
                if name == sys::WH_OPAQUE || sys::oci_whiteout_target(&name).is_some() {
                    continue;
                }
                names.insert(name);
            }
        }
        let mut out = BTreeMap::new();
        for name in names {
            if let Some(f) = self.child(dir, rel, &name)? {
                out.insert(name, f);
            }
        }
        Ok(out)
    }
}

pub(crate) fn is_absent(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}
