//! Layout, file contents, dedupe by chainID, blobs.

use std::fs;
use std::path::PathBuf;

use berth_digest::{ChainId, Digest};

use super::*;
use crate::StoreError;

#[test]
fn open_creates_docker_layout() {
    let (dir, store) = new_store();
    let root = fs::canonicalize(dir.path()).unwrap();
    assert_eq!(store.root(), root);
    assert_eq!(store.driver(), "overlay2");
    for sub in [
        "image/overlay2/imagedb/content/sha256",
        "image/overlay2/imagedb/metadata/sha256",
        "image/overlay2/layerdb/sha256",
        "image/overlay2/layerdb/mounts",
        "blobs/sha256",
        "overlay2",
        "tmp",
    ] {
        assert!(root.join(sub).is_dir(), "{sub} missing");
    }
}

#[test]
fn open_rejects_bad_driver_names() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["", "..", "a/b", "image", "tmp", ".hidden"] {
        let err = Store::open(dir.path(), bad).unwrap_err();
        assert!(matches!(err, StoreError::BadDriver(_)), "{bad:?}: {err}");
    }
}

#[test]
fn default_root_follows_env_and_privilege() {
    use std::ffi::OsString;
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    };
    let all = &[
        ("BERTH_ROOT", "/r"),
        ("XDG_DATA_HOME", "/x"),
        ("HOME", "/h"),
    ];
    assert_eq!(
        crate::default_root_from(env(all), false),
        PathBuf::from("/r")
    );
    let no_root = &[("BERTH_ROOT", ""), ("XDG_DATA_HOME", "/x"), ("HOME", "/h")];
    assert_eq!(
        crate::default_root_from(env(no_root), true),
        PathBuf::from("/var/lib/berth")
    );
    assert_eq!(
        crate::default_root_from(env(no_root), false),
        PathBuf::from("/x/berth")
    );
    let home = &[("HOME", "/h")];
    assert_eq!(
        crate::default_root_from(env(home), false),
        PathBuf::from("/h/.local/share/berth")
    );
}

#[test]
fn layerdb_files_have_docker_names_and_contents() {
    let (_dir, store) = new_store();
    let base = import(&store, b"base layer", None);
    let top = import(&store, b"top layer", Some(&base));
    assert_eq!(base.digest(), diff_of(b"base layer").digest());
    assert_eq!(top, ChainId::child(Some(&base), &diff_of(b"top layer")));

    let entry = store
        .root()
        .join("image/overlay2/layerdb/sha256")
        .join(top.hex());
    assert_eq!(
        names(&entry),
        ["blob", "cache-id", "diff", "parent", "size", "unsynced"]
    );
    let read = |name: &str| fs::read_to_string(entry.join(name)).unwrap();
    assert_eq!(read("diff"), diff_of(b"top layer").to_string());
    assert_eq!(read("size"), "9");
    assert_eq!(read("parent"), base.to_string());
    assert_eq!(read("blob"), Digest::sha256(b"top layer").to_string());
    let cache_id = read("cache-id");
    assert!(crate::fsutil::is_hex_id(&cache_id), "{cache_id}");
    let diff_dir = store.root().join("overlay2").join(&cache_id).join("diff");
    assert_eq!(fs::read(diff_dir.join("content")).unwrap(), b"top layer");

    let base_entry = store
        .root()
        .join("image/overlay2/layerdb/sha256")
        .join(base.hex());
    assert!(
        !base_entry.join("parent").exists(),
        "a bottom layer has no parent file"
    );

    let info = store.layer(&top).unwrap().unwrap();
    assert_eq!(info.parent.as_ref(), Some(&base));
    assert_eq!(info.size, 9);
    assert_eq!(store.layer_diff_dir(&info), diff_dir);
    let blob = store.blob_path(info.blob.as_ref().unwrap());
    assert_eq!(
        blob,
        store
            .root()
            .join("blobs/sha256")
            .join(Digest::sha256(b"top layer").hex())
    );
    assert_eq!(fs::read(blob).unwrap(), b"top layer");
    assert_eq!(store.layers().unwrap().len(), 2);
    assert!(temps(&store).is_empty(), "temp entries left behind");
}

