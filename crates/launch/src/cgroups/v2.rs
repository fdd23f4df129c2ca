//! cgroup v2: one directory in the unified hierarchy.

use std::path::{Path, PathBuf};

use super::{keyed, mkdir, parse_pids, read, read_u64, rmdir, wait_until, write};
use super::{Cgroup, CgroupConfig, Resources, Stats, Version};
use crate::error::Result;

const CONTROLLERS: [&str; 5] = ["cpu", "cpuset", "io", "memory", "pids"];

/// Where groups are created: the hierarchy root for root; for an ordinary
/// user, the user's own cgroup (writable only when systemd delegated it).
pub(crate) fn delegation_base(root: &Path) -> Result<PathBuf> {
    if nix::unistd::geteuid().is_root() {
        return Ok(root.to_path_buf());
    }
    let own = read(Path::new("/proc/self/cgroup"))?;
    let rel = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/")
        .trim_start_matches('/');
    Ok(root.join(rel))
}

/// A group in the unified hierarchy.
#[derive(Debug)]
pub struct CgroupV2 {
    dir: PathBuf,
}

/// v1 cpu shares (2..262144) to a v2 cpu weight (1..10000), as runc does.
fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// v1 blkio weight (10..1000) to a v2 io weight (1..10000).
fn blkio_to_io_weight(w: u16) -> u64 {
    1 + (u64::from(w.clamp(10, 1000)) - 10) * 9999 / 990
}

impl CgroupV2 {
    /// The group `rel` under `base`, without touching the filesystem.
    pub fn open(base: &Path, rel: &Path) -> Self {
        CgroupV2 {
            dir: base.join(rel.strip_prefix("/").unwrap_or(rel)),
        }
    }

    /// Creates the group, enabling the controllers on the way down (a v2
    /// controller is only usable in a group whose parent delegates it).
    pub fn create(base: &Path, config: &CgroupConfig) -> Result<Self> {
        let cg = Self::open(base, &config.path);
        let rel = cg.dir.strip_prefix(base).unwrap_or(&cg.dir).to_path_buf();
        let mut cur = base.to_path_buf();
        for part in rel.components() {
            enable_controllers(&cur);
            cur.push(part);
            mkdir(&cur)?;
        }
        if let Err(e) = cg.apply(&config.resources) {
            let _ = cg.destroy();
            return Err(e);
        }
        Ok(cg)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Best effort: a controller the parent lacks just stays off, and setting
/// one of its limits fails later with a clear error.
fn enable_controllers(dir: &Path) {
    let available = read(&dir.join("cgroup.controllers")).unwrap_or_default();
    for c in CONTROLLERS {
        if available.split_whitespace().any(|a| a == c) {
            if let Err(e) = write(&dir.join("cgroup.subtree_control"), &format!("+{c}")) {
                log::debug!("enable {c}: {e}");
            }
        }
    }
}

impl Cgroup for CgroupV2 {
    fn version(&self) -> Version {
        Version::V2
    }

    fn apply(&self, r: &Resources) -> Result<()> {
        if let Some(m) = r.memory {
            let v = if m > 0 { m.to_string() } else { "max".into() };
            write(&self.file("memory.max"), &v)?;
        }
        if let Some(s) = r.memory_swap {
            // v1 counts memory+swap, v2 swap alone.
            let v = match (s, r.memory) {
                (s, _) if s < 0 => "max".to_string(),
                (s, Some(m)) if m > 0 => (s - m).max(0).to_string(),
                (s, _) => s.to_string(),
            };
            write(&self.file("memory.swap.max"), &v)?;
        }
        if let Some(s) = r.cpu_shares {
            write(&self.file("cpu.weight"), &shares_to_weight(s).to_string())?;
        }
        if r.cpu_quota.is_some() || r.cpu_period.is_some() {
            let quota = match r.cpu_quota {
                Some(q) if q > 0 => q.to_string(),
                _ => "max".into(),
            };
            let period = r.cpu_period.unwrap_or(100_000);
            write(&self.file("cpu.max"), &format!("{quota} {period}"))?;
        }
        if let Some(v) = &r.cpuset_cpus {
            write(&self.file("cpuset.cpus"), v)?;
        }
        if let Some(v) = &r.cpuset_mems {
            write(&self.file("cpuset.mems"), v)?;
        }
        if let Some(v) = r.pids_limit {
            let v = if v > 0 { v.to_string() } else { "max".into() };
            write(&self.file("pids.max"), &v)?;
        }
        if let Some(w) = r.blkio_weight {
            let w = blkio_to_io_weight(w).to_string();
            let f = ["io.weight", "io.bfq.weight"]
                .into_iter()
                .map(|f| self.file(f))
                .find(|p| p.exists());
            match f {
                Some(f) => write(&f, &w)?,
                None => log::warn!("no io weight file: blkio weight not set"),
            }
        }
        Ok(())
    }

    fn add_pid(&self, pid: i32) -> Result<()> {
        write(&self.file("cgroup.procs"), &pid.to_string())
    }

    fn freeze(&self) -> Result<()> {
        write(&self.file("cgroup.freeze"), "1")?;
        let events = self.file("cgroup.events");
        wait_until(&events, || Ok(keyed(&read(&events)?, "frozen") == Some(1)))
    }

    fn thaw(&self) -> Result<()> {
        write(&self.file("cgroup.freeze"), "0")?;
        let events = self.file("cgroup.events");
        wait_until(&events, || Ok(keyed(&read(&events)?, "frozen") == Some(0)))
    }

    fn oom_kill_count(&self) -> Result<u64> {
        Ok(keyed(&read(&self.file("memory.events"))?, "oom_kill").unwrap_or(0))
    }

    fn stats(&self) -> Result<Stats> {
        let max = read(&self.file("memory.max"))?;
        Ok(Stats {
            memory_usage: read_u64(&self.file("memory.current"))?,
            memory_limit: max.trim().parse().ok(),
            pids_current: read_u64(&self.file("pids.current"))?,
            cpu_usage_ns: keyed(&read(&self.file("cpu.stat"))?, "usage_usec")
                .map_or(0, |us| us * 1000),
        })
    }

    fn pids(&self) -> Result<Vec<i32>> {
        Ok(parse_pids(&read(&self.file("cgroup.procs"))?))
    }

    fn destroy(&self) -> Result<()> {
        rmdir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_convert_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
    }

    #[test]
    fn create_enables_controllers_and_writes_v2_files() {
        let base = tempfile::tempdir().unwrap();
        std::fs::write(base.path().join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        let cfg = CgroupConfig {
            path: "/berth/c1".into(),
            resources: Resources {
                memory: Some(100),
                memory_swap: Some(300),
                cpu_quota: Some(50_000),
                pids_limit: Some(0),
                ..Default::default()
            },
        };
        let cg = CgroupV2::create(base.path(), &cfg).unwrap();
        let r = |p: &str| std::fs::read_to_string(base.path().join(p)).unwrap();
        // A plain file keeps only the last write; the real file accumulates.
        assert_eq!(r("cgroup.subtree_control"), "+pids");
        assert_eq!(r("berth/c1/memory.max"), "100");
        assert_eq!(r("berth/c1/memory.swap.max"), "200");
        assert_eq!(r("berth/c1/cpu.max"), "50000 100000");
        assert_eq!(r("berth/c1/pids.max"), "max");
        std::fs::write(
            base.path().join("berth/c1/memory.events"),
            "oom 2\noom_kill 2\n",
        )
        .unwrap();
        assert_eq!(cg.oom_kill_count().unwrap(), 2);
    }
}
