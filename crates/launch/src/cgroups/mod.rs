//! cgroups v1 and v2 behind one [`Cgroup`] trait: create a group, set limits,
//! add processes, freeze and thaw (pause), read OOM kills and stats, remove.
//!
//! [`detect`] picks the version from what is mounted at `/sys/fs/cgroup`;
//! nothing above this module branches on it.

mod v1;
mod v2;

use std::fmt::Debug;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result};

pub use v1::CgroupV1;
pub use v2::CgroupV2;

/// Which cgroup hierarchy the host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// One hierarchy per controller (possibly with a unified tree beside it).
    V1,
    /// The unified hierarchy.
    V2,
}

const ROOT: &str = "/sys/fs/cgroup";

/// v2 when `/sys/fs/cgroup` itself is the unified hierarchy, else v1.
pub fn detect() -> Version {
    if Path::new(ROOT).join("cgroup.controllers").exists() {
        Version::V2
    } else {
        Version::V1
    }
}

/// Resource limits; `None` leaves the kernel default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// Memory plus swap in bytes (`-1`: unlimited swap), Docker's `--memory-swap`.
    pub memory_swap: Option<i64>,
    /// Relative CPU weight (v1 shares, 2..262144; default 1024).
    pub cpu_shares: Option<u64>,
    /// CFS quota in microseconds per period (`--cpus` = quota / period).
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    pub cpu_period: Option<u64>,
    /// CPUs allowed, e.g. `0-1,3`.
    pub cpuset_cpus: Option<String>,
    /// Memory nodes allowed.
    pub cpuset_mems: Option<String>,
    /// Maximum number of processes (`<= 0`: unlimited).
    pub pids_limit: Option<i64>,
    /// Block IO weight (10..1000).
    pub blkio_weight: Option<u16>,
    /// Leave every device usable (a privileged container) instead of
    /// Docker's default allow list.
    pub allow_all_devices: bool,
}

impl Resources {
    /// The limits of an OCI spec's `linux.resources`.
    pub fn from_spec(r: &LinuxResources) -> Self {
        let mem = r.memory().as_ref();
        let cpu = r.cpu().as_ref();
        Resources {
            memory: mem.and_then(|m| m.limit()),
            memory_swap: mem.and_then(|m| m.swap()),
            cpu_shares: cpu.and_then(|c| c.shares()),
            cpu_quota: cpu.and_then(|c| c.quota()),
            cpu_period: cpu.and_then(|c| c.period()),
            cpuset_cpus: cpu.and_then(|c| c.cpus().clone()),
            cpuset_mems: cpu.and_then(|c| c.mems().clone()),
            pids_limit: r.pids().as_ref().map(|p| p.limit()),
            blkio_weight: r.block_io().as_ref().and_then(|b| b.weight()),
            allow_all_devices: r.devices().iter().flatten().any(|d| {
                d.allow()
                    && d.major().is_none()
                    && d.minor().is_none()
                    && d.typ()
                        .is_none_or(|t| t == oci_spec::runtime::LinuxDeviceType::A)
                    && d.access()
                        .as_deref()
                        .is_some_and(|a| a.contains('r') && a.contains('w') && a.contains('m'))
            }),
        }
    }
}

/// Which cgroup to create for a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupConfig {
    /// Path below each hierarchy's root (v1) or below the caller's own
    /// cgroup when unprivileged (v2), e.g. `berth/<container id>`.
    pub path: PathBuf,
    /// Limits to apply before the container starts.
    pub resources: Resources,
}

/// Usage numbers for `berth stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Current memory use in bytes.
    pub memory_usage: u64,
    /// Memory limit in bytes (`None` when unlimited).
    pub memory_limit: Option<u64>,
    /// Processes currently in the group.
    pub pids_current: u64,
    /// CPU time used by the group so far, in nanoseconds.
    pub cpu_usage_ns: u64,
}

