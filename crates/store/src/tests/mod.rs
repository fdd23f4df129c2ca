//! Store tests. Most drive the store through `unpack_with` and a trivial
//! unpacker, so they test the store's bookkeeping, not the tar codec;
//! `archive.rs` goes through the real `unpack_layer`.

mod archive;
mod concurrent;
mod crash;
mod gc;
mod images;
mod layers;

use std::fs;
use std::io::Read;
use std::path::Path;

use berth_archive::Compression;
use berth_digest::{ChainId, DiffId, HashingReader};

use crate::{Result, Store};

/// Stands in for `apply_layer`: the "layer" is the raw stream, written as one
/// file; its diffID is the stream's sha256.
fn fake_apply(src: &mut dyn Read, dest: &Path) -> Result<(DiffId, u64, Compression)> {
    let mut hashing = HashingReader::new(src);
    let mut data = Vec::new();
    hashing.read_to_end(&mut data).expect("reading test layer");
    fs::write(dest.join("content"), &data).expect("writing test layer");
    let (digest, len, _) = hashing.finish();
    Ok((DiffId::new(digest), len, Compression::None))
}

fn import(store: &Store, data: &[u8], parent: Option<&ChainId>) -> ChainId {
    let pending = store.unpack_with(data, fake_apply).expect("unpack");
    store.commit_layer(pending, parent).expect("commit")
}

/// An image config over `diff_ids`; `tag` makes otherwise equal configs differ.
fn config(diff_ids: &[&DiffId], tag: &str) -> Vec<u8> {
    let ids: Vec<String> = diff_ids.iter().map(|d| format!("\"{d}\"")).collect();
    format!(
        r#"{{"architecture":"amd64","os":"linux","comment":"{tag}","rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        ids.join(",")
    )
    .into_bytes()
}

fn diff_of(data: &[u8]) -> DiffId {
    DiffId::new(berth_digest::Digest::sha256(data))
}

fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), "overlay2").expect("open");
    (dir, store)
}

/// Names in a directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    out.sort();
    out
}

/// Entries of the temp dir, except handles' leases (which live as long as
/// their handle).
fn temps(store: &Store) -> Vec<String> {
    let mut out = names(&store.root().join("tmp"));
    out.retain(|n| !n.starts_with("lease-"));
    out
}
