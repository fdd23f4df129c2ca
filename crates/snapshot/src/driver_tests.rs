//! End-to-end driver tests: real mounts, as root and (when
//! `BERTH_TEST_UID`/`BERTH_TEST_GID` are set) as that user inside a user and
//! mount namespace, by re-running this test binary under `unshare -Urm`.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{detect, mount_all, open, sys, vfs, ChangeKind, SnapshotError};

const INNER: &str = "BERTH_SNAPSHOT_TEST_INNER";

fn is_real_root() -> bool {
    rustix::process::geteuid().is_root() && !sys::in_user_namespace()
}

/// Runs `f` as real root; prints "skipped" otherwise.
fn as_root(f: impl FnOnce()) {
    if !is_real_root() {
        println!("skipped: needs real root");
        return;
    }
    f()
}

/// Runs `f` as BERTH_TEST_UID in a new user+mount namespace (a re-run of
/// test `name` of this binary); prints "skipped" when the user is not set.
fn rootless(name: &str, f: impl FnOnce()) {
    if std::env::var(INNER).as_deref() == Ok(name) {
        assert!(sys::in_user_namespace());
        return f();
    }
    let (Ok(uid), Ok(gid)) = (
        std::env::var("BERTH_TEST_UID"),
        std::env::var("BERTH_TEST_GID"),
    ) else {
        println!("skipped: BERTH_TEST_UID/BERTH_TEST_GID not set");
        return;
    };
    if !is_real_root() {
        println!("skipped: switching to the test user needs root");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::os::unix::process::CommandExt::gid(
        std::os::unix::process::CommandExt::uid(
            Command::new("unshare").args(["-Urm", "--"]).arg(&exe),
            uid.parse().unwrap(),
        ),
        gid.parse().unwrap(),
    )
    .args([
        "--exact",
        &format!("driver_tests::{name}"),
        "--nocapture",
        "--test-threads=1",
    ])
    .env(INNER, name)
    .env("TMPDIR", "/tmp")
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "rootless run failed:\n{stdout}\n{stderr}"
    );
}

/// A tree as "path -> what", for comparing views: file contents, symlink
/// targets, "dir", "whiteout", "opaque dir".
fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(root.join(rel))
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let rel = rel.join(e.file_name());
            let p = root.join(&rel);
            let m = p.symlink_metadata().unwrap();
            let what = if sys::is_whiteout_dev(&m) {
                "whiteout".to_string()
            } else if m.is_dir() {
                if sys::is_opaque_dir(&p) {
                    "opaque dir"
                } else {
                    "dir"
                }
                .to_string()
            } else if m.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else if m.file_type().is_file() {
                std::fs::read_to_string(&p).unwrap()
            } else {
                format!("special {:o}", m.mode())
            };
            out.insert(rel.display().to_string(), what);
            if m.is_dir() {
                walk(root, &rel, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out);
    out
}

fn current_umask() -> u32 {
    let m = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    rustix::process::umask(m);
    m.as_raw_mode()
}

