//! `cargo xtask bench images`: import, save and load of a real ~200 MB root
//! filesystem with berth and, when its daemon answers, Docker, side by side;
//! then `images` and `inspect` latency with 100 images in the store.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::env;
use crate::measure::{fmt_time, median, median_of, quiet, timed, Table};

pub fn run(quick: bool) -> Result<()> {
    let mut cargo = env::cargo();
    cargo.args(["build", "--release", "-p", "berth-cli"]);
    env::run(&mut cargo)?;
    let berth = env::target_dir().join("release/berth");
    let work = env::target_dir().join("bench-images");
    std::fs::create_dir_all(&work)?;
    let tarball = rootfs_tarball(&work, quick)?;
    let mb = std::fs::metadata(&tarball)?.len() as f64 / 1e6;
    let rounds = if quick { 1 } else { 3 };

    let root = work.join("root");
    let berth_cmd = |args: &[&str]| {
        let mut c = Command::new(&berth);
        c.args(args).env("BERTH_ROOT", &root);
        c
    };
    let tar = tarball.to_string_lossy().into_owned();
    let saved = work.join("saved.tar").to_string_lossy().into_owned();
    let berth_times = measure_round_trip(rounds, &berth_cmd, &tar, &saved)?;

    // A running daemon is used as it is; otherwise one of our own, on a
    // data root under the bench dir (same disk as berth's), stopped after.
    let client = Some(Path::new("/usr/bin/docker"))
        .filter(|p| p.exists())
        .unwrap_or(Path::new("docker"));
    let mut dockerd = None;
    let mut docker_global: Vec<String> = Vec::new();
    if !docker_available() && Command::new("dockerd").arg("--version").output().is_ok() {
        match crate::bench_run::tools::Dockerd::start(&work.join("docker"), client) {
            Ok(d) => {
                docker_global = vec!["-H".into(), d.host()];
                dockerd = Some(d);
            }
            Err(e) => eprintln!("bench: could not start dockerd: {e:#}"),
        }
    }
    let docker_times = if docker_available() || dockerd.is_some() {
        let docker_cmd = |args: &[&str]| {
            let mut c = Command::new(client);
            c.args(&docker_global).args(args);
            c
        };
        let times = measure_round_trip(rounds, &docker_cmd, &tar, &saved);
        let _ = quiet(docker_cmd(&["rmi", "-f", "bench/rootfs:latest"]));
        Some(times)
    } else {
        eprintln!("bench: docker daemon not reachable: berth column only");
        None
    };
    if let Some(d) = dockerd {
        d.stop();
    }
    let docker_times = docker_times.transpose()?;

    println!("\nimages: {mb:.0} MB root filesystem, median of {rounds}\n");
    let mut table = Table::new([
        "operation",
        "berth",
        "berth MB/s",
        "docker",
        "docker MB/s",
        "speed-up",
    ]);
    for (i, op) in ["import", "save", "load"].iter().enumerate() {
        let b = berth_times[i].as_secs_f64();
        let mut row = vec![op.to_string(), fmt_time(b), format!("{:.0}", mb / b)];
        match &docker_times {
            Some(t) => {
                let d = t[i].as_secs_f64();
                row.push(fmt_time(d));
                row.push(format!("{:.0}", mb / d));
                row.push(format!("{:.1}x", d / b));
            }
            None => row.extend(["-".into(), "-".into(), "-".into()]),
        }
        table.row(row);
    }
    print!("{}", table.render());

    // Latency of the read-only commands with 100 images present.
    let small = berth_e2e::busybox_tarball(&work);
    let small = small.to_string_lossy().into_owned();
    for i in 0..100 {
        let msg = format!("image {i}");
        let name = format!("bench/many:{i}");
        quiet(berth_cmd(&["import", "-m", &msg, &small, &name]))?;
    }
    let images = median_of(21, || quiet(berth_cmd(&["images"])))?;
    let inspect = median_of(21, || quiet(berth_cmd(&["inspect", "bench/many:50"])))?;
    let mut table = Table::new(["command (100 images)", "berth median"]);
    table.row(["images".to_string(), fmt_time(images.as_secs_f64())]);
    table.row(["inspect".to_string(), fmt_time(inspect.as_secs_f64())]);
    print!("\n{}", table.render());
    Ok(())
}

/// import, save, load medians for one engine.
fn measure_round_trip(
    rounds: usize,
    engine: &dyn Fn(&[&str]) -> Command,
    tar: &str,
    saved: &str,
) -> Result<[Duration; 3]> {
    let mut import = Vec::new();
    let mut save = Vec::new();
    let mut load = Vec::new();
    // Neither engine syncs: without a sync between steps, one step (or
    // engine) would pay for the writeback of the one before.
    let settle = || quiet(Command::new("sync"));
    for _ in 0..rounds {
        let _ = quiet(engine(&["rmi", "-f", "bench/rootfs:latest"]));
        settle()?;
        import.push(timed(|| {
            quiet(engine(&["import", tar, "bench/rootfs:latest"]))
        })?);
        settle()?;
        save.push(timed(|| {
            quiet(engine(&["save", "-o", saved, "bench/rootfs:latest"]))
        })?);
        quiet(engine(&["rmi", "bench/rootfs:latest"]))?;
        settle()?;
        load.push(timed(|| quiet(engine(&["load", "-i", saved])))?);
    }
    let m = |v| median(v).expect("rounds > 0");
    Ok([m(import), m(save), m(load)])
}

fn docker_available() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A Debian minbase made with debootstrap (cached), or a generated tree of
/// about 7k files when debootstrap cannot run.
fn rootfs_tarball(work: &Path, quick: bool) -> Result<PathBuf> {
    let tar = work.join(if quick {
        "generated.tar"
    } else {
        "minbase.tar"
    });
    if tar.exists() {
        return Ok(tar);
    }
    let dir = work.join(if quick { "generated" } else { "minbase" });
    let _ = std::fs::remove_dir_all(&dir);
    let bootstrapped = !quick && env::is_root() && {
        env::install_packages(&["debootstrap"])?;
        Command::new("debootstrap")
            .args(["--variant=minbase", "bookworm"])
            .arg(&dir)
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !bootstrapped {
        eprintln!("bench: debootstrap unavailable, generating a tree of 7k files");
        let _ = std::fs::remove_dir_all(&dir);
        generate_tree(&dir, if quick { 1_000 } else { 7_000 })?;
    }
    env::run(
        Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .args(["--numeric-owner", "-cf"])
            .arg(&tar)
            .arg("."),
    )
    .context("tarring the benchmark rootfs")?;
    Ok(tar)
}

fn generate_tree(dir: &Path, files: usize) -> Result<()> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..files {
        let sub = dir.join(format!("d{:03}", i % 300));
        std::fs::create_dir_all(&sub)?;
        // Sizes spread like a distribution's files: mostly small, some large.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let size = match seed % 100 {
            0..=59 => seed % 4_096,
            60..=94 => seed % 65_536,
            _ => seed % 1_048_576,
        } as usize;
        let byte = (seed >> 56) as u8;
        std::fs::write(sub.join(format!("f{i}")), vec![byte; size])?;
    }
    Ok(())
}
