//! `info` and `system df`.

use std::path::PathBuf;

use crate::error::Result;
use crate::Engine;

/// What `info` reports.
#[derive(Debug, Clone)]
pub struct Info {
    pub root: PathBuf,
    pub driver: String,
    pub rootless: bool,
    pub images: usize,
    pub layers: usize,
    pub containers: usize,
    pub kernel: String,
    pub os: String,
    pub arch: &'static str,
    pub cpus: usize,
    pub memory: u64,
}

/// One line of `system df`.
#[derive(Debug, Clone, Default)]
pub struct DiskUsage {
    pub total: usize,
    pub active: usize,
    pub size: u64,
    pub reclaimable: u64,
}

impl Engine {
    pub fn info(&self) -> Result<Info> {
        let uname = rustix::system::uname();
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| "Linux".into());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 1024;
        Ok(Info {
            root: self.store.root().to_path_buf(),
            driver: self.driver().to_string(),
            rootless: self.rootless,
            images: self.store.images()?.len(),
            layers: self.store.layers()?.len(),
            containers: 0,
            kernel: uname.release().to_string_lossy().into_owned(),
            os,
            arch: crate::images::go_arch(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory,
        })
    }

    /// `system df`: images (containers, volumes and build cache come with
    /// their issues and report zero until then).
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let images = self.image_summaries()?;
        Ok(DiskUsage {
            total: images.len(),
            active: 0,
            size: self.store_layer_bytes()?,
            reclaimable: self.store_layer_bytes()?,
        })
    }
}
