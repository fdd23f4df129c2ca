//! The node table: what the kernel currently holds a reference to.
//!
//! A node is keyed by its FUSE node id, which is also its st_ino. It records
//! where the object lives (topmost layer + relative path) and, for a
//! directory, every layer that contributes to it, so a request never searches
//! the stack again. Nodes live exactly as long as the kernel's lookup count:
//! FORGET drops them, so memory follows the kernel's cache, not the number of
//! files ever touched.
//!
//! Inode numbers are computed, not allocated: `tag << 48 | host_ino`, where the
//! tag names the layer's filesystem. That keeps them stable for the mount's
//! life without remembering every file. The one exception is copy-up, which
//! gives an object a new host inode: the table remembers the upper inode ->
//! original number pairs for the objects copied up in this mount.

use std::collections::HashMap;

use crate::sys::Errno;

/// FUSE's fixed node id for the root directory.
pub(crate) const ROOT: u64 = 1;
const HOST_INO_BITS: u32 = 48;

/// Computes the st_ino for a host inode of a filesystem with the given tag.
pub(crate) fn make_ino(tag: u64, host_ino: u64) -> u64 {
    (tag << HOST_INO_BITS) | (host_ino & ((1 << HOST_INO_BITS) - 1))
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) path: Vec<u8>,
    /// Topmost layer that holds the object.
    pub(crate) layer: usize,
    /// S_IFMT bits.
    pub(crate) kind: u32,
    /// For directories: contributing layers, topmost first.
    pub(crate) dir_layers: Vec<usize>,
    /// Set when the name this node was known by went away while another hard
    /// link may remain; the next lookup through any name repairs it.
    pub(crate) stale: bool,
    /// Other names of a hard-linked file, to fall back on when `path` goes.
    alt: Vec<Vec<u8>>,
    /// Created through this mount and given no xattr since: it has no
    /// `security.capability`, which the kernel asks about before every
    /// write and chown, so that question needs no syscall.
    no_caps: bool,
    /// Directories: the upper copy was made by this mount, which writes no
    /// `.wh.NAME` files (character-device whiteouts), so a lookup need not
    /// look for one there.
    pub(crate) upper_clean: bool,
    nlookup: u64,
}

/// How many extra names of one hard-linked file are remembered.
const MAX_ALT_NAMES: usize = 8;

impl Node {
    /// A node that is not in the table (used to list a directory found by
    /// lookup before the kernel holds it).
    pub(crate) fn detached(path: Vec<u8>, layer: usize, kind: u32, dir_layers: Vec<usize>) -> Node {
        Node {
            path,
            layer,
            kind,
            dir_layers,
            stale: false,
            alt: Vec::new(),
            no_caps: false,
            upper_clean: false,
            nlookup: 0,
        }
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.kind == libc::S_IFDIR
    }
}

#[derive(Default)]
pub(crate) struct Nodes {
    map: HashMap<u64, Node>,
    /// (upper dev, upper host ino) -> st_ino the object had before copy-up.
    copied: HashMap<(u64, u64), u64>,
    /// Primary path -> node, so an UNLINK right after the LOOKUP (or the
    /// READDIRPLUS) that found the name need not search the layers again.
    by_path: HashMap<Vec<u8>, u64>,
}

impl Nodes {
    pub(crate) fn new(root_layers: Vec<usize>) -> Nodes {
        let mut n = Nodes::default();
        let layer = root_layers.first().copied().unwrap_or(0);
        n.map.insert(
            ROOT,
            Node {
                path: b".".to_vec(),
                layer,
                kind: libc::S_IFDIR,
                dir_layers: root_layers,
                stale: false,
                alt: Vec::new(),
                no_caps: false,
                upper_clean: false,
                nlookup: 1,
            },
        );
        n
    }

    pub(crate) fn get(&self, ino: u64) -> Result<Node, Errno> {
        self.map.get(&ino).cloned().ok_or(Errno(libc::ESTALE))
    }

