//! write_layer and apply_layer are inverses: random layer trees (files,
//! dirs, symlinks, hard links, whiteouts, opaque dirs, xattrs, owners, modes,
//! times) survive tar and untar, byte for byte in the re-written tarball.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_archive::{write_layer, write_tree, WhiteoutFormat};
use common::{Target, OVERLAY};
use proptest::prelude::*;
use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, XattrFlags, CWD};

#[derive(Debug, Clone)]
enum Kind {
    File(Vec<u8>),
    Dir {
        opaque: bool,
    },
    Symlink(String),
    Whiteout,
    /// A hard link to the n-th earlier regular file (if any).
    HardLink(usize),
}

#[derive(Debug, Clone)]
struct Node {
    path: Vec<&'static str>,
    kind: Kind,
    mode: u32,
    owner: u32,
    mtime: i64,
    xattr: Option<Vec<u8>>,
}

fn node() -> impl Strategy<Value = Node> {
    let long: &'static str = "long".repeat(30).leak();
    let name = prop::sample::select(vec!["a", "b", "c", ".hidden", "sp ace", "ü", long]);
    let kind = prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..3000).prop_map(Kind::File),
        2 => any::<bool>().prop_map(|opaque| Kind::Dir { opaque }),
        1 => prop::sample::select(vec!["a".to_string(), "../b".into(), "/abs/c".into(), "x".repeat(200)]).prop_map(Kind::Symlink),
        1 => Just(Kind::Whiteout),
        1 => (0usize..4).prop_map(Kind::HardLink),
    ];
    (
        prop::collection::vec(name, 1..4),
        kind,
        prop::sample::select(vec![0o755u32, 0o700, 0o555, 0o644, 0o4755, 0o1777]),
        prop::sample::select(vec![0u32, 1000, 65534]),
        0i64..2_000_000_000,
        // No '\n': tar 0.4 cannot read PAX values holding one (see apply.rs).
        prop::option::of(prop::collection::vec(
            any::<u8>().prop_filter("newline", |b| *b != b'\n'),
            0..40,
        )),
    )
        .prop_map(|(path, kind, mode, owner, mtime, xattr)| Node {
            path,
            kind,
            mode,
            owner,
            mtime,
            xattr,
        })
}

