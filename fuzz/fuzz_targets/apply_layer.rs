//! Arbitrary bytes as a layer: apply_layer must not panic, and nothing may
//! appear outside the target directory, whatever the bytes say.
#![no_main]

use berth_archive::{apply_layer, ApplyOptions, OpaquePrefix, WhiteoutFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the whiteout format, so both paths get fuzzed.
    let (format, layer) = match data.split_first() {
        Some((b, rest)) if b & 1 == 1 => (WhiteoutFormat::Delete, rest),
        Some((_, rest)) => (
            WhiteoutFormat::Overlay {
                xattr_prefix: OpaquePrefix::User,
            },
            rest,
        ),
        None => return,
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(&outside).unwrap();
    let opts = ApplyOptions {
        whiteouts: format,
        chown: true,
        progress: None,
    };
    let _ = apply_layer(layer, &root, &opts);

    let mut names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["outside", "root"],
        "something was written beside the layer"
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "something was written outside the layer"
    );
    // Let the TempDir remove even read-only directories the layer made.
    make_writable(&root);
});

fn make_writable(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                make_writable(&entry.path());
            }
        }
    }
}