    /// Records one more kernel reference to `ino`, creating or refreshing it.
    pub(crate) fn remember(
        &mut self,
        ino: u64,
        path: Vec<u8>,
        layer: usize,
        kind: u32,
        dir_layers: Vec<usize>,
    ) {
        let n = self.map.entry(ino).or_insert_with(|| Node {
            path: Vec::new(),
            layer,
            kind,
            dir_layers: Vec::new(),
            stale: true,
            alt: Vec::new(),
            no_caps: false,
            upper_clean: false,
            nlookup: 0,
        });
        n.nlookup += 1;
        // A hard link keeps the first name it was found by while that name
        // is valid and remembers the others; otherwise the latest lookup wins.
        if n.stale || n.path.is_empty() || kind == libc::S_IFDIR || n.path == path {
            if n.path != path && self.by_path.get(&n.path) == Some(&ino) {
                self.by_path.remove(&n.path);
            }
            self.by_path.insert(path.clone(), ino);
            n.path = path;
            n.stale = false;
        } else if !n.alt.contains(&path) && n.alt.len() < MAX_ALT_NAMES {
            n.alt.push(path);
        }
        n.layer = layer;
        n.kind = kind;
        n.dir_layers = dir_layers;
    }

    /// Drops `count` kernel references; the node goes at zero.
    pub(crate) fn forget(&mut self, ino: u64, count: u64) {
        if ino == ROOT {
            return;
        }
        if let Some(n) = self.map.get_mut(&ino) {
            n.nlookup = n.nlookup.saturating_sub(count);
            if n.nlookup == 0 {
                if self.by_path.get(&n.path) == Some(&ino) {
                    self.by_path.remove(&n.path);
                }
                self.map.remove(&ino);
            }
        }
    }

    /// Marks `ino` as created by this mount with no xattrs (see `no_caps`),
    /// or, with `false`, as possibly holding some.
    pub(crate) fn set_no_caps(&mut self, ino: u64, no_caps: bool) {
        if let Some(n) = self.map.get_mut(&ino) {
            n.no_caps = no_caps;
        }
    }

    /// Whether `ino` is known to carry no `security.capability`.
    pub(crate) fn no_caps(&self, ino: u64) -> bool {
        self.map.get(&ino).is_some_and(|n| n.no_caps)
    }

    /// The live node whose primary name is `path`.
    pub(crate) fn at_path(&self, path: &[u8]) -> Option<(u64, &Node)> {
        let ino = *self.by_path.get(path)?;
        let n = self.map.get(&ino)?;
        (!n.stale && n.path == path).then_some((ino, n))
    }

    pub(crate) fn copied_ino(&self, dev: u64, host_ino: u64) -> Option<u64> {
        self.copied.get(&(dev, host_ino)).copied()
    }

    /// Marks directory `ino` as given its upper copy by this mount (see
    /// `upper_clean`).
    pub(crate) fn set_upper_clean(&mut self, ino: u64) {
        if let Some(n) = self.map.get_mut(&ino) {
            n.upper_clean = true;
        }
    }

    /// Moves a node to the upper layer after copy-up; `clean` as for
    /// [`dir_now_in_upper`](Self::dir_now_in_upper).
    pub(crate) fn copied_up(&mut self, ino: u64, upper_dev: u64, upper_host_ino: u64, clean: bool) {
        if let Some(n) = self.map.get_mut(&ino) {
            n.layer = 0;
            if n.is_dir() {
                if n.dir_layers.first() != Some(&0) {
                    n.dir_layers.insert(0, 0);
                    n.upper_clean = clean;
                }
            } else {
                self.copied.insert((upper_dev, upper_host_ino), ino);
            }
        }
    }

    /// A directory got an upper copy (by path: its node may be unknown);
    /// `clean` when this mount writes no `.wh.NAME` files into it.
    pub(crate) fn dir_now_in_upper(&mut self, path: &[u8], clean: bool) {
        for n in self.map.values_mut() {
            if n.is_dir() && n.path == path {
                n.layer = 0;
                if n.dir_layers.first() != Some(&0) {
                    n.dir_layers.insert(0, 0);
                    n.upper_clean = clean;
                }
            }
        }
    }

    /// The name `path` no longer refers to node `ino`.
    pub(crate) fn unlinked(&mut self, ino: u64, path: &[u8], upper_key: Option<(u64, u64)>) {
        if self.by_path.get(path) == Some(&ino) {
            self.by_path.remove(path);
        }
        if let Some(n) = self.map.get_mut(&ino) {
            n.alt.retain(|a| a != path);
            if n.path == path {
                match n.alt.pop() {
                    Some(other) => n.path = other,
                    None => n.stale = true,
                }
            }
        }
        if let Some(k) = upper_key {
            self.copied.remove(&k);
        }
    }