fn times(sec: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Builds the tree; entries that collide with an earlier one are skipped.
fn build(root: &Path, nodes: &[Node]) {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut dirs: BTreeMap<PathBuf, (u32, i64)> = BTreeMap::new();
    for n in nodes {
        let rel: PathBuf = n.path.iter().collect();
        let path = root.join(&rel);
        let parent_ok = rel.ancestors().skip(1).all(|a| {
            let p = root.join(a);
            match p.symlink_metadata() {
                Ok(md) => md.is_dir(),
                Err(_) => std::fs::create_dir(&p).is_ok(),
            }
        });
        if !parent_ok || path.symlink_metadata().is_ok() {
            continue;
        }
        let owner = Some(rustix::fs::Uid::from_raw(n.owner));
        let group = Some(rustix::fs::Gid::from_raw(n.owner));
        match &n.kind {
            Kind::File(data) => {
                std::fs::write(&path, data).unwrap();
                files.push(path.clone());
            }
            Kind::Dir { opaque } => {
                std::fs::create_dir(&path).unwrap();
                if *opaque {
                    rustix::fs::setxattr(&path, "user.overlay.opaque", b"y", XattrFlags::empty())
                        .unwrap();
                }
                dirs.insert(rel.clone(), (n.mode, n.mtime));
            }
            Kind::Symlink(target) => std::os::unix::fs::symlink(target, &path).unwrap(),
            Kind::Whiteout => {
                rustix::fs::mknodat(CWD, &path, FileType::CharacterDevice, Mode::empty(), 0)
                    .unwrap()
            }
            Kind::HardLink(i) => match files.get(*i) {
                Some(target) => std::fs::hard_link(target, &path).unwrap(),
                None => continue,
            },
        }
        let is_symlink = matches!(n.kind, Kind::Symlink(_));
        // user.* xattrs exist on regular files and directories only.
        let xattr_ok = matches!(n.kind, Kind::File(_) | Kind::Dir { .. } | Kind::HardLink(_));
        if let (Some(value), true) = (&n.xattr, xattr_ok) {
            rustix::fs::lsetxattr(&path, "user.test", value, XattrFlags::empty()).unwrap();
        }
        rustix::fs::chownat(CWD, &path, owner, group, AtFlags::SYMLINK_NOFOLLOW).unwrap();
        if !is_symlink && !matches!(n.kind, Kind::Dir { .. }) {
            rustix::fs::chmod(&path, Mode::from_raw_mode(n.mode)).unwrap();
        }
        rustix::fs::utimensat(CWD, &path, &times(n.mtime), AtFlags::SYMLINK_NOFOLLOW).unwrap();
    }
    // Directory times last: building the content changed them.
    for (rel, (mode, mtime)) in dirs.iter().rev() {
        let path = root.join(rel);
        rustix::fs::chmod(&path, Mode::from_raw_mode(*mode)).unwrap();
        rustix::fs::utimensat(CWD, &path, &times(*mtime), AtFlags::empty()).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn write_then_apply_gives_the_same_layer(nodes in prop::collection::vec(node(), 0..24)) {
        prop_assume!(rustix::process::geteuid().is_root());
        let src = tempfile::tempdir().unwrap();
        build(src.path(), &nodes);
        let mut first = Vec::new();
        let (diff_id, size) = write_layer(src.path(), &mut first).unwrap();
        prop_assert_eq!(size, first.len() as u64);
        prop_assert_eq!(diff_id.digest(), &berth_digest::Digest::sha256(&first));

        let t = Target::new();
        let applied = t.apply(&first, OVERLAY).unwrap();
        prop_assert_eq!(&applied.diff_id, &diff_id);
        let mut second = Vec::new();
        write_layer(&t.root(), &mut second).unwrap();
        prop_assert!(first == second, "re-written layer differs");
        t.assert_contained();
    }
}

#[test]
fn write_layer_translates_whiteouts_and_opaque_dirs() {
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("opq")).unwrap();
    std::fs::write(src.path().join("opq/kept"), b"k").unwrap();
    rustix::fs::setxattr(
        src.path().join("opq"),
        "trusted.overlay.opaque",
        b"y",
        XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::mknodat(
        CWD,
        src.path().join("gone"),
        FileType::CharacterDevice,
        Mode::empty(),
        0,
    )
    .unwrap();
    let mut layer = Vec::new();
    write_layer(src.path(), &mut layer).unwrap();
    let names: Vec<String> = tar::Archive::new(&layer[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [".wh.gone", "opq/", "opq/.wh..wh..opq", "opq/kept"]);

    // A plain tree keeps the device and has no whiteout names.
    let mut tree = Vec::new();
    write_tree(src.path(), &mut tree).unwrap();
    let mut archive = tar::Archive::new(&tree[..]);
    let kinds: Vec<(String, tar::EntryType)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                e.header().entry_type(),
            )
        })
        .collect();
    assert_eq!(kinds[0], ("gone".to_string(), tar::EntryType::Char));
    assert_eq!(kinds.len(), 3);
}

#[test]
fn layer_applies_onto_its_parent_in_delete_mode() {
    // vfs: the child layer's whiteout removes what the parent layer wrote.
    let t = Target::new();
    let parent = common::Tar::new()
        .dir("etc/")
        .file("etc/a", b"1")
        .file("etc/b", b"2")
        .finish();
    let child = common::Tar::new().file("etc/.wh.a", b"").finish();
    t.apply(&parent, WhiteoutFormat::Delete).unwrap();
    t.apply(&child, WhiteoutFormat::Delete).unwrap();
    assert!(!t.root().join("etc/a").exists());
    assert!(t.root().join("etc/b").exists());
}
