//! Times `spawn` + `wait` of `/bin/true` and `exec` into a running
//! container, on a busybox rootfs. Prints medians.
//!
//! `cargo run --release -p berth-launch --example spawn_bench [rootless]`
//! (run it as the unprivileged user for the rootless numbers).

use std::path::Path;
use std::time::{Duration, Instant};

use berth_launch::{exec, spawn, ExecOptions, LaunchOptions};
use oci_spec::runtime::{LinuxNamespaceBuilder, LinuxNamespaceType, ProcessBuilder, Spec};

fn rootfs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    for d in ["bin", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir(dir.path().join(d)).expect("mkdir");
    }
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox-static installed");
    for a in ["true", "sleep"] {
        std::os::unix::fs::symlink("busybox", bin.join(a)).expect("symlink");
    }
    dir
}

fn spec(args: &[&str]) -> Spec {
    let mut spec = Spec::default();
    let caps = berth_launch::default_capabilities();
    let mut process = ProcessBuilder::default()
        .args(args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .env(vec!["PATH=/bin".to_string()])
        .build()
        .expect("process");
    let mut c = process.capabilities().clone().expect("default caps");
    c.set_bounding(Some(caps.clone()));
    c.set_effective(Some(caps.clone()));
    c.set_permitted(Some(caps));
    process.set_capabilities(Some(c));
    spec.set_process(Some(process));
    spec.set_mounts(Some(berth_launch::default_mounts()));
    let linux = spec.linux_mut().as_mut().expect("linux");
    use LinuxNamespaceType::*;
    let ns = [Pid, Network, Ipc, Uts, Mount, Cgroup]
        .map(|t| LinuxNamespaceBuilder::default().typ(t).build().expect("ns"));
    linux.set_namespaces(Some(ns.to_vec()));
    linux.set_masked_paths(Some(berth_launch::default_masked_paths()));
    linux.set_readonly_paths(Some(berth_launch::default_readonly_paths()));
    spec
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rootless = std::env::args().any(|a| a == "rootless");
    let root = rootfs();
    let opts = || LaunchOptions {
        rootless,
        ..Default::default()
    };
    let run_true = |root: &Path| {
        let t = Instant::now();
        let mut c = spawn(&spec(&["true"]), root, &opts()).expect("spawn");
        c.wait().expect("wait");
        t.elapsed()
    };
    let runs: Vec<_> = (0..50).map(|_| run_true(root.path())).collect();
    println!("spawn+wait /bin/true: median {:?}", median(runs));

    let mut c = spawn(&spec(&["sleep", "60"]), root.path(), &opts()).expect("spawn");
    let p = spec(&["true"]).process().clone().expect("process");
    let execs: Vec<_> = (0..50)
        .map(|_| {
            let t = Instant::now();
            let mut e = exec(c.pid(), &p, &ExecOptions::default()).expect("exec");
            e.wait().expect("wait");
            t.elapsed()
        })
        .collect();
    println!("exec+wait /bin/true: median {:?}", median(execs));
    c.kill(libc::SIGKILL).expect("kill");
    c.wait().expect("wait");
}
