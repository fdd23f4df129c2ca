//! `cargo xtask fuzz [--seconds N]`: runs every cargo-fuzz target in `fuzz/`
//! for N seconds, starting from the committed seeds in `fuzz/seeds/<target>/`.
//! A crash stops the run; libFuzzer leaves the input in
//! `fuzz/artifacts/<target>/`, and it becomes a regression test.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Every target in fuzz/Cargo.toml, in the order they run.
pub const TARGETS: [&str; 4] = ["whiteout_name", "reference", "tar_reader", "apply_layer"];

/// Runs every fuzz target for `seconds` seconds each.
pub fn run(seconds: u64) -> Result<()> {
    let root = workspace_root()?;
    ensure_cargo_fuzz()?;
    for target in TARGETS {
        let corpus = root.join("fuzz/corpus").join(target);
        seed_corpus(&root.join("fuzz/seeds").join(target), &corpus)?;
        eprintln!("fuzz: {target} for {seconds}s");
        let status = Command::new(cargo())
            .current_dir(&root)
            // cargo-fuzz passes nightly-only flags (-Zsanitizer); stable
            // compilers accept them with this.
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", target])
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .status()
            .with_context(|| format!("running cargo fuzz run {target}"))?;
        if !status.success() {
            bail!(
                "fuzz target {target} failed ({status}); the crashing input is in fuzz/artifacts/{target}/"
            );
        }
    }
    Ok(())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

fn workspace_root() -> Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .context("xtask has no parent directory")
}

fn ensure_cargo_fuzz() -> Result<()> {
    let installed = Command::new(cargo())
        .args(["fuzz", "--version"])
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    if installed {
        return Ok(());
    }
    eprintln!("fuzz: installing cargo-fuzz");
    let status = Command::new(cargo())
        .args(["install", "cargo-fuzz"])
        .status()
        .context("running cargo install cargo-fuzz")?;
    if !status.success() {
        bail!("cargo install cargo-fuzz failed ({status})");
    }
    Ok(())
}

/// Copies the committed seeds into the (uncommitted, growing) corpus.
fn seed_corpus(seeds: &Path, corpus: &Path) -> Result<()> {
    fs::create_dir_all(corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let entries = match fs::read_dir(seeds) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", seeds.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", seeds.display()))?;
        let to = corpus.join(entry.file_name());
        fs::copy(entry.path(), &to).with_context(|| format!("copying seed to {}", to.display()))?;
    }
    Ok(())
}
