//! cgroup v1: one directory per controller hierarchy, all named alike.

use std::path::{Path, PathBuf};

use super::{keyed, mkdir, parse_pids, read, read_u64, rmdir, wait_until, write};
use super::{Cgroup, CgroupConfig, Resources, Stats, Version};
use crate::error::Result;

const CONTROLLERS: [&str; 8] = [
    "memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "freezer", "devices",
];

/// Devices a container may use (Docker's default allow list): the standard
/// nodes, ptys, tun, and mknod of anything (opening it is still refused).
const ALLOWED_DEVICES: [&str; 10] = [
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:* rwm",
    "c 136:* rwm",
    "c 10:200 rwm",
];

/// A group in every mounted v1 controller hierarchy.
#[derive(Debug)]
pub struct CgroupV1 {
    /// (controller, directory of this group in its hierarchy)
    dirs: Vec<(&'static str, PathBuf)>,
}

impl CgroupV1 {
    /// The group `rel` under `root` (normally `/sys/fs/cgroup`), without
    /// touching the filesystem.
    pub fn open(root: &Path, rel: &Path) -> Self {
        let rel = rel.strip_prefix("/").unwrap_or(rel);
        let mut seen = Vec::new();
        let mut dirs = Vec::new();
        for c in CONTROLLERS {
            let hier = root.join(c);
            // cpu and cpuacct are often one hierarchy behind two symlinks.
            let Ok(canon) = hier.canonicalize() else {
                continue;
            };
            if seen.contains(&canon) {
                continue;
            }
            seen.push(canon);
            dirs.push((c, hier.join(rel)));
        }
        CgroupV1 { dirs }
    }

    /// Creates the group in every hierarchy and applies the limits.
    pub fn create(root: &Path, config: &CgroupConfig) -> Result<Self> {
        let cg = Self::open(root, &config.path);
        for (controller, dir) in &cg.dirs {
            let hier = root.join(controller);
            let rel = dir.strip_prefix(&hier).unwrap_or(dir);
            let mut cur = hier.clone();
            for part in rel.components() {
                let parent = cur.clone();
                cur.push(part);
                mkdir(&cur)?;
                if *controller == "cpuset" {
                    // A new cpuset group starts empty and refuses tasks
                    // until it has cpus and mems.
                    for f in ["cpuset.cpus", "cpuset.mems"] {
                        if read(&cur.join(f))?.trim().is_empty() {
                            write(&cur.join(f), read(&parent.join(f))?.trim())?;
                        }
                    }
                }
            }
            if *controller == "devices" && !config.resources.allow_all_devices {
                write(&dir.join("devices.deny"), "a")?;
                for rule in ALLOWED_DEVICES {
                    write(&dir.join("devices.allow"), rule)?;
                }
            }
        }
        if let Err(e) = cg.apply(&config.resources) {
            let _ = cg.destroy();
            return Err(e);
        }
        Ok(cg)
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| *c == controller)
            .map(|(_, d)| d.as_path())
    }

    /// Writes `value` to `controller`'s `file`, warning when the controller
    /// is not mounted (the limit is then not enforced).
    fn set(&self, controller: &str, file: &str, value: &str) -> Result<()> {
        match self.dir(controller) {
            Some(d) => write(&d.join(file), value),
            None => {
                log::warn!("cgroup controller {controller} not available: {file} not set");
                Ok(())
            }
        }
    }

    fn file(&self, controller: &str, file: &str) -> Result<PathBuf> {
        self.dir(controller)
            .map(|d| d.join(file))
            .ok_or_else(|| crate::Error::Cgroup {
                path: PathBuf::from(controller),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "controller not mounted"),
            })
    }
}

impl Cgroup for CgroupV1 {
    fn version(&self) -> Version {
        Version::V1
    }

    fn apply(&self, r: &Resources) -> Result<()> {
        if let Some(m) = r.memory {
            self.set("memory", "memory.limit_in_bytes", &m.to_string())?;
        }
        if let Some(s) = r.memory_swap {
            match self
                .dir("memory")
                .map(|d| d.join("memory.memsw.limit_in_bytes"))
            {
                Some(f) if f.exists() => write(&f, &s.to_string())?,
                _ => log::warn!("swap accounting is disabled: memory+swap limit not set"),
            }
        }
        if let Some(v) = r.cpu_shares {
            self.set("cpu", "cpu.shares", &v.to_string())?;
        }
        if let Some(v) = r.cpu_period {
            self.set("cpu", "cpu.cfs_period_us", &v.to_string())?;
        }
        if let Some(v) = r.cpu_quota {
            self.set("cpu", "cpu.cfs_quota_us", &v.to_string())?;
        }
        if let Some(v) = &r.cpuset_cpus {
            self.set("cpuset", "cpuset.cpus", v)?;
        }
        if let Some(v) = &r.cpuset_mems {
            self.set("cpuset", "cpuset.mems", v)?;
        }
        if let Some(v) = r.pids_limit {
            let v = if v > 0 { v.to_string() } else { "max".into() };
            self.set("pids", "pids.max", &v)?;
        }
        if let Some(w) = r.blkio_weight {
            let weight = ["blkio.weight", "blkio.bfq.weight"]
                .into_iter()
                .find_map(|f| self.dir("blkio").map(|d| d.join(f)).filter(|p| p.exists()));
            match weight {
                Some(f) => write(&f, &w.to_string())?,
                None => log::warn!("no blkio weight file (no CFQ/BFQ scheduler): weight not set"),
            }
        }
        Ok(())
    }

