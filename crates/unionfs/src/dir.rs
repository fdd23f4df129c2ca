//! Directories: the merged listing, mkdir and rmdir.
//!
//! A listing is built once per opendir from the contributing layers, topmost
//! first: a name seen in a higher layer hides lower ones, a whiteout hides
//! lower ones and is itself never listed, and `.wh.*` metadata never shows.
//! Each entry remembers the layer it came from, so readdirplus can stat it
//! without searching the stack again.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use parking_lot::Mutex;

use fuser::FileAttr;

use crate::fs::{dtype_mode, Handle, UnionFs};
use crate::inode::Node;
use crate::layers::{remove_tree, WhiteoutStyle};
use crate::names::New;
use crate::sys::{self, Errno, SysResult};
use crate::whiteout::{self, OPAQUE_MARKER, WH_PREFIX};

/// One merged directory entry.
#[derive(Debug, Clone)]
pub(crate) struct DirEntry {
    pub(crate) name: Vec<u8>,
    /// S_IFMT bits, 0 when the layer's fs does not report d_type.
    pub(crate) kind: u32,
    /// Index into the directory's layer list where the name was found.
    pub(crate) layer_pos: usize,
    /// d_ino for plain readdir, in the mount's numbering. It can differ from
    /// st_ino for merged directories and copied-up files, as on overlayfs
    /// without xino; stat is authoritative.
    pub(crate) ino: u64,
}

impl UnionFs {
    /// Builds the merged listing of directory node `n`.
    pub(crate) fn list(&self, n: &Node) -> SysResult<Vec<DirEntry>> {
        let mut seen: HashSet<Vec<u8>, BuildHasherDefault<Fnv>> = HashSet::default();
        let mut out = Vec::new();
        let last = n.dir_layers.len().saturating_sub(1);
        for (pos, &l) in n.dir_layers.iter().enumerate() {
            // Names of the last layer hide nothing below: no need to record.
            let many = pos < last;
            let fd = self.layers.fd(l);
            let d = match sys::openat(fd, &n.path, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
                Ok(d) => d,
                // A lower copy replaced by a non-directory: nothing to merge.
                Err(Errno(libc::ENOENT)) | Err(Errno(libc::ENOTDIR)) if pos > 0 => continue,
                Err(e) => return Err(e),
            };
            let mut hidden_here = Vec::new();
            let tag = self.layers.all[l].tag;
            let upper = self.layers.is_upper(l);
            for (name, ty, d_ino) in sys::read_dir(d)? {
                if name.starts_with(WH_PREFIX) {
                    if name != OPAQUE_MARKER {
                        hidden_here.push(name[WH_PREFIX.len()..].to_vec());
                    }
                    continue;
                }
                if pos > 0 && seen.contains(&name) {
                    continue;
                }
                let mut kind = dtype_mode(ty);
                // Our own whiteouts are links to one inode: known by d_ino
                // alone, no stat (an emptied directory is all whiteouts).
                if kind == libc::S_IFCHR && upper && self.layers.is_shared_whiteout(d_ino) {
                    if many {
                        seen.insert(name);
                    }
                    continue;
                }
                if kind == libc::S_IFCHR || kind == 0 {
                    if let Ok(st) = sys::fstatat(fd, &sys::join(&n.path, &name)) {
                        if whiteout::is_whiteout_stat(&st) {
                            if many {
                                seen.insert(name);
                            }
                            continue;
                        }
                        kind = st.st_mode & libc::S_IFMT;
                    }
                }
                if many {
                    seen.insert(name.clone());
                }
                out.push(DirEntry {
                    name,
                    kind,
                    layer_pos: pos,
                    ino: crate::inode::make_ino(tag, d_ino),
                });
            }
            // A `.wh.X` hides X in lower layers only, never in its own.
            if many {
                seen.extend(hidden_here);
            }
        }
        Ok(out)
    }

    pub(crate) fn do_opendir(&self, ino: u64) -> SysResult<u64> {
        let n = self.node(ino)?;
        if !n.is_dir() {
            return Err(Errno(libc::ENOTDIR));
        }
        Ok(self.add_handle(Handle::Dir {
            ino,
            entries: Mutex::new(None),
        }))
    }

    /// The handle's listing, built on first use and kept for the handle's
    /// life so offsets stay valid across READDIR calls.
    pub(crate) fn dir_entries(&self, fh: u64) -> SysResult<Arc<Vec<DirEntry>>> {
        let h = self.handle(fh)?;
        let Handle::Dir { ino, entries } = &*h else {
            return Err(Errno(libc::EBADF));
        };
        let mut entries = entries.lock();
        if let Some(e) = &*entries {
            return Ok(e.clone());
        }
        let e = Arc::new(self.list(&self.node(*ino)?)?);
        *entries = Some(e.clone());
        Ok(e)
    }

