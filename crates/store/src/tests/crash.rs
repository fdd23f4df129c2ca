//! What a crash at any point leaves behind is invisible, and gets cleaned.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use berth_digest::ChainId;

use super::*;
use crate::Problem;

/// Makes an entry look like a crashed process left it an hour ago.
fn backdate(path: &Path) {
    let then = SystemTime::now() - Duration::from_secs(3600);
    fs::File::open(path).unwrap().set_modified(then).unwrap();
}

#[test]
fn abandoned_temp_dirs_are_ignored_reported_and_cleaned_on_open() {
    let (dir, store) = new_store();
    let tmp = store.root().join("tmp");
    // A crash mid-unpack: half a layer, nobody holding its lock.
    let layer = tmp.join(format!("layer-{}", crate::fsutil::random_hex()));
    fs::create_dir_all(layer.join("diff/usr/bin")).unwrap();
    fs::write(layer.join("diff/usr/bin/sh"), b"half").unwrap();
    backdate(&layer);
    // A crash after writing the layerdb entry but before renaming it in.
    let chain = ChainId::new(berth_digest::Digest::sha256(b"half"));
    let entry = tmp.join(format!("layerdb-{}", crate::fsutil::random_hex()));
    fs::create_dir(&entry).unwrap();
    fs::write(entry.join("diff"), chain.to_string()).unwrap();
    backdate(&entry);

    assert!(store.layers().unwrap().is_empty());
    assert_eq!(store.layer(&chain).unwrap(), None);
    let mut expected = vec![
        Problem::StrayTemp(layer.clone()),
        Problem::StrayTemp(entry.clone()),
    ];
    expected.sort_by_key(|p| p.to_string());
    let mut found = store.check().unwrap();
    found.sort_by_key(|p| p.to_string());
    assert_eq!(found, expected);

    let reopened = Store::open(dir.path(), "overlay2").unwrap();
    assert!(names(&tmp).is_empty(), "left: {:?}", names(&tmp));
    assert_eq!(reopened.check().unwrap(), []);
}

#[test]
fn temp_entries_of_live_writers_survive_open_and_gc() {
    let (dir, store) = new_store();
    // Locked by this (live) pending layer, even though it looks old.
    let pending = store.unpack_with(&b"in flight"[..], fake_apply).unwrap();
    for entry in temps(&store) {
        backdate(&store.root().join("tmp").join(entry));
    }
    // Unlocked but brand new: its creator may not have locked it yet.
    let fresh = store.root().join("tmp").join("file-new");
    fs::write(&fresh, b"").unwrap();

    let other = Store::open(dir.path(), "overlay2").unwrap();
    assert_eq!(
        other.gc().unwrap().temps_removed,
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(other.check().unwrap(), []);
    assert_eq!(temps(&store).len(), 3);
    let chain = store.commit_layer(pending, None).unwrap();
    assert!(store.layer(&chain).unwrap().is_some());
}

#[test]
fn cache_dir_without_layerdb_entry_is_invisible_and_collected() {
    let (_dir, store) = new_store();
    // A crash between moving the unpacked dir in and the layerdb rename.
    let orphan = store
        .root()
        .join("overlay2")
        .join(crate::fsutil::random_hex());
    fs::create_dir_all(orphan.join("diff")).unwrap();
    assert!(store.layers().unwrap().is_empty());
    assert_eq!(
        store.check().unwrap(),
        [Problem::OrphanCacheDir(orphan.clone())]
    );
    assert_eq!(
        store.gc().unwrap().cache_dirs_removed,
        std::slice::from_ref(&orphan)
    );
    assert!(!orphan.exists());
}

#[test]
fn interrupted_image_deletion_is_finished_by_gc() {
    let (_dir, store) = new_store();
    let id = store.put_image(&config(&[], "x"), None).unwrap();
    // Crash after removing the content file, before the metadata dir.
    fs::remove_file(
        store
            .root()
            .join("image/overlay2/imagedb/content/sha256")
            .join(id.hex()),
    )
    .unwrap();
    assert!(store.images().unwrap().is_empty());
    store.gc().unwrap();
    assert!(names(&store.root().join("image/overlay2/imagedb/metadata/sha256")).is_empty());
}

#[test]
fn unreadable_temp_dirs_are_still_removed() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, store) = new_store();
    let layer = store.root().join("tmp").join("layer-ro");
    fs::create_dir_all(layer.join("diff/ro/sub")).unwrap();
    fs::set_permissions(layer.join("diff/ro"), fs::Permissions::from_mode(0o555)).unwrap();
    backdate(&layer);
    Store::open(dir.path(), "overlay2").unwrap();
    assert!(!layer.exists());
}

#[test]
fn temp_dir_spreads_new_layers_over_the_filesystem_on_ext4() {
    let (_dir, store) = new_store();
    let tmp = store.root().join("tmp");
    let fd = fs::File::open(&tmp).unwrap();
    let ext4 = rustix::fs::fstatfs(&fd).unwrap().f_type as i64 == 0xEF53;
    if !ext4 {
        eprintln!("skipped: the temp dir is not on ext4");
        return;
    }
    let flags = rustix::fs::ioctl_getflags(&fd).unwrap();
    assert!(flags.contains(rustix::fs::IFlags::TOPDIR), "{flags:?}");
}