    fn add_pid(&self, pid: i32) -> Result<()> {
        for (_, d) in &self.dirs {
            write(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn self_join_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|(_, d)| d.join("tasks")).collect()
    }

    fn freeze(&self) -> Result<()> {
        let state = self.file("freezer", "freezer.state")?;
        write(&state, "FROZEN")?;
        wait_until(&state, || Ok(read(&state)?.trim() == "FROZEN"))
    }

    fn thaw(&self) -> Result<()> {
        let state = self.file("freezer", "freezer.state")?;
        write(&state, "THAWED")?;
        wait_until(&state, || Ok(read(&state)?.trim() == "THAWED"))
    }

    fn oom_kill_count(&self) -> Result<u64> {
        let text = read(&self.file("memory", "memory.oom_control")?)?;
        Ok(keyed(&text, "oom_kill").unwrap_or(0))
    }

    fn stats(&self) -> Result<Stats> {
        let limit = read_u64(&self.file("memory", "memory.limit_in_bytes")?)?;
        Ok(Stats {
            memory_usage: read_u64(&self.file("memory", "memory.usage_in_bytes")?)?,
            // v1 reports "unlimited" as a page-rounded i64::MAX.
            memory_limit: (limit < 1 << 62).then_some(limit),
            pids_current: read_u64(&self.file("pids", "pids.current")?)?,
            // cpuacct often shares the cpu hierarchy (listed under cpu).
            cpu_usage_ns: ["cpuacct", "cpu"]
                .iter()
                .find_map(|c| read_u64(&self.file(c, "cpuacct.usage").ok()?).ok())
                .unwrap_or(0),
        })
    }

    fn pids(&self) -> Result<Vec<i32>> {
        let (_, d) = self.dirs.first().ok_or_else(|| crate::Error::Cgroup {
            path: PathBuf::from("/sys/fs/cgroup"),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no controllers"),
        })?;
        Ok(parse_pids(&read(&d.join("cgroup.procs"))?))
    }

    fn destroy(&self) -> Result<()> {
        let mut first_err = None;
        for (_, d) in &self.dirs {
            if let Err(e) = rmdir(d) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake hierarchy: plain directories and files stand in for cgroupfs.
    fn fake_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for c in ["memory", "cpuset", "pids", "freezer"] {
            std::fs::create_dir(root.path().join(c)).unwrap();
        }
        std::fs::write(root.path().join("cpuset/cpuset.cpus"), "0-1\n").unwrap();
        std::fs::write(root.path().join("cpuset/cpuset.mems"), "0\n").unwrap();
        std::fs::write(root.path().join("memory/memory.oom_control"), "").unwrap();
        root
    }

    fn config() -> CgroupConfig {
        CgroupConfig {
            path: "berth/c1".into(),
            resources: Resources {
                memory: Some(32 << 20),
                pids_limit: Some(10),
                cpu_shares: Some(512),
                ..Default::default()
            },
        }
    }

    #[test]
    fn create_writes_limits_and_inherits_cpusets() {
        let root = fake_root();
        // Plain files start empty like a fresh cpuset group's.
        std::fs::create_dir_all(root.path().join("cpuset/berth/c1")).unwrap();
        for f in ["cpuset/berth/cpuset.cpus", "cpuset/berth/cpuset.mems"] {
            std::fs::write(root.path().join(f), "").unwrap();
        }
        for f in ["cpuset/berth/c1/cpuset.cpus", "cpuset/berth/c1/cpuset.mems"] {
            std::fs::write(root.path().join(f), "").unwrap();
        }
        let cg = CgroupV1::create(root.path(), &config()).unwrap();
        let r = |p: &str| std::fs::read_to_string(root.path().join(p)).unwrap();
        assert_eq!(r("memory/berth/c1/memory.limit_in_bytes"), "33554432");
        assert_eq!(r("pids/berth/c1/pids.max"), "10");
        assert_eq!(r("cpuset/berth/c1/cpuset.cpus"), "0-1");
        assert_eq!(r("cpuset/berth/c1/cpuset.mems"), "0");
        cg.add_pid(42).unwrap();
        assert_eq!(r("pids/berth/c1/cgroup.procs"), "42");
    }

    #[test]
    fn oom_kills_are_read_from_oom_control() {
        let root = fake_root();
        let cg = CgroupV1::open(root.path(), Path::new("/x"));
        std::fs::create_dir(root.path().join("memory/x")).unwrap();
        std::fs::write(
            root.path().join("memory/x/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        )
        .unwrap();
        assert_eq!(cg.oom_kill_count().unwrap(), 1);
    }

    #[test]
    fn missing_controllers_are_skipped_but_required_ones_error() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("memory")).unwrap();
        let cg = CgroupV1::open(root.path(), Path::new("g"));
        assert!(cg.freeze().is_err(), "no freezer hierarchy");
        cg.set("pids", "pids.max", "5").unwrap();
    }
}
