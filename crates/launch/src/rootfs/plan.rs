//! Turning a spec into the list of [`Op`]s the child runs.

use std::ffi::CString;
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceType, LinuxNamespaceType, Spec};

use super::ops::{InRootMount, MountArgs, Op};
use super::secure_join;
use crate::error::{Error, Result};
use crate::mountopts;
use crate::sys::Create;

/// Facts about the launch that change how the rootfs is built.
#[derive(Debug, Clone, Default)]
pub(crate) struct PlanContext {
    /// The container has its own user namespace: device nodes are bind
    /// mounts of the host's (mknod is refused) and sysfs/mqueue may need
    /// the bind fallback.
    pub userns: bool,
    /// gid 5 (tty) exists in the container's user namespace; devpts's
    /// `gid=5` option fails with EINVAL otherwise.
    pub tty_gid_mapped: bool,
    /// The host runs the unified cgroup hierarchy (`cgroup` mounts become
    /// cgroup2; on v1 they are skipped).
    pub cgroup_v2: bool,
    /// The init gets a terminal: make `/dev/console` for the child to bind
    /// its pty onto once it has opened one.
    pub console: bool,
}

/// The standard device nodes of Docker's `/dev` (name, major, minor).
const DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

const DEV_LINKS: [(&str, &str); 5] = [
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
    ("pts/ptmx", "ptmx"),
];

pub(crate) fn cstr(p: impl AsRef<std::ffi::OsStr>) -> Result<CString> {
    CString::new(p.as_ref().as_encoded_bytes())
        .map_err(|_| Error::InvalidSpec(format!("NUL byte in {:?}", p.as_ref())))
}

/// Builds the rootfs plan. `rootfs` must be absolute.
pub(crate) fn plan(spec: &Spec, rootfs: &Path, ctx: &PlanContext) -> Result<Vec<Op>> {
    let mut ops = Vec::new();
    let root_c = cstr(rootfs)?;
    let linux = spec.linux().as_ref();

    let propagation = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .map(|p| {
            mountopts::propagation_for(p)
                .ok_or_else(|| Error::InvalidSpec(format!("rootfsPropagation {p:?}")))
        })
        .transpose()?
        .unwrap_or(libc::MS_SLAVE | libc::MS_REC);
    ops.push(mount(None, cstr("/")?, None, propagation, None));
    // pivot_root needs the new root to be a mount point.
    ops.push(mount(
        Some(root_c.clone()),
        root_c.clone(),
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    ));

    for m in spec.mounts().iter().flatten() {
        let dest = secure_join(rootfs, m.destination())
            .map_err(|e| Error::io(format!("resolve {}", m.destination().display()), e))?;
        let typ = m.typ().as_deref().unwrap_or("");
        let opts = mountopts::parse(m.options().as_deref().unwrap_or_default());
        let dest_c = cstr(&dest)?;
        if typ == "bind" || opts.is_bind() {
            // Propagation included: the mount point is found by descriptor.
            plan_bind(&mut ops, rootfs, m.source().as_deref(), &dest, &opts)?;
            continue;
        } else if typ == "tmpfs" && dest != rootfs.join("dev") {
            // Volumes and binds may already be mounted on the way to it.
            let data = (!opts.data.is_empty())
                .then(|| cstr(&opts.data))
                .transpose()?;
            ops.push(Op::MountInRoot(InRootMount {
                source: m.source().as_deref().map(cstr).transpose()?,
                fstype: Some(cstr(typ)?),
                flags: opts.flags,
                data,
                remount_flags: 0,
                propagation: opts.propagation,
                ..in_root(rootfs, &dest, Create::Dir)?
            }));
            continue;
        } else {
            mkdirs(&mut ops, rootfs, &dest)?;
            let mut data = opts.data.clone();
            if typ == "devpts" && !ctx.tty_gid_mapped {
                data = data
                    .split(',')
                    .filter(|o| !o.starts_with("gid="))
                    .collect::<Vec<_>>()
                    .join(",");
            }
            let source = m.source().as_deref().map(cstr).transpose()?;
            let data = (!data.is_empty()).then(|| cstr(&data)).transpose()?;
            let args = MountArgs {
                source,
                target: dest_c.clone(),
                fstype: Some(cstr(typ)?),
                flags: opts.flags,
                data,
            };
            match typ {
                "cgroup" | "cgroup2" if ctx.cgroup_v2 => ops.push(Op::MountOptional(MountArgs {
                    fstype: Some(cstr("cgroup2")?),
                    data: None,
                    ..args
                })),
                "cgroup" | "cgroup2" => {
                    log::debug!("cgroup v1 host: not mounting a cgroup tree in the container");
                }
                "sysfs" | "mqueue" if ctx.userns => ops.push(Op::MountOrBind {
                    host: cstr(if typ == "sysfs" {
                        "/sys"
                    } else {
                        "/dev/mqueue"
                    })?,
                    remount_flags: opts.flags,
                    mount: args,
                }),
                _ => ops.push(Op::Mount(args)),
            }
            if typ == "tmpfs" && dest == rootfs.join("dev") {
                plan_dev(&mut ops, spec, &dest, ctx)?;
            }
        }
        if opts.propagation != 0 {
            ops.push(mount(None, dest_c, None, opts.propagation, None));
        }
    }

    if ctx.console {
        ops.push(Op::CreateFile(cstr(rootfs.join("dev/console"))?));
    }

    ops.push(Op::PivotRoot(root_c));

    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        ops.push(Op::RemountBind {
            target: cstr("/")?,
            flags: libc::MS_RDONLY,
        });
    }
    if let Some(l) = linux {
        for p in l.masked_paths().iter().flatten() {
            ops.push(Op::Mask(cstr(p)?));
        }
        for p in l.readonly_paths().iter().flatten() {
            ops.push(Op::Readonly(cstr(p)?));
        }
    }
    if let Some(h) = spec.hostname() {
        if has_new_namespace(spec, LinuxNamespaceType::Uts) {
            ops.push(Op::Hostname(cstr(h)?));
        }
    }
    Ok(ops)
}

