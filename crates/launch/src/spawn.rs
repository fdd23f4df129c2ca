//! Starting a container's init: one `clone` with every new namespace, id
//! maps and cgroup from the parent, then the child builds the rootfs and
//! execs (see [`child`](crate::child) for the protocol).

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::cgroups::{self, Cgroup, CgroupConfig};
use crate::error::{Error, Result};
use crate::fork::{self, ChildGuard, ExitStatus};
use crate::idmap::{self, IdRange};
use crate::process::{self, PlanExtras, PreparedStdio, Stdio};
use crate::rootfs::{self, PlanContext};

/// How to launch, beyond what the spec says.
#[derive(Debug, Default)]
pub struct LaunchOptions {
    /// The caller is unprivileged: always use a user namespace (with the
    /// rootless maps from /etc/subuid and /etc/subgid when the spec has
    /// none), and treat unwritable cgroups as a warning.
    pub rootless: bool,
    /// The caller already is root of the container's user namespace (it
    /// called [`enter_rootless_namespaces`](crate::enter_rootless_namespaces),
    /// and mounted the rootfs there): no new user namespace, even when
    /// `rootless`; device nodes are binds of the host's, and unwritable
    /// cgroups are a warning.
    pub inside_userns: bool,
    /// Where stdio goes when `process.terminal` is false.
    pub stdio: Stdio,
    /// The cgroup to create and put the container in.
    pub cgroup: Option<CgroupConfig>,
    /// Docker's `--init`: pid 1 is a minimal init (the launcher's own
    /// child, no extra binary) that runs the command as its child, forwards
    /// signals to it, reaps orphans, and exits with the command's status.
    pub init: bool,
}

/// A started container init.
#[derive(Debug)]
pub struct Container {
    pid: i32,
    pty_master: Option<OwnedFd>,
    cgroup: Option<Box<dyn Cgroup>>,
}

impl Container {
    /// The init's pid on the host (use it for [`exec`](crate::exec)).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The pty master when `process.terminal` was true (taken once).
    pub fn take_pty_master(&mut self) -> Option<OwnedFd> {
        self.pty_master.take()
    }

    /// The container's cgroup, unless cgroups were not requested or not
    /// writable.
    pub fn cgroup(&self) -> Option<&dyn Cgroup> {
        self.cgroup.as_deref()
    }

    /// Sends a signal to the init (which, as pid 1, ignores signals it has
    /// no handler for, except SIGKILL).
    pub fn kill(&self, signal: i32) -> Result<()> {
        let sig = Signal::try_from(signal)
            .map_err(|e| Error::io(format!("signal {signal}"), e.into()))?;
        kill(Pid::from_raw(self.pid), sig)
            .map_err(|e| Error::io(format!("kill {}", self.pid), e.into()))
    }

    /// Waits for the init to exit. The kernel then kills everything else in
    /// the pid namespace. The cgroup is left for the caller to inspect
    /// (OOM) and [`Cgroup::destroy`].
    pub fn wait(&mut self) -> Result<ExitStatus> {
        fork::wait_pid(self.pid)
    }
}

fn clone_flag(typ: LinuxNamespaceType) -> libc::c_int {
    match typ {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        // Created in the child once it is in its cgroup, so that cgroup is
        // the namespace's root; time namespaces are not supported.
        LinuxNamespaceType::Cgroup | LinuxNamespaceType::Time => 0,
    }
}

fn id_maps(spec: &Spec, rootless: bool) -> Result<(Vec<IdRange>, Vec<IdRange>)> {
    let linux = spec.linux().as_ref();
    let from_spec = |m: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| -> Vec<IdRange> {
        m.into_iter().flatten().map(IdRange::from).collect()
    };
    let uids = from_spec(linux.and_then(|l| l.uid_mappings().as_ref()));
    let gids = from_spec(linux.and_then(|l| l.gid_mappings().as_ref()));
    if !uids.is_empty() && !gids.is_empty() {
        return Ok((uids, gids));
    }
    if !rootless {
        return Err(Error::InvalidSpec(
            "user namespace without uidMappings/gidMappings".into(),
        ));
    }
    Ok(idmap::own_rootless_maps())
}

/// For a caller inside the container's user namespace: whether setgroups(2)
/// is denied there (a single-id gid map) and whether gid 5 (tty) is mapped.
fn current_userns_limits() -> (bool, bool) {
    let denied = std::fs::read_to_string("/proc/self/setgroups")
        .map(|s| s.trim() == "deny")
        .unwrap_or(false);
    let gids = std::fs::read_to_string("/proc/self/gid_map").unwrap_or_default();
    (denied, idmap::maps_id(&idmap::parse_map(&gids), 5))
}

