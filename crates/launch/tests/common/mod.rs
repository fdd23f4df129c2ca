//! Helpers for the container tests: a busybox rootfs, Docker-like specs,
//! and running a container while capturing its output.

#![allow(dead_code)]

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use berth_launch::{spawn, Container, ExitStatus, LaunchOptions, Stdio};
use oci_spec::runtime::{
    LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespace, LinuxNamespaceBuilder,
    LinuxNamespaceType, ProcessBuilder, Spec, UserBuilder,
};

const APPLETS: &[&str] = &[
    "sh", "echo", "ps", "cat", "id", "hostname", "sleep", "ls", "grep", "wc", "dd", "true",
    "mount", "head", "pwd", "env", "stat", "touch", "readlink",
];

/// A root filesystem of busybox applets in a fresh temporary directory
/// anyone can read (rootless tests run as another user).
pub fn busybox_rootfs() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("berth-launch-")
        .tempdir()
        .unwrap();
    let root = dir.path();
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "root"] {
        std::fs::create_dir(root.join(d)).unwrap();
    }
    // A hard link, not a copy: a copy's write fd, inherited by a container
    // another test thread is forking, makes exec fail with ETXTBSY.
    if std::fs::hard_link(busybox(), root.join("bin/busybox")).is_err() {
        std::fs::copy(busybox(), root.join("bin/busybox")).unwrap();
    }
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    std::fs::write(root.join("notexec"), "#!/bin/sh\necho no\n").unwrap();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

fn busybox() -> PathBuf {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("busybox-static is installed (apt-get install busybox-static)")
}

fn ns(typ: LinuxNamespaceType) -> LinuxNamespace {
    LinuxNamespaceBuilder::default().typ(typ).build().unwrap()
}

/// A spec like Docker's for `args`: all namespaces but user, default caps,
/// masked and read-only paths, hostname `berth-test`.
pub fn spec(args: &[&str]) -> Spec {
    let caps = berth_launch::default_capabilities();
    let process = ProcessBuilder::default()
        .args(args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .env(vec!["PATH=/bin".to_string(), "HOME=/root".to_string()])
        .cwd("/")
        .user(UserBuilder::default().uid(0u32).gid(0u32).build().unwrap())
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(caps.clone())
                .effective(caps.clone())
                .permitted(caps.clone())
                .build()
                .unwrap(),
        )
        .no_new_privileges(true)
        .build()
        .unwrap();
    use LinuxNamespaceType::*;
    let linux = LinuxBuilder::default()
        .namespaces([Pid, Network, Ipc, Uts, Mount, Cgroup].map(ns).to_vec())
        .masked_paths(berth_launch::default_masked_paths())
        .readonly_paths(berth_launch::default_readonly_paths())
        .build()
        .unwrap();
    let mut spec = Spec::default();
    spec.set_process(Some(process));
    spec.set_linux(Some(linux));
    spec.set_hostname(Some("berth-test".into()));
    spec.set_mounts(Some(berth_launch::default_mounts()));
    spec
}

pub fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap()
}

/// What a finished container printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Starts a container with stdout and stderr captured; returns it with the
/// read ends.
pub fn start(
    spec: &Spec,
    rootfs: &Path,
    mut opts: LaunchOptions,
) -> berth_launch::Result<(Container, OwnedFd, OwnedFd)> {
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    opts.stdio = Stdio::Fds {
        stdin: None,
        stdout: Some(out_w),
        stderr: Some(err_w),
    };
    let c = spawn(spec, rootfs, &opts)?;
    // Drop our write ends so reads see EOF when the container is done.
    drop(opts);
    Ok((c, out_r, err_r))
}

pub fn read_all(fd: OwnedFd) -> String {
    let mut s = String::new();
    std::fs::File::from(fd).read_to_string(&mut s).unwrap();
    s
}

/// Runs a container to completion.
pub fn run(spec: &Spec, rootfs: &Path, opts: LaunchOptions) -> berth_launch::Result<Output> {
    let (mut c, out, err) = start(spec, rootfs, opts)?;
    let stderr_thread = std::thread::spawn(move || read_all(err));
    let stdout = read_all(out);
    let status = c.wait()?;
    Ok(Output {
        status,
        stdout,
        stderr: stderr_thread.join().unwrap(),
    })
}

pub fn sh(script: &str) -> Spec {
    spec(&["sh", "-c", script])
}

/// Whether cgroup v1 memory/pids hierarchies (or v2) are writable here.
pub fn cgroups_writable() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A cgroup path unique to one test.
pub fn cgroup_path(test: &str) -> PathBuf {
    PathBuf::from(format!("berth-test-{test}-{}", std::process::id()))
}
