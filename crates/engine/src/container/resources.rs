//! A container's resource, security and stop flags, from `create` to exit:
//! validated as Docker's daemon does into `HostConfig` / `Config` (Docker's
//! field names), made into the OCI spec (capabilities, rlimits, privileged
//! mode, `linux.resources`) and the container's cgroup `berth/<id>`, and
//! cleaned up after exit (OOM kill recorded, cgroup removed).
//!
//! The run path calls [`cgroup_config`], [`recorded_path`] and
//! [`after_exit`]; `rm` calls [`remove_cgroup`].

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_launch::cgroups::{self, Cgroup, CgroupConfig, Resources};
use oci_spec::runtime::{
    Capability, LinuxBlockIoBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDevice,
    LinuxDeviceBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder,
    LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder, PosixRlimit, PosixRlimitBuilder,
    PosixRlimitType, Spec,
};
use serde_json::{json, Value};

use super::error::{CResult, ContainerError};
use super::flags::{self, BareKeys, Ulimit, ALL_CAPABILITIES};
use super::state::{HostConfig, Record, State};
use super::CreateOptions;

/// The resource, security and misc flags of `run` / `create`, with their
/// syntax already checked (see [`flags`]); the engine checks the rest.
#[derive(Debug, Default, Clone)]
pub struct ResourceOptions {
    /// `-m`, bytes.
    pub memory: Option<i64>,
    /// `--memory-swap`, bytes of memory plus swap; `-1` unlimited.
    pub memory_swap: Option<i64>,
    /// `--cpus`, in billionths of a CPU.
    pub nano_cpus: Option<i64>,
    /// `-c`: relative CPU weight.
    pub cpu_shares: Option<i64>,
    /// `--cpuset-cpus`, e.g. `0-2,4`.
    pub cpuset_cpus: Option<String>,
    /// `--pids-limit`; zero or less is unlimited.
    pub pids_limit: Option<i64>,
    /// `--blkio-weight`, 10..1000 (0: unset).
    pub blkio_weight: Option<u16>,
    /// `--ulimit`, in order (a later one of a name replaces an earlier).
    pub ulimits: Vec<Ulimit>,
    /// `--cap-add`, as typed.
    pub cap_add: Vec<String>,
    /// `--cap-drop`, as typed.
    pub cap_drop: Vec<String>,
    /// `--privileged`.
    pub privileged: bool,
    /// `--init`.
    pub init: bool,
    /// `--stop-signal`.
    pub stop_signal: Option<String>,
    /// `--stop-timeout`, seconds.
    pub stop_timeout: Option<i64>,
    /// `--label key=value`.
    pub labels: Vec<String>,
    /// `--label-file`.
    pub label_files: Vec<PathBuf>,
    /// `--env-file`.
    pub env_files: Vec<PathBuf>,
}

/// Docker's `linuxMinMemory`.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;
/// The CFS period `--cpus` uses, in microseconds (Docker's 100ms).
const CFS_PERIOD: u64 = 100_000;
const MIN_CPU_SHARES: i64 = 2;
const MAX_CPU_SHARES: i64 = 262_144;
const SIGTERM: i32 = 15;
/// Docker's default `stop` grace period.
const DEFAULT_STOP_TIMEOUT: i64 = 10;

fn invalid(msg: impl Into<String>) -> ContainerError {
    ContainerError::InvalidArgument(msg.into())
}

/// Reads a `KEY=VALUE` file the way docker/cli does.
fn read_kv_file(path: &Path, bare: BareKeys) -> CResult<Vec<String>> {
    let text = std::fs::read(path).map_err(|e| {
        // As Go words it: "open f.env: no such file or directory".
        let msg = e.to_string();
        let msg = msg
            .split(" (os error")
            .next()
            .unwrap_or(&msg)
            .to_lowercase();
        invalid(format!("open {}: {msg}", path.display()))
    })?;
    flags::parse_kv_text(path, &text, bare).map_err(invalid)
}