    /// Renames `old` to `new` for the node and, for a directory, everything
    /// known below it.
    pub(crate) fn renamed(&mut self, ino: u64, old: &[u8], new: &[u8]) {
        if self.by_path.get(old) == Some(&ino) {
            self.by_path.remove(old);
        }
        if let Some(n) = self.map.get_mut(&ino) {
            n.alt.retain(|a| a != old && a != new);
            if self.by_path.get(&n.path) == Some(&ino) {
                self.by_path.remove(&n.path);
            }
            self.by_path.insert(new.to_vec(), ino);
            n.path = new.to_vec();
            n.stale = false;
            if n.is_dir() {
                n.layer = 0;
                n.dir_layers = vec![0];
            }
        }
        let mut prefix = old.to_vec();
        prefix.push(b'/');
        for (&i, n) in self.map.iter_mut() {
            if n.path.starts_with(&prefix) {
                let mut p = new.to_vec();
                p.extend_from_slice(&n.path[old.len()..]);
                if self.by_path.get(&n.path) == Some(&i) {
                    self.by_path.remove(&n.path);
                    self.by_path.insert(p.clone(), i);
                }
                n.path = p;
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ino_layout() {
        assert_eq!(make_ino(1, 5), (1 << 48) | 5);
        assert_ne!(make_ino(1, 5), make_ino(2, 5));
    }

    #[test]
    fn forget_frees_nodes() {
        let mut n = Nodes::new(vec![0, 1]);
        n.remember(10, b"a".to_vec(), 1, libc::S_IFREG, vec![]);
        n.remember(10, b"a".to_vec(), 1, libc::S_IFREG, vec![]);
        n.forget(10, 1);
        assert!(n.get(10).is_ok());
        n.forget(10, 1);
        assert_eq!(n.get(10).unwrap_err(), Errno(libc::ESTALE));
        n.forget(ROOT, 100);
        assert_eq!(n.len(), 1);
    }

    #[test]
    fn rename_moves_descendants() {
        let mut n = Nodes::new(vec![0]);
        n.remember(10, b"d".to_vec(), 0, libc::S_IFDIR, vec![0]);
        n.remember(11, b"d/x".to_vec(), 0, libc::S_IFREG, vec![]);
        n.remember(12, b"dd".to_vec(), 0, libc::S_IFREG, vec![]);
        n.renamed(10, b"d", b"e");
        assert_eq!(n.get(11).unwrap().path, b"e/x");
        assert_eq!(n.get(12).unwrap().path, b"dd");
    }

    #[test]
    fn hard_link_survives_losing_its_first_name() {
        let mut n = Nodes::new(vec![0]);
        n.remember(10, b"a".to_vec(), 0, libc::S_IFREG, vec![]);
        n.remember(10, b"b".to_vec(), 0, libc::S_IFREG, vec![]);
        assert_eq!(n.get(10).unwrap().path, b"a");
        n.unlinked(10, b"a", None);
        let node = n.get(10).unwrap();
        assert_eq!(node.path, b"b");
        assert!(!node.stale);
    }

    #[test]
    fn path_index_follows_renames_unlinks_and_forgets() {
        let mut n = Nodes::new(vec![0, 1]);
        n.remember(10, b"d".to_vec(), 1, libc::S_IFDIR, vec![1]);
        n.remember(11, b"d/x".to_vec(), 1, libc::S_IFREG, vec![]);
        assert_eq!(n.at_path(b"d/x").map(|(i, _)| i), Some(11));
        n.renamed(10, b"d", b"e");
        assert!(n.at_path(b"d/x").is_none());
        assert_eq!(n.at_path(b"e/x").map(|(i, _)| i), Some(11));
        n.unlinked(11, b"e/x", None);
        assert!(n.at_path(b"e/x").is_none());
        n.remember(12, b"e/x".to_vec(), 0, libc::S_IFREG, vec![]);
        assert_eq!(n.at_path(b"e/x").map(|(i, _)| i), Some(12));
        // The stale node going away leaves the new one indexed.
        n.forget(11, 1);
        assert_eq!(n.at_path(b"e/x").map(|(i, _)| i), Some(12));
        n.forget(12, 1);
        assert!(n.at_path(b"e/x").is_none());
    }

    #[test]
    fn copy_up_keeps_number() {
        let mut n = Nodes::new(vec![0, 1]);
        n.remember(10, b"a".to_vec(), 1, libc::S_IFREG, vec![]);
        n.copied_up(10, 7, 99, false);
        assert_eq!(n.copied_ino(7, 99), Some(10));
        assert_eq!(n.get(10).unwrap().layer, 0);
        n.unlinked(10, b"a", Some((7, 99)));
        assert_eq!(n.copied_ino(7, 99), None);
        assert!(n.get(10).unwrap().stale);
    }
}
