//! Docker's defaults for what a container may see (moby `oci/defaults.go`).

use oci_spec::runtime::{Mount, MountBuilder};

pub use crate::caps::default_capabilities;

/// Paths Docker hides from containers: host information and kernel knobs.
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only inside containers.
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// [`DEFAULT_MASKED_PATHS`] in the form `oci_spec` wants.
pub fn default_masked_paths() -> Vec<String> {
    DEFAULT_MASKED_PATHS.iter().map(|s| s.to_string()).collect()
}

/// [`DEFAULT_READONLY_PATHS`] in the form `oci_spec` wants.
pub fn default_readonly_paths() -> Vec<String> {
    DEFAULT_READONLY_PATHS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Docker's default mounts: `/proc`, `/dev` (tmpfs), `/dev/pts`, `/sys`
/// (read-only), the cgroup tree, `/dev/mqueue` and `/dev/shm`.
pub fn default_mounts() -> Vec<Mount> {
    const NOSUID_NOEXEC_NODEV: &[&str] = &["nosuid", "noexec", "nodev"];
    let m = |dest: &str, typ: &str, source: &str, extra: &[&str], base: &[&str]| {
        let options: Vec<String> = base.iter().chain(extra).map(|s| s.to_string()).collect();
        MountBuilder::default()
            .destination(dest)
            .typ(typ)
            .source(source)
            .options(options)
            .build()
            .expect("all fields set")
    };
    vec![
        m("/proc", "proc", "proc", &[], NOSUID_NOEXEC_NODEV),
        m(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
            &[],
        ),
        m(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
            &[],
        ),
        m("/sys", "sysfs", "sysfs", &["ro"], NOSUID_NOEXEC_NODEV),
        m(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro"],
            NOSUID_NOEXEC_NODEV,
        ),
        m("/dev/mqueue", "mqueue", "mqueue", &[], NOSUID_NOEXEC_NODEV),
        m(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["mode=1777", "size=65536k"],
            NOSUID_NOEXEC_NODEV,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mounts_match_dockers() {
        let mounts = default_mounts();
        let proc_ = &mounts[0];
        assert_eq!(proc_.destination(), std::path::Path::new("/proc"));
        assert_eq!(
            proc_.options().as_deref(),
            Some(&["nosuid".to_string(), "noexec".into(), "nodev".into()][..])
        );
        let sys = mounts
            .iter()
            .find(|m| m.typ().as_deref() == Some("sysfs"))
            .unwrap();
        assert!(sys.options().as_ref().unwrap().contains(&"ro".to_string()));
        assert!(DEFAULT_MASKED_PATHS.contains(&"/proc/kcore"));
        assert_eq!(default_readonly_paths().len(), DEFAULT_READONLY_PATHS.len());
    }
}
