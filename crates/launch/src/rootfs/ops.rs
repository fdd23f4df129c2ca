//! The steps of a rootfs plan and their execution. Runs in the forked child:
//! no allocation, only the [`Syscall`] methods and stack buffers.

use std::ffi::{CStr, CString};

use crate::msg::MsgBuf;
use crate::sys::{Create, Errno, FileKind, Syscall};

/// Arguments of one `mount(2)` call.
#[derive(Debug, Clone)]
pub(crate) struct MountArgs {
    pub source: Option<CString>,
    pub target: CString,
    pub fstype: Option<CString>,
    pub flags: libc::c_ulong,
    pub data: Option<CString>,
}

/// A mount whose mount point is found (and made when missing) inside the
/// root filesystem by descriptor, so no symlink, even one planted in a
/// volume mounted just before, can point it outside.
#[derive(Debug, Clone)]
pub(crate) struct InRootMount {
    /// The root filesystem on the host.
    pub root: CString,
    /// The destination below it, symlinks of the image already resolved.
    pub rel: CString,
    /// What to create when the mount point is missing.
    pub create: Create,
    pub source: Option<CString>,
    pub fstype: Option<CString>,
    pub flags: libc::c_ulong,
    pub data: Option<CString>,
    /// Flags a bind only takes through a remount (`ro`, `nosuid`...).
    pub remount_flags: libc::c_ulong,
    /// `MS_PRIVATE` etc., set by a call of its own; 0 for none.
    pub propagation: libc::c_ulong,
}

/// `/proc/self/fd/N` in a stack buffer: the path of an open descriptor.
struct FdPath([u8; 32]);

impl FdPath {
    fn new(fd: libc::c_int) -> FdPath {
        let mut buf = [0u8; 32];
        let prefix = b"/proc/self/fd/";
        buf[..prefix.len()].copy_from_slice(prefix);
        let mut digits = [0u8; 12];
        let mut n = fd.unsigned_abs();
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for (i, d) in digits[..len].iter().rev().enumerate() {
            buf[prefix.len() + i] = *d;
        }
        FdPath(buf)
    }

    fn as_cstr(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.0).expect("the buffer ends in NUL bytes")
    }
}

impl InRootMount {
    fn apply(&self, sys: &dyn Syscall) -> Result<(), Errno> {
        let fd = sys.open_in_root(&self.root, &self.rel, Some(self.create))?;
        let mounted = sys.mount(
            self.source.as_deref(),
            FdPath::new(fd).as_cstr(),
            self.fstype.as_deref(),
            self.flags,
            self.data.as_deref(),
        );
        sys.close(fd);
        mounted?;
        if self.remount_flags == 0 && self.propagation == 0 {
            return Ok(());
        }
        // Looked up again: now the path leads to the new mount's root.
        let fd = sys.open_in_root(&self.root, &self.rel, None)?;
        let path = FdPath::new(fd);
        let mut done = Ok(());
        if self.remount_flags != 0 {
            done = remount_bind(sys, path.as_cstr(), self.remount_flags);
        }
        if done.is_ok() && self.propagation != 0 {
            done = sys.mount(None, path.as_cstr(), None, self.propagation, None);
        }
        sys.close(fd);
        done
    }
}

/// One step of the rootfs setup.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Mount(MountArgs),
    /// A mount on a destination resolved inside the rootfs at run time.
    MountInRoot(InRootMount),
    /// A mount that may fail (e.g. the cgroup tree): the container still runs.
    MountOptional(MountArgs),
    /// A mount the kernel refuses inside a user namespace without owning
    /// the matching namespace (sysfs, mqueue): fall back to a recursive
    /// bind of the host's `host` path, then remount with `remount_flags`.
    MountOrBind {
        mount: MountArgs,
        host: CString,
        remount_flags: libc::c_ulong,
    },
    /// Remounts an existing bind mount with `flags`, keeping locked flags.
    RemountBind {
        target: CString,
        flags: libc::c_ulong,
    },
    /// mkdir that tolerates an existing directory.
    Mkdir(CString),
    /// An empty file to bind a file over.
    CreateFile(CString),
    Mknod {
        path: CString,
        mode: libc::mode_t,
        dev: libc::dev_t,
    },
    /// symlink that tolerates an existing link.
    Symlink {
        target: CString,
        link: CString,
    },
    /// Makes `root` the new `/` and detaches the old one (runc's
    /// `pivot_root(".", ".")` trick: no temporary directory needed).
    PivotRoot(CString),
    /// Hides a path: `/dev/null` over files, an empty read-only tmpfs over
    /// directories; missing paths are skipped.
    Mask(CString),
    /// Makes a path read-only with a bind mount onto itself.
    Readonly(CString),
    Hostname(CString),
}