/// The environment the flags give: every `--env-file` in order, then `-e`
/// (which wins over them).
pub(crate) fn env_with_files(opts: &CreateOptions) -> CResult<Vec<String>> {
    let mut env = Vec::new();
    for f in &opts.resources.env_files {
        env.extend(read_kv_file(f, BareKeys::FromEnvironment)?);
    }
    env.extend(opts.env.iter().cloned());
    Ok(env)
}

/// The number of CPUs this process may run on (Go's `runtime.NumCPU`).
fn num_cpus() -> i64 {
    rustix::thread::sched_getaffinity(None)
        .map(|set| set.count() as i64)
        .unwrap_or(1)
        .max(1)
}

/// The CPUs containers may use: the root cpuset, else the online CPUs.
fn available_cpus() -> Option<String> {
    [
        "/sys/fs/cgroup/cpuset/cpuset.cpus",
        "/sys/fs/cgroup/cpuset.cpus.effective",
        "/sys/devices/system/cpu/online",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .map(|s| s.trim().to_string())
    .filter(|s| !s.is_empty())
}

/// Whether the kernel accounts memory plus swap (Docker's `SwapLimit`).
fn swap_accounting() -> bool {
    match cgroups::detect() {
        cgroups::Version::V1 => {
            Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
        }
        cgroups::Version::V2 => true,
    }
}

/// The highest capability number the running kernel knows.
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(flags::CAPABILITIES.len() as u32 - 1)
}

/// Every capability the running kernel knows, by name.
fn known_capabilities() -> Vec<&'static str> {
    let last = last_cap() as usize;
    flags::CAPABILITIES.iter().take(last + 1).copied().collect()
}

/// This process's bounding set (`CapBnd` in /proc/self/status).
fn own_bounding_set() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

/// What `--privileged` and `--cap-add ALL` give: every capability the
/// kernel knows that berth itself may hand on (a host that withholds one
/// from berth's bounding set, as some sandboxes do, cannot grant it).
fn all_capabilities() -> Vec<&'static str> {
    let bounding = own_bounding_set();
    known_capabilities()
        .into_iter()
        .enumerate()
        .filter(|(n, _)| bounding & (1 << n) != 0)
        .map(|(_, c)| c)
        .collect()
}

/// Docker's `NormalizeLegacyCapabilities` check: `ALL` or a capability the
/// kernel knows.
fn check_capabilities(which: &str, caps: &[String]) -> CResult<()> {
    let known = known_capabilities();
    for c in caps {
        if c != ALL_CAPABILITIES && !known.contains(&c.as_str()) {
            return Err(invalid(format!(
                "invalid {which}: unknown capability: \"{c}\""
            )));
        }
    }
    Ok(())
}

