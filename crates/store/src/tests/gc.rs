//! gc and check.

use std::fs;

use berth_digest::Digest;

use super::*;
use crate::{MountInfo, Problem, StoreError};

#[test]
fn gc_keeps_shared_layers_and_removes_unreferenced_ones() {
    let (_dir, store) = new_store();
    let base = import(&store, b"base", None);
    let top_a = import(&store, b"a", Some(&base));
    let top_b = import(&store, b"b", Some(&base));
    let a = store
        .put_image(&config(&[&diff_of(b"base"), &diff_of(b"a")], "a"), None)
        .unwrap();
    let b = store
        .put_image(&config(&[&diff_of(b"base"), &diff_of(b"b")], "b"), None)
        .unwrap();
    let cache = |c| store.layer(c).unwrap().unwrap().cache_id;
    let (base_cache, a_cache) = (cache(&base), cache(&top_a));

    assert_eq!(store.gc().unwrap().layers_removed, []);

    let report = store.delete_image(&a).unwrap();
    assert_eq!(report.layers_removed, std::slice::from_ref(&top_a));
    assert_eq!(report.blobs_removed, [Digest::sha256(b"a")]);
    assert!(!store.root().join("overlay2").join(&a_cache).exists());
    assert!(!store.has_blob(&Digest::sha256(b"a")));
    assert!(store.layer(&base).unwrap().is_some());
    assert!(store.layer(&top_b).unwrap().is_some());
    assert!(store.root().join("overlay2").join(&base_cache).is_dir());

    let report = store.delete_image(&b).unwrap();
    let mut removed = vec![base.clone(), top_b.clone()];
    removed.sort();
    assert_eq!(report.layers_removed, removed);
    assert!(store.layers().unwrap().is_empty());
    assert!(names(&store.root().join("overlay2")).is_empty());
    assert!(names(&store.root().join("blobs/sha256")).is_empty());
    assert!(store.check().unwrap().is_empty());
}

#[test]
fn gc_keeps_a_blob_another_layer_still_uses() {
    let (_dir, store) = new_store();
    let base = import(&store, b"base", None);
    import(&store, b"same", None);
    let stacked = import(&store, b"same", Some(&base));
    store
        .put_image(&config(&[&diff_of(b"base"), &diff_of(b"same")], "x"), None)
        .unwrap();
    let report = store.gc().unwrap();
    assert_eq!(report.layers_removed.len(), 1);
    assert_eq!(report.blobs_removed, []);
    assert!(store.has_blob(&Digest::sha256(b"same")));
    assert!(store.layer(&stacked).unwrap().is_some());
}

#[test]
fn gc_keeps_parents_of_container_mounts_and_their_dirs() {
    let (_dir, store) = new_store();
    let base = import(&store, b"base", None);
    let top = import(&store, b"top", Some(&base));
    let mount_id = crate::fsutil::random_hex();
    let mount = MountInfo {
        container_id: "c1".into(),
        mount_id: mount_id.clone(),
        init_id: Some(format!("{mount_id}-init")),
        parent: Some(top.clone()),
    };
    store.set_mount(&mount).unwrap();
    fs::create_dir(store.root().join("overlay2").join(&mount_id)).unwrap();
    fs::create_dir(
        store
            .root()
            .join("overlay2")
            .join(format!("{mount_id}-init")),
    )
    .unwrap();
    let record = store.root().join("image/overlay2/layerdb/mounts/c1");
    assert_eq!(names(&record), ["init-id", "mount-id", "parent"]);
    assert_eq!(
        fs::read_to_string(record.join("parent")).unwrap(),
        top.to_string()
    );
    assert_eq!(store.mount("c1").unwrap(), Some(mount.clone()));
    assert!(matches!(
        store.set_mount(&mount),
        Err(StoreError::MountExists(_))
    ));

    let report = store.gc().unwrap();
    assert_eq!(report.layers_removed, []);
    assert_eq!(report.cache_dirs_removed, Vec::<std::path::PathBuf>::new());

    assert!(store.remove_mount("c1").unwrap());
    assert_eq!(store.mounts().unwrap(), []);
    let report = store.gc().unwrap();
    assert_eq!(report.layers_removed.len(), 2);
    // Both layers' dirs, and the container's own two: orphans once its
    // record is gone.
    assert_eq!(report.cache_dirs_removed.len(), 4);
    assert!(names(&store.root().join("overlay2")).is_empty());
}

#[test]
fn gc_leaves_a_drivers_own_files_alone() {
    let (_dir, store) = new_store();
    fs::create_dir(store.root().join("overlay2/l")).unwrap();
    store.gc().unwrap();
    assert_eq!(names(&store.root().join("overlay2")), ["l"]);
}

