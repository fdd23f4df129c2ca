//! Running another process inside a running container (`docker exec`): join
//! the init's namespaces with setns, then fork once more so the new process
//! is inside the pid namespace too.
//!
//! Processes: the caller clones an intermediate, which joins the namespaces
//! and clones the exec'd process with `CLONE_PARENT` (so the caller can wait
//! for it), reports its pid on a pipe and exits. The exec'd process then
//! follows the same go/error-pipe protocol as a container init.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use oci_spec::runtime::Process;

use crate::cgroups::{self, Cgroup};
use crate::child::{self, FailKind};
use crate::error::{Error, Result};
use crate::fork::{self, ChildGuard, ExitStatus};
use crate::process::{self, PlanExtras, PreparedStdio, Stdio};
use crate::sys::Errno;

/// Namespaces in the order they are joined: the user namespace first (it
/// grants the rights to join the others), the mount namespace last.
const NAMESPACES: [(&str, libc::c_int); 7] = [
    ("user", libc::CLONE_NEWUSER),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("mnt", libc::CLONE_NEWNS),
];

/// How to run an exec'd process.
#[derive(Debug, Default)]
pub struct ExecOptions<'a> {
    /// Where stdio goes when `process.terminal` is false.
    pub stdio: Stdio,
    /// The container's cgroup, to put the process in.
    pub cgroup: Option<&'a dyn Cgroup>,
}

/// A process started inside a container.
#[derive(Debug)]
pub struct ExecChild {
    pid: i32,
    pty_master: Option<OwnedFd>,
}

impl ExecChild {
    /// The process's pid on the host.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The pty master when `process.terminal` was true (taken once).
    pub fn take_pty_master(&mut self) -> Option<OwnedFd> {
        self.pty_master.take()
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        fork::wait_pid(self.pid)
    }
}

/// Opens the namespaces of `pid` that differ from ours (setns into one's
/// own user namespace is an error, and joining the same ones is a no-op).
pub(crate) fn namespace_fds(pid: i32) -> Result<Vec<(OwnedFd, libc::c_int, &'static str)>> {
    let mut out = Vec::new();
    for (name, flag) in NAMESPACES {
        let theirs = format!("/proc/{pid}/ns/{name}");
        let ours = std::fs::metadata(format!("/proc/self/ns/{name}"));
        let file = match File::open(&theirs) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && name == "cgroup" => continue,
            Err(e) => return Err(Error::io(format!("open {theirs}"), e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| Error::io(format!("stat {theirs}"), e))?;
        if let Ok(o) = ours {
            if o.ino() == meta.ino() && o.dev() == meta.dev() {
                continue;
            }
        }
        out.push((OwnedFd::from(file), flag, name));
    }
    Ok(out)
}

/// Starts `process` inside the container whose init is `pid`, with the
/// process's own user, environment, working directory, capabilities and
/// rlimits. Returns once it has been exec'd (errors as for
/// [`spawn`](crate::spawn)).
pub fn exec(pid: i32, process: &Process, opts: &ExecOptions) -> Result<ExecChild> {
    let namespaces = namespace_fds(pid)?;
    let setgroups_denied = std::fs::read_to_string(format!("/proc/{pid}/setgroups"))
        .map(|s| s.trim() == "deny")
        .unwrap_or(false);
    let terminal = process.terminal().unwrap_or(false);
    let mut stdio = PreparedStdio::new(terminal, &opts.stdio)?;
    let mut plan = process::child_plan(
        process,
        &stdio,
        PlanExtras {
            rootfs_ops: vec![],
            new_cgroupns: false,
            setgroups_denied,
            console: false,
        },
    )?;
    let joining = cgroups::Joining::prepare(opts.cgroup)?;
    plan.cgroup_join = joining.child_fds();
    let command = process::command_name(process);
    let ns_raw: Vec<(i32, libc::c_int, &[u8])> = namespaces
        .iter()
        .map(|(fd, flag, name)| (fd.as_raw_fd(), *flag, name.as_bytes()))
        .collect();

    let (sync_r, sync_w) = fork::pipe()?;
    let (err_r, err_w) = fork::pipe()?;
    let (pid_r, pid_w) = fork::pipe()?;
    // SAFETY: the child branch only makes async-signal-safe calls and
    // never returns.
    let mid = unsafe { fork::raw_clone(0)? };
    if mid == 0 {
        let _unwind = crate::child::ExitOnUnwind;
        let err_fd = err_w.as_raw_fd();
        // SAFETY: raw syscalls on fds and data prepared before the fork.
        unsafe {
            libc::close(sync_w.as_raw_fd());
            libc::close(err_r.as_raw_fd());
            libc::close(pid_r.as_raw_fd());
            for (fd, flag, name) in &ns_raw {
                if libc::setns(*fd, *flag) == -1 {
                    child::fail(err_fd, FailKind::Setup, Errno::last(), name);
                }
            }
            let flags = (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong;
            let gc = libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize);
            if gc == -1 {
                child::fail(
                    err_fd,
                    FailKind::Setup,
                    Errno::last(),
                    b"clone into pid namespace",
                );
            }
            if gc == 0 {
                libc::close(pid_w.as_raw_fd());
                child::reset_signals();
                child::wait_for_go(sync_r.as_raw_fd());
                child::run(&plan, err_fd);
            }
            let bytes = (gc as i32).to_le_bytes();
            libc::write(pid_w.as_raw_fd(), bytes.as_ptr().cast(), 4);
            libc::_exit(0);
        }
    }
    drop((sync_r, err_w, pid_w));
    fork::wait_pid(mid)?;
    let mut buf = [0u8; 4];
    let mut pid_file = File::from(pid_r);
    if pid_file.read_exact(&mut buf).is_err() {
        // The intermediate failed; its record says why.
        let mut record = Vec::new();
        let _ = File::from(err_r).read_to_end(&mut record);
        return Err(child::decode_failure(&record, &command));
    }
    let child_pid = i32::from_le_bytes(buf);
    let mut guard = ChildGuard(Some(child_pid));
    joining.finish(opts.cgroup, child_pid)?;
    fork::release_and_check(sync_w, err_r, &mut guard, &command)?;
    let pty_master = stdio.receive_pty_master()?;
    guard.disarm();
    Ok(ExecChild {
        pid: child_pid,
        pty_master,
    })
}
