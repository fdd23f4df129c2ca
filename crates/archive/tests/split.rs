//! The tar-split: a layer applied with `apply_layer_split` is rebuilt byte
//! for byte from the record and the unpacked files, and a changed file is
//! an error, never a wrong stream.

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;

use berth_archive::{
    apply_layer_split, reassemble, AppliedLayer, ApplyOptions, SplitOptions, WhiteoutFormat,
};
use berth_digest::Digest;
use common::{Tar, Target, OVERLAY};

struct Split {
    target: Target,
    applied: AppliedLayer,
}

impl Split {
    fn apply(bytes: &[u8], whiteouts: WhiteoutFormat) -> Split {
        let target = Target::new();
        let opts = ApplyOptions {
            whiteouts,
            chown: true,
            record_owners: false,
            progress: None,
        };
        let (file, stash) = (target.split_file(), target.stash());
        let split = SplitOptions {
            file: &file,
            stash: &stash,
        };
        let applied = apply_layer_split(bytes, &target.root(), &opts, &split).unwrap();
        Split { target, applied }
    }

    fn rebuild(&self) -> std::io::Result<Vec<u8>> {
        let file = std::fs::File::open(self.target.split_file())?;
        let mut r = reassemble(
            file,
            &self.target.root(),
            &self.target.stash(),
            &self.applied.diff_id,
        )?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }
}

trait SplitPaths {
    fn split_file(&self) -> PathBuf;
    fn stash(&self) -> PathBuf;
}

impl SplitPaths for Target {
    fn split_file(&self) -> PathBuf {
        self.tmp.path().join("tar-split")
    }
    fn stash(&self) -> PathBuf {
        self.tmp.path().join("stash")
    }
}

fn assert_round_trip(bytes: &[u8], whiteouts: WhiteoutFormat) -> Split {
    let s = Split::apply(bytes, whiteouts);
    assert_eq!(s.applied.diff_id.digest(), &Digest::sha256(bytes));
    let rebuilt = s.rebuild().unwrap();
    assert_eq!(rebuilt.len(), bytes.len());
    assert!(rebuilt == bytes, "rebuilt stream differs");
    s
}

/// Bytes that are not all alike, so a misplaced body shows.
fn noise(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

/// A tar as GNU tar or Go writes it: long names, PAX records, links.
fn realistic_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    dir.set_mtime(1_700_000_000);
    b.append_data(&mut dir, "usr/", &[][..]).unwrap();
    let file = |b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, path, data).unwrap();
    };
    file(&mut b, "usr/empty", b"");
    file(&mut b, "usr/one-block", &noise(512, 1));
    file(&mut b, "usr/odd", &noise(1000, 2));
    file(&mut b, "usr/big", &noise(3 << 20, 3));
    // A name longer than 100 bytes: a GNU long-name entry first.
    let long = format!("usr/{}/file", "d".repeat(150));
    file(&mut b, &long, &noise(700, 4));
    // PAX records (an xattr and a long path) before a file.
    b.append_pax_extensions([
        ("SCHILY.xattr.user.note", &b"hello"[..]),
        ("mtime", &b"1700000000.25"[..]),
    ])
    .unwrap();
    file(&mut b, "usr/with-pax", &noise(2048, 5));
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Link);
    link.set_size(0);
    link.set_mode(0o644);
    b.append_link(&mut link, "usr/hard", "usr/odd").unwrap();
    let mut sym = tar::Header::new_gnu();
    sym.set_entry_type(tar::EntryType::Symlink);
    sym.set_size(0);
    sym.set_mode(0o777);
    b.append_link(&mut sym, "usr/sym", "odd").unwrap();
    b.into_inner().unwrap()
}

#[test]
fn rebuilds_long_names_pax_records_and_links() {
    let bytes = realistic_tar();
    let s = assert_round_trip(&bytes, OVERLAY);
    // The record holds headers, not bodies.
    let record = std::fs::metadata(s.target.split_file()).unwrap().len();
    assert!(record < 16 << 10, "split record is {record} bytes");
}

#[test]
fn rebuilds_trailing_garbage_after_the_end_blocks() {
    let mut bytes = realistic_tar();
    bytes.extend_from_slice(&[0u8; 8192]);
    bytes.extend_from_slice(b"trailing garbage, not a multiple of 512");
    assert_round_trip(&bytes, OVERLAY);
}

#[test]
fn rebuilds_the_decompressed_stream_of_a_compressed_layer() {
    let plain = realistic_tar();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let s = Split::apply(&gz, OVERLAY);
    assert!(s.rebuild().unwrap() == plain);
}