fn write(p: &Path, content: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// Three layers, highest first: L3 adds to /dir; L2 deletes /etc/gone with a
/// whiteout and makes /opq opaque; L1 is the base.
fn make_layers(root: &Path) -> Vec<PathBuf> {
    let (l1, l2, l3) = (root.join("l1"), root.join("l2"), root.join("l3"));
    write(&l1.join("etc/passwd"), "root");
    write(&l1.join("etc/gone"), "x");
    write(&l1.join("dir/old"), "o");
    write(&l1.join("opq/a"), "a");
    write(&l1.join("opq/sub/b"), "b");
    write(&l1.join("opq2/y"), "y");
    write(&l1.join("keep"), "k");
    std::os::unix::fs::symlink("keep", l1.join("link")).unwrap();
    write(&l2.join("etc/hostname"), "h");
    sys::make_whiteout(&l2.join("etc/gone")).unwrap();
    write(&l2.join("opq/c"), "c");
    sys::set_opaque(&l2.join("opq")).unwrap();
    write(&l3.join("dir/extra"), "e");
    vec![l3, l2, l1]
}

fn expected_view() -> BTreeMap<String, String> {
    [
        ("dir", "dir"),
        ("dir/extra", "e"),
        ("dir/old", "o"),
        ("etc", "dir"),
        ("etc/hostname", "h"),
        ("etc/passwd", "root"),
        ("keep", "k"),
        ("link", "-> keep"),
        ("opq", "dir"),
        ("opq/c", "c"),
        ("opq2", "dir"),
        ("opq2/y", "y"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

/// The whole life of a writable snapshot under driver `name`.
fn scenario(name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let lowers = make_layers(tmp.path());
    let before: Vec<_> = lowers.iter().map(|l| tree(l)).collect();
    let base = tmp.path().join("driver");
    let snap = open(name, &base).unwrap();
    assert_eq!(snap.name(), name);
    let mounts = snap.prepare("c1", &lowers).unwrap();
    assert_eq!(snap.mounts("c1").unwrap(), mounts);
    let target = tmp.path().join("merged");
    std::fs::create_dir(&target).unwrap();
    let umask = current_umask();
    let guard = mount_all(&mounts, &target).unwrap();
    assert!(crate::mount::is_mount_point(&target));
    // berth-unionfs zeroes the umask of its own threads only.
    assert_eq!(current_umask(), umask);
    assert_eq!(tree(&target), expected_view());

    // Change things through the mount.
    write(&target.join("etc/passwd"), "root2");
    write(&target.join("newfile"), "n");
    write(&target.join("newdir/f"), "f");
    std::fs::remove_file(target.join("keep")).unwrap();
    std::fs::remove_file(target.join("opq/c")).unwrap();
    std::fs::remove_dir_all(target.join("dir")).unwrap();
    std::fs::remove_dir_all(target.join("opq2")).unwrap();
    write(&target.join("opq2/z"), "z");
    let merged = tree(&target);

    // The upper holds exactly the changes: lowers + upper == what we saw.
    let upper = snap.upper_dir("c1").unwrap();
    let replay = tmp.path().join("replay");
    std::fs::create_dir(&replay).unwrap();
    for layer in lowers.iter().rev().chain([&upper]) {
        vfs::apply_layer(layer, &replay).unwrap();
    }
    assert_eq!(tree(&replay), merged);
    let up = tree(&upper);
    let mut names: Vec<&str> = up.keys().map(String::as_str).collect();
    names.retain(|n| *n != "opq2/y"); // vfs whites it out, overlay makes opq2 opaque
    assert_eq!(
        names,
        [
            "dir",
            "etc",
            "etc/passwd",
            "keep",
            "newdir",
            "newdir/f",
            "newfile",
            "opq",
            "opq/c",
            "opq2",
            "opq2/z"
        ]
    );
    assert_eq!(up["dir"], "whiteout");
    assert_eq!(up["keep"], "whiteout");
    assert_eq!(up["opq/c"], "whiteout");
    assert_eq!(up["etc/passwd"], "root2");

    let changes: Vec<String> = snap
        .changes("c1", &lowers)
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        changes,
        [
            "D /dir",
            "C /etc",
            "C /etc/passwd",
            "D /keep",
            "A /newdir",
            "A /newdir/f",
            "A /newfile",
            "C /opq",
            "D /opq/c",
            "C /opq2",
            "D /opq2/y",
            "A /opq2/z"
        ]
    );

    guard.unmount().unwrap();
    assert!(!crate::mount::is_mount_point(&target));
    snap.remove("c1").unwrap();
    assert_eq!(
        std::fs::read_dir(&base).unwrap().count(),
        0,
        "remove left files"
    );
    let after: Vec<_> = lowers.iter().map(|l| tree(l)).collect();
    assert_eq!(before, after, "the layers changed");
}

/// A view is read-only and has no upper.
fn view_scenario(name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let lowers = make_layers(tmp.path());
    let snap = open(name, &tmp.path().join("driver")).unwrap();
    let target = tmp.path().join("merged");
    std::fs::create_dir(&target).unwrap();
    for (key, lowers) in [
        ("v3", &lowers[..]),
        ("v1", &lowers[2..]),
        ("v0", &lowers[..0]),
    ] {
        let guard = mount_all(&snap.view(key, lowers).unwrap(), &target).unwrap();
        if key == "v3" {
            assert_eq!(tree(&target), expected_view());
        }
        let err = std::fs::write(target.join("x"), "x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{key}: {err}");
        assert!(matches!(
            snap.upper_dir(key),
            Err(SnapshotError::ReadOnly(_))
        ));
        drop(guard);
        snap.remove(key).unwrap();
    }
}

/// 200 layers with long paths: far past mount(2)'s one-page option string.
fn many_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let long = tmp
        .path()
        .join("overlay-driver-with-a-rather-long-directory-name");
    let lowers: Vec<PathBuf> = (0..200)
        .map(|i| {
            // Every tenth path is too long for fsconfig's 256-byte strings.
            let deep = if i % 10 == 0 {
                "d".repeat(200)
            } else {
                String::new()
            };
            let l = long.join(format!("{i:064x}")).join(deep).join("diff");
            write(&l.join(format!("f{i}")), &i.to_string());
            write(&l.join("shared"), &i.to_string());
            l
        })
        .collect();
    let snap = open("overlay", &tmp.path().join("driver")).unwrap();
    let mounts = snap.prepare("big", &lowers).unwrap();
    assert!(mounts[0].options.concat().len() > 4096 * 4);
    let target = tmp.path().join("merged");
    std::fs::create_dir(&target).unwrap();
    let guard = mount_all(&mounts, &target).unwrap();
    assert_eq!(std::fs::read_to_string(target.join("shared")).unwrap(), "0");
    assert_eq!(std::fs::read_to_string(target.join("f199")).unwrap(), "199");
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 201);
    drop(guard);
    snap.remove("big").unwrap();
}

#[test]
fn root_overlay() {
    as_root(|| scenario("overlay"));
}
#[test]
fn root_fuse() {
    as_root(|| scenario("fuse"));
}
#[test]
fn root_vfs() {
    as_root(|| scenario("vfs"));
}
#[test]
fn root_views() {
    as_root(|| {
        ["overlay", "fuse", "vfs"]
            .into_iter()
            .for_each(view_scenario)
    });
}
#[test]
fn root_overlay_200_layers() {
    as_root(many_layers);
}
#[test]
fn rootless_overlay() {
    rootless("rootless_overlay", || scenario("overlay"));
}
#[test]
fn rootless_vfs() {
    rootless("rootless_vfs", || scenario("vfs"));
}
#[test]
fn rootless_fuse() {
    rootless("rootless_fuse", || {
        if crate::probe_fuse(Path::new("/tmp")) {
            scenario("fuse")
        } else {
            println!("skipped: /dev/fuse is not usable by this user");
        }
    });
}
/// Rootless, the fuse driver shows the owners a rootless store recorded in
/// `user.containers.override_stat`; as root it does not look (the store
/// chowns, and the lookup would cost a getxattr per stat).
fn recorded_owners(expect_shown: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let layer = tmp.path().join("layer");
    std::fs::create_dir_all(layer.join("home/user")).unwrap();
    write(&layer.join("home/user/f"), "x");
    for (path, value) in [
        ("home/user", "1000:1000:0751:dir"),
        ("home/user/f", "1000:1000:4755:file"),
    ] {
        rustix::fs::setxattr(
            layer.join(path),
            "user.containers.override_stat",
            value.as_bytes(),
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
    }
    let snap = open("fuse", &tmp.path().join("driver")).unwrap();
    let mounts = snap.prepare("c1", &[layer]).unwrap();
    let target = tmp.path().join("merged");
    std::fs::create_dir(&target).unwrap();
    let guard = mount_all(&mounts, &target).unwrap();
    let md = std::fs::metadata(target.join("home/user/f")).unwrap();
    let dir = std::fs::metadata(target.join("home/user")).unwrap();
    let shown = (
        md.uid(),
        md.gid(),
        md.mode() & 0o7777,
        dir.uid(),
        dir.mode() & 0o7777,
    );
    guard.unmount().unwrap();
    if expect_shown {
        // `unshare -r` maps root only: 1000 shows as the overflow id.
        assert_eq!(shown, (65534, 65534, 0o4755, 65534, 0o751));
    } else {
        assert_eq!((shown.0, shown.1), (0, 0));
    }
}

#[test]
fn root_fuse_ignores_recorded_owners() {
    as_root(|| recorded_owners(false));
}

#[test]
fn rootless_fuse_shows_recorded_owners() {
    rootless("rootless_fuse_shows_recorded_owners", || {
        if crate::probe_fuse(Path::new("/tmp")) {
            recorded_owners(true)
        } else {
            println!("skipped: /dev/fuse is not usable by this user");
        }
    });
}

#[test]
fn rootless_views() {
    rootless("rootless_views", || {
        view_scenario("overlay");
        view_scenario("vfs");
    });
}
#[test]
fn rootless_overlay_200_layers() {
    rootless("rootless_overlay_200_layers", many_layers);
}

/// Auto-detection picks overlay; a forced driver that cannot work here (a
/// read-only base) is an error naming it; the probes leave nothing behind.
fn detection() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(detect(tmp.path(), None).unwrap().name(), "overlay");
    assert_eq!(detect(tmp.path(), Some("vfs")).unwrap().name(), "vfs");
    assert!(matches!(
        detect(tmp.path(), Some("zfs")),
        Err(SnapshotError::UnknownDriver(_))
    ));
    let ro = tmp.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let m = crate::Mount {
        fstype: "bind".into(),
        source: ro.display().to_string(),
        options: vec!["ro".into()],
    };
    let _g = mount_all(&[m], &ro).unwrap();
    for name in ["overlay", "fuse", "vfs"] {
        let err = detect(&ro, Some(name)).err().expect("a read-only base");
        let want = format!("storage driver \"{name}\" cannot be used here");
        assert!(err.to_string().contains(&want), "{err}");
    }
    assert!(detect(&ro, None).is_err());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "probe left files"
    );
}

