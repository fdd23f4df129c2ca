//! Concurrent imports into one store, from threads and from processes.

use std::process::Command;
use std::sync::Barrier;

use super::*;

const CHILD_ROOT: &str = "BERTH_STORE_TEST_CHILD_ROOT";

/// Big enough that unpacking takes a while and the racers overlap.
fn layer_bytes(label: &str) -> Vec<u8> {
    let mut data = label.as_bytes().to_vec();
    data.resize(256 * 1024, b'.');
    data
}

/// Imports the same three images, layer by layer, as every other racer does.
fn import_images(store: &Store) {
    for i in 0..3 {
        let mut parent = None;
        let mut diffs = Vec::new();
        for j in 0..3 {
            // Layer 0 is shared by every image.
            let data = layer_bytes(&format!("layer {} {j}", if j == 0 { 0 } else { i }));
            parent = Some(import(store, &data, parent.as_ref()));
            diffs.push(diff_of(&data));
        }
        let refs: Vec<&_> = diffs.iter().collect();
        let id = store
            .put_image(&config(&refs, &i.to_string()), None)
            .unwrap();
        store.set_reference(&format!("img:{i}"), &id).unwrap();
    }
}

fn assert_consistent(store: &Store) {
    // 1 shared base + 3 images x 2 own layers, each stored once.
    assert_eq!(store.layers().unwrap().len(), 7);
    assert_eq!(names(&store.root().join("overlay2")).len(), 7);
    assert_eq!(names(&store.root().join("blobs/sha256")).len(), 7);
    assert_eq!(store.images().unwrap().len(), 3);
    assert_eq!(store.references().unwrap().len(), 3);
    assert!(temps(store).is_empty(), "{:?}", temps(store));
    assert_eq!(store.check().unwrap(), []);
}

#[test]
fn concurrent_imports_from_threads_store_each_layer_once() {
    let (_dir, store) = new_store();
    let barrier = Barrier::new(4);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                barrier.wait();
                import_images(&store);
            });
        }
    });
    assert_consistent(&store);
}

#[test]
fn concurrent_imports_from_processes_store_each_layer_once() {
    let (dir, store) = new_store();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    "tests::concurrent::child_process_import",
                ])
                .args(["--test-threads=1", "--quiet"])
                .env(CHILD_ROOT, dir.path())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        let status = child.wait().unwrap();
        assert!(status.success(), "child import failed: {status}");
    }
    assert_consistent(&store);
}

/// Run by `concurrent_imports_from_processes_store_each_layer_once` in
/// child processes; ignored in normal runs.
#[test]
#[ignore = "child process of the concurrent import test"]
fn child_process_import() {
    let root = std::env::var_os(CHILD_ROOT).expect("run by the concurrent import test");
    let store = Store::open(std::path::Path::new(&root), "overlay2").unwrap();
    import_images(&store);
}

#[test]
fn concurrent_reference_updates_are_not_lost() {
    let (_dir, store) = new_store();
    let id = store.put_image(&config(&[], "x"), None).unwrap();
    let barrier = Barrier::new(6);
    std::thread::scope(|s| {
        for t in 0..6 {
            let (store, id, barrier) = (&store, &id, &barrier);
            s.spawn(move || {
                barrier.wait();
                for i in 0..15 {
                    store.set_reference(&format!("t{t}:{i}"), id).unwrap();
                }
            });
        }
    });
    assert_eq!(store.references().unwrap().len(), 90);
}
