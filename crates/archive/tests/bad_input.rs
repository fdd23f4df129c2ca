//! Every hostile or broken layer from issue 2's "Bad input" list: each is a
//! clear error and nothing is written outside the target.

mod common;

use std::io::Write;

use berth_archive::{ArchiveError, WhiteoutFormat};
use common::{exists, Tar, Target, OVERLAY};

fn big_layer() -> Vec<u8> {
    Tar::new()
        .dir("d/")
        .file("d/big", &vec![b'x'; 100_000])
        .file("d/after", b"after")
        .finish()
}

#[test]
fn tarball_cut_inside_a_file_is_truncated() {
    let mut bytes = big_layer();
    bytes.truncate(50_000);
    let t = Target::new();
    let err = t.apply(&bytes, OVERLAY).unwrap_err();
    assert!(matches!(err, ArchiveError::Truncated { .. }), "{err}");
}

#[test]
fn tarball_cut_on_a_block_boundary_is_truncated() {
    // Exactly the entries, no end-of-archive blocks: tar readers stop quietly here.
    let mut bytes = big_layer();
    bytes.truncate(bytes.len() - 1024);
    let t = Target::new();
    let err = t.apply(&bytes, OVERLAY).unwrap_err();
    assert!(matches!(err, ArchiveError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("d/after"), "{err}");
    let err = t.apply(b"", OVERLAY).unwrap_err();
    assert!(
        matches!(err, ArchiveError::Truncated { after: None }),
        "{err}"
    );
}

#[test]
fn gzip_bomb_cut_short_is_an_error() {
    let mut tar = Tar::new();
    tar.file("zeros", &vec![0u8; 8 << 20]);
    let bytes = tar.finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&bytes).unwrap();
    let mut gz = gz.finish().unwrap();
    assert!(gz.len() < 100_000, "compresses like a bomb");
    gz.truncate(gz.len() / 2);
    let t = Target::new();
    let err = t.apply(&gz, OVERLAY).unwrap_err();
    assert!(
        matches!(err, ArchiveError::Truncated { .. } | ArchiveError::Read(_)),
        "{err}"
    );
}

fn assert_unsafe(bytes: &[u8], format: WhiteoutFormat) {
    let t = Target::new();
    let err = t.apply(bytes, format).unwrap_err();
    assert!(matches!(err, ArchiveError::Unsafe { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("refusing to write outside the layer"),
        "{err}"
    );
    t.assert_contained();
}

#[test]
fn dotdot_entries_are_refused() {
    assert_unsafe(&Tar::new().file("../outside/evil", b"x").finish(), OVERLAY);
    assert_unsafe(
        &Tar::new().file("a/../../outside/evil", b"x").finish(),
        OVERLAY,
    );
    assert_unsafe(
        &Tar::new().dir("../outside/d/").finish(),
        WhiteoutFormat::Delete,
    );
}

#[test]
fn absolute_entries_are_refused() {
    let t = Target::new();
    let abs = t.outside().join("evil");
    assert_unsafe(
        &Tar::new().file(abs.to_str().unwrap(), b"x").finish(),
        OVERLAY,
    );
}

#[test]
fn writing_through_a_symlink_to_outside_is_refused() {
    let t = Target::new();
    let outside = t.outside();
    for target in [outside.to_str().unwrap(), "../outside", "/"] {
        let bytes = Tar::new()
            .symlink("link", target)
            .file("link/evil", b"x")
            .finish();
        let err = t.apply(&bytes, OVERLAY).unwrap_err();
        assert!(matches!(err, ArchiveError::Unsafe { .. }), "{err}");
        t.assert_contained();
    }
    // The same through a directory entry and a whiteout.
    assert_unsafe(
        &Tar::new().symlink("l", "../outside").dir("l/d/").finish(),
        OVERLAY,
    );
    assert_unsafe(
        &Tar::new()
            .symlink("l", "../outside")
            .file("l/.wh.x", b"")
            .finish(),
        OVERLAY,
    );
}

#[test]
fn hard_links_to_outside_are_refused() {
    let t = Target::new();
    std::fs::write(t.outside().join("secret"), b"s").unwrap();
    let secret = t.outside().join("secret");
    for target in ["../outside/secret", secret.to_str().unwrap()] {
        let err = t
            .apply(&Tar::new().hardlink("x", target).finish(), OVERLAY)
            .unwrap_err();
        assert!(matches!(err, ArchiveError::Unsafe { .. }), "{err}");
    }
    // Through a symlinked directory inside the layer.
    let bytes = Tar::new()
        .symlink("d", "../outside")
        .hardlink("x", "d/secret")
        .finish();
    let err = t.apply(&bytes, OVERLAY).unwrap_err();
    assert!(matches!(err, ArchiveError::Unsafe { .. }), "{err}");
    assert!(!exists(&t.root().join("x")));
}

#[test]
fn hard_links_to_missing_targets_or_whiteouts_fail() {
    let t = Target::new();
    let err = t
        .apply(&Tar::new().hardlink("x", "nowhere").finish(), OVERLAY)
        .unwrap_err();
    assert!(matches!(err, ArchiveError::HardLink { .. }), "{err}");
    // A whiteout name is never in an overlay diff dir.
    let bytes = Tar::new()
        .file(".wh.gone", b"")
        .hardlink("x", ".wh.gone")
        .finish();
    let err = t.apply(&bytes, OVERLAY).unwrap_err();
    assert!(matches!(err, ArchiveError::HardLink { .. }), "{err}");
    let err = t
        .apply(&Tar::new().hardlink("x", "x").finish(), OVERLAY)
        .unwrap_err();
    assert!(matches!(err, ArchiveError::HardLink { .. }), "{err}");
}

#[test]
fn whiteouts_of_nothing_dot_or_dotdot_are_errors() {
    for name in [".wh.", "d/.wh.", ".wh..", ".wh...", "d/.wh..."] {
        for format in [OVERLAY, WhiteoutFormat::Delete] {
            let t = Target::new();
            std::fs::write(t.root().join("keep"), b"k").unwrap();
            let err = t
                .apply(&Tar::new().file(name, b"").finish(), format)
                .unwrap_err();
            assert!(
                matches!(err, ArchiveError::BadWhiteout { .. }),
                "{name}: {err}"
            );
            assert!(exists(&t.root().join("keep")), "{name} deleted the layer");
            t.assert_contained();
        }
    }
}

#[test]
fn entry_replacing_the_root_is_refused() {
    assert_unsafe(&Tar::new().file("./", b"x").finish(), OVERLAY);
}