#[test]
fn root_detection() {
    as_root(detection);
}

#[test]
fn rootless_detection() {
    rootless("rootless_detection", detection);
}

#[test]
fn rootless_forced_fuse_matches_dev_fuse_access() {
    rootless("rootless_forced_fuse_matches_dev_fuse_access", || {
        let tmp = tempfile::tempdir().unwrap();
        let usable = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .is_ok();
        match detect(tmp.path(), Some("fuse")) {
            Ok(d) => assert!(usable && d.name() == "fuse"),
            Err(e) => {
                assert!(!usable);
                assert!(e.to_string().contains("/dev/fuse"), "{e}");
            }
        }
        assert_eq!(detect(tmp.path(), None).unwrap().name(), "overlay");
    });
}

#[test]
fn root_legacy_mount_uses_relative_paths() {
    as_root(|| {
        let tmp = tempfile::tempdir().unwrap();
        let lowers: Vec<PathBuf> = (0..200)
            .map(|i| {
                let l = tmp.path().join(format!("{i}"));
                write(&l.join(format!("f{i}")), "x");
                l
            })
            .collect();
        let o = crate::overlayfs::OverlayOptions {
            lowers,
            ..Default::default()
        };
        let target = tmp.path().join("m");
        std::fs::create_dir(&target).unwrap();
        crate::overlayfs::mount_legacy("overlay", &o, &target).unwrap();
        let n = std::fs::read_dir(&target).unwrap().count();
        crate::mount::unmount(&target).unwrap();
        assert_eq!(n, 200);
    });
}

