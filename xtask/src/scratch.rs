//! A fresh ext4 for a benchmark's files.
//!
//! On a long-used disk, ext4's inode allocator skips inodes freed in the
//! last minutes; after the mass deletions of earlier runs, a mkdir plus a
//! create took 500-790 us on this machine's disk against 73 us on a fresh
//! ext4, and a kernel overlayfs create of 10k files anything from 0.5 to
//! 7 s. A benchmark that makes and removes many files (containers, layers)
//! measures that history unless it gets a filesystem of its own.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// A fresh ext4 on a loop device (direct I/O, so pages are not cached
/// twice) mounted at `dir`; unmounted and deleted on drop.
pub struct Scratch {
    pub dir: PathBuf,
    image: PathBuf,
    loopdev: Option<String>,
}

impl Scratch {
    /// Makes a sparse image at `image` and mounts it at `dir` (created if
    /// missing), or says why not: the caller then uses the host's disk.
    /// Needs root.
    pub fn make(dir: &Path, image: &Path) -> Result<Scratch> {
        fs::create_dir_all(dir)?;
        if is_mounted(dir) {
            let _ = Command::new("umount").arg(dir).status();
        }
        let _ = fs::remove_file(image);
        let mut s = Scratch {
            dir: dir.to_path_buf(),
            image: image.to_path_buf(),
            loopdev: None,
        };
        // Sparse: only what the run writes takes space.
        fs::File::create(&s.image)?.set_len(40 << 30)?;
        // Inode tables and journal written now, not by a background thread
        // during the measurements.
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"])
            .arg(&s.image))?;
        let out = Command::new("losetup")
            .args(["--find", "--show", "--direct-io=on"])
            .arg(&s.image)
            .output()
            .context("losetup")?;
        if !out.status.success() {
            bail!("losetup: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        s.loopdev = Some(dev.clone());
        run(Command::new("mount").arg(&dev).arg(&s.dir))?;
        Ok(s)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if is_mounted(&self.dir) {
            let _ = Command::new("umount").arg(&self.dir).status();
        }
        if let Some(dev) = &self.loopdev {
            let _ = Command::new("losetup").arg("-d").arg(dev).status();
        }
        let _ = fs::remove_file(&self.image);
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn is_mounted(p: &Path) -> bool {
    berth_snapshot::is_mount_point(p)
}