#[test]
fn mount_ids_are_validated() {
    let (_dir, store) = new_store();
    let bad = MountInfo {
        container_id: "../x".into(),
        mount_id: "m".into(),
        init_id: None,
        parent: None,
    };
    assert!(matches!(
        store.set_mount(&bad),
        Err(StoreError::BadContainerId(_))
    ));
    assert!(matches!(
        store.mount(".."),
        Err(StoreError::BadContainerId(_))
    ));
}

#[test]
fn check_finds_a_corrupted_blob() {
    let (_dir, store) = new_store();
    let chain = import(&store, b"layer bytes", None);
    assert_eq!(store.check().unwrap(), []);
    let blob = store.blob_path(&store.layer(&chain).unwrap().unwrap().blob.unwrap());
    fs::write(&blob, b"layer bytez").unwrap();
    assert_eq!(
        store.check().unwrap(),
        [Problem::CorruptBlob {
            path: blob,
            actual: Digest::sha256(b"layer bytez")
        }]
    );
}

#[test]
fn check_finds_missing_pieces() {
    let (_dir, store) = new_store();
    let base = import(&store, b"base", None);
    let top = import(&store, b"top", Some(&base));
    let id = store
        .put_image(&config(&[&diff_of(b"base"), &diff_of(b"top")], "x"), None)
        .unwrap();
    let info = store.layer(&top).unwrap().unwrap();
    let layerdb = store.root().join("image/overlay2/layerdb/sha256");

    // The unpacked dir of `top` disappears.
    fs::remove_dir_all(store.root().join("overlay2").join(&info.cache_id)).unwrap();
    // `base` loses its layerdb entry entirely (so `top` loses its parent).
    let base_cache = store.layer(&base).unwrap().unwrap().cache_id;
    fs::remove_dir_all(layerdb.join(base.hex())).unwrap();
    // The blob of `top` goes missing.
    fs::remove_file(store.blob_path(info.blob.as_ref().unwrap())).unwrap();

    let problems = store.check().unwrap();
    let base_dir = store.root().join("overlay2").join(base_cache);
    let expected = [
        Problem::MissingCacheDir {
            chain: top.clone(),
            path: store.layer_diff_dir(&info),
        },
        Problem::MissingParent {
            chain: top.clone(),
            parent: base.clone(),
        },
        Problem::MissingBlob {
            chain: top.clone(),
            blob: info.blob.clone().unwrap(),
        },
        Problem::MissingLayer {
            image: id.clone(),
            chain: base.clone(),
        },
        Problem::OrphanCacheDir(base_dir),
    ];
    assert_eq!(problems, expected, "{problems:#?}");
    for p in &problems {
        assert!(!p.to_string().is_empty());
    }

    // A layerdb entry missing its size file is reported, not fatal.
    fs::remove_file(layerdb.join(top.hex()).join("size")).unwrap();
    let problems = store.check().unwrap();
    assert!(
        problems.contains(&Problem::MissingFile(layerdb.join(top.hex()).join("size"))),
        "{problems:#?}"
    );
}

#[test]
fn check_finds_a_tampered_image_config() {
    let (_dir, store) = new_store();
    let id = store.put_image(&config(&[], "x"), None).unwrap();
    let path = store
        .root()
        .join("image/overlay2/imagedb/content/sha256")
        .join(id.hex());
    fs::write(&path, b"{}").unwrap();
    assert_eq!(
        store.check().unwrap(),
        [Problem::CorruptImage {
            id,
            actual: Digest::sha256(b"{}")
        }]
    );
}

#[test]
fn gc_spares_layers_another_live_handle_committed() {
    let (dir, store) = new_store();
    // Another handle stands in for another `berth` process mid-import: it has
    // committed layers but not yet the image that names them.
    let importer = Store::open(dir.path(), "overlay2").unwrap();
    let base = import(&importer, b"base", None);
    let top = import(&importer, b"top", Some(&base));
    // Finding a layer present counts as using it too.
    let found = import(&importer, b"present already", None);
    assert_eq!(store.gc().unwrap().layers_removed, []);
    assert_eq!(store.check().unwrap(), [], "a live lease is no stray temp");

    // A handle's own lease does not stop its own gc.
    assert_eq!(importer.gc().unwrap().layers_removed.len(), 3);
    let base = import(&importer, b"base", None);

    // A lease whose holder is gone protects nothing.
    let stale = store.root().join("tmp/lease-dead");
    fs::write(&stale, format!("{top}\n{found}\n")).unwrap();
    drop(importer);
    let report = store.gc().unwrap();
    assert_eq!(report.layers_removed, [base]);
}
