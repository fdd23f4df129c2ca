//! Differential test: random operation sequences applied to a berth-unionfs
//! mount and to a kernel overlayfs mount of identical layers. Every result
//! and errno, the merged trees, and the upper layers (modulo whiteout style)
//! must agree.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{is_root, Fixture, UnmountGuard, BIN};
use proptest::prelude::*;

const NAMES: &[&str] = &[
    "a", "b", "d", "d/a", "d/e", "d/e/f", "o", "o/a", "n", "n/x", "w",
];

#[derive(Debug, Clone)]
enum Op {
    Create(usize),
    Write(usize, u8),
    Append(usize),
    Truncate(usize, u64),
    Unlink(usize),
    Mkdir(usize),
    Rmdir(usize),
    Rename(usize, usize),
    Exchange(usize, usize),
    Link(usize, usize),
    Symlink(usize, usize),
    Chmod(usize, u32),
    SetXattr(usize, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let n = 0..NAMES.len();
    prop_oneof![
        n.clone().prop_map(Op::Create),
        (n.clone(), any::<u8>()).prop_map(|(a, b)| Op::Write(a, b)),
        n.clone().prop_map(Op::Append),
        (n.clone(), 0..5000u64).prop_map(|(a, b)| Op::Truncate(a, b)),
        n.clone().prop_map(Op::Unlink),
        n.clone().prop_map(Op::Mkdir),
        n.clone().prop_map(Op::Rmdir),
        (n.clone(), n.clone()).prop_map(|(a, b)| Op::Rename(a, b)),
        (n.clone(), n.clone()).prop_map(|(a, b)| Op::Exchange(a, b)),
        (n.clone(), n.clone()).prop_map(|(a, b)| Op::Link(a, b)),
        (n.clone(), n.clone()).prop_map(|(a, b)| Op::Symlink(a, b)),
        (
            n.clone(),
            prop_oneof![Just(0o600u32), Just(0o755), Just(0o4711)]
        )
            .prop_map(|(a, b)| Op::Chmod(a, b)),
        (n, any::<u8>()).prop_map(|(a, b)| Op::SetXattr(a, b)),
    ]
}

fn errno<T>(r: std::io::Result<T>) -> Result<(), i32> {
    r.map(drop).map_err(|e| e.raw_os_error().unwrap_or(-1))
}

fn apply(root: &Path, op: &Op) -> Result<(), i32> {
    let p = |i: usize| root.join(NAMES[i]);
    match *op {
        Op::Create(i) => errno(
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(p(i)),
        ),
        Op::Write(i, b) => errno(
            fs::OpenOptions::new()
                .write(true)
                .open(p(i))
                .and_then(|mut f| f.write_all(&[b; 3000])),
        ),
        Op::Append(i) => errno(
            fs::OpenOptions::new()
                .append(true)
                .open(p(i))
                .and_then(|mut f| f.write_all(b"tail")),
        ),
        Op::Truncate(i, len) => errno(
            fs::OpenOptions::new()
                .write(true)
                .open(p(i))
                .and_then(|f| f.set_len(len)),
        ),
        Op::Unlink(i) => errno(fs::remove_file(p(i))),
        Op::Mkdir(i) => errno(fs::create_dir(p(i))),
        Op::Rmdir(i) => errno(fs::remove_dir(p(i))),
        Op::Rename(a, b) => errno(fs::rename(p(a), p(b))),
        Op::Exchange(a, b) => errno(exchange(&p(a), &p(b))),
        Op::Link(a, b) => errno(fs::hard_link(p(a), p(b))),
        Op::Symlink(a, b) => errno(std::os::unix::fs::symlink(NAMES[a], p(b))),
        Op::Chmod(i, m) => errno(fs::set_permissions(p(i), fs::Permissions::from_mode(m))),
        Op::SetXattr(i, v) => {
            let st = Command::new("setfattr")
                .args(["-h", "-n", "user.t", "-v", &v.to_string()])
                .arg(p(i))
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            if st.success() {
                Ok(())
            } else {
                Err(-2)
            }
        }
    }
}

/// `renameat2(a, b, RENAME_EXCHANGE)`.
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let (a, b) = (c(a), c(b));
    // SAFETY: two valid C strings.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The same starting layers for both mounts.
fn populate(f: &Fixture) {
    let (l0, l1) = (f.lower(0), f.lower(1));
    let w = |p: PathBuf, s: &str| {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, s).unwrap();
    };
    w(l1.join("a"), "lower a");
    w(l0.join("b"), "top b");
    w(l1.join("b"), "bottom b");
    w(l1.join("d/a"), "d/a");
    w(l0.join("d/e/f"), "d/e/f");
    w(l1.join("o/a"), "hidden by opaque");
    fs::create_dir_all(l0.join("o")).unwrap();
    common::sh(&format!(
        "setfattr -n trusted.overlay.opaque -v y {}/o",
        l0.display()
    ));
    w(l1.join("w"), "whited out");
    common::sh(&format!("mknod {}/w c 0 0", l0.display()));
}

