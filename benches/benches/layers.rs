//! Layer hot paths: hashing a stream, tarring a layer dir, and applying a
//! layer tarball (the inner loops of import, load, save and commit).

use std::hint::black_box;
use std::path::Path;

use berth_archive::{apply_layer, write_layer, ApplyOptions, OpaquePrefix, WhiteoutFormat};
use berth_digest::{chain_ids, DiffId, Digest};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// A small root filesystem: 400 files of 1-16 KiB in 20 directories.
fn make_tree(dir: &Path) -> u64 {
    let mut total = 0;
    for i in 0..400u64 {
        let sub = dir.join(format!("d{}", i % 20));
        std::fs::create_dir_all(&sub).unwrap();
        let len = 1024 * (1 + (i * 7) % 16) as usize;
        std::fs::write(sub.join(format!("f{i}")), vec![(i % 251) as u8; len]).unwrap();
        total += len as u64;
    }
    total
}

fn opts() -> ApplyOptions<'static> {
    ApplyOptions {
        whiteouts: WhiteoutFormat::Overlay {
            xattr_prefix: OpaquePrefix::User,
        },
        chown: false,
        record_owners: false,
        progress: None,
    }
}

fn layers(c: &mut Criterion) {
    let data = vec![0x5au8; 8 << 20];
    let mut g = c.benchmark_group("digest");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("sha256 8 MiB", |b| {
        b.iter(|| Digest::sha256(black_box(&data)))
    });
    g.finish();

    let diffs: Vec<DiffId> = (0..100u8)
        .map(|i| DiffId::new(Digest::sha256(&[i])))
        .collect();
    c.bench_function("chain_ids of 100 layers", |b| {
        b.iter(|| chain_ids(black_box(&diffs)))
    });

    let src = tempfile::tempdir().unwrap();
    let bytes = make_tree(src.path());
    let mut tar = Vec::new();
    write_layer(src.path(), &mut tar).unwrap();

    let mut g = c.benchmark_group("layer");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("write_layer 400 files", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(tar.len());
            write_layer(src.path(), &mut out).unwrap();
            out
        })
    });
    g.bench_function("apply_layer 400 files", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |dest| {
                apply_layer(&tar[..], dest.path(), &opts()).unwrap();
                dest
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, layers);
criterion_main!(benches);
