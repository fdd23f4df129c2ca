//! Owners that cannot be written to disk (rootless unpack) are recorded in
//! `user.containers.override_stat`, and writing a layer reads them back.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use berth_archive::{
    apply_layer, write_layer, ApplyOptions, OverrideKind, OverrideStat, WhiteoutFormat,
    OVERRIDE_XATTR,
};
use common::OVERLAY;

fn xattr(path: &Path, name: &str) -> Option<String> {
    let mut buf = vec![0; 256];
    let n = rustix::fs::lgetxattr(path, name, &mut buf).ok()?;
    buf.truncate(n);
    Some(String::from_utf8(buf).unwrap())
}

/// A tar with owners and set-id bits, built with the tar crate.
fn owned_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, uid: u64, gid: u64, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        if kind == tar::EntryType::Symlink {
            h.set_link_name("f").unwrap();
        }
        b.append_data(&mut h, path, data).unwrap();
    };
    add("www/", tar::EntryType::Directory, 33, 33, 0o2750, b"");
    add(
        "www/f",
        tar::EntryType::Regular,
        1000,
        1000,
        0o4755,
        b"#!x\n",
    );
    add("www/l", tar::EntryType::Symlink, 1000, 1000, 0o777, b"");
    add("etc/", tar::EntryType::Directory, 0, 0, 0o755, b"");
    add("etc/shadow", tar::EntryType::Regular, 0, 42, 0o640, b"s");
    add("etc/passwd", tar::EntryType::Regular, 0, 0, 0o4711, b"p");
    b.into_inner().unwrap()
}

fn recording(whiteouts: WhiteoutFormat) -> ApplyOptions<'static> {
    ApplyOptions {
        whiteouts,
        chown: false,
        record_owners: true,
        progress: None,
    }
}