/// One container's cgroup, whatever the hierarchy.
pub trait Cgroup: Debug + Send + Sync {
    /// The hierarchy this group lives in.
    fn version(&self) -> Version;
    /// Applies limits (also usable later, for `docker update`).
    fn apply(&self, resources: &Resources) -> Result<()>;
    /// Moves a process into the group.
    fn add_pid(&self, pid: i32) -> Result<()>;
    /// Files a new process writes `0` to, to move itself into the group,
    /// or none where only [`Cgroup::add_pid`] can. A v1 `tasks` file moves
    /// just the writing thread, which the kernel does without its global
    /// threadgroup lock; moving a whole process (`cgroup.procs`) takes that
    /// lock and waits for an RCU grace period, up to 15 ms on this machine.
    fn self_join_files(&self) -> Vec<PathBuf> {
        Vec::new()
    }
    /// Freezes every process in the group (`pause`); returns once frozen.
    fn freeze(&self) -> Result<()>;
    /// Thaws the group (`unpause`).
    fn thaw(&self) -> Result<()>;
    /// How many processes the OOM killer killed in this group.
    fn oom_kill_count(&self) -> Result<u64>;
    /// Memory and pids usage.
    fn stats(&self) -> Result<Stats>;
    /// Pids of the processes in the group.
    fn pids(&self) -> Result<Vec<i32>>;
    /// Removes the group; waits briefly for exiting processes to leave it.
    fn destroy(&self) -> Result<()>;
}

/// Creates the group for `config` on this host's hierarchy and applies its
/// limits.
pub fn create(config: &CgroupConfig) -> Result<Box<dyn Cgroup>> {
    Ok(match detect() {
        Version::V1 => Box::new(CgroupV1::create(Path::new(ROOT), config)?),
        Version::V2 => {
            let base = v2::delegation_base(Path::new(ROOT))?;
            Box::new(CgroupV2::create(&base, config)?)
        }
    })
}

/// Reopens an existing group (e.g. from a later `berth` process).
pub fn open(path: &Path) -> Result<Box<dyn Cgroup>> {
    Ok(match detect() {
        Version::V1 => Box::new(CgroupV1::open(Path::new(ROOT), path)),
        Version::V2 => Box::new(CgroupV2::open(&v2::delegation_base(Path::new(ROOT))?, path)),
    })
}