    /// Full attributes of a listed entry for readdirplus; registers the node.
    pub(crate) fn entry_plus(&self, dir: &Node, e: &DirEntry) -> SysResult<Option<FileAttr>> {
        Ok(self
            .find_from(dir, &e.name, e.layer_pos)?
            .map(|f| self.remember(f)))
    }

    pub(crate) fn is_empty_dir(&self, n: &Node) -> SysResult<bool> {
        Ok(self.list(n)?.is_empty())
    }

    pub(crate) fn do_mkdir(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> SysResult<FileAttr> {
        self.create_node(parent, name, New::Dir, mode, uid, gid)
            .map(|(a, _)| a)
    }

    pub(crate) fn do_rmdir(&self, parent: u64, name: &[u8]) -> SysResult<()> {
        self.writable()?;
        let p = self.node(parent)?;
        let f = self.find(&p, name)?.ok_or(Errno(libc::ENOENT))?;
        if !f.is_dir() {
            return Err(Errno(libc::ENOTDIR));
        }
        let child = Node::probe(&f);
        if !self.is_empty_dir(&child)? {
            return Err(Errno(libc::ENOTEMPTY));
        }
        let needs_whiteout = f.has_lower(self) || self.lower_has(&p, name);
        let path = f.path.clone();
        if self.layers.is_upper(f.layer) {
            self.remove_upper_dir(&path, needs_whiteout)?;
        } else {
            self.ensure_upper_dir(&p.path)?;
            self.layers.whiteout(&path)?;
        }
        let ino = self.ino_of(&f);
        self.nodes.lock().unlinked(ino, &path, None);
        Ok(())
    }

    /// Removes an upper directory that is empty in the merged view (it may
    /// still hold whiteouts), leaving a whiteout when lower layers have it.
    pub(crate) fn remove_upper_dir(&self, path: &[u8], needs_whiteout: bool) -> SysResult<()> {
        let up = self.layers.upper_fd()?;
        let work = self.layers.work_fd().ok_or(Errno(libc::EROFS))?;
        if !needs_whiteout {
            match sys::unlinkat(up, path, libc::AT_REMOVEDIR) {
                Err(Errno(libc::ENOTEMPTY)) | Err(Errno(libc::EEXIST)) => {}
                r => return r,
            }
            let tmp = self.layers.tmp_name();
            sys::renameat2(up, path, work, &tmp, 0)?;
            return remove_tree(work, &tmp);
        }
        let tmp = self.layers.tmp_name();
        if self.layers.style == WhiteoutStyle::CharDev {
            // Swap in a whiteout atomically, then clean the old dir up.
            sys::mknodat(work, &tmp, libc::S_IFCHR, 0)?;
            if let Err(e) = sys::renameat2(work, &tmp, up, path, libc::RENAME_EXCHANGE) {
                let _ = sys::unlinkat(work, &tmp, 0);
                return Err(e);
            }
        } else {
            let (dir, name) = sys::split(path);
            let wh = sys::join(dir, &whiteout::wh_name(name));
            drop(sys::openat(up, &wh, libc::O_WRONLY | libc::O_CREAT, 0)?);
            sys::renameat2(up, path, work, &tmp, 0)?;
        }
        remove_tree(work, &tmp)
    }

    /// Whether any lower layer of `parent` holds `name` visibly (so its
    /// removal from the upper layer needs a whiteout).
    pub(crate) fn lower_has(&self, parent: &Node, name: &[u8]) -> bool {
        let path = sys::join(&parent.path, name);
        for &l in &parent.dir_layers {
            if self.layers.is_upper(l) {
                continue;
            }
            let fd = self.layers.fd(l);
            match sys::fstatat(fd, &path) {
                Ok(st) => return !whiteout::is_whiteout_stat(&st),
                Err(_) => {
                    if sys::exists(fd, &sys::join(&parent.path, &whiteout::wh_name(name))) {
                        return false;
                    }
                }
            }
        }
        false
    }
}

impl Node {
    /// A throwaway node for a found directory, to list it.
    pub(crate) fn probe(f: &crate::lookup::Found) -> Node {
        Node::detached(
            f.path.clone(),
            f.layer,
            f.st.st_mode & libc::S_IFMT,
            f.dir_layers.clone(),
        )
    }
}

/// FNV-1a for the names seen while merging: they are short, a collision
/// costs time, never correctness, and SipHash is the slower choice per name
/// in a directory of thousands.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
