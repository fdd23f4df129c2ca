//! imagedb and references.

use std::fs;

use berth_digest::{Digest, ImageId};

use super::*;
use crate::{References, StoreError};

#[test]
fn put_image_keeps_config_verbatim_under_its_sha256() {
    let (_dir, store) = new_store();
    let base = import(&store, b"base", None);
    // Odd whitespace and key order: kept byte for byte, never re-serialised.
    let mut config = config(&[&diff_of(b"base")], "x");
    config.extend_from_slice(b"  \n");
    let id = store.put_image(&config, None).unwrap();
    assert_eq!(id.digest(), &Digest::sha256(&config));
    let content = store
        .root()
        .join("image/overlay2/imagedb/content/sha256")
        .join(id.hex());
    assert_eq!(fs::read(&content).unwrap(), config);
    assert_eq!(store.image_config(&id).unwrap(), config);
    assert_eq!(store.images().unwrap(), std::slice::from_ref(&id));
    assert!(store.layer(&base).unwrap().is_some());

    let child_config = super::config(&[&diff_of(b"base")], "child");
    let child = store.put_image(&child_config, Some(&id)).unwrap();
    let meta = store
        .root()
        .join("image/overlay2/imagedb/metadata/sha256")
        .join(child.hex());
    assert_eq!(
        fs::read_to_string(meta.join("parent")).unwrap(),
        id.to_string()
    );
    let updated = fs::read_to_string(meta.join("lastUpdated")).unwrap();
    assert!(
        updated.ends_with('Z') && !updated.ends_with('\n'),
        "{updated:?}"
    );
    let parsed = store.image_meta(&child).unwrap();
    assert_eq!(parsed.parent, Some(id.clone()));
    assert!(parsed.last_updated.is_some());
    assert_eq!(store.image_meta(&id).unwrap().parent, None);

    // Storing it again without a parent keeps the recorded one.
    assert_eq!(store.put_image(&child_config, None).unwrap(), child);
    assert_eq!(store.image_meta(&child).unwrap().parent, Some(id.clone()));
}

#[test]
fn put_image_refuses_missing_layers_and_bad_configs() {
    let (_dir, store) = new_store();
    let err = store
        .put_image(&config(&[&diff_of(b"absent")], "x"), None)
        .unwrap_err();
    assert!(matches!(err, StoreError::LayerMissing { .. }), "{err}");
    let err = store.put_image(b"{not json", None).unwrap_err();
    assert!(matches!(err, StoreError::BadConfig { .. }), "{err}");
    assert!(store.images().unwrap().is_empty());
}

#[test]
fn unknown_image_is_no_such_image() {
    let (_dir, store) = new_store();
    let id = ImageId::new(Digest::sha256(b"nope"));
    for err in [
        store.image_config(&id).unwrap_err(),
        store.image_meta(&id).unwrap_err(),
        store.delete_image(&id).unwrap_err(),
        store.set_reference("busybox:latest", &id).unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::NoSuchImage(_)), "{err}");
    }
    assert!(store.references().unwrap().is_empty());
}

#[test]
fn references_round_trip_in_dockers_shape() {
    let (_dir, store) = new_store();
    let a = store.put_image(&config(&[], "a"), None).unwrap();
    let b = store.put_image(&config(&[], "b"), None).unwrap();
    let by_digest = format!("docker.io/library/busybox@sha256:{}", "c".repeat(64));
    assert_eq!(
        store
            .set_reference("docker.io/library/busybox:latest", &a)
            .unwrap(),
        None
    );
    assert_eq!(store.set_reference(&by_digest, &a).unwrap(), None);
    assert_eq!(store.set_reference("localhost:5000/x:y", &b).unwrap(), None);

    let json = fs::read_to_string(store.root().join("image/overlay2/repositories.json")).unwrap();
    let expected = format!(
        r#"{{"Repositories":{{"docker.io/library/busybox":{{"docker.io/library/busybox:latest":"{a}","{by_digest}":"{a}"}},"localhost:5000/x":{{"localhost:5000/x:y":"{b}"}}}}}}"#
    );
    assert_eq!(json, expected);

    let refs = store.references().unwrap();
    assert_eq!(refs.len(), 3);
    assert_eq!(refs.get("localhost:5000/x:y"), Some(&b));
    assert_eq!(
        refs.names_of(&a),
        [
            "docker.io/library/busybox:latest".to_owned(),
            by_digest.clone()
        ]
    );
    let reparsed = References::from_json(std::path::Path::new("x"), json.as_bytes()).unwrap();
    assert_eq!(reparsed, refs);
    assert_eq!(reparsed.to_json(), json.as_bytes());

    // Retagging returns what the name pointed at; removing does too.
    assert_eq!(
        store.set_reference("localhost:5000/x:y", &a).unwrap(),
        Some(b.clone())
    );
    assert_eq!(
        store.remove_reference("localhost:5000/x:y").unwrap(),
        Some(a.clone())
    );
    assert_eq!(store.remove_reference("localhost:5000/x:y").unwrap(), None);
    assert_eq!(store.references().unwrap().len(), 2);
}

#[test]
fn corrupt_repositories_json_is_an_error_naming_it() {
    let (_dir, store) = new_store();
    let path = store.root().join("image/overlay2/repositories.json");
    fs::write(&path, "{").unwrap();
    let err = store.references().unwrap_err();
    assert!(err.to_string().contains("repositories.json"), "{err}");
}

#[test]
fn delete_image_refuses_while_referenced() {
    let (_dir, store) = new_store();
    let layer = import(&store, b"l", None);
    let id = store
        .put_image(&config(&[&diff_of(b"l")], "x"), None)
        .unwrap();
    store.set_reference("busybox:latest", &id).unwrap();
    store.set_reference("busybox:1", &id).unwrap();
    let err = store.delete_image(&id).unwrap_err();
    match &err {
        StoreError::ImageReferenced { names, .. } => {
            assert_eq!(names, &["busybox:1", "busybox:latest"])
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("busybox:latest"), "{err}");
    assert!(store.has_image(&id));
    assert!(store.layer(&layer).unwrap().is_some());

    store.remove_reference("busybox:latest").unwrap();
    store.remove_reference("busybox:1").unwrap();
    let report = store.delete_image(&id).unwrap();
    assert_eq!(report.images_removed, std::slice::from_ref(&id));
    assert_eq!(report.layers_removed, [layer]);
    assert!(!store.has_image(&id));
    assert!(names(&store.root().join("image/overlay2/imagedb/metadata/sha256")).is_empty());
}
