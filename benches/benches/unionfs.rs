//! berth-unionfs hot paths without a FUSE mount: lookup through a layer
//! stack, the merged readdir of a large directory, and copy-up. The kernel
//! round trip is left out on purpose: these show what the daemon itself
//! spends per request, which `cargo xtask bench unionfs` cannot separate.

use std::ffi::OsStr;
use std::hint::black_box;
use std::path::{Path, PathBuf};

use berth_unionfs::{Options, UnionFs, ROOT_INO};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// Entries in the merged directory.
const ENTRIES: usize = 10_000;

/// Three lowers: `dir` holds ENTRIES names spread over the two lower ones,
/// with every tenth name of the bottom layer whited out by the middle one
/// (OCI style), and the top lower adds `big` (1 MiB) and `small` (4 KiB).
struct Stack {
    _dir: tempfile::TempDir,
    lowers: Vec<PathBuf>,
    root: PathBuf,
}

fn write(p: &Path, data: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

impl Stack {
    fn new() -> Stack {
        let dir = tempfile::Builder::new()
            .prefix("berth-bench-unionfs")
            .tempdir_in("/var/tmp")
            .unwrap();
        let lowers: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("l{i}"))).collect();
        for i in 0..ENTRIES {
            let layer = if i % 2 == 0 { 1 } else { 2 };
            write(&lowers[layer].join(format!("dir/e{i}")), b"");
            if layer == 2 && i % 10 == 1 {
                // Hidden by the middle layer, and also present below it.
                write(&lowers[1].join(format!("dir/.wh.e{i}")), b"");
            }
        }
        write(&lowers[0].join("big"), &vec![7u8; 1 << 20]);
        write(&lowers[0].join("small"), &[7u8; 4096]);
        Stack {
            root: dir.path().to_path_buf(),
            _dir: dir,
            lowers,
        }
    }

    /// A fresh filesystem over the stack with its own empty upper layer.
    fn mount(&self, run: usize) -> UnionFs {
        let upper = self.root.join(format!("u{run}"));
        let work = self.root.join(format!("w{run}"));
        std::fs::create_dir_all(&upper).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let lower = self
            .lowers
            .iter()
            .map(|l| l.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        // fsync=0: the disk's flush time is not the code under test.
        let opts = Options::parse(&format!(
            "lowerdir={lower},upperdir={},workdir={},fsync=0",
            upper.display(),
            work.display()
        ))
        .unwrap();
        UnionFs::new(&opts).unwrap()
    }
}

fn unionfs(c: &mut Criterion) {
    let stack = Stack::new();
    let fs = stack.mount(0);
    let dir = fs.lookup(ROOT_INO, OsStr::new("dir")).unwrap().ino.0;

    let mut g = c.benchmark_group("unionfs lookup");
    g.bench_function("hit in the lower of 2 merged dirs", |b| {
        b.iter(|| {
            let a = fs.lookup(dir, black_box(OsStr::new("e4003"))).unwrap();
            fs.forget(a.ino.0, 1);
        })
    });
    g.bench_function("miss through 2 merged dirs", |b| {
        b.iter(|| {
            fs.lookup(dir, black_box(OsStr::new("nothing")))
                .unwrap_err()
        })
    });
    g.bench_function("whited out by the upper of 2", |b| {
        b.iter(|| fs.lookup(dir, black_box(OsStr::new("e4001"))).unwrap_err())
    });
    g.finish();

    let mut g = c.benchmark_group("unionfs readdir");
    g.throughput(Throughput::Elements(ENTRIES as u64));
    g.bench_function("merge 10k entries of 2 lowers with whiteouts", |b| {
        b.iter(|| black_box(fs.list_dir(dir).unwrap().len()))
    });
    g.finish();

    let mut g = c.benchmark_group("unionfs copy-up");
    g.sample_size(20);
    let mut run = 0;
    for (name, bytes) in [("small", 4096u64), ("big", 1 << 20)] {
        g.throughput(Throughput::Bytes(bytes));
        g.bench_function(format!("{name} file ({} KiB)", bytes >> 10), |b| {
            b.iter_batched(
                || {
                    // Each copy-up needs a file not yet copied: a fresh upper.
                    run += 1;
                    let fs = stack.mount(run);
                    let ino = fs.lookup(ROOT_INO, OsStr::new(name)).unwrap().ino.0;
                    (fs, ino)
                },
                |(fs, ino)| {
                    fs.copy_up_node(ino).unwrap();
                    fs
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, unionfs);
criterion_main!(benches);
