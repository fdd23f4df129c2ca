//! `cargo xtask`: berth's project tooling, in Rust so it runs the same on
//! every machine.
//!
//! - `cargo xtask test`: installs what the suites need (when root), builds the
//!   binaries, then runs every unit test and the end-to-end suites, as root and
//!   (through the `berthtest` user it creates) as an unprivileged user.
//! - `cargo xtask bench [images|unionfs|run]`: side-by-side benchmarks against
//!   the peers (Docker, podman, fuse-overlayfs) that are installed.
//! - `cargo xtask fuzz [--seconds N]`: every cargo-fuzz target for N seconds.
//! - `cargo xtask fixtures DIR`: a busybox rootfs tarball for trying berth out.
//! - `cargo xtask demo`: builds berth, makes a busybox image and runs a
//!   container from it.

mod bench_images;
mod bench_run;
mod bench_unionfs;
mod env;
mod fuzz;
mod measure;
mod scratch;

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "berth project tooling")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the whole test suite (unit, end-to-end, root and rootless).
    Test {
        /// Only run tests whose name contains this filter.
        filter: Option<String>,
        /// Skip installing packages and creating the test user.
        #[arg(long)]
        no_setup: bool,
    },
    /// Benchmarks side by side with the installed peers.
    Bench {
        /// Which suite: images, unionfs, run (default: all).
        suite: Option<String>,
        /// Smaller workloads, for a quick look.
        #[arg(long)]
        quick: bool,
        /// unionfs: run the FUSE daemons and the workloads as an
        /// unprivileged user (no passthrough, fusermount3).
        #[arg(long)]
        rootless: bool,
    },
    /// Run every fuzz target for a while.
    Fuzz {
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
    /// Write a busybox rootfs tarball to DIR/busybox.tar.
    Fixtures { dir: PathBuf },
    /// Build berth, make a busybox image locally, and run a container from it.
    Demo,
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Test { filter, no_setup } => test(filter.as_deref(), no_setup),
        Cmd::Bench {
            suite,
            quick,
            rootless,
        } => bench(suite.as_deref(), quick, rootless),
        Cmd::Fuzz { seconds } => fuzz::run(seconds),
        Cmd::Fixtures { dir } => {
            std::fs::create_dir_all(&dir)?;
            let tar = berth_e2e::busybox_tarball(&dir);
            println!("{}", tar.display());
            Ok(())
        }
        Cmd::Demo => demo(),
    }
}

fn test(filter: Option<&str>, no_setup: bool) -> Result<()> {
    let started = std::time::Instant::now();
    if !no_setup {
        env::install_packages(env::TEST_PACKAGES)?;
        env::prepare_rootless()?;
    }
    let user = env::test_user();
    let mut cargo = env::cargo();
    cargo.args(["build", "--workspace", "--bins"]);
    env::run(&mut cargo)?;
    // The criterion benches are not tests, but they must keep compiling.
    let mut cargo = env::cargo();
    cargo.args(["check", "--workspace", "--benches"]);
    env::run(&mut cargo)?;

    let mut cargo = env::cargo();
    cargo.args(["test", "--workspace", "--no-fail-fast"]);
    if let Some(f) = filter {
        cargo.args(["--", f]);
    }
    cargo.env("BERTH_BIN_DIR", env::target_dir().join("debug"));
    if let Some((uid, gid)) = user {
        cargo.env("BERTH_TEST_UID", uid.to_string());
        cargo.env("BERTH_TEST_GID", gid.to_string());
    } else {
        eprintln!("xtask: no unprivileged test user: rootless suites will report skipped");
    }
    env::run(&mut cargo)?;
    eprintln!("xtask: all suites passed in {:.0?}", started.elapsed());
    Ok(())
}

fn bench(suite: Option<&str>, quick: bool, rootless: bool) -> Result<()> {
    let all = suite.is_none();
    let mut ran = false;
    if all || suite == Some("images") {
        bench_images::run(quick)?;
        ran = true;
    }
    if all || suite == Some("unionfs") {
        bench_unionfs::run(quick, rootless)?;
        ran = true;
    }
    if all || suite == Some("run") {
        bench_run::run(quick)?;
        ran = true;
    }
    if !ran {
        bail!(
            "unknown benchmark suite {:?} (images, unionfs, run)",
            suite.unwrap_or("")
        );
    }
    Ok(())
}

fn demo() -> Result<()> {
    env::install_packages(&["busybox-static"])?;
    let mut cargo = env::cargo();
    cargo.args(["build", "--release", "-p", "berth-cli"]);
    env::run(&mut cargo)?;
    let berth = env::target_dir().join("release/berth");
    let work = env::target_dir().join("demo");
    std::fs::create_dir_all(&work)?;
    let tar = berth_e2e::busybox_tarball(&work);
    let root = work.join("root");
    let berth = |args: &[&str]| -> Result<()> {
        println!("$ berth {}", args.join(" "));
        let mut cmd = std::process::Command::new(&berth);
        cmd.args(args).env("BERTH_ROOT", &root);
        env::run(&mut cmd)
    };
    let tar = tar.to_string_lossy();
    berth(&["import", "-c", "CMD [\"/bin/sh\"]", &tar, "busybox:demo"])?;
    berth(&["images"])?;
    berth(&[
        "inspect",
        "-f",
        "{{.Id}} {{.Os}}/{{.Architecture}} layers={{len .RootFS.Layers}}",
        "busybox:demo",
    ])?;
    berth(&["history", "busybox:demo"])?;
    berth(&[
        "run",
        "--rm",
        "busybox:demo",
        "sh",
        "-c",
        "echo hello from a berth container: pid $$, host $(hostname); id",
    ])?;
    // A detached container: its monitor keeps it, the CLI comes back.
    berth(&[
        "run",
        "-d",
        "--name",
        "demo",
        "busybox:demo",
        "sh",
        "-c",
        "trap 'echo bye; exit 0' TERM; echo up; while :; do sleep 0.1; done",
    ])?;
    berth(&["ps"])?;
    berth(&["exec", "demo", "ps", "-o", "pid,comm"])?;
    berth(&["stop", "demo"])?;
    berth(&["logs", "demo"])?;
    berth(&["ps", "-a"])?;
    berth(&["rm", "demo"])?;
    Ok(())
}
