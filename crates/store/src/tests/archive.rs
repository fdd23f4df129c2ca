//! Through the real tar codec: one pass unpacks the layer, records its
//! tar-split (and keeps compressed input as a blob), and the tar read back
//! is the imported one, byte for byte.

use std::fs;
use std::io::Write;

use berth_archive::{ApplyOptions, Compression, OpaquePrefix, WhiteoutFormat};
use berth_digest::Digest;

use super::*;
use crate::StoreError;

fn options() -> ApplyOptions<'static> {
    ApplyOptions {
        whiteouts: WhiteoutFormat::Overlay {
            xattr_prefix: OpaquePrefix::User,
        },
        chown: false,
        record_owners: false,
        progress: None,
    }
}

fn tarball() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_size(0);
    builder.append_data(&mut header, "etc/", &[][..]).unwrap();
    let body = b"berth\n";
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(body.len() as u64);
    builder
        .append_data(&mut header, "etc/hostname", &body[..])
        .unwrap();
    builder.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn gzipped_layer_keeps_raw_blob_and_reads_back_the_exact_tar() {
    let (_dir, store) = new_store();
    let tar = tarball();
    let gz = gzip(&tar);
    let pending = store.unpack_layer(&gz[..], &options()).unwrap();
    assert_eq!(pending.diff_id, diff_of(&tar));
    assert_eq!(pending.size, tar.len() as u64);
    assert_eq!(pending.blob, Some(Digest::sha256(&gz)));
    assert_eq!(pending.compression, Compression::Gzip);
    let chain = store.commit_layer(pending, None).unwrap();

    let info = store.layer(&chain).unwrap().unwrap();
    let diff = store.layer_diff_dir(&info);
    assert_eq!(fs::read(diff.join("etc/hostname")).unwrap(), b"berth\n");
    assert_eq!(
        fs::read(store.blob_path(info.blob.as_ref().unwrap())).unwrap(),
        gz
    );
    let mut back = Vec::new();
    store
        .open_layer_tar(&info)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, tar);

    // Stored before tar-split (no record): read back from the blob.
    fs::remove_file(entry_dir(&store, &chain).join("tar-split.zst")).unwrap();
    assert_eq!(read_back(&store, &chain).unwrap(), tar);
}

fn entry_dir(store: &Store, chain: &ChainId) -> std::path::PathBuf {
    store
        .root()
        .join("image/overlay2/layerdb/sha256")
        .join(chain.hex())
}

fn read_back(store: &Store, chain: &ChainId) -> Result<Vec<u8>> {
    let info = store.layer(chain).unwrap().unwrap();
    let mut back = Vec::new();
    store
        .open_layer_tar(&info)?
        .read_to_end(&mut back)
        .map_err(|e| StoreError::Unpack(berth_archive::ArchiveError::Read(e)))?;
    Ok(back)
}

#[test]
fn plain_layer_is_not_kept_twice_and_reads_back_identically() {
    let (_dir, store) = new_store();
    let mut tar = tarball();
    tar.extend_from_slice(b"trailing bytes after the end blocks");
    let pending = store.unpack_layer(&tar[..], &options()).unwrap();
    assert_eq!(pending.blob, None);
    assert_eq!(pending.blob_size, tar.len() as u64);
    let chain = store.commit_layer(pending, None).unwrap();
    assert!(names(&store.root().join("blobs/sha256")).is_empty());
    assert_eq!(
        names(&entry_dir(&store, &chain)),
        ["cache-id", "diff", "size", "tar-split.zst", "unsynced"]
    );
    assert_eq!(read_back(&store, &chain).unwrap(), tar);
}

#[test]
fn a_changed_file_in_the_layer_makes_reading_it_back_fail() {
    let (_dir, store) = new_store();
    let tar = tarball();
    let chain = store
        .commit_layer(store.unpack_layer(&tar[..], &options()).unwrap(), None)
        .unwrap();
    let info = store.layer(&chain).unwrap().unwrap();
    fs::write(store.layer_diff_dir(&info).join("etc/hostname"), b"other\n").unwrap();
    let err = read_back(&store, &chain).unwrap_err().to_string();
    assert!(err.contains("does not match its diffID"), "{err}");
}

#[test]
fn truncated_layer_fails_and_leaves_nothing() {
    let (_dir, store) = new_store();
    let tar = tarball();
    let err = store.unpack_layer(&tar[..700], &options()).unwrap_err();
    assert!(matches!(err, StoreError::Unpack(_)), "{err}");
    assert!(temps(&store).is_empty());
    assert!(names(&store.root().join("blobs/sha256")).is_empty());
    assert!(store.layers().unwrap().is_empty());
}

#[test]
fn layer_without_tar_split_or_blob_cannot_be_read_back() {
    let (_dir, store) = new_store();
    let chain = store
        .commit_layer(
            store.unpack_layer(&tarball()[..], &options()).unwrap(),
            None,
        )
        .unwrap();
    let entry = store
        .root()
        .join("image/overlay2/layerdb/sha256")
        .join(chain.hex());
    fs::remove_file(entry.join("tar-split.zst")).unwrap();
    let info = store.layer(&chain).unwrap().unwrap();
    assert!(matches!(
        store.open_layer_tar(&info),
        Err(StoreError::NoBlob(_))
    ));
}

