//! What applying a good layer must get right: whiteouts, metadata, PAX/GNU
//! extensions, and the diffID.

mod common;

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use berth_archive::{Compression, WhiteoutFormat};
use berth_digest::Digest;
use common::{exists, Tar, Target, OVERLAY};

fn xattr(path: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0; 256];
    let n = rustix::fs::lgetxattr(path, name, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[test]
fn diff_id_is_sha256_of_the_decompressed_stream_for_every_compression() {
    let mut tar = Tar::new();
    tar.dir("etc/").file("etc/hostname", b"berth\n");
    let mut plain = tar.finish();
    // Padding and junk after the end-of-archive blocks belong to the diffID too.
    plain.extend_from_slice(&[0u8; 8192]);
    plain.extend_from_slice(b"trailing garbage");
    let expect = Digest::sha256(&plain);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    for (bytes, compression) in [
        (plain.clone(), Compression::None),
        (gz, Compression::Gzip),
        (zst, Compression::Zstd),
    ] {
        let t = Target::new();
        let applied = t.apply(&bytes, OVERLAY).unwrap();
        assert_eq!(applied.compression, compression);
        assert_eq!(applied.diff_id.digest(), &expect);
        assert_eq!(applied.size, plain.len() as u64);
        assert_eq!(
            std::fs::read(t.root().join("etc/hostname")).unwrap(),
            b"berth\n"
        );
    }
}

#[test]
fn progress_reports_consumed_input() {
    let bytes = Tar::new().file("f", &[1u8; 10_000]).finish();
    let seen = std::sync::Mutex::new(0u64);
    let report = |n: u64| *seen.lock().unwrap() = n;
    let t = Target::new();
    let opts = berth_archive::ApplyOptions {
        whiteouts: OVERLAY,
        chown: false,
        record_owners: false,
        progress: Some(&report),
    };
    berth_archive::apply_layer(&bytes[..], &t.root(), &opts).unwrap();
    assert_eq!(*seen.lock().unwrap(), bytes.len() as u64);
}

#[test]
fn pax_size_record_applies_to_the_next_entry() {
    // The ustar header says 0 bytes; the PAX record says 5. A reader that
    // ignored PAX would take "hello" plus padding as the next header.
    let mut tar = Tar::new();
    tar.pax(&[("size", b"5")]);
    let mut bytes = tar.bytes.clone();
    let mut h = tar::Header::new_gnu();
    h.set_path("f").unwrap();
    h.set_size(0);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    bytes.extend_from_slice(h.as_bytes());
    bytes.extend_from_slice(b"hello");
    bytes.extend_from_slice(&[0u8; 507]);
    let mut rest = Tar::new();
    rest.file("g", b"world");
    bytes.extend_from_slice(&rest.finish());

    let t = Target::new();
    t.apply(&bytes, OVERLAY).unwrap();
    assert_eq!(std::fs::read(t.root().join("f")).unwrap(), b"hello");
    assert_eq!(std::fs::read(t.root().join("g")).unwrap(), b"world");
}

#[test]
fn pax_xattrs_and_mtime_are_applied_but_not_overlay_ones() {
    let bytes = Tar::new()
        .pax(&[
            ("SCHILY.xattr.user.color", b"blue"),
            ("SCHILY.xattr.user.overlay.opaque", b"y"),
            ("mtime", b"1234567890.25"),
        ])
        .dir("d/")
        .pax(&[("SCHILY.xattr.user.k", b"v")])
        .file("d/f", b"x")
        .finish();
    let t = Target::new();
    t.apply(&bytes, OVERLAY).unwrap();
    let d = t.root().join("d");
    assert_eq!(xattr(&d, "user.color").as_deref(), Some(&b"blue"[..]));
    assert_eq!(xattr(&d, "user.overlay.opaque"), None);
    assert_eq!(xattr(&d.join("f"), "user.k").as_deref(), Some(&b"v"[..]));
    let md = d.metadata().unwrap();
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_234_567_890, 250_000_000));
}

#[test]
fn modes_owners_and_times_are_kept_dirs_after_their_content() {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(1234);
        h.set_gid(5678);
        h.set_mtime(1_000_000_000);
        h.set_size(data.len() as u64);
        match link {
            Some(l) => b.append_link(&mut h, path, l).unwrap(),
            None => b.append_data(&mut h, path, data).unwrap(),
        }
    };
    add("ro/", tar::EntryType::Directory, 0o555, b"", None);
    add("ro/f", tar::EntryType::Regular, 0o4755, b"data", None);
    add("ro/l", tar::EntryType::Symlink, 0o777, b"", Some("f"));
    let bytes = b.into_inner().unwrap();
    let t = Target::new();
    t.apply(&bytes, OVERLAY).unwrap();
    let ro = t.root().join("ro");
    for (path, mode) in [(&ro, 0o555), (&ro.join("f"), 0o4755)] {
        let md = path.symlink_metadata().unwrap();
        assert_eq!(md.permissions().mode() & 0o7777, mode, "{}", path.display());
        assert_eq!(
            (md.uid(), md.gid(), md.mtime()),
            (1234, 5678, 1_000_000_000)
        );
    }
    let l = ro.join("l").symlink_metadata().unwrap();
    assert!(l.file_type().is_symlink());
    assert_eq!((l.uid(), l.gid(), l.mtime()), (1234, 5678, 1_000_000_000));
}

