//! Helpers around a container's run state: whether its init is alive,
//! killing it, and clearing a root filesystem mount left behind. The
//! monitor itself is in [`monitor`](super::monitor).

use std::path::Path;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use super::error::{CResult, ContainerError};
use super::state::{self, Record};

/// Whether the record says running and its init is still there.
pub(crate) fn is_running(record: &Record) -> bool {
    record.state.running
        && Pid::from_raw(record.state.pid)
            .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

/// A record that says running while its init and its monitor are gone
/// belongs to a monitor that died without recording the exit: show it
/// exited, with the 255 Docker gives containers it lost track of. (An init
/// that is gone while its monitor lives is an exit about to be recorded.)
pub(crate) fn observe(record: &mut Record, dir: &Path) {
    if record.state.running && !is_running(record) && !super::monitor::monitor_alive(dir) {
        record.state.status = "exited".into();
        record.state.running = false;
        record.state.pid = 0;
        record.state.exit_code = 255;
        record.state.finished_at = record.state.started_at.clone();
    }
}

/// SIGKILLs a container's init (one already gone is fine), then waits a
/// while for its monitor to record the exit, so the caller can remove the
/// container without racing the monitor's own clean-up.
pub(crate) fn kill(dir: &Path, pid: i32) {
    if let Some(p) = Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, Signal::KILL);
    }
    // The monitor reaps the init, then unmounts, then records the exit;
    // once the init is gone, give it a moment (it may have died itself).
    let mut deadline = Instant::now() + Duration::from_secs(10);
    let mut init_gone = false;
    while Instant::now() < deadline {
        match state::load(dir) {
            Ok(Some(r)) if r.state.running => {
                if !init_gone && !is_running(&r) {
                    init_gone = true;
                    deadline = deadline.min(Instant::now() + Duration::from_secs(1));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => return,
        }
    }
    log::warn!("the monitor of {} did not record the exit", dir.display());
}

/// Lazily unmounts whatever is mounted on `rootfs` (a monitor that died
/// may have left it), then removes the mount point.
pub(crate) fn unmount_rootfs(rootfs: &Path) -> CResult<()> {
    loop {
        match rustix::mount::unmount(rootfs, rustix::mount::UnmountFlags::DETACH) {
            Ok(()) => continue,
            // EINVAL: not a mount point; ENOENT: no such dir.
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => break,
            Err(e) => {
                return Err(ContainerError::io(
                    format!("unmounting {}", rootfs.display()),
                    e.into(),
                ))
            }
        }
    }
    match std::fs::remove_dir(rootfs) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ContainerError::io(
            format!("removing {}", rootfs.display()),
            e,
        )),
        _ => Ok(()),
    }
}
