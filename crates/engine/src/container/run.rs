//! Running a container in the foreground: the calling process is its
//! monitor. It mounts the root filesystem (and serves it, with the fuse
//! driver), starts the init with the caller's stdio, records the state
//! transitions and the exit status, and unmounts.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_launch::{LaunchOptions, Stdio};
use rustix::process::{Pid, Signal};

use super::error::{CResult, ContainerError};
use super::spec;
use super::state::{self, Record};
use crate::images::now_rfc3339;
use crate::Engine;

/// Whether the record says running and its init is still there.
pub(crate) fn is_running(record: &Record) -> bool {
    record.state.running
        && Pid::from_raw(record.state.pid)
            .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

/// A record that says running while its init is gone belongs to a monitor
/// that died without recording the exit: show it exited, with the 255
/// Docker gives containers it lost track of.
pub(crate) fn observe(record: &mut Record) {
    if record.state.running && !is_running(record) {
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

impl Engine {
    /// `start -a` and foreground `run`: runs the container to completion
    /// with this process's stdout and stderr (and stdin when `interactive`,
    /// else an empty one, as Docker without `-i`) and returns its exit code
    /// (Docker's: the command's, or 128 + signal).
    pub fn run_attached(&self, query: &str, interactive: bool) -> CResult<i32> {
        let mut record = self.container(query)?;
        if is_running(&record) {
            return Err(ContainerError::InvalidArgument(format!(
                "container {} is already running",
                &record.id[..12]
            )));
        }
        let dir = self.container_dir(&record.id);
        // ROOTLESS (branch rootless): with a union driver this process
        // becomes root of the container's user namespace, with a mount
        // namespace of its own, before it mounts anything (and before any
        // FUSE thread starts). The rootfs mount is then private to it.
        let inside_userns = super::rootless::union_driver(self);
        if inside_userns {
            berth_launch::enter_rootless_namespaces()?;
        }
        let mount = self.store.mount(&record.id)?.ok_or_else(|| {
            ContainerError::InvalidArgument(format!("container {} has no layer", record.id))
        })?;
        let mounts = self.snapshotter()?.mounts(&mount.mount_id)?;
        let rootfs = dir.join("rootfs");
        unmount_rootfs(&rootfs)?;
        // Rootless with vfs, the plain directory is bound by the launcher
        // inside the container's user namespace; union mounts are made here,
        // in the namespaces entered above.
        let direct = match (self.rootless && !inside_userns, mounts.as_slice()) {
            (false, _) => None,
            (true, [m]) if m.fstype == "bind" => Some(std::path::PathBuf::from(&m.source)),
            (true, _) => return Err(ContainerError::RootlessUnsupported),
        };
        let (rootfs, guard) = match direct {
            Some(dir) => (dir, None),
            None => {
                std::fs::create_dir(&rootfs)
                    .map_err(|e| ContainerError::io(format!("creating {}", rootfs.display()), e))?;
                let guard = berth_snapshot::mount_all(&mounts, &rootfs)?;
                (rootfs, Some(guard))
            }
        };

        let started = spec::build(&record, &rootfs).and_then(|spec| {
            let stdio = if interactive {
                Stdio::Inherit
            } else {
                let null = std::fs::File::open("/dev/null")
                    .map_err(|e| ContainerError::io("opening /dev/null", e))?;
                Stdio::Fds {
                    stdin: Some(null.into()),
                    stdout: None,
                    stderr: None,
                }
            };
            let opts = LaunchOptions {
                rootless: self.rootless,
                inside_userns, // ROOTLESS (branch rootless)
                stdio,
                cgroup: None,
            };
            Ok(berth_launch::spawn(&spec, &rootfs, &opts)?)
        });
        let mut container = match started {
            Ok(c) => c,
            Err(e) => {
                // Docker records a failed start as exited with its code.
                record.state.status = "exited".into();
                record.state.exit_code = e.exit_code().into();
                record.state.error = e.to_string();
                record.state.finished_at = now_rfc3339();
                let _ = state::save(&dir, &record);
                if guard.is_some() {
                    drop(guard);
                    let _ = std::fs::remove_dir(&rootfs);
                }
                return Err(e);
            }
        };
        record.state = state::State {
            status: "running".into(),
            running: true,
            pid: container.pid(),
            started_at: now_rfc3339(),
            ..Default::default()
        };
        state::save(&dir, &record)?;

        let waited = container.wait();
        // Unmount before recording the exit: `rm -f` waits for the record
        // to say exited, then removes what is left.
        let unmounted = match guard {
            Some(g) => g
                .unmount()
                .map_err(ContainerError::from)
                .and_then(|()| unmount_rootfs(&rootfs)),
            None => Ok(()),
        };
        let code = match &waited {
            Ok(status) => status.code(),
            Err(_) => 125,
        };
        record.state.status = "exited".into();
        record.state.running = false;
        record.state.pid = 0;
        record.state.exit_code = code;
        record.state.finished_at = now_rfc3339();
        if let Err(e) = &waited {
            record.state.error = e.to_string();
        }
        state::save(&dir, &record)?;
        unmounted?;
        waited?;
        Ok(code)
    }
}