const DEV_NULL: &CStr = c"/dev/null";
const DOT: &CStr = c".";
const SLASH: &CStr = c"/";
const TMPFS: &CStr = c"tmpfs";

fn do_mount(sys: &dyn Syscall, m: &MountArgs) -> Result<(), Errno> {
    sys.mount(
        m.source.as_deref(),
        &m.target,
        m.fstype.as_deref(),
        m.flags,
        m.data.as_deref(),
    )
}

fn remount_bind(sys: &dyn Syscall, target: &CStr, flags: libc::c_ulong) -> Result<(), Errno> {
    let locked = sys.locked_flags(target)?;
    sys.mount(
        None,
        target,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | flags | locked,
        None,
    )
}

fn ignore_exists(r: Result<(), Errno>) -> Result<(), Errno> {
    match r {
        Err(Errno::EEXIST) => Ok(()),
        r => r,
    }
}

impl Op {
    fn apply(&self, sys: &dyn Syscall) -> Result<(), Errno> {
        match self {
            Op::Mount(m) => do_mount(sys, m),
            Op::MountInRoot(m) => m.apply(sys),
            Op::MountOptional(m) => {
                let _ = do_mount(sys, m);
                Ok(())
            }
            Op::MountOrBind {
                mount,
                host,
                remount_flags,
            } => match do_mount(sys, mount) {
                Err(Errno::EPERM) | Err(Errno::EACCES) => {
                    sys.mount(
                        Some(host),
                        &mount.target,
                        None,
                        libc::MS_BIND | libc::MS_REC,
                        None,
                    )?;
                    remount_bind(sys, &mount.target, *remount_flags)
                }
                r => r,
            },
            Op::RemountBind { target, flags } => remount_bind(sys, target, *flags),
            Op::Mkdir(path) => ignore_exists(sys.mkdir(path, 0o755)),
            Op::CreateFile(path) => sys.create_file(path),
            Op::Mknod { path, mode, dev } => ignore_exists(sys.mknod(path, *mode, *dev)),
            Op::Symlink { target, link } => ignore_exists(sys.symlink(target, link)),
            Op::PivotRoot(root) => {
                sys.chdir(root)?;
                sys.pivot_root(DOT, DOT)?;
                // The old root is now stacked under the new one; make it a
                // slave so the detach cannot propagate to the host.
                sys.mount(None, DOT, None, libc::MS_SLAVE | libc::MS_REC, None)?;
                sys.umount2(DOT, libc::MNT_DETACH)?;
                sys.chdir(SLASH)
            }
            Op::Mask(path) => match sys.file_kind(path) {
                FileKind::Missing => Ok(()),
                FileKind::Dir => sys.mount(Some(TMPFS), path, Some(TMPFS), libc::MS_RDONLY, None),
                FileKind::Other => sys.mount(Some(DEV_NULL), path, None, libc::MS_BIND, None),
            },
            Op::Readonly(path) => {
                if sys.file_kind(path) == FileKind::Missing {
                    return Ok(());
                }
                sys.mount(Some(path), path, None, libc::MS_BIND | libc::MS_REC, None)?;
                remount_bind(sys, path, libc::MS_RDONLY)
            }
            Op::Hostname(name) => sys.sethostname(name),
        }
    }

    /// Writes a short description of the step for error reports.
    pub fn describe(&self, out: &mut MsgBuf) {
        let (verb, path): (&[u8], &CStr) = match self {
            Op::Mount(m) | Op::MountOptional(m) | Op::MountOrBind { mount: m, .. } => {
                out.push(b"mount ");
                if let Some(t) = &m.fstype {
                    out.push(t.to_bytes()).push(b" ");
                } else if let Some(s) = &m.source {
                    out.push(s.to_bytes()).push(b" ");
                }
                (b"on ", &m.target)
            }
            Op::MountInRoot(m) => {
                out.push(b"mount ");
                if let Some(t) = &m.fstype {
                    out.push(t.to_bytes()).push(b" ");
                } else if let Some(s) = &m.source {
                    out.push(s.to_bytes()).push(b" ");
                }
                out.push(b"on ").push(m.root.to_bytes()).push(b"/");
                (b"", &m.rel)
            }
            Op::RemountBind { target, .. } => (b"remount ", target),
            Op::Mkdir(p) => (b"mkdir ", p),
            Op::CreateFile(p) => (b"create ", p),
            Op::Mknod { path, .. } => (b"mknod ", path),
            Op::Symlink { link, .. } => (b"symlink ", link),
            Op::PivotRoot(p) => (b"pivot_root ", p),
            Op::Mask(p) => (b"mask ", p),
            Op::Readonly(p) => (b"make read-only ", p),
            Op::Hostname(h) => (b"sethostname ", h),
        };
        out.push(verb).push(path.to_bytes());
    }
}