#[test]
fn owners_not_written_are_recorded_and_set_id_bits_kept_off_disk() {
    let dir = tempfile::tempdir().unwrap();
    apply_layer(&owned_tar()[..], dir.path(), &recording(OVERLAY)).unwrap();
    let at = |p: &str| dir.path().join(p);
    assert_eq!(xattr(&at("www"), OVERRIDE_XATTR).unwrap(), "33:33:2750:dir");
    assert_eq!(
        xattr(&at("www/f"), OVERRIDE_XATTR).unwrap(),
        "1000:1000:4755:file"
    );
    assert_eq!(
        xattr(&at("etc/shadow"), OVERRIDE_XATTR).unwrap(),
        "0:42:0640:file"
    );
    // Root-owned entries need nothing: the user is root inside.
    assert_eq!(xattr(&at("etc"), OVERRIDE_XATTR), None);
    assert_eq!(xattr(&at("etc/passwd"), OVERRIDE_XATTR), None);
    assert_eq!(at("etc/passwd").metadata().unwrap().mode() & 0o7777, 0o4711);
    // Another user's set-id file must not become root's where the xattr is
    // not read.
    assert_eq!(at("www/f").metadata().unwrap().mode() & 0o7777, 0o755);
    assert_eq!(at("www").metadata().unwrap().mode() & 0o7777, 0o750);
    // A symlink cannot carry a user xattr: unpacked all the same.
    assert!(at("www/l")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn nothing_is_recorded_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ApplyOptions {
        record_owners: false,
        ..recording(OVERLAY)
    };
    apply_layer(&owned_tar()[..], dir.path(), &opts).unwrap();
    assert_eq!(xattr(&dir.path().join("www/f"), OVERRIDE_XATTR), None);
    assert_eq!(
        dir.path().join("www/f").metadata().unwrap().mode() & 0o7777,
        0o4755
    );
}

#[test]
fn a_tarball_cannot_forge_an_override() {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(0);
    b.append_pax_extensions([(
        "SCHILY.xattr.user.containers.override_stat",
        &b"0:0:4755"[..],
    )])
    .unwrap();
    b.append_data(&mut h, "f", &[][..]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    apply_layer(
        &b.into_inner().unwrap()[..],
        dir.path(),
        &recording(OVERLAY),
    )
    .unwrap();
    assert_eq!(xattr(&dir.path().join("f"), OVERRIDE_XATTR), None);
}

#[test]
fn writing_a_layer_reads_the_owners_back_and_never_archives_the_xattr() {
    let dir = tempfile::tempdir().unwrap();
    apply_layer(&owned_tar()[..], dir.path(), &recording(OVERLAY)).unwrap();
    // A device node kept as an empty file, as an unprivileged unpack does.
    let dev = dir.path().join("null");
    std::fs::write(&dev, b"").unwrap();
    std::fs::set_permissions(&dev, std::fs::Permissions::from_mode(0o666)).unwrap();
    let value = OverrideStat {
        uid: 0,
        gid: 0,
        mode: 0o666,
        kind: Some(OverrideKind::Char { major: 1, minor: 3 }),
    }
    .format();
    rustix::fs::setxattr(
        &dev,
        OVERRIDE_XATTR,
        value.as_bytes(),
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();

    let mut out = Vec::new();
    write_layer(dir.path(), &mut out).unwrap();
    let mut seen = Vec::new();
    let mut archive = tar::Archive::new(&out[..]);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for ext in exts {
                assert!(
                    !ext.unwrap().key().unwrap().contains("override_stat"),
                    "the override xattr was archived"
                );
            }
        }
        let h = e.header();
        let path = e.path().unwrap().display().to_string();
        let kind = h.entry_type();
        let dev = kind.is_character_special().then(|| {
            (
                h.device_major().unwrap().unwrap(),
                h.device_minor().unwrap().unwrap(),
            )
        });
        seen.push((
            path,
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mode().unwrap() & 0o7777,
            dev,
        ));
    }
    seen.retain(|(p, ..)| p != "www/l");
    seen.sort();
    let want = |p: &str, u, g, m, d| (p.to_string(), u, g, m, d);
    assert_eq!(
        seen,
        [
            want("etc/", 0, 0, 0o755, None),
            want("etc/passwd", 0, 0, 0o4711, None),
            want("etc/shadow", 0, 42, 0o640, None),
            want("null", 0, 0, 0o666, Some((1, 3))),
            want("www/", 33, 33, 0o2750, None),
            want("www/f", 1000, 1000, 0o4755, None),
        ]
    );
}

/// A kernel overlay or vfs container changes a copy's disk owner or mode
/// and not its xattr: the disk wins then.
#[test]
fn a_stale_override_loses_to_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    apply_layer(&owned_tar()[..], dir.path(), &recording(OVERLAY)).unwrap();
    std::fs::set_permissions(
        dir.path().join("www/f"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    std::os::unix::fs::chown(dir.path().join("etc/shadow"), Some(5), None).unwrap();
    let mut out = Vec::new();
    write_layer(dir.path(), &mut out).unwrap();
    let mut archive = tar::Archive::new(&out[..]);
    let mut seen = Vec::new();
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        seen.push((
            e.path().unwrap().display().to_string(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mode().unwrap() & 0o7777,
        ));
    }
    assert!(seen.contains(&("www/f".into(), 0, 0, 0o700)), "{seen:?}");
    assert!(
        seen.contains(&("etc/shadow".into(), 5, 0, 0o640)),
        "{seen:?}"
    );
    // Untouched: still the recorded owner.
    assert!(seen.contains(&("www/".into(), 33, 33, 0o2750)), "{seen:?}");
}

/// As an unprivileged user mknod of a real device gives EPERM: with owners
/// recorded, the node is kept as an empty file described by the xattr.
#[test]
fn device_nodes_become_described_files_when_not_permitted() {
    let Some(uid) = std::env::var("BERTH_TEST_UID")
        .ok()
        .and_then(|u| u.parse::<u32>().ok())
    else {
        eprintln!("skipped: set BERTH_TEST_UID to an unprivileged uid to run this as non-root");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    rustix::fs::chown(&root, Some(rustix::fs::Uid::from_raw(uid)), None).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Char);
    h.set_mode(0o620);
    h.set_gid(5);
    h.set_device_major(4).unwrap();
    h.set_device_minor(1).unwrap();
    h.set_size(0);
    b.append_data(&mut h, "tty1", &[][..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(7);
    h.set_size(2);
    b.append_data(&mut h, "after", &b"ok"[..]).unwrap();
    let bytes = b.into_inner().unwrap();
    // SAFETY: fork in a threaded test binary: the child only applies a layer
    // (glibc's malloc is fork-safe) and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = unsafe {
            if libc::setgid(uid) != 0 || libc::setuid(uid) != 0 {
                3
            } else {
                match apply_layer(&bytes[..], &root, &recording(OVERLAY)) {
                    Ok(_) => 0,
                    Err(_) => 1,
                }
            }
        };
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert_eq!(libc::WEXITSTATUS(status), 0, "apply failed in the child");
    let md = root.join("tty1").symlink_metadata().unwrap();
    assert!(md.file_type().is_file() && md.len() == 0);
    assert_eq!(
        xattr(&root.join("tty1"), OVERRIDE_XATTR).unwrap(),
        "0:5:0620:char-4-1"
    );
    assert_eq!(
        xattr(&root.join("after"), OVERRIDE_XATTR).unwrap(),
        "7:0:0644:file"
    );
}
