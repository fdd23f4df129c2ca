//! The machine side of xtask: packages, the unprivileged test user, cargo,
//! and the busybox fixture.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Debian packages the test suites use.
pub const TEST_PACKAGES: &[&str] = &[
    "busybox-static",
    "fuse3",
    "uidmap",
    "skopeo",
    "attr",
    "tar",
    "procps",
    "util-linux",
    "bsdutils",
];

/// The unprivileged user the rootless suites run as.
pub const TEST_USER: &str = "berthtest";

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Runs a command with inherited stdio and fails on a non-zero exit.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Installs the missing packages with apt-get when root; otherwise says
/// which are missing and goes on (the suites skip what they cannot do).
pub fn install_packages(pkgs: &[&str]) -> Result<()> {
    let missing: Vec<&str> = pkgs
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        eprintln!(
            "xtask: not root, cannot install {}: some tests will skip",
            missing.join(" ")
        );
        return Ok(());
    }
    eprintln!("xtask: apt-get install {}", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Creates the unprivileged test user with a subordinate id range, and
/// opens /dev/fuse to users as distributions ship it.
pub fn prepare_rootless() -> Result<()> {
    if !is_root() {
        return Ok(());
    }
    if test_user().is_none() {
        run(Command::new("useradd").args(["-m", "-s", "/bin/sh", TEST_USER]))?;
    }
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if !text
            .lines()
            .any(|l| l.starts_with(&format!("{TEST_USER}:")))
        {
            let line = format!("{TEST_USER}:100000:65536\n");
            std::fs::write(file, text + &line).with_context(|| format!("writing {file}"))?;
        }
    }
    if Path::new("/dev/fuse").exists() {
        run(Command::new("chmod").args(["0666", "/dev/fuse"]))?;
    }
    Ok(())
}

/// The test user's uid and gid, when it exists.
pub fn test_user() -> Option<(u32, u32)> {
    let out = Command::new("id").args(["-u", TEST_USER]).output().ok()?;
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    let out = Command::new("id").args(["-g", TEST_USER]).output().ok()?;
    let gid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some((uid, gid))
}