#[test]
fn root_vfs_keeps_metadata_links_and_nodes() {
    as_root(|| {
        let tmp = tempfile::tempdir().unwrap();
        let l = tmp.path().join("l");
        write(&l.join("bin/su"), "su");
        rustix::fs::chown(
            l.join("bin/su"),
            Some(rustix::fs::Uid::from_raw(1234)),
            Some(rustix::fs::Gid::from_raw(567)),
        )
        .unwrap();
        rustix::fs::chmod(l.join("bin/su"), rustix::fs::Mode::from_raw_mode(0o4755)).unwrap();
        rustix::fs::lsetxattr(
            l.join("bin/su"),
            "user.berth",
            b"v",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        std::fs::hard_link(l.join("bin/su"), l.join("bin/su2")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            l.join("null"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            l.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let snap = open("vfs", &tmp.path().join("driver")).unwrap();
        snap.prepare("k", std::slice::from_ref(&l)).unwrap();
        let fs = tmp.path().join("driver/k/fs");
        let (a, b) = (
            l.join("bin/su").metadata().unwrap(),
            fs.join("bin/su").metadata().unwrap(),
        );
        assert_eq!((b.uid(), b.gid(), b.mode()), (1234, 567, a.mode()));
        assert_eq!((b.mtime(), b.mtime_nsec()), (a.mtime(), a.mtime_nsec()));
        assert_eq!(fs.join("bin/su2").metadata().unwrap().ino(), b.ino());
        assert_eq!(
            sys::get_xattr(&fs.join("bin/su"), "user.berth")
                .unwrap()
                .as_deref(),
            Some(&b"v"[..])
        );
        let null = fs.join("null").symlink_metadata().unwrap();
        assert!(null.file_type().is_char_device() && null.rdev() == rustix::fs::makedev(1, 3));
        assert!(fs
            .join("fifo")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_fifo());
        let bin = (
            l.join("bin").metadata().unwrap(),
            fs.join("bin").metadata().unwrap(),
        );
        assert_eq!(bin.0.mtime_nsec(), bin.1.mtime_nsec());
        assert!(snap.changes("k", &[l]).unwrap().is_empty());
        snap.remove("k").unwrap();
    });
}

#[test]
fn root_snapshot_of_no_layers_is_its_upper() {
    as_root(|| {
        for name in ["overlay", "fuse", "vfs"] {
            let tmp = tempfile::tempdir().unwrap();
            let snap = open(name, &tmp.path().join("d")).unwrap();
            let target = tmp.path().join("m");
            std::fs::create_dir(&target).unwrap();
            let g = mount_all(&snap.prepare("s", &[]).unwrap(), &target).unwrap();
            write(&target.join("a/b"), "b");
            drop(g);
            let c = snap.changes("s", &[]).unwrap();
            assert_eq!(c.len(), 2, "{name}");
            assert!(c.iter().all(|c| c.kind == ChangeKind::Added));
            assert_eq!(tree(&snap.upper_dir("s").unwrap()).len(), 2);
            snap.remove("s").unwrap();
        }
    });
}

#[test]
fn keys_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let snap = open("vfs", tmp.path()).unwrap();
    for bad in ["", "../x", "a/b", ".probe"] {
        assert!(
            matches!(snap.prepare(bad, &[]), Err(SnapshotError::InvalidKey(_))),
            "{bad:?}"
        );
    }
    snap.prepare("k", &[]).unwrap();
    assert!(matches!(
        snap.prepare("k", &[]),
        Err(SnapshotError::Exists(_))
    ));
    assert!(matches!(
        snap.mounts("nope"),
        Err(SnapshotError::NotFound(_))
    ));
    snap.remove("nope").unwrap();
    snap.remove("k").unwrap();
    assert!(matches!(
        open("btrfs", tmp.path()),
        Err(SnapshotError::UnknownDriver(_))
    ));
}

#[test]
fn failed_mount_all_undoes_earlier_mounts() {
    as_root(|| {
        let tmp = tempfile::tempdir().unwrap();
        let ms = [
            crate::Mount {
                fstype: "bind".into(),
                source: tmp.path().display().to_string(),
                options: vec![],
            },
            crate::Mount {
                fstype: "overlay".into(),
                source: "x".into(),
                options: vec!["lowerdir=/nonexistent-a:/nonexistent-b".into()],
            },
        ];
        let target = tmp.path().join("m");
        std::fs::create_dir(&target).unwrap();
        let err = mount_all(&ms, &target).unwrap_err();
        assert!(err.to_string().contains("nonexistent-a"), "{err}");
        assert!(!crate::mount::is_mount_point(&target));
    });
}