/// Validates the flags as Docker's daemon does and returns the
/// `HostConfig` fields they set (the others left default), with Docker's
/// adjustments: swap twice the memory unless given, CPU shares clamped.
pub(crate) fn host_config(r: &ResourceOptions) -> CResult<HostConfig> {
    let mut hc = HostConfig {
        memory: r.memory.unwrap_or(0),
        memory_swap: r.memory_swap.unwrap_or(0),
        ..Default::default()
    };
    if hc.memory != 0 && hc.memory < MIN_MEMORY {
        return Err(invalid("Minimum memory limit allowed is 6MB"));
    }
    if hc.memory > 0 && hc.memory_swap > 0 && hc.memory_swap < hc.memory {
        return Err(invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if hc.memory == 0 && hc.memory_swap > 0 {
        return Err(invalid(
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ));
    }
    if hc.memory > 0 && hc.memory_swap != -1 && !swap_accounting() {
        log::warn!("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.");
        hc.memory_swap = -1;
    }
    if hc.memory > 0 && hc.memory_swap == 0 {
        hc.memory_swap = hc.memory.saturating_mul(2);
    }

    if let Some(n) = r.nano_cpus {
        let cpus = num_cpus();
        if n < 0 || n > cpus * 1_000_000_000 {
            return Err(invalid(format!(
                "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
            )));
        }
        hc.nano_cpus = n;
    }
    if let Some(s) = r.cpu_shares {
        hc.cpu_shares = if s < 0 {
            log::warn!(
                "Changing requested CPUShares of {s} to minimum allowed of {MIN_CPU_SHARES}"
            );
            MIN_CPU_SHARES
        } else if s > MAX_CPU_SHARES {
            log::warn!(
                "Changing requested CPUShares of {s} to maximum allowed of {MAX_CPU_SHARES}"
            );
            MAX_CPU_SHARES
        } else {
            s
        };
    }
    if let Some(c) = r.cpuset_cpus.as_deref().filter(|c| !c.is_empty()) {
        let wanted = flags::parse_uint_list(c)
            .map_err(|e| invalid(format!("Invalid value {c} for cpuset cpus: {e}")))?;
        if let Some(avail) = available_cpus() {
            let have = flags::parse_uint_list(&avail).unwrap_or_default();
            if !wanted.is_subset(&have) {
                return Err(invalid(format!(
                    "Requested CPUs are not available - requested {c}, available: {avail}"
                )));
            }
        }
        hc.cpuset_cpus = c.to_string();
    }
    hc.pids_limit = r.pids_limit.filter(|p| *p > 0);
    if let Some(w) = r.blkio_weight.filter(|w| *w != 0) {
        if !(10..=1000).contains(&w) {
            return Err(invalid("Range of blkio weight is from 10 to 1000"));
        }
        hc.blkio_weight = w;
    }

    let mut ulimits: Vec<Ulimit> = Vec::new();
    for u in &r.ulimits {
        match ulimits.iter_mut().find(|x| x.name == u.name) {
            Some(x) => *x = u.clone(),
            None => ulimits.push(u.clone()),
        }
    }
    hc.ulimits = (!ulimits.is_empty()).then_some(ulimits);

    let (add, drop) = flags::effective_caps(&r.cap_add, &r.cap_drop);
    check_capabilities("CapAdd", &add)?;
    check_capabilities("CapDrop", &drop)?;
    hc.cap_add = (!add.is_empty()).then_some(add);
    hc.cap_drop = (!drop.is_empty()).then_some(drop);
    hc.privileged = r.privileged;
    hc.init = r.init.then_some(true);
    Ok(hc)
}

/// Puts `Labels` (the image's, then `--label-file`s, then `--label`s),
/// `StopSignal` and `StopTimeout` into the container `Config`.
pub(crate) fn apply_config(config: &mut Value, r: &ResourceOptions) -> CResult<()> {
    if let Some(s) = &r.stop_signal {
        flags::parse_signal(s).map_err(invalid)?;
    }
    let Some(obj) = config.as_object_mut() else {
        return Ok(());
    };
    let mut labels: BTreeMap<String, Value> = obj
        .get("Labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let mut given = Vec::new();
    for f in &r.label_files {
        given.extend(read_kv_file(f, BareKeys::Drop)?);
    }
    given.extend(r.labels.iter().cloned());
    for kv in given {
        let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
        labels.insert(k.to_string(), json!(v));
    }
    // Go prints maps sorted; a BTreeMap iterates sorted.
    obj.insert("Labels".into(), Value::Object(labels.into_iter().collect()));
    if let Some(s) = &r.stop_signal {
        obj.insert("StopSignal".into(), json!(s));
    }
    if let Some(t) = r.stop_timeout {
        obj.insert("StopTimeout".into(), json!(t));
    }
    Ok(())
}

impl Record {
    /// The signal `stop` sends first: `--stop-signal` or the image's
    /// `StopSignal`, else SIGTERM.
    pub fn stop_signal(&self) -> i32 {
        self.config
            .get("StopSignal")
            .and_then(Value::as_str)
            .and_then(|s| flags::parse_signal(s).ok())
            .unwrap_or(SIGTERM)
    }

    /// Seconds `stop` waits before SIGKILL: `--stop-timeout`, else 10.
    pub fn stop_timeout(&self) -> i64 {
        self.config
            .get("StopTimeout")
            .and_then(Value::as_i64)
            .unwrap_or(DEFAULT_STOP_TIMEOUT)
    }
}

/// The spec's `linux.resources` for a host config, as Docker's daemon
/// fills them (`--cpus` becomes a CFS quota over a 100ms period).
pub(crate) fn linux_resources(hc: &HostConfig) -> LinuxResources {
    let mut r = LinuxResourcesBuilder::default()
        .build()
        .expect("no required fields");
    if hc.memory > 0 || hc.memory_swap != 0 {
        let mut m = LinuxMemoryBuilder::default()
            .build()
            .expect("no required fields");
        m.set_limit((hc.memory > 0).then_some(hc.memory));
        m.set_swap((hc.memory_swap != 0).then_some(hc.memory_swap));
        r.set_memory(Some(m));
    }
    if hc.cpu_shares != 0 || hc.nano_cpus > 0 || !hc.cpuset_cpus.is_empty() {
        let mut c = LinuxCpuBuilder::default()
            .build()
            .expect("no required fields");
        c.set_shares((hc.cpu_shares != 0).then_some(hc.cpu_shares as u64));
        if hc.nano_cpus > 0 {
            c.set_period(Some(CFS_PERIOD));
            c.set_quota(Some(hc.nano_cpus * CFS_PERIOD as i64 / 1_000_000_000));
        }
        c.set_cpus((!hc.cpuset_cpus.is_empty()).then(|| hc.cpuset_cpus.clone()));
        r.set_cpu(Some(c));
    }
    if let Some(p) = hc.pids_limit {
        r.set_pids(LinuxPidsBuilder::default().limit(p).build().ok());
    }
    if hc.blkio_weight > 0 {
        r.set_block_io(
            LinuxBlockIoBuilder::default()
                .weight(hc.blkio_weight)
                .build()
                .ok(),
        );
    }
    if hc.privileged {
        r.set_devices(
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .access("rwm")
                .build()
                .ok()
                .map(|d| vec![d]),
        );
    }
    r
}

/// Where a container's cgroup lives, below each hierarchy's root.
pub(crate) fn cgroup_path(id: &str) -> PathBuf {
    Path::new("berth").join(id)
}

/// The cgroup to start `record` in. As root always one, even without
/// limits, so `pause`, `stats` and `top` have it; rootless only when a
/// limit asks for it (cgroups are often not writable then, and the
/// launcher warns and runs the container without them).
pub(crate) fn cgroup_config(record: &Record, rootless: bool) -> Option<CgroupConfig> {
    let resources = Resources::from_spec(&linux_resources(&record.host_config));
    if rootless && resources == Resources::default() {
        return None;
    }
    Some(CgroupConfig {
        path: cgroup_path(&record.id),
        resources,
    })
}

/// What to record as the container's cgroup once it started: the path of
/// the group the launcher made, or nothing when it made none.
pub(crate) fn recorded_path(config: Option<&CgroupConfig>, made: Option<&dyn Cgroup>) -> String {
    match (config, made) {
        (Some(c), Some(_)) => c.path.display().to_string(),
        _ => String::new(),
    }
}

/// After the init exited: records whether the OOM killer struck in the
/// container's cgroup (Docker's `State.OOMKilled`), then removes the group.
pub(crate) fn after_exit(cgroup: Option<&dyn Cgroup>, state: &mut State) {
    let Some(cg) = cgroup else {
        return;
    };
    match cg.oom_kill_count() {
        Ok(n) => state.oom_killed = n > 0,
        Err(e) => log::debug!("reading the container's OOM kills: {e}"),
    }
    if let Err(e) = cg.destroy() {
        log::warn!("removing the container's cgroup: {e}");
    }
}

/// Removes a cgroup a container may have left (its monitor died, or it was
/// killed): the recorded one, and the default path in case the monitor
/// died before recording it.
pub(crate) fn remove_cgroup(record: &Record) {
    let mut paths = vec![cgroup_path(&record.id)];
    if !record.cgroup_path.is_empty() {
        paths.insert(0, PathBuf::from(&record.cgroup_path));
        paths.dedup();
    }
    for p in paths {
        let removed = cgroups::open(&p).and_then(|cg| cg.destroy());
        if let Err(e) = removed {
            if !e.is_permission_error() {
                log::warn!("removing cgroup {}: {e}", p.display());
            }
        }
    }
}

/// Capabilities as Docker's `TweakCapabilities` makes them: all with
/// `--privileged` or `--cap-add ALL` (less the dropped), only the added with
/// `--cap-drop ALL`, else the defaults less the dropped plus the added.
fn capability_names(hc: &HostConfig) -> Vec<String> {
    let all = || all_capabilities().into_iter().map(String::from);
    if hc.privileged {
        return all().collect();
    }
    let add = hc.cap_add.clone().unwrap_or_default();
    let drop = hc.cap_drop.clone().unwrap_or_default();
    let has_all = |l: &[String]| l.iter().any(|c| c == ALL_CAPABILITIES);
    let names: BTreeSet<String> = if has_all(&add) {
        all().filter(|c| !drop.contains(c)).collect()
    } else if has_all(&drop) {
        add.into_iter().collect()
    } else {
        berth_launch::default_capabilities()
            .iter()
            .filter_map(|c| serde_json::to_value(c).ok())
            .filter_map(|v| v.as_str().map(String::from))
            .filter(|c| !drop.contains(c))
            .chain(add)
            .collect()
    };
    names.into_iter().collect()
}

fn capability_set(names: &[String]) -> CResult<HashSet<Capability>> {
    names
        .iter()
        .map(|n| {
            serde_json::from_value(json!(n))
                .map_err(|_| invalid(format!("unknown capability: \"{n}\"")))
        })
        .collect()
}

fn rlimit(u: &Ulimit) -> CResult<PosixRlimit> {
    let typ: PosixRlimitType =
        serde_json::from_value(json!(format!("RLIMIT_{}", u.name.to_uppercase())))
            .map_err(|_| invalid(format!("invalid ulimit type: {}", u.name)))?;
    // -1 is unlimited: as u64 it is RLIM_INFINITY.
    PosixRlimitBuilder::default()
        .typ(typ)
        .soft(u.soft as u64)
        .hard(u.hard as u64)
        .build()
        .map_err(|e| invalid(e.to_string()))
}

/// The host's device nodes for a privileged container (Docker's
/// `HostDevices`), less those the launcher always creates.
fn host_devices() -> Vec<LinuxDevice> {
    let mut out = Vec::new();
    walk_devices(Path::new("/dev"), &mut out);
    out.sort_by(|a, b| a.path().cmp(b.path()));
    out
}

fn walk_devices(dir: &Path, out: &mut Vec<LinuxDevice>) {
    const SKIP_DIRS: &[&str] = &["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
    const STANDARD: &[&str] = &[
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        "/dev/console",
        "/dev/ptmx",
    ];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            let name = entry.file_name();
            if !SKIP_DIRS.iter().any(|s| name == *s) {
                walk_devices(&path, out);
            }
            continue;
        }
        let typ = if ft.is_char_device() {
            LinuxDeviceType::C
        } else if ft.is_block_device() {
            LinuxDeviceType::B
        } else {
            continue;
        };
        if STANDARD.iter().any(|s| path == Path::new(s)) {
            continue;
        }
        let rdev = meta.rdev();
        let device = LinuxDeviceBuilder::default()
            .path(&path)
            .typ(typ)
            .major(i64::from(rustix::fs::major(rdev)))
            .minor(i64::from(rustix::fs::minor(rdev)))
            .file_mode(meta.mode() & 0o777)
            .uid(meta.uid())
            .gid(meta.gid())
            .build();
        if let Ok(d) = device {
            out.push(d);
        }
    }
}

/// Applies the host config to the spec built from the image and the other
/// flags: capabilities, rlimits, `linux.resources`, and for `--privileged`
/// the host's devices with no masked or read-only paths and writable
/// `/sys`.
pub(crate) fn apply_to_spec(record: &Record, spec: &mut Spec) -> CResult<()> {
    let hc = &record.host_config;
    let caps = capability_set(&capability_names(hc))?;
    let rlimits = hc
        .ulimits
        .iter()
        .flatten()
        .map(rlimit)
        .collect::<CResult<Vec<_>>>()?;
    if let Some(process) = spec.process_mut() {
        process.set_capabilities(Some(
            LinuxCapabilitiesBuilder::default()
                .bounding(caps.clone())
                .effective(caps.clone())
                .permitted(caps)
                // Empty, as Docker since 20.10.14 (the builder's default
                // would hand a few to every exec'd program).
                .inheritable(HashSet::new())
                .ambient(HashSet::new())
                .build()
                .map_err(|e| invalid(e.to_string()))?,
        ));
        // No --ulimit: none at all (not the spec's default nofile 1024),
        // so the container keeps the caller's limits, as with Docker.
        process.set_rlimits((!rlimits.is_empty()).then_some(rlimits));
    }
    if hc.privileged {
        for m in spec.mounts_mut().iter_mut().flatten() {
            if matches!(m.typ().as_deref(), Some("sysfs" | "cgroup" | "cgroup2")) {
                if let Some(opts) = m.options_mut() {
                    opts.retain(|o| o != "ro");
                }
            }
        }
    }
    if let Some(linux) = spec.linux_mut() {
        linux.set_resources(Some(linux_resources(hc)));
        if hc.privileged {
            linux.set_masked_paths(None);
            linux.set_readonly_paths(None);
            let mut devices = linux.devices().clone().unwrap_or_default();
            devices.extend(host_devices());
            linux.set_devices(Some(devices));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ResourceOptions {
        ResourceOptions::default()
    }

    fn test_record() -> Record {
        serde_json::from_value(json!({
            "ID": "ab".repeat(32), "Created": "", "Path": "sh", "Args": [],
            "Config": {}, "Image": "", "Name": "/c", "Driver": "vfs",
            "State": State::default(), "HostnamePath": "", "HostsPath": "",
            "ResolvConfPath": "",
        }))
        .unwrap()
    }

    #[test]
    fn memory_is_validated_and_swap_defaults_to_twice() {
        let mut o = opts();
        o.memory = Some(32 << 20);
        let hc = host_config(&o).unwrap();
        assert_eq!(hc.memory, 32 << 20);
        if swap_accounting() {
            assert_eq!(hc.memory_swap, 64 << 20);
        } else {
            assert_eq!(hc.memory_swap, -1);
        }
        o.memory = Some(4 << 20);
        let err = host_config(&o).unwrap_err().to_string();
        assert_eq!(err, "Minimum memory limit allowed is 6MB");
        o.memory = Some(32 << 20);
        o.memory_swap = Some(16 << 20);
        assert!(host_config(&o)
            .unwrap_err()
            .to_string()
            .starts_with("Minimum memoryswap limit should be larger than memory limit"));
        o.memory_swap = Some(-1);
        assert_eq!(host_config(&o).unwrap().memory_swap, -1);
        o.memory = None;
        o.memory_swap = Some(64 << 20);
        assert!(host_config(&o)
            .unwrap_err()
            .to_string()
            .starts_with("You should always set the Memory limit"));
        assert_eq!(host_config(&opts()).unwrap().memory_swap, 0);
    }

    #[test]
    fn cpus_shares_cpuset_pids_and_blkio() {
        let mut o = opts();
        o.nano_cpus = Some(500_000_000);
        o.cpu_shares = Some(-5);
        o.cpuset_cpus = Some("0".into());
        o.pids_limit = Some(-1);
        o.blkio_weight = Some(300);
        let hc = host_config(&o).unwrap();
        assert_eq!(hc.nano_cpus, 500_000_000);
        assert_eq!(hc.cpu_shares, 2, "negative shares become the minimum");
        assert_eq!(hc.cpuset_cpus, "0");
        assert_eq!(hc.pids_limit, None, "negative is unlimited");
        assert_eq!(hc.blkio_weight, 300);
        let r = linux_resources(&hc);
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!((cpu.quota(), cpu.period()), (Some(50_000), Some(100_000)));
        assert_eq!(r.block_io().as_ref().unwrap().weight(), Some(300));

        o.nano_cpus = Some((num_cpus() + 1) * 1_000_000_000);
        let err = host_config(&o).unwrap_err().to_string();
        assert!(err.starts_with("Range of CPUs is from 0.01 to "), "{err}");
        o.nano_cpus = None;
        o.cpuset_cpus = Some("x".into());
        assert_eq!(
            host_config(&o).unwrap_err().to_string(),
            "Invalid value x for cpuset cpus: invalid format: x"
        );
        o.cpuset_cpus = Some("4096".into());
        assert!(host_config(&o)
            .unwrap_err()
            .to_string()
            .starts_with("Requested CPUs are not available - requested 4096, available: "));
        o.cpuset_cpus = None;
        o.blkio_weight = Some(5);
        assert_eq!(
            host_config(&o).unwrap_err().to_string(),
            "Range of blkio weight is from 10 to 1000"
        );
        o.blkio_weight = Some(0);
        o.cpu_shares = Some(1 << 20);
        assert_eq!(host_config(&o).unwrap().cpu_shares, 262_144);
    }

    #[test]
    fn unknown_capabilities_are_refused() {
        let mut o = opts();
        o.cap_add = vec!["foo".into()];
        assert_eq!(
            host_config(&o).unwrap_err().to_string(),
            "invalid CapAdd: unknown capability: \"CAP_FOO\""
        );
        o.cap_add = vec![];
        o.cap_drop = vec!["CAP_NOPE".into()];
        assert_eq!(
            host_config(&o).unwrap_err().to_string(),
            "invalid CapDrop: unknown capability: \"CAP_NOPE\""
        );
        o.cap_drop = vec!["chown".into(), "all".into()];
        o.cap_add = vec!["sys_admin".into()];
        let hc = host_config(&o).unwrap();
        assert_eq!(hc.cap_add, Some(vec!["CAP_SYS_ADMIN".to_string()]));
        assert_eq!(hc.cap_drop, Some(vec!["ALL".to_string()]));
    }

    fn hc_caps(add: &[&str], drop: &[&str], privileged: bool) -> Vec<String> {
        let list = |l: &[&str]| (!l.is_empty()).then(|| l.iter().map(|s| s.to_string()).collect());
        capability_names(&HostConfig {
            cap_add: list(add),
            cap_drop: list(drop),
            privileged,
            ..Default::default()
        })
    }

    #[test]
    fn capabilities_are_tweaked_like_docker() {
        let default = hc_caps(&[], &[], false);
        assert_eq!(default.len(), 14);
        let c = hc_caps(&["CAP_SYS_ADMIN"], &["CAP_CHOWN"], false);
        assert!(c.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_CHOWN".to_string()));
        assert_eq!(c.len(), 14);
        assert_eq!(
            hc_caps(&["CAP_KILL"], &["ALL"], false),
            vec!["CAP_KILL".to_string()]
        );
        let all = hc_caps(&["ALL"], &["CAP_CHOWN"], false);
        assert_eq!(all.len(), all_capabilities().len() - 1);
        assert_eq!(hc_caps(&[], &["ALL"], true).len(), all_capabilities().len());
        assert_eq!(
            capability_set(&all).unwrap().len(),
            all.len(),
            "every name maps to an OCI capability"
        );
    }

    #[test]
    fn ulimits_become_rlimits_and_dedupe_by_name() {
        let mut o = opts();
        o.ulimits = vec![
            flags::parse_ulimit("nofile=10").unwrap(),
            flags::parse_ulimit("core=-1").unwrap(),
            flags::parse_ulimit("nofile=100:200").unwrap(),
        ];
        let hc = host_config(&o).unwrap();
        let u = hc.ulimits.clone().unwrap();
        assert_eq!(u.len(), 2);
        assert_eq!((u[0].soft, u[0].hard), (100, 200));
        let r = rlimit(&u[0]).unwrap();
        assert_eq!(r.typ(), PosixRlimitType::RlimitNofile);
        assert_eq!((r.soft(), r.hard()), (100, 200));
        let core = rlimit(&u[1]).unwrap();
        assert_eq!(core.hard(), u64::MAX, "-1 is RLIM_INFINITY");
    }

    #[test]
    fn labels_merge_over_the_image_and_stop_settings_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("labels");
        std::fs::write(&file, "# c\nb=from-file\nc=file\nbare\n").unwrap();
        let mut config = json!({"Labels": {"a": "image", "b": "image"}, "Env": []});
        let mut o = opts();
        o.label_files = vec![file];
        o.labels = vec!["c=flag".into(), "d=".into()];
        o.stop_signal = Some("SIGUSR1".into());
        o.stop_timeout = Some(3);
        apply_config(&mut config, &o).unwrap();
        assert_eq!(
            config["Labels"],
            json!({"a": "image", "b": "from-file", "c": "flag", "d": ""})
        );
        assert_eq!(config["StopSignal"], json!("SIGUSR1"));
        assert_eq!(config["StopTimeout"], json!(3));
        o.stop_signal = Some("SIGFOO".into());
        assert_eq!(
            apply_config(&mut config, &o).unwrap_err().to_string(),
            "Invalid signal: SIGFOO"
        );
        o.stop_signal = None;
        o.label_files = vec![dir.path().join("missing")];
        assert!(apply_config(&mut config, &o)
            .unwrap_err()
            .to_string()
            .starts_with("open "));
    }

    #[test]
    fn env_files_come_before_dash_e() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env");
        std::fs::write(&file, "A=file\nB=file\n").unwrap();
        let mut o = CreateOptions {
            env: vec!["B=flag".into()],
            ..Default::default()
        };
        o.resources.env_files = vec![file];
        assert_eq!(env_with_files(&o).unwrap(), ["A=file", "B=file", "B=flag"]);
    }

    #[test]
    fn cgroups_are_made_for_root_always_and_rootless_only_with_limits() {
        let mut record = test_record();
        let c = cgroup_config(&record, false).unwrap();
        assert_eq!(c.path, Path::new("berth").join(&record.id));
        assert_eq!(c.resources, Resources::default());
        assert!(cgroup_config(&record, true).is_none());
        record.host_config.memory = 32 << 20;
        record.host_config.pids_limit = Some(10);
        record.host_config.privileged = true;
        let c = cgroup_config(&record, true).unwrap();
        assert_eq!(c.resources.memory, Some(32 << 20));
        assert_eq!(c.resources.pids_limit, Some(10));
        assert!(c.resources.allow_all_devices);
        assert_eq!(recorded_path(Some(&c), None), "");
    }

    #[test]
    fn privileged_spec_has_all_caps_no_masks_and_host_devices() {
        let mut record = test_record();
        record.host_config.privileged = true;
        record.host_config.ulimits = Some(vec![flags::parse_ulimit("nofile=5:6").unwrap()]);
        let mut spec = Spec::default();
        let mut linux = oci_spec::runtime::LinuxBuilder::default().build().unwrap();
        linux.set_masked_paths(Some(vec!["/proc/kcore".into()]));
        spec.set_linux(Some(linux));
        spec.set_mounts(Some(berth_launch::default_mounts()));
        apply_to_spec(&record, &mut spec).unwrap();
        let process = spec.process().as_ref().unwrap();
        let caps = process.capabilities().as_ref().unwrap();
        assert!(caps
            .bounding()
            .as_ref()
            .unwrap()
            .contains(&Capability::SysAdmin));
        assert_eq!(process.rlimits().as_ref().unwrap().len(), 1);
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.masked_paths().is_none());
        let sys = spec
            .mounts()
            .iter()
            .flatten()
            .find(|m| m.typ().as_deref() == Some("sysfs"))
            .unwrap();
        assert!(!sys.options().as_ref().unwrap().contains(&"ro".to_string()));
        let devices = linux.devices().clone().unwrap_or_default();
        assert!(devices.iter().all(|d| d.path() != Path::new("/dev/null")));
        if Path::new("/dev/loop-control").exists() {
            assert!(devices
                .iter()
                .any(|d| d.path() == Path::new("/dev/loop-control")));
        }
    }
}