#[test]
fn same_chain_id_is_stored_once() {
    let (_dir, store) = new_store();
    let first = import(&store, b"same", None);
    let first_cache = store.layer(&first).unwrap().unwrap().cache_id;
    let second = import(&store, b"same", None);
    assert_eq!(first, second);
    assert_eq!(store.layer(&second).unwrap().unwrap().cache_id, first_cache);
    assert_eq!(names(&store.root().join("overlay2")), [first_cache]);
    assert_eq!(
        names(&store.root().join("image/overlay2/layerdb/sha256")).len(),
        1
    );
    assert!(temps(&store).is_empty());

    // The same diff on another parent is another layer; the blob is shared.
    let other_base = import(&store, b"other base", None);
    let stacked = import(&store, b"same", Some(&other_base));
    assert_ne!(stacked, first);
    assert_eq!(store.layers().unwrap().len(), 3);
    assert_eq!(names(&store.root().join("blobs/sha256")).len(), 2);
}

#[test]
fn commit_refuses_missing_parent() {
    let (_dir, store) = new_store();
    let ghost = ChainId::new(Digest::sha256(b"ghost"));
    let pending = store.unpack_with(&b"x"[..], fake_apply).unwrap();
    let err = store.commit_layer(pending, Some(&ghost)).unwrap_err();
    assert!(
        matches!(err, StoreError::ParentMissing(ref p) if *p == ghost),
        "{err}"
    );
    assert!(store.layers().unwrap().is_empty());
    assert!(names(&store.root().join("overlay2")).is_empty());
    assert!(temps(&store).is_empty(), "pending layer not discarded");
}

#[test]
fn dropped_pending_layer_leaves_nothing() {
    let (_dir, store) = new_store();
    let pending = store.unpack_with(&b"x"[..], fake_apply).unwrap();
    assert_eq!(temps(&store).len(), 2, "layer dir and blob");
    drop(pending);
    assert!(temps(&store).is_empty());
}

#[test]
fn unpack_error_leaves_nothing() {
    let (_dir, store) = new_store();
    let err = store
        .unpack_with(&b"x"[..], |_, _| {
            Err(StoreError::BadReference("boom".into()))
        })
        .unwrap_err();
    assert!(err.to_string().contains("boom"));
    assert!(temps(&store).is_empty());
}

#[test]
fn unpack_keeps_bytes_the_unpacker_did_not_read() {
    let (_dir, store) = new_store();
    let pending = store
        .unpack_with(&b"header+trailing"[..], |src, dest| {
            let mut head = [0u8; 6];
            src.read_exact(&mut head).unwrap();
            fake_apply(&mut &head[..], dest)
        })
        .unwrap();
    assert_eq!(pending.blob, Some(Digest::sha256(b"header+trailing")));
    assert_eq!(pending.blob_size, 15);
    assert_eq!(pending.size, 6);
}

#[test]
fn blob_writer_commits_under_digest_and_checks_expected() {
    let (_dir, store) = new_store();
    let mut w = store.blob_writer().unwrap();
    std::io::Write::write_all(&mut w, b"manifest").unwrap();
    assert_eq!(w.len(), 8);
    let digest = w.commit(None).unwrap();
    assert_eq!(digest, Digest::sha256(b"manifest"));
    assert!(store.has_blob(&digest));
    let mut s = String::new();
    std::io::Read::read_to_string(&mut store.open_blob(&digest).unwrap(), &mut s).unwrap();
    assert_eq!(s, "manifest");

    let mut w = store.blob_writer().unwrap();
    std::io::Write::write_all(&mut w, b"other").unwrap();
    let err = w.commit(Some(&digest)).unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(!store.has_blob(&Digest::sha256(b"other")));
    assert!(temps(&store).is_empty());

    let missing = Digest::sha256(b"missing");
    let err = store.open_blob(&missing).unwrap_err();
    assert!(
        err.to_string().contains(missing.hex()),
        "error names the path: {err}"
    );
}

#[test]
fn corrupt_layerdb_entry_is_an_error_naming_the_file() {
    let (_dir, store) = new_store();
    let chain = import(&store, b"l", None);
    let size = store
        .root()
        .join("image/overlay2/layerdb/sha256")
        .join(chain.hex())
        .join("size");
    fs::write(&size, "lots").unwrap();
    let err = store.layer(&chain).unwrap_err();
    assert!(
        err.to_string().contains(&size.display().to_string()),
        "{err}"
    );
}
