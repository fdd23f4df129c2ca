//! What runs in the forked child, from the fork to `execve`.
//!
//! The parent may be multithreaded (the monitor runs FUSE threads), so after
//! fork only async-signal-safe work is allowed: no allocation, no locks, no
//! logging. Everything is prepared in a [`ChildPlan`] before the fork; the
//! child only makes syscalls and copies bytes into stack buffers.
//!
//! Protocol: the child blocks on the sync pipe until the parent has written
//! its id maps and put it in its cgroup. Failures are reported on the error
//! pipe as one record (`kind`, errno, message) in a single `write`; the pipe
//! is close-on-exec, so a successful exec shows up as EOF with no record.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::RawFd;

use crate::caps::CapSets;
use crate::error::Error;
use crate::msg::MsgBuf;
use crate::rootfs::{self, Op};
use crate::sys::{Errno, Linux};

/// Why the child gave up; the first byte of an error record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum FailKind {
    Setup = 1,
    NotFound = 2,
    CannotInvoke = 3,
}

/// Everything the child needs, computed before the fork.
pub(crate) struct ChildPlan {
    pub rootfs_ops: Vec<Op>,
    pub new_cgroupns: bool,
    pub setsid: bool,
    /// fds (all >= 3) to place on 0, 1, 2; `None` keeps the inherited one.
    pub stdio: [Option<RawFd>; 3],
    /// Open a pty inside the container and make it stdio and the
    /// controlling terminal (see [`PtyPlan`]).
    pub pty: Option<PtyPlan>,
    pub rlimits: Vec<(libc::c_int, libc::rlimit)>,
    pub caps: Option<CapSets>,
    pub no_new_privs: bool,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub groups: Option<Vec<libc::gid_t>>,
    pub umask: libc::mode_t,
    pub cwd: CString,
    pub exec: ExecTarget,
    /// Stay as pid 1 and run the command as a child (`--init`).
    pub init: bool,
    /// cgroup files to write `0` to, first thing (see `cgroups::Joining`).
    pub cgroup_join: Vec<RawFd>,
}

/// A terminal made inside the container once its root is in place: the
/// container's `/dev/ptmx` gives the pair, the master goes back to the
/// parent over `socket` (SCM_RIGHTS), the slave becomes fds 0-2 and the
/// controlling terminal, and, with `console`, `/dev/console` too.
pub(crate) struct PtyPlan {
    pub socket: RawFd,
    pub console: bool,
}