#[test]
fn gnu_long_names_and_long_link_targets() {
    let long_dir = "d".repeat(120);
    let long_file = format!("{long_dir}/{}", "f".repeat(150));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(3);
    b.append_data(&mut h, &long_file, &b"abc"[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "sym", &long_file).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    b.append_link(&mut h, "hard", &long_file).unwrap();
    let bytes = b.into_inner().unwrap();
    let t = Target::new();
    t.apply(&bytes, OVERLAY).unwrap();
    assert_eq!(std::fs::read(t.root().join(&long_file)).unwrap(), b"abc");
    assert_eq!(
        std::fs::read_link(t.root().join("sym")).unwrap().to_str(),
        Some(&long_file[..])
    );
    let hard = t.root().join("hard").metadata().unwrap();
    assert_eq!(
        hard.ino(),
        t.root().join(&long_file).metadata().unwrap().ino()
    );
}

#[test]
fn overlay_whiteouts_become_char_devices_replacing_this_layers_entry() {
    let bytes = Tar::new()
        .dir("d/")
        .file("d/gone", b"written first")
        .file("d/.wh.gone", b"")
        .file(".wh.elsewhere", b"")
        .file(".wh..wh.plnk", b"")
        .finish();
    let t = Target::new();
    t.apply(&bytes, OVERLAY).unwrap();
    for path in ["d/gone", "elsewhere"] {
        let md = t.root().join(path).symlink_metadata().unwrap();
        assert!(md.file_type().is_char_device(), "{path}");
        assert_eq!(md.rdev(), 0, "{path}");
    }
    for path in ["d/.wh.gone", ".wh.elsewhere", ".wh..wh.plnk"] {
        assert!(!exists(&t.root().join(path)), "{path}");
    }
}

#[test]
fn opaque_marker_after_its_entries_only_hides_lower_layers() {
    let layer = Tar::new()
        .dir("d/")
        .file("d/mine", b"this layer")
        .file("d/.wh..wh..opq", b"")
        .finish();
    // Overlay: the marker becomes an xattr; this layer's files stay.
    let t = Target::new();
    t.apply(&layer, OVERLAY).unwrap();
    let d = t.root().join("d");
    assert_eq!(xattr(&d, "user.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert!(exists(&d.join("mine")));
    assert!(!exists(&d.join(".wh..wh..opq")));
    // Delete (vfs): lower content goes, this layer's stays.
    let t = Target::new();
    std::fs::create_dir_all(t.root().join("d/lowerdir/sub")).unwrap();
    std::fs::write(t.root().join("d/lower"), b"lower").unwrap();
    t.apply(&layer, WhiteoutFormat::Delete).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(t.root().join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["mine"]);
    assert_eq!(xattr(&t.root().join("d"), "user.overlay.opaque"), None);
}

#[test]
fn delete_mode_whiteouts_remove_lower_content() {
    let t = Target::new();
    std::fs::create_dir_all(t.root().join("etc/ssl/certs")).unwrap();
    std::fs::write(t.root().join("etc/passwd"), b"root").unwrap();
    let bytes = Tar::new()
        .file("etc/.wh.ssl", b"")
        .file("etc/.wh.passwd", b"")
        .file("etc/.wh.never-existed", b"")
        .finish();
    t.apply(&bytes, WhiteoutFormat::Delete).unwrap();
    assert_eq!(std::fs::read_dir(t.root().join("etc")).unwrap().count(), 0);
}

#[test]
fn later_entries_replace_earlier_ones_of_another_type() {
    let bytes = Tar::new()
        .dir("x/")
        .file("x/inner", b"1")
        .file("x", b"now a file")
        .symlink("y", "x")
        .dir("y/")
        .finish();
    let t = Target::new();
    t.apply(&bytes, OVERLAY).unwrap();
    assert_eq!(std::fs::read(t.root().join("x")).unwrap(), b"now a file");
    assert!(t.root().join("y").symlink_metadata().unwrap().is_dir());
}

#[test]
fn device_nodes_are_made_as_root() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let t = Target::new();
    t.apply(&Tar::new().char_dev("null", 1, 3).finish(), OVERLAY)
        .unwrap();
    let md = t.root().join("null").symlink_metadata().unwrap();
    assert!(md.file_type().is_char_device());
    assert_eq!(md.rdev(), rustix::fs::makedev(1, 3));
}

/// As an unprivileged user mknod of a real device gives EPERM: the node is
/// skipped with a warning and the rest of the layer applies.
#[test]
fn device_nodes_are_skipped_when_not_permitted() {
    let Some(uid) = std::env::var("BERTH_TEST_UID")
        .ok()
        .and_then(|u| u.parse::<u32>().ok())
    else {
        eprintln!("skipped: set BERTH_TEST_UID to an unprivileged uid to run this as non-root");
        return;
    };
    let t = Target::new();
    rustix::fs::chown(t.root(), Some(rustix::fs::Uid::from_raw(uid)), None).unwrap();
    std::fs::set_permissions(t.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bytes = Tar::new()
        .char_dev("sda", 8, 0)
        .file("after", b"ok")
        .finish();
    // SAFETY: fork in a threaded test binary: the child only applies a layer
    // (glibc's malloc is fork-safe) and leaves with _exit, never returning
    // into the harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = unsafe {
            if libc::setgid(uid) != 0 || libc::setuid(uid) != 0 {
                3
            } else {
                let opts = berth_archive::ApplyOptions {
                    whiteouts: WhiteoutFormat::Delete,
                    chown: false,
                    record_owners: false,
                    progress: None,
                };
                match berth_archive::apply_layer(&bytes[..], &t.root(), &opts) {
                    Ok(_) => 0,
                    Err(_) => 1,
                }
            }
        };
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(libc::WEXITSTATUS(status), 0, "apply as uid {uid} failed");
    assert!(!exists(&t.root().join("sda")));
    assert_eq!(std::fs::read(t.root().join("after")).unwrap(), b"ok");
}