/// Whether the spec asks for a fresh namespace of `typ` (listed without a path).
fn has_new_namespace(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == typ && n.path().is_none()))
}

fn mount(
    source: Option<CString>,
    target: CString,
    fstype: Option<CString>,
    flags: libc::c_ulong,
    data: Option<CString>,
) -> Op {
    Op::Mount(MountArgs {
        source,
        target,
        fstype,
        flags,
        data,
    })
}

/// A mkdir for every component of `dest` below `rootfs`: they run in the
/// child, after earlier mounts (a fresh `/dev` tmpfs needs its `pts`).
fn mkdirs(ops: &mut Vec<Op>, rootfs: &Path, dest: &Path) -> Result<()> {
    let rel = dest.strip_prefix(rootfs).unwrap_or(dest);
    let mut cur = rootfs.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        ops.push(Op::Mkdir(cstr(&cur)?));
    }
    Ok(())
}

/// An [`InRootMount`] of nothing yet on `dest` (a path below `rootfs`).
fn in_root(rootfs: &Path, dest: &Path, create: Create) -> Result<InRootMount> {
    let rel = dest.strip_prefix(rootfs).unwrap_or(dest);
    Ok(InRootMount {
        root: cstr(rootfs)?,
        rel: cstr(rel)?,
        create,
        source: None,
        fstype: None,
        flags: 0,
        data: None,
        remount_flags: 0,
        propagation: 0,
    })
}

/// A bind mount, its mount point (a directory, or an empty file for a
/// file) made inside the rootfs if missing.
fn plan_bind(
    ops: &mut Vec<Op>,
    rootfs: &Path,
    source: Option<&Path>,
    dest: &Path,
    opts: &mountopts::MountOptions,
) -> Result<()> {
    let source = source.ok_or_else(|| {
        Error::InvalidSpec(format!("bind mount on {} without source", dest.display()))
    })?;
    let meta = std::fs::metadata(source)
        .map_err(|e| Error::io(format!("bind source {}", source.display()), e))?;
    let create = if meta.is_dir() {
        Create::Dir
    } else {
        Create::File
    };
    ops.push(Op::MountInRoot(InRootMount {
        source: Some(cstr(source)?),
        flags: libc::MS_BIND | (opts.flags & libc::MS_REC),
        // Flags on a bind only take effect through a remount.
        remount_flags: opts.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT),
        propagation: opts.propagation,
        ..in_root(rootfs, dest, create)?
    }));
    Ok(())
}

/// Populates a fresh `/dev` tmpfs: nodes (mknod, or binds of the host's
/// nodes inside a user namespace), the spec's extra devices, and links.
fn plan_dev(ops: &mut Vec<Op>, spec: &Spec, dev: &Path, ctx: &PlanContext) -> Result<()> {
    let extra = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
        .map(|d| {
            let kind = match d.typ() {
                LinuxDeviceType::B => libc::S_IFBLK,
                LinuxDeviceType::P => libc::S_IFIFO,
                _ => libc::S_IFCHR,
            };
            let mode = kind | d.file_mode().unwrap_or(0o666);
            let dev = libc::makedev(d.major() as u32, d.minor() as u32);
            (d.path().clone(), mode, dev)
        });
    let standard = DEVICES.iter().map(|(name, major, minor)| {
        (
            Path::new("/dev").join(name),
            libc::S_IFCHR | 0o666,
            libc::makedev(*major, *minor),
        )
    });
    for (path, mode, devno) in standard.chain(extra) {
        let rel = path.strip_prefix("/dev").map_err(|_| {
            Error::InvalidSpec(format!("device {} is not under /dev", path.display()))
        })?;
        let target = dev.join(rel);
        if let Some(parent) = target.parent() {
            if parent != dev {
                mkdirs(ops, dev, parent)?;
            }
        }
        let target_c = cstr(&target)?;
        if ctx.userns {
            ops.push(Op::CreateFile(target_c.clone()));
            ops.push(mount(
                Some(cstr(&path)?),
                target_c,
                None,
                libc::MS_BIND,
                None,
            ));
        } else {
            ops.push(Op::Mknod {
                path: target_c,
                mode,
                dev: devno,
            });
        }
    }
    for (target, name) in DEV_LINKS {
        ops.push(Op::Symlink {
            target: cstr(target)?,
            link: cstr(dev.join(name))?,
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