/// The program to exec and where to look for it.
pub(crate) struct ExecTarget {
    /// Kept alive for the pointer arrays below.
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
    /// Full paths to try in order (`$PATH` search done up front).
    candidates: Vec<CString>,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl ExecTarget {
    pub fn new(args: &[String], env: &[String]) -> crate::Result<Self> {
        let cs =
            |v: &[String]| -> crate::Result<Vec<CString>> { v.iter().map(rootfs::cstr).collect() };
        let argv = cs(args)?;
        let envp = cs(env)?;
        let first = args
            .first()
            .ok_or_else(|| Error::InvalidSpec("process.args is empty".into()))?;
        let path = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        let candidates = search_candidates(first, path)
            .iter()
            .map(rootfs::cstr)
            .collect::<crate::Result<_>>()?;
        let ptrs = |v: &[CString]| {
            v.iter()
                .map(|c| c.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        Ok(ExecTarget {
            argv_ptrs: ptrs(&argv),
            envp_ptrs: ptrs(&envp),
            _argv: argv,
            _envp: envp,
            candidates,
        })
    }

    /// Tries each candidate; returns only on failure, with the kind Docker
    /// would report: 127 when nothing was found, 126 when something was
    /// found but could not be run.
    fn exec(&self) -> (FailKind, Errno) {
        let mut denied = None;
        for path in &self.candidates {
            // SAFETY: NUL-terminated strings and null-terminated arrays that
            // live as long as `self`.
            unsafe {
                libc::execve(
                    path.as_ptr(),
                    self.argv_ptrs.as_ptr(),
                    self.envp_ptrs.as_ptr(),
                )
            };
            match Errno::last() {
                Errno::ENOENT | Errno::ENOTDIR => {}
                Errno::EACCES => denied = Some(Errno::EACCES),
                other => return (FailKind::CannotInvoke, other),
            }
        }
        match denied {
            Some(e) => (FailKind::CannotInvoke, e),
            None => (FailKind::NotFound, Errno::ENOENT),
        }
    }
}

/// The paths `execvp` would try for `cmd` under `path`.
pub(crate) fn search_candidates(cmd: &str, path: &str) -> Vec<String> {
    if cmd.contains('/') {
        return vec![cmd.to_string()];
    }
    path.split(':')
        .map(|dir| {
            let dir = if dir.is_empty() { "." } else { dir };
            format!("{}/{cmd}", dir.trim_end_matches('/'))
        })
        .collect()
}

/// Writes one error record and exits. Never returns.
pub(crate) fn fail(err_fd: RawFd, kind: FailKind, errno: Errno, what: &[u8]) -> ! {
    let mut m = MsgBuf::new();
    m.push(&[kind as u8])
        .push(&(errno as i32).to_le_bytes())
        .push(what);
    let bytes = m.as_bytes();
    // SAFETY: writing a stack buffer to a pipe, then exiting without
    // running atexit handlers (they belong to the parent).
    unsafe {
        libc::write(err_fd, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(match kind {
            FailKind::NotFound => 127,
            FailKind::CannotInvoke => 126,
            FailKind::Setup => 125,
        })
    }
}

fn check(ret: libc::c_int, err_fd: RawFd, what: &CStr) -> libc::c_int {
    if ret == -1 {
        fail(err_fd, FailKind::Setup, Errno::last(), what.to_bytes());
    }
    ret
}

/// A syscall with three integer arguments, as the `libc` wrappers' -1/errno.
fn raw_syscall3(
    nr: libc::c_long,
    a: libc::c_long,
    b: libc::c_long,
    c: libc::c_long,
) -> libc::c_int {
    // SAFETY: callers pass arguments valid for `nr`.
    unsafe { libc::syscall(nr, a, b, c) as libc::c_int }
}

/// Exits the child if it ever unwinds: a panic must not carry the forked
/// copy back into the caller's code (a second copy of the caller running).
pub(crate) struct ExitOnUnwind;

impl Drop for ExitOnUnwind {
    fn drop(&mut self) {
        // SAFETY: terminating the child without running the parent's handlers.
        unsafe { libc::_exit(125) }
    }
}

/// Resets what the parent may have changed (Rust ignores SIGPIPE; the
/// monitor blocks signals) so the container starts with defaults.
pub(crate) fn reset_signals() {
    // SAFETY: sigset and signal calls on valid arguments.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in 1..libc::SIGRTMIN() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}

/// Blocks until the parent says go; exits quietly if the parent went away.
pub(crate) fn wait_for_go(sync_fd: RawFd) {
    let mut b = 0u8;
    // SAFETY: reading one byte into a stack variable.
    let n = unsafe { libc::read(sync_fd, (&mut b as *mut u8).cast(), 1) };
    if n != 1 {
        // SAFETY: exiting the child.
        unsafe { libc::_exit(1) };
    }
}

/// Writes `/dev/pts/N` and a NUL into `buf`; returns the used length.
fn pts_path(n: u32, buf: &mut [u8; 32]) -> usize {
    const PREFIX: &[u8] = b"/dev/pts/";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let mut len = 0;
    let mut v = n;
    loop {
        digits[len] = b'0' + (v % 10) as u8;
        len += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[PREFIX.len() + i] = digits[len - 1 - i];
    }
    buf[PREFIX.len() + len] = 0;
    PREFIX.len() + len + 1
}

/// See [`PtyPlan`]; async-signal-safe (stack buffers and syscalls only).
fn open_pty(pty: &PtyPlan, err_fd: RawFd) {
    // SAFETY: raw syscalls on fds we own and on stack buffers that
    // outlive each call; the cmsg pointers come from CMSG_FIRSTHDR on a
    // control buffer sized by CMSG_SPACE.
    unsafe {
        let master = check(
            libc::open(
                c"/dev/ptmx".as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            ),
            err_fd,
            c"open /dev/ptmx",
        );
        let mut unlock: libc::c_int = 0;
        check(
            libc::ioctl(master, libc::TIOCSPTLCK, &mut unlock),
            err_fd,
            c"unlock pty",
        );
        let slave = check(
            libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY),
            err_fd,
            c"open pty slave",
        );
        if pty.console {
            let mut n: libc::c_uint = 0;
            check(
                libc::ioctl(master, libc::TIOCGPTN, &mut n),
                err_fd,
                c"pty number",
            );
            let mut path = [0u8; 32];
            pts_path(n, &mut path);
            check(
                libc::mount(
                    path.as_ptr().cast(),
                    c"/dev/console".as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ),
                err_fd,
                c"bind the pty to /dev/console",
            );
        }
        // One byte of data and the master in an SCM_RIGHTS message.
        let mut byte = 0u8;
        let mut iov = libc::iovec {
            iov_base: (&mut byte as *mut u8).cast(),
            iov_len: 1,
        };
        let mut control = [0u64; 4];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::copy_nonoverlapping(
            (&master as *const libc::c_int).cast::<u8>(),
            libc::CMSG_DATA(cmsg),
            std::mem::size_of::<libc::c_int>(),
        );
        check(
            libc::sendmsg(pty.socket, &msg, 0) as libc::c_int,
            err_fd,
            c"send the pty master",
        );
        libc::close(master);
        for target in 0..3 {
            check(libc::dup2(slave, target), err_fd, c"dup2 pty");
        }
        if slave > 2 {
            libc::close(slave);
        }
        check(
            libc::ioctl(0, libc::TIOCSCTTY, 0),
            err_fd,
            c"set controlling terminal",
        );
    }
}

/// The child's work after the go signal: set up, then exec.
pub(crate) fn run(plan: &ChildPlan, err_fd: RawFd) -> ! {
    // SAFETY (whole function): raw syscalls on values prepared before the
    // fork; errors are reported through `fail`.
    unsafe {
        for fd in &plan.cgroup_join {
            check(
                libc::write(*fd, b"0".as_ptr().cast(), 1) as libc::c_int,
                err_fd,
                c"joining the container's cgroup",
            );
        }
        if plan.new_cgroupns {
            check(
                libc::unshare(libc::CLONE_NEWCGROUP),
                err_fd,
                c"unshare cgroup namespace",
            );
        }
        if plan.setsid {
            check(libc::setsid(), err_fd, c"setsid");
        }
        for (target, fd) in plan.stdio.iter().enumerate() {
            if let Some(fd) = fd {
                check(
                    libc::dup2(*fd, target as libc::c_int),
                    err_fd,
                    c"dup2 stdio",
                );
            }
        }
        // Device nodes and dirs get exactly the modes the plan asks for.
        libc::umask(0);
        if let Err((op, errno)) = rootfs::run(&plan.rootfs_ops, &Linux) {
            let mut m = MsgBuf::new();
            op.describe(&mut m);
            fail(err_fd, FailKind::Setup, errno, m.as_bytes());
        }
        if let Some(pty) = &plan.pty {
            open_pty(pty, err_fd);
        }
        for (resource, limit) in &plan.rlimits {
            check(libc::setrlimit(*resource as _, limit), err_fd, c"setrlimit");
        }
        if let Some(caps) = &plan.caps {
            if let Err(e) = caps.apply_bounding() {
                fail(err_fd, FailKind::Setup, e, b"drop bounding capabilities");
            }
        }
        // Credentials change through raw syscalls: glibc's wrappers
        // broadcast the change to every thread it knows of and wait for
        // them, and after a raw clone those threads do not exist here, so
        // the child would hang forever in a futex.
        if let Some(groups) = &plan.groups {
            check(
                raw_syscall3(
                    libc::SYS_setgroups,
                    groups.len() as _,
                    groups.as_ptr() as _,
                    0,
                ),
                err_fd,
                c"setgroups",
            );
        }
        // Keep permitted capabilities across the uid change; capset below
        // then sets exactly the spec's sets.
        check(
            libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0),
            err_fd,
            c"keep capabilities",
        );
        check(
            raw_syscall3(
                libc::SYS_setresgid,
                plan.gid as _,
                plan.gid as _,
                plan.gid as _,
            ),
            err_fd,
            c"setresgid",
        );
        check(
            raw_syscall3(
                libc::SYS_setresuid,
                plan.uid as _,
                plan.uid as _,
                plan.uid as _,
            ),
            err_fd,
            c"setresuid",
        );
        if let Some(caps) = &plan.caps {
            if let Err(e) = caps.apply_sets() {
                fail(err_fd, FailKind::Setup, e, b"set capabilities");
            }
        }
        if plan.no_new_privs {
            check(
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
                err_fd,
                c"set no_new_privs",
            );
        }
        libc::umask(plan.umask);
        if libc::chdir(plan.cwd.as_ptr()) == -1 {
            let mut m = MsgBuf::new();
            m.push(b"chdir to cwd ").push(plan.cwd.to_bytes());
            fail(err_fd, FailKind::Setup, Errno::last(), m.as_bytes());
        }
        // Nothing but stdio and the error pipe (close-on-exec) may leak
        // into the container.
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        if plan.init {
            run_as_init(plan, err_fd);
        }
        let (kind, errno) = plan.exec.exec();
        fail(err_fd, kind, errno, plan.exec._argv[0].to_bytes())
    }
}

/// The command's pid, for the init's signal handler.
static INIT_CHILD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward_to_child(sig: libc::c_int) {
    let pid = INIT_CHILD.load(std::sync::atomic::Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// `--init`: forks the command (which execs, reporting a failure on
/// `err_fd` itself), then, as pid 1, forwards every signal it can catch to
/// the command, reaps whatever exits, and exits as the command did (128 +
/// signal when it was killed, as tini does). Async-signal-safe only.
fn run_as_init(plan: &ChildPlan, err_fd: RawFd) -> ! {
    // SAFETY: raw clone/wait4/sigaction/kill/_exit on stack values; the
    // forked branch only execs or fails.
    unsafe {
        // Signals that come before the handlers are in place wait here.
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, &mut old);
        let pid = libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        ) as libc::pid_t;
        if pid == -1 {
            fail(
                err_fd,
                FailKind::Setup,
                Errno::last(),
                b"fork the command under --init",
            );
        }
        if pid == 0 {
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            let (kind, errno) = plan.exec.exec();
            fail(err_fd, kind, errno, plan.exec._argv[0].to_bytes());
        }
        INIT_CHILD.store(pid, std::sync::atomic::Ordering::SeqCst);
        // The command reports its own exec. The init never execs, so
        // close-on-exec does nothing for it: close everything above stdio
        // (the error pipe, the monitor's readiness pipe and lock), or those
        // who wait for their end would wait for the container.
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        let _ = err_fd;
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = forward_to_child as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        for sig in 1..libc::SIGRTMIN() {
            if !matches!(sig, libc::SIGKILL | libc::SIGSTOP | libc::SIGCHLD) {
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
        libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        loop {
            let mut status = 0;
            let reaped = libc::wait4(-1, &mut status, 0, std::ptr::null_mut());
            if reaped == pid {
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    128 + libc::WTERMSIG(status)
                };
                libc::_exit(code);
            }
            if reaped == -1 && Errno::last() != Errno::EINTR {
                libc::_exit(255);
            }
        }
    }
}

/// Decodes an error record read from the error pipe. `command` names the
/// program for not-found messages.
pub(crate) fn decode_failure(record: &[u8], command: &str) -> Error {
    let (Some(&kind), Some(errno)) = (record.first(), record.get(1..5)) else {
        return Error::Setup {
            step: "container child exited during setup".into(),
            source: io::Error::other("truncated error record"),
        };
    };
    let errno = i32::from_le_bytes(errno.try_into().expect("4 bytes"));
    let source = io::Error::from_raw_os_error(errno);
    let what = String::from_utf8_lossy(&record[5..]).into_owned();
    match kind {
        k if k == FailKind::NotFound as u8 => Error::CommandNotFound {
            command: command.to_string(),
        },
        k if k == FailKind::CannotInvoke as u8 => Error::CannotInvoke {
            command: command.to_string(),
            source,
        },
        _ => Error::Setup { step: what, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_search_lists_every_dir_and_keeps_explicit_paths() {
        assert_eq!(
            search_candidates("sh", "/bin:/usr/bin/::"),
            vec!["/bin/sh", "/usr/bin/sh", "./sh", "./sh"]
        );
        assert_eq!(search_candidates("./run", "/bin"), vec!["./run"]);
    }

    #[test]
    fn pts_paths_are_written_without_allocating() {
        let mut buf = [0u8; 32];
        let n = pts_path(0, &mut buf);
        assert_eq!(&buf[..n], b"/dev/pts/0\0");
        let n = pts_path(4096, &mut buf);
        assert_eq!(&buf[..n], b"/dev/pts/4096\0");
        let n = pts_path(u32::MAX, &mut buf);
        assert_eq!(&buf[..n], b"/dev/pts/4294967295\0");
    }

    #[test]
    fn exec_target_uses_the_spec_path_and_rejects_empty_args() {
        let t = ExecTarget::new(&["ls".into()], &["PATH=/x:/y".into()]).unwrap();
        assert_eq!(t.candidates, vec![c"/x/ls".to_owned(), c"/y/ls".to_owned()]);
        assert_eq!(t.argv_ptrs.len(), 2);
        assert!(t.argv_ptrs[1].is_null());
        assert!(matches!(
            ExecTarget::new(&[], &[]),
            Err(Error::InvalidSpec(_))
        ));
    }

    #[test]
    fn error_records_round_trip_to_the_right_error() {
        let rec = |kind: FailKind, errno: i32, what: &[u8]| {
            let mut v = vec![kind as u8];
            v.extend_from_slice(&errno.to_le_bytes());
            v.extend_from_slice(what);
            v
        };
        let e = decode_failure(&rec(FailKind::NotFound, libc::ENOENT, b"x"), "nope");
        assert_eq!(e.exit_code(), 127);
        let e = decode_failure(&rec(FailKind::CannotInvoke, libc::EACCES, b"x"), "f");
        assert_eq!(e.exit_code(), 126);
        let e = decode_failure(&rec(FailKind::Setup, libc::EPERM, b"mount proc on /p"), "f");
        assert_eq!(e.exit_code(), 125);
        assert!(e.to_string().contains("mount proc on /p"), "{e}");
        assert_eq!(decode_failure(&[1], "f").exit_code(), 125);
    }
}