/// An old-style GNU sparse file: 'S' entry, map in the header, data chunks
/// as the body. The body is not the file's bytes, so it stays in the record.
#[test]
fn rebuilds_gnu_sparse_files() {
    let chunk = noise(512, 9);
    let mut h = tar::Header::new_gnu();
    h.set_path("sparse").unwrap();
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_mode(0o644);
    h.set_size(1024);
    {
        let gnu = h.as_gnu_mut().unwrap();
        let octal = |field: &mut [u8; 12], v: u64| {
            let text = format!("{v:011o}\0");
            field.copy_from_slice(text.as_bytes());
        };
        octal(&mut gnu.sparse[0].offset, 0);
        octal(&mut gnu.sparse[0].numbytes, 512);
        octal(&mut gnu.sparse[1].offset, 8192);
        octal(&mut gnu.sparse[1].numbytes, 512);
        octal(&mut gnu.realsize, 8704);
    }
    h.set_cksum();
    let mut bytes = std::mem::take(&mut Tar::new().file("before", b"x").bytes);
    bytes.extend_from_slice(h.as_bytes());
    bytes.extend_from_slice(&chunk);
    bytes.extend_from_slice(&chunk);
    bytes.extend(Tar::new().file("after", b"y").finish());
    let s = assert_round_trip(&bytes, OVERLAY);
    assert_eq!(
        std::fs::metadata(s.target.root().join("sparse"))
            .unwrap()
            .len(),
        8704
    );
}

#[test]
fn rebuilds_files_the_layer_replaces_or_removes_again() {
    let mut t = Tar::new();
    t.dir("a/")
        .file("a/twice", &noise(1500, 1))
        .file("a/twice", &noise(600, 2))
        .file("a/gone", &noise(800, 3))
        .file("a/.wh.gone", b"")
        .dir("d/")
        .dir("d/sub/")
        .file("d/sub/deep", &noise(900, 4))
        .file("d", &noise(100, 5))
        .file("x", &noise(300, 6))
        .hardlink("x-link", "x")
        .file("x", &noise(400, 7));
    let bytes = t.finish();
    let s = assert_round_trip(&bytes, OVERLAY);
    assert_eq!(
        std::fs::read(s.target.root().join("a/twice")).unwrap(),
        noise(600, 2)
    );

    // vfs style: an opaque marker clears what it does not keep.
    let mut t = Tar::new();
    t.dir("o/")
        .dir("o/implied/")
        .file("o/implied/f", &noise(700, 8))
        .file("o/kept", &noise(700, 9));
    let mut bytes = t.bytes.clone();
    let mut h = tar::Header::new_gnu();
    h.set_path("o/.wh..wh..opq").unwrap();
    h.set_size(0);
    h.set_mode(0o644);
    h.set_cksum();
    bytes.extend_from_slice(h.as_bytes());
    bytes.extend_from_slice(&[0u8; 1024]);
    assert_round_trip(&bytes, WhiteoutFormat::Delete);
}

#[test]
fn a_changed_file_is_an_error_not_a_wrong_stream() {
    let bytes = realistic_tar();

    // Same length, other content: only the diffID can tell.
    let s = Split::apply(&bytes, OVERLAY);
    let odd = s.target.root().join("usr/odd");
    let mut data = std::fs::read(&odd).unwrap();
    data[10] ^= 1;
    std::fs::write(&odd, &data).unwrap();
    let err = s.rebuild().unwrap_err().to_string();
    assert!(err.contains("does not match its diffID"), "{err}");
    assert!(err.contains(&s.applied.diff_id.to_string()), "{err}");

    // Longer, shorter, gone: named.
    for (change, word) in [
        (b"longer than before, much longer".repeat(100), "longer"),
        (b"short".to_vec(), "shorter"),
    ] {
        let s = Split::apply(&bytes, OVERLAY);
        std::fs::write(s.target.root().join("usr/with-pax"), change).unwrap();
        let err = s.rebuild().unwrap_err().to_string();
        assert!(err.contains("usr/with-pax") && err.contains(word), "{err}");
    }
    let s = Split::apply(&bytes, OVERLAY);
    std::fs::remove_file(s.target.root().join("usr/big")).unwrap();
    let err = s.rebuild().unwrap_err().to_string();
    assert!(err.contains("usr/big"), "{err}");
}

#[test]
fn a_file_replaced_by_a_symlink_is_not_followed() {
    let bytes = realistic_tar();
    let s = Split::apply(&bytes, OVERLAY);
    let odd = s.target.root().join("usr/odd");
    std::fs::remove_file(&odd).unwrap();
    std::os::unix::fs::symlink("big", &odd).unwrap();
    assert!(s.rebuild().is_err());
}