/// A comparable description of a tree: path -> kind/mode/content.
fn snapshot(root: &Path, upper: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, upper, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, upper: bool, out: &mut BTreeMap<String, String>) {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        let m = fs::symlink_metadata(&path).unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if upper && name == ".wh..wh..opq" {
            out.insert(
                format!("{}/<opaque>", dir.strip_prefix(root).unwrap().display()),
                String::new(),
            );
            continue;
        }
        if upper && (name.starts_with(".wh.") || (m.file_type().is_char_device() && m.rdev() == 0))
        {
            let n = name.strip_prefix(".wh.").unwrap_or(&name);
            let r = path.with_file_name(n);
            out.insert(
                format!("{} <whiteout>", r.strip_prefix(root).unwrap().display()),
                String::new(),
            );
            continue;
        }
        let desc = if m.is_dir() {
            if upper && is_opaque(&path) {
                out.insert(format!("{rel}/<opaque>"), String::new());
            }
            walk(root, &path, upper, out);
            format!("dir {:o}", m.mode() & 0o7777)
        } else if m.file_type().is_symlink() {
            format!("link {}", fs::read_link(&path).unwrap().display())
        } else {
            format!(
                "file {:o} nlink={} {:?}",
                m.mode() & 0o7777,
                m.nlink(),
                fs::read(&path).unwrap()
            )
        };
        out.insert(rel, desc);
    }
}

fn is_opaque(p: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|x| {
            Command::new("getfattr")
                .args(["--only-values", "-n", x])
                .arg(p)
                .stderr(std::process::Stdio::null())
                .output()
                .is_ok_and(|o| o.stdout == b"y")
        })
}

fn kernel_overlay_works() -> bool {
    let f = Fixture::new(1);
    let st = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "{},redirect_dir=off,index=off,metacopy=off",
            f.options()
        ))
        .arg(&f.mnt)
        .stderr(std::process::Stdio::null())
        .status();
    let ok = st.is_ok_and(|s| s.success());
    if ok {
        let _ = Command::new("umount").arg(&f.mnt).status();
    }
    ok
}

fn run_case(ops: &[Op]) -> Result<(), TestCaseError> {
    let k = Fixture::new(2);
    let b = Fixture::new(2);
    populate(&k);
    populate(&b);
    let _gk = UnmountGuard(k.mnt.clone());
    let _gb = UnmountGuard(b.mnt.clone());
    let st = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "{},redirect_dir=off,index=off,metacopy=off",
            k.options()
        ))
        .arg(&k.mnt)
        .status()
        .unwrap();
    prop_assert!(st.success());
    let st = Command::new(BIN)
        .args(["-o", &b.options()])
        .arg(&b.mnt)
        .status()
        .unwrap();
    prop_assert!(st.success());
    for (i, op) in ops.iter().enumerate() {
        let rk = apply(&k.mnt, op);
        let rb = apply(&b.mnt, op);
        prop_assert_eq!(rk, rb, "op #{} {:?} differs", i, op);
    }
    let merged_k = snapshot(&k.mnt, false);
    let merged_b = snapshot(&b.mnt, false);
    let _ = Command::new("umount").arg(&k.mnt).status();
    let _ = Command::new("umount").arg(&b.mnt).status();
    prop_assert_eq!(merged_k, merged_b, "merged trees differ");
    let upper_k = snapshot(&k.upper, true);
    let upper_b = snapshot(&b.upper, true);
    prop_assert_eq!(upper_k, upper_b, "upper layers differ");
    Ok(())
}

#[test]
fn matches_kernel_overlayfs() {
    if !is_root() || !kernel_overlay_works() {
        eprintln!("skipped: kernel overlayfs is not available here (needs root)");
        return;
    }
    let cases = std::env::var("BERTH_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&proptest::collection::vec(op(), 1..30), |ops| {
        run_case(&ops)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