/// Starts the container described by `spec` on the prepared root
/// filesystem `rootfs`. Returns once the command has been exec'd, or with
/// [`Error::CommandNotFound`] / [`Error::CannotInvoke`] / [`Error::Setup`]
/// after reaping the child if it could not be.
///
/// Safe to call from a multithreaded process: the child only makes
/// syscalls on data prepared here (see the crate docs).
pub fn spawn(spec: &Spec, rootfs: &Path, opts: &LaunchOptions) -> Result<Container> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::InvalidSpec("no process".into()))?;
    let rootfs = rootfs
        .canonicalize()
        .map_err(|e| Error::io(format!("rootfs {}", rootfs.display()), e))?;

    let mut flags = 0;
    let mut new_cgroupns = false;
    for ns in spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        if let Some(path) = ns.path() {
            return Err(Error::InvalidSpec(format!(
                "joining the {:?} namespace at {} is not supported",
                ns.typ(),
                path.display()
            )));
        }
        flags |= clone_flag(ns.typ());
        new_cgroupns |= ns.typ() == LinuxNamespaceType::Cgroup;
    }
    if opts.rootless && !opts.inside_userns {
        flags |= libc::CLONE_NEWUSER;
    }
    let userns = flags & libc::CLONE_NEWUSER != 0;
    let (uids, gids) = if userns {
        id_maps(spec, opts.rootless)?
    } else {
        (vec![], vec![])
    };
    let (setgroups_denied, tty_gid_mapped) = if userns {
        (idmap::setgroups_denied(&gids), idmap::maps_id(&gids, 5))
    } else if opts.inside_userns {
        current_userns_limits()
    } else {
        (false, true)
    };

    let terminal = process.terminal().unwrap_or(false);
    let mut stdio = PreparedStdio::new(terminal, &opts.stdio)?;
    let ctx = PlanContext {
        userns: userns || opts.inside_userns,
        tty_gid_mapped,
        cgroup_v2: cgroups::detect() == cgroups::Version::V2,
        console: terminal,
    };
    let ops = rootfs::plan(spec, &rootfs, &ctx)?;
    let mut plan = process::child_plan(
        process,
        &stdio,
        PlanExtras {
            rootfs_ops: ops,
            new_cgroupns,
            setgroups_denied,
            console: true,
        },
    )?;
    plan.init = opts.init;
    let command = process::command_name(process);

    let cgroup = match &opts.cgroup {
        Some(cfg) => cgroups::create_or_warn(cfg, opts.rootless || opts.inside_userns)?,
        None => None,
    };
    let result = cgroups::Joining::prepare(cgroup.as_deref()).and_then(|joining| {
        plan.cgroup_join = joining.child_fds();
        start(
            flags,
            &plan,
            userns,
            (&uids, &gids),
            (cgroup.as_deref(), joining),
            &command,
        )
    });
    let result = result.and_then(|pid| Ok((pid, stdio.receive_pty_master()?)));
    match result {
        Ok((pid, pty_master)) => Ok(Container {
            pid,
            pty_master,
            cgroup,
        }),
        Err(e) => {
            if let Some(cg) = &cgroup {
                if let Err(ce) = cg.destroy() {
                    log::warn!("removing cgroup after failed start: {ce}");
                }
            }
            Err(e)
        }
    }
}

fn start(
    flags: libc::c_int,
    plan: &crate::child::ChildPlan,
    userns: bool,
    (uids, gids): (&[IdRange], &[IdRange]),
    (cgroup, joining): (Option<&dyn Cgroup>, cgroups::Joining),
    command: &str,
) -> Result<i32> {
    let (sync_r, sync_w) = fork::pipe()?;
    let (err_r, err_w) = fork::pipe()?;
    // SAFETY: the child branch below only calls async-signal-safe code and
    // never returns.
    let pid = unsafe { fork::raw_clone(flags)? };
    if pid == 0 {
        let _unwind = crate::child::ExitOnUnwind;
        // SAFETY: closing our copies of the parent's ends.
        unsafe {
            libc::close(fork::raw(&sync_w));
            libc::close(fork::raw(&err_r));
        }
        crate::child::reset_signals();
        crate::child::wait_for_go(fork::raw(&sync_r));
        crate::child::run(plan, fork::raw(&err_w));
    }
    drop(sync_r);
    drop(err_w);
    let mut guard = ChildGuard(Some(pid));
    if userns {
        idmap::write_maps(pid, uids, gids)?;
    }
    joining.finish(cgroup, pid)?;
    fork::release_and_check(sync_w, err_r, &mut guard, command)?;
    guard.disarm();
    Ok(pid)
}