/// Runs every step; on failure returns the failing step and its errno.
pub(crate) fn run<'a>(ops: &'a [Op], sys: &dyn Syscall) -> Result<(), (&'a Op, Errno)> {
    for op in ops {
        op.apply(sys).map_err(|e| (op, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::recording::Recorder;

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    #[test]
    fn mask_picks_tmpfs_for_dirs_null_for_files_and_skips_missing() {
        let mut rec = Recorder::default();
        rec.dirs.insert("/proc/acpi".into());
        rec.missing.insert("/proc/nope".into());
        let ops = [
            Op::Mask(c("/proc/acpi")),
            Op::Mask(c("/proc/kcore")),
            Op::Mask(c("/proc/nope")),
        ];
        run(&ops, &rec).unwrap();
        assert_eq!(
            rec.calls(),
            vec![
                "mount tmpfs /proc/acpi tmpfs 0x1 -".to_string(),
                "mount /dev/null /proc/kcore - 0x1000 -".to_string(),
            ]
        );
    }

    #[test]
    fn readonly_binds_then_remounts_keeping_locked_flags() {
        let rec = Recorder::default();
        run(&[Op::Readonly(c("/proc/sys"))], &rec).unwrap();
        let want_remount = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID;
        assert_eq!(
            rec.calls(),
            vec![
                format!(
                    "mount /proc/sys /proc/sys - {:#x} -",
                    libc::MS_BIND | libc::MS_REC
                ),
                format!("mount - /proc/sys - {want_remount:#x} -"),
            ]
        );
    }

    #[test]
    fn refused_sysfs_falls_back_to_a_readonly_bind_of_the_host() {
        let mut rec = Recorder::default();
        rec.refuse.insert("sysfs".into(), Errno::EPERM);
        let op = Op::MountOrBind {
            mount: MountArgs {
                source: Some(c("sysfs")),
                target: c("/r/sys"),
                fstype: Some(c("sysfs")),
                flags: libc::MS_RDONLY,
                data: None,
            },
            host: c("/sys"),
            remount_flags: libc::MS_RDONLY,
        };
        run(&[op], &rec).unwrap();
        let calls = rec.calls();
        assert_eq!(calls[0], "mount sysfs /r/sys refused");
        assert_eq!(
            calls[1],
            format!("mount /sys /r/sys - {:#x} -", libc::MS_BIND | libc::MS_REC)
        );
        assert!(calls[2].starts_with("mount - /r/sys -"));
    }

    #[test]
    fn other_errors_are_not_swallowed_by_the_fallback() {
        let mut rec = Recorder::default();
        rec.refuse.insert("sysfs".into(), Errno::ENODEV);
        let op = Op::MountOrBind {
            mount: MountArgs {
                source: None,
                target: c("/r/sys"),
                fstype: Some(c("sysfs")),
                flags: 0,
                data: None,
            },
            host: c("/sys"),
            remount_flags: 0,
        };
        let ops = [op];
        let (failed, errno) = run(&ops, &rec).unwrap_err();
        assert_eq!(errno, Errno::ENODEV);
        let mut m = MsgBuf::new();
        failed.describe(&mut m);
        assert_eq!(m.as_bytes(), b"mount sysfs on /r/sys");
    }

    #[test]
    fn pivot_root_detaches_the_old_root() {
        let rec = Recorder::default();
        run(&[Op::PivotRoot(c("/r"))], &rec).unwrap();
        let calls = rec.calls();
        assert_eq!(calls[0], "chdir /r");
        assert_eq!(calls[1], "pivot_root . .");
        assert!(calls[3].starts_with("umount2 . 0x2"));
        assert_eq!(calls[4], "chdir /");
    }
}