/// Pretends the layer was committed in an earlier boot and never synced.
fn from_earlier_boot(store: &Store, chain: &ChainId) {
    fs::write(entry_dir(store, chain).join("unsynced"), "another-boot\n").unwrap();
}

#[test]
fn layers_are_published_unsynced_and_marked_with_the_boot() {
    let (_dir, store) = new_store();
    let chain = store
        .commit_layer(
            store.unpack_layer(&tarball()[..], &options()).unwrap(),
            None,
        )
        .unwrap();
    let mark = fs::read_to_string(entry_dir(&store, &chain).join("unsynced")).unwrap();
    assert_eq!(Some(mark.as_str()), crate::unsynced::boot_id());
    // In the same boot nothing is checked: the page cache is the truth.
    let info = store.layer(&chain).unwrap().unwrap();
    fs::write(store.layer_diff_dir(&info).join("etc/hostname"), b"BERTH\n").unwrap();
    assert!(store.layer(&chain).unwrap().is_some());
}

#[test]
fn after_a_restart_a_complete_unsynced_layer_is_checked_once_and_kept() {
    let (_dir, store) = new_store();
    let tar = tarball();
    let chain = store
        .commit_layer(store.unpack_layer(&tar[..], &options()).unwrap(), None)
        .unwrap();
    from_earlier_boot(&store, &chain);
    assert!(store.layer(&chain).unwrap().is_some());
    assert!(!entry_dir(&store, &chain).join("unsynced").exists());
    assert_eq!(read_back(&store, &chain).unwrap(), tar);
}

#[test]
fn after_a_restart_an_incomplete_unsynced_layer_is_removed_and_can_be_stored_again() {
    let (_dir, store) = new_store();
    let tar = tarball();
    let chain = store
        .commit_layer(store.unpack_layer(&tar[..], &options()).unwrap(), None)
        .unwrap();
    let info = store.layer(&chain).unwrap().unwrap();
    // A power cut lost the file's data: it came back empty.
    fs::write(store.layer_diff_dir(&info).join("etc/hostname"), b"").unwrap();
    from_earlier_boot(&store, &chain);

    assert_eq!(store.layer(&chain).unwrap(), None);
    assert!(store.layers().unwrap().is_empty());
    assert!(!store.layer_diff_dir(&info).exists());
    assert_eq!(store.check().unwrap(), []);

    let again = store
        .commit_layer(store.unpack_layer(&tar[..], &options()).unwrap(), None)
        .unwrap();
    assert_eq!(again, chain);
    assert_eq!(read_back(&store, &chain).unwrap(), tar);
}

#[test]
fn after_a_restart_an_unsynced_entry_with_lost_fields_is_removed_not_corrupt() {
    let (_dir, store) = new_store();
    let chain = store
        .commit_layer(
            store.unpack_layer(&tarball()[..], &options()).unwrap(),
            None,
        )
        .unwrap();
    let entry = entry_dir(&store, &chain);
    fs::write(entry.join("diff"), b"").unwrap();
    fs::write(entry.join("unsynced"), b"").unwrap();
    assert_eq!(store.layer(&chain).unwrap(), None);
    assert!(!entry.exists());
    // Its unpacked dir is an orphan now, and gc takes it.
    assert_eq!(store.gc().unwrap().cache_dirs_removed.len(), 1);
    assert_eq!(store.check().unwrap(), []);
}

/// Rootless: owners the store cannot write are recorded beside the files
/// (`user.containers.override_stat`), and the tar read back is still the
/// imported one, byte for byte, device node included.
#[test]
fn recorded_owners_keep_the_tar_read_back_identical() {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind, uid: u64, gid: u64, mode: u32, body: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_mode(mode);
        header.set_size(body.len() as u64);
        if kind == tar::EntryType::Char {
            header.set_device_major(1).unwrap();
            header.set_device_minor(3).unwrap();
        }
        builder.append_data(&mut header, path, body).unwrap();
    };
    add("srv/", tar::EntryType::Directory, 33, 33, 0o755, b"");
    add(
        "srv/f",
        tar::EntryType::Regular,
        1000,
        1000,
        0o4755,
        b"body\n",
    );
    add("srv/root", tar::EntryType::Regular, 0, 0, 0o644, b"r");
    add("dev-null", tar::EntryType::Char, 0, 0, 0o666, b"");
    let tar = builder.into_inner().unwrap();

    let (_dir, store) = new_store();
    let opts = ApplyOptions {
        record_owners: true,
        ..options()
    };
    let pending = store.unpack_layer(&tar[..], &opts).unwrap();
    let chain = store.commit_layer(pending, None).unwrap();
    let info = store.layer(&chain).unwrap().unwrap();
    let diff = store.layer_diff_dir(&info);
    let recorded = |p: &str| {
        let mut buf = vec![0; 64];
        let n = rustix::fs::getxattr(diff.join(p), berth_archive::OVERRIDE_XATTR, &mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    assert_eq!(recorded("srv").as_deref(), Some("33:33:0755:dir"));
    assert_eq!(recorded("srv/f").as_deref(), Some("1000:1000:4755:file"));
    assert_eq!(recorded("srv/root"), None);
    assert_eq!(read_back(&store, &chain).unwrap(), tar);
}
