//! Linux capabilities: names to numbers, Docker's default set, and applying
//! the five sets in the child (as bitmasks computed before the fork).

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

/// Docker's default capability set (moby `oci/caps/defaults.go`).
pub fn default_capabilities() -> Capabilities {
    use Capability::*;
    [
        Chown,
        DacOverride,
        Fsetid,
        Fowner,
        Mknod,
        NetRaw,
        Setgid,
        Setuid,
        Setfcap,
        Setpcap,
        NetBindService,
        SysChroot,
        Kill,
        AuditWrite,
    ]
    .into_iter()
    .collect()
}

/// The kernel's number for a capability (`linux/capability.h`).
pub(crate) fn number(cap: Capability) -> u32 {
    use Capability::*;
    match cap {
        Chown => 0,
        DacOverride => 1,
        DacReadSearch => 2,
        Fowner => 3,
        Fsetid => 4,
        Kill => 5,
        Setgid => 6,
        Setuid => 7,
        Setpcap => 8,
        LinuxImmutable => 9,
        NetBindService => 10,
        NetBroadcast => 11,
        NetAdmin => 12,
        NetRaw => 13,
        IpcLock => 14,
        IpcOwner => 15,
        SysModule => 16,
        SysRawio => 17,
        SysChroot => 18,
        SysPtrace => 19,
        SysPacct => 20,
        SysAdmin => 21,
        SysBoot => 22,
        SysNice => 23,
        SysResource => 24,
        SysTime => 25,
        SysTtyConfig => 26,
        Mknod => 27,
        Lease => 28,
        AuditWrite => 29,
        AuditControl => 30,
        Setfcap => 31,
        MacOverride => 32,
        MacAdmin => 33,
        Syslog => 34,
        WakeAlarm => 35,
        BlockSuspend => 36,
        AuditRead => 37,
        Perfmon => 38,
        Bpf => 39,
        CheckpointRestore => 40,
    }
}

fn mask(set: Option<&Capabilities>) -> u64 {
    set.into_iter()
        .flatten()
        .fold(0, |acc, c| acc | (1u64 << number(*c)))
}

/// The five sets as bitmasks, ready for the child.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
    /// Highest capability the running kernel knows.
    pub last_cap: u32,
}

impl CapSets {
    pub fn from_spec(caps: &LinuxCapabilities) -> Self {
        CapSets {
            bounding: mask(caps.bounding().as_ref()),
            effective: mask(caps.effective().as_ref()),
            permitted: mask(caps.permitted().as_ref()),
            inheritable: mask(caps.inheritable().as_ref()),
            ambient: mask(caps.ambient().as_ref()),
            last_cap: last_cap(),
        }
    }

    /// Drops capabilities outside the bounding set. Needs CAP_SETPCAP, so
    /// it runs before the switch to the container user.
    pub fn apply_bounding(&self) -> Result<(), nix::errno::Errno> {
        for cap in 0..=self.last_cap.min(63) {
            if self.bounding & (1 << cap) == 0 {
                // SAFETY: plain prctl with integer arguments.
                let r =
                    unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
                if r == -1 {
                    return Err(nix::errno::Errno::last());
                }
            }
        }
        Ok(())
    }

    /// Sets effective/permitted/inheritable, then raises the ambient set
    /// (ambient capabilities must already be permitted and inheritable).
    pub fn apply_sets(&self) -> Result<(), nix::errno::Errno> {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const VERSION_3: u32 = 0x2008_0522;
        let split = |m: u64| [m as u32, (m >> 32) as u32];
        let (e, p, i) = (
            split(self.effective),
            split(self.permitted),
            split(self.inheritable),
        );
        let hdr = Header {
            version: VERSION_3,
            pid: 0,
        };
        let data = [0, 1].map(|k| Data {
            effective: e[k],
            permitted: p[k],
            inheritable: i[k],
        });
        // SAFETY: header and two data words laid out as capset(2) expects.
        let r = unsafe { libc::syscall(libc::SYS_capset, &hdr, data.as_ptr()) };
        if r == -1 {
            return Err(nix::errno::Errno::last());
        }
        for cap in 0..=self.last_cap.min(63) {
            if self.ambient & (1 << cap) != 0 {
                // SAFETY: plain prctl with integer arguments.
                let r = unsafe {
                    libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                        cap as libc::c_ulong,
                        0,
                        0,
                    )
                };
                if r == -1 {
                    return Err(nix::errno::Errno::last());
                }
            }
        }
        Ok(())
    }
}

/// `/proc/sys/kernel/cap_last_cap`, or the newest number we know.
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_default_set_has_fourteen_caps_without_sys_admin() {
        let d = default_capabilities();
        assert_eq!(d.len(), 14);
        assert!(d.contains(&Capability::NetBindService));
        assert!(!d.contains(&Capability::SysAdmin));
    }

    #[test]
    fn masks_use_kernel_numbers() {
        let set: Capabilities = [Capability::Chown, Capability::Setfcap, Capability::Bpf]
            .into_iter()
            .collect();
        assert_eq!(mask(Some(&set)), 1 | (1 << 31) | (1 << 39));
        assert_eq!(mask(None), 0);
    }
}
