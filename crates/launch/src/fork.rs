//! The fork machinery shared by spawn and exec: raw clone, the sync and
//! error pipes, waiting, and killing a half-started child on error.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::child::decode_failure;
use crate::error::{Error, Result};

/// How a container process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

impl ExitStatus {
    /// The code Docker reports: the exit code, or 128 + signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }
}

/// `clone(2)` with fork semantics (no new stack): the child continues from
/// here with a copy of the address space. Returns 0 in the child.
///
/// # Safety
/// The child must only do async-signal-safe work and must not return into
/// code that unwinds, allocates or takes locks.
pub(crate) unsafe fn raw_clone(flags: libc::c_int) -> Result<libc::pid_t> {
    let flags = (flags | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: argument order is the same for zeros on every architecture.
    let r = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    if r == -1 {
        return Err(Error::io("clone", std::io::Error::last_os_error()));
    }
    Ok(r as libc::pid_t)
}

/// A close-on-exec pipe as (read, write).
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::io("create pipe", e.into()))
}

/// Waits for `pid`, retrying on EINTR.
pub(crate) fn wait_pid(pid: i32) -> Result<ExitStatus> {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(ExitStatus::Exited(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(ExitStatus::Signaled(sig as i32)),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::io(format!("wait for {pid}"), e.into())),
        }
    }
}

/// Kills and reaps a child unless disarmed: a failed start leaves nothing.
pub(crate) struct ChildGuard(pub Option<i32>);

impl ChildGuard {
    pub fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = wait_pid(pid);
        }
    }
}

/// Lets the child go, then waits for its exec: EOF on the error pipe means
/// success; a record means it failed (and has exited).
pub(crate) fn release_and_check(
    sync_w: OwnedFd,
    err_r: OwnedFd,
    guard: &mut ChildGuard,
    command: &str,
) -> Result<()> {
    nix::unistd::write(&sync_w, &[1]).map_err(|e| Error::io("signal child", e.into()))?;
    drop(sync_w);
    let mut record = Vec::new();
    std::fs::File::from(err_r)
        .read_to_end(&mut record)
        .map_err(|e| Error::io("read child status", e))?;
    if record.is_empty() {
        return Ok(());
    }
    if let Some(pid) = guard.0.take() {
        let _ = wait_pid(pid);
    }
    Err(decode_failure(&record, command))
}

pub(crate) fn raw(fd: &OwnedFd) -> i32 {
    fd.as_raw_fd()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_codes_for_signals() {
        assert_eq!(ExitStatus::Exited(3).code(), 3);
        assert_eq!(ExitStatus::Signaled(9).code(), 137);
    }
}