/// [`create`], except that a group the caller may not create is a warning
/// when `rootless` (the container runs without limits), as with Docker
/// rootless on cgroup v1.
pub(crate) fn create_or_warn(
    config: &CgroupConfig,
    rootless: bool,
) -> Result<Option<Box<dyn Cgroup>>> {
    match create(config) {
        Ok(cg) => Ok(Some(cg)),
        Err(e) if rootless && e.is_permission_error() => {
            log::warn!("cgroups are not writable, running without resource limits: {e}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

impl Error {
    /// True when the kernel refused access (not writable, read-only fs).
    pub fn is_permission_error(&self) -> bool {
        let source = match self {
            Error::Cgroup { source, .. } | Error::Io { source, .. } => source,
            _ => return false,
        };
        source.kind() == ErrorKind::PermissionDenied
            || source.raw_os_error() == Some(libc::EROFS)
            || source.raw_os_error() == Some(libc::EPERM)
    }
}

// Small file helpers with error context.

/// How a new process gets into its cgroup: by writing `0` to these open
/// files itself (see [`Cgroup::self_join_files`]), else by the parent's
/// [`Cgroup::add_pid`] before it lets the process go.
pub(crate) struct Joining {
    files: Vec<std::fs::File>,
}

impl Joining {
    pub(crate) fn prepare(cgroup: Option<&dyn Cgroup>) -> Result<Self> {
        let files = cgroup
            .map(|cg| cg.self_join_files())
            .unwrap_or_default()
            .into_iter()
            .map(|path| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|source| Error::Cgroup { path, source })
            })
            .collect::<Result<_>>()?;
        Ok(Joining { files })
    }

    /// The fds the child writes `0` to (close-on-exec, so gone once it runs
    /// the command).
    pub(crate) fn child_fds(&self) -> Vec<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.files.iter().map(|f| f.as_raw_fd()).collect()
    }

    /// Called by the parent once the child exists.
    pub(crate) fn finish(self, cgroup: Option<&dyn Cgroup>, pid: i32) -> Result<()> {
        match cgroup {
            Some(cg) if self.files.is_empty() => cg.add_pid(pid),
            _ => Ok(()),
        }
    }
}

pub(crate) fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|source| Error::Cgroup {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Cgroup {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn read_u64(path: &Path) -> Result<u64> {
    let s = read(path)?;
    s.trim().parse().map_err(|_| Error::Cgroup {
        path: path.to_path_buf(),
        source: std::io::Error::other(format!("not a number: {:?}", s.trim())),
    })
}

/// The value of `key` in a flat keyed file (`oom_kill 3`).
pub(crate) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

pub(crate) fn parse_pids(text: &str) -> Vec<i32> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

pub(crate) fn mkdir(path: &Path) -> Result<()> {
    match std::fs::create_dir(path) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(Error::Cgroup {
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// rmdir that waits up to a second for exiting processes to leave (EBUSY)
/// and treats a missing directory as removed.
pub(crate) fn rmdir(path: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match std::fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(source) => {
                return Err(Error::Cgroup {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// Polls `done` until it holds or a second has passed.
pub(crate) fn wait_until(what: &Path, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(1);
    while !done()? {
        if Instant::now() >= deadline {
            return Err(Error::Cgroup {
                path: what.to_path_buf(),
                source: std::io::Error::new(ErrorKind::TimedOut, "state did not change"),
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files_and_pid_lists_parse() {
        let t = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(keyed(t, "oom_kill"), Some(2));
        assert_eq!(keyed(t, "missing"), None);
        assert_eq!(parse_pids("12\n13\n\n"), vec![12, 13]);
    }

    #[test]
    fn permission_errors_are_recognised() {
        let e = Error::Cgroup {
            path: "/x".into(),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        };
        assert!(e.is_permission_error());
        let e = Error::Cgroup {
            path: "/x".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert!(!e.is_permission_error());
        assert!(!Error::InvalidSpec("x".into()).is_permission_error());
    }

    #[test]
    fn resources_come_from_the_spec() {
        use oci_spec::runtime::*;
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(1 << 25)
                    .swap(1 << 26)
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(10).build().unwrap())
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(512u64)
                    .cpus("0")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let res = Resources::from_spec(&r);
        assert_eq!(res.memory, Some(1 << 25));
        assert_eq!(res.memory_swap, Some(1 << 26));
        assert_eq!(res.pids_limit, Some(10));
        assert_eq!(res.cpu_shares, Some(512));
        assert_eq!(res.cpuset_cpus.as_deref(), Some("0"));
    }

    #[test]
    fn an_open_device_rule_allows_all_devices() {
        use oci_spec::runtime::*;
        let rule = |major: Option<i64>| {
            let mut b = LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .access("rwm");
            if let Some(m) = major {
                b = b.major(m);
            }
            b.build().unwrap()
        };
        let with = |rules| {
            let r = LinuxResourcesBuilder::default()
                .devices(rules)
                .build()
                .unwrap();
            Resources::from_spec(&r).allow_all_devices
        };
        assert!(with(vec![rule(None)]));
        assert!(!with(vec![rule(Some(1))]));
        assert!(!Resources::from_spec(&LinuxResources::default()).allow_all_devices);
    }

    #[test]
    fn rmdir_of_a_missing_dir_is_fine() {
        let d = tempfile::tempdir().unwrap();
        rmdir(&d.path().join("gone")).unwrap();
    }
}
