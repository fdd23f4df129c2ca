//! Rootless containers whose root filesystem is a union mount: the mount
//! must be made inside the container's user namespace (the kernel allows
//! overlayfs with `userxattr`, and FUSE, there), so the process that owns the
//! mount (the container's monitor) enters a user namespace of its own with
//! the rootless id maps, and a mount namespace owned by it, before it mounts
//! anything; [`spawn`](crate::spawn) with
//! [`LaunchOptions::inside_userns`](crate::LaunchOptions) then starts the
//! init there without another user namespace.
//!
//! An unprivileged process cannot write its own maps beyond its own id, and
//! newuidmap/newgidmap must be run from outside the namespace: a helper is
//! forked first (the caller is still single-threaded, as unsharing a user
//! namespace requires), waits until the caller has unshared, writes the
//! maps for it and reports back on a pipe.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use crate::error::{Error, Result};
use crate::fork;
use crate::idmap::{self, IdRange};

/// The steps of entering the namespaces, behind a trait so their order is
/// tested without privileges.
trait NamespaceOps {
    /// A started map writer, waiting for the go.
    type Writer;
    /// Threads in this process: unshare(CLONE_NEWUSER) needs exactly one.
    fn threads(&self) -> Result<usize>;
    /// Starts a helper that will write `uids` and `gids` for this process.
    fn start_map_writer(&self, uids: &[IdRange], gids: &[IdRange]) -> Result<Self::Writer>;
    /// Tells the helper this process has unshared; returns once the maps
    /// are written (or why they could not be).
    fn finish_map_writer(&self, writer: Self::Writer) -> Result<()>;
    fn unshare(&self, flags: libc::c_int) -> Result<()>;
    /// setresgid(0, 0, 0) and setresuid(0, 0, 0).
    fn become_root(&self) -> Result<()>;
    /// Makes every mount a slave of the host's: nothing mounted here
    /// propagates out, the host's unmounts still reach in.
    fn make_mounts_slave(&self) -> Result<()>;
}

fn enter(ops: &impl NamespaceOps, uids: &[IdRange], gids: &[IdRange]) -> Result<()> {
    let threads = ops.threads()?;
    if threads != 1 {
        return Err(Error::io(
            "entering a user namespace",
            std::io::Error::other(format!(
                "the process must be single-threaded, it has {threads} threads"
            )),
        ));
    }
    // Dropping the writer unstarted kills and reaps it.
    let writer = ops.start_map_writer(uids, gids)?;
    ops.unshare(libc::CLONE_NEWUSER)?;
    ops.finish_map_writer(writer)?;
    ops.become_root()?;
    ops.unshare(libc::CLONE_NEWNS)?;
    ops.make_mounts_slave()
}

/// Puts the calling process into a new user namespace with the rootless maps
/// (its own uid and gid become 0, subordinate ids from /etc/subuid and
/// /etc/subgid follow through newuidmap/newgidmap; without a range or
/// without those programs, the single-id map), makes it root there, and
/// into a new mount namespace owned by that user namespace whose mounts are
/// slaves of the host's. Mounts made afterwards (the container's root
/// filesystem) are the process's own and vanish with its last user.
///
/// Call it while the process is single-threaded (before any FUSE session or
/// thread pool starts); a process that is already root (real root, or root
/// of a namespace it entered) is left as it is.
pub fn enter_rootless_namespaces() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let (uids, gids) = idmap::own_rootless_maps();
    enter(&Kernel, &uids, &gids)
}

/// Runs `f` in a child process that has entered fresh rootless namespaces
/// (see [`enter_rootless_namespaces`]) and returns what it returned: for
/// work on files owned by subordinate ids, which the user may not touch from
/// outside (removing a container's writable layer, listing its changes).
/// The caller stays where it is. A caller that is already root runs `f`
/// itself. `Err` from `f` comes back as [`Error::Io`] with its message.
///
/// The caller must be single-threaded: the child runs `f` after `fork`.
pub fn run_in_rootless_namespaces(
    f: impl FnOnce() -> std::result::Result<Vec<u8>, String>,
) -> Result<Vec<u8>> {
    if nix::unistd::geteuid().is_root() {
        return f().map_err(failed);
    }
    run_in_child(enter_rootless_namespaces, f)
}

/// Runs `f` in a child process that has joined the user and mount
/// namespaces of process `pid` (those that differ from the caller's), in
/// the caller's working directory: for a rootless container's monitor,
/// whose mount namespace is the host's plus the container's live root
/// filesystem, which only processes of its user namespace may use (its
/// FUSE server answers no one else). Returns what `f` returned, as
/// [`run_in_rootless_namespaces`] does; the caller must be single-threaded.
pub fn run_in_namespaces_of(
    pid: i32,
    f: impl FnOnce() -> std::result::Result<Vec<u8>, String>,
) -> Result<Vec<u8>> {
    let namespaces: Vec<_> = crate::exec::namespace_fds(pid)?
        .into_iter()
        .filter(|(_, flag, _)| *flag == libc::CLONE_NEWUSER || *flag == libc::CLONE_NEWNS)
        .collect();
    let cwd = std::env::current_dir().ok();
    let join = move || -> Result<()> {
        for (fd, flag, name) in &namespaces {
            nix::sched::setns(fd, nix::sched::CloneFlags::from_bits_retain(*flag)).map_err(
                |e| Error::io(format!("joining the {name} namespace of {pid}"), e.into()),
            )?;
        }
        // Joining a mount namespace moves to its root: come back.
        if let Some(dir) = cwd {
            let _ = std::env::set_current_dir(dir);
        }
        Ok(())
    };
    run_in_child(join, f)
}

fn failed(msg: String) -> Error {
    Error::io("in the rootless user namespace", std::io::Error::other(msg))
}

/// Forks; the child runs `enter`, then `f`, and reports on a pipe.
fn run_in_child(
    enter: impl FnOnce() -> Result<()>,
    f: impl FnOnce() -> std::result::Result<Vec<u8>, String>,
) -> Result<Vec<u8>> {
    let threads = Kernel.threads()?;
    if threads != 1 {
        return Err(failed(format!(
            "the process must be single-threaded, it has {threads} threads"
        )));
    }
    let (r, w) = fork::pipe()?;
    // SAFETY: the process is single-threaded, so the child may run any code.
    match unsafe { libc::fork() } {
        -1 => Err(Error::io("fork", std::io::Error::last_os_error())),
        0 => {
            // A panic must not carry the copy back into the caller's code.
            let _unwind = crate::child::ExitOnUnwind;
            drop(r);
            let result = enter().map_err(|e| e.to_string()).and_then(|()| f());
            let mut out = File::from(w);
            let written = match result {
                Ok(bytes) => out.write_all(&[0]).and_then(|()| out.write_all(&bytes)),
                Err(msg) => out
                    .write_all(&[1])
                    .and_then(|()| out.write_all(msg.as_bytes())),
            };
            // SAFETY: leaving the child without running the parent's exit
            // handlers or destructors.
            unsafe { libc::_exit(if written.is_ok() { 0 } else { 1 }) }
        }
        pid => {
            drop(w);
            let mut out = Vec::new();
            let read = File::from(r).read_to_end(&mut out);
            let status = fork::wait_pid(pid)?;
            read.map_err(|e| Error::io("reading the helper process's result", e))?;
            match out.split_first() {
                Some((0, bytes)) => Ok(bytes.to_vec()),
                Some((_, msg)) => Err(failed(String::from_utf8_lossy(msg).into_owned())),
                None => Err(failed(format!("the helper process died ({status:?})"))),
            }
        }
    }
}

/// The real kernel.
struct Kernel;

/// A forked helper that writes the maps once told to.
struct MapWriter {
    pid: Option<i32>,
    go: Option<OwnedFd>,
    result: Option<OwnedFd>,
}

impl Drop for MapWriter {
    fn drop(&mut self) {
        // Closing the go pipe unstarted makes the helper exit by itself.
        self.go.take();
        if let Some(pid) = self.pid.take() {
            let _ = fork::wait_pid(pid);
        }
    }
}

fn errno(what: &str) -> Error {
    Error::io(what, std::io::Error::last_os_error())
}

impl NamespaceOps for Kernel {
    type Writer = MapWriter;

    fn threads(&self) -> Result<usize> {
        std::fs::read_dir("/proc/self/task")
            .map(Iterator::count)
            .map_err(|e| Error::io("listing /proc/self/task", e))
    }

    fn start_map_writer(&self, uids: &[IdRange], gids: &[IdRange]) -> Result<MapWriter> {
        let (go_r, go_w) = fork::pipe()?;
        let (res_r, res_w) = fork::pipe()?;
        let target = std::process::id() as i32;
        // SAFETY: the caller checked the process is single-threaded.
        match unsafe { libc::fork() } {
            -1 => Err(errno("fork")),
            0 => {
                let _unwind = crate::child::ExitOnUnwind;
                drop((go_w, res_r));
                let mut go = [0u8; 1];
                if !matches!(File::from(go_r).read(&mut go), Ok(1)) {
                    // The caller gave up before unsharing.
                    // SAFETY: leaving the child.
                    unsafe { libc::_exit(1) };
                }
                let msg = match idmap::write_maps(target, uids, gids) {
                    Ok(_) => String::new(),
                    Err(e) => e.to_string(),
                };
                let _ = File::from(res_w).write_all(msg.as_bytes());
                // SAFETY: leaving the child.
                unsafe { libc::_exit(0) }
            }
            pid => Ok(MapWriter {
                pid: Some(pid),
                go: Some(go_w),
                result: Some(res_r),
            }),
        }
    }

    fn finish_map_writer(&self, mut writer: MapWriter) -> Result<()> {
        let go = writer.go.take().expect("a started writer has its pipe");
        File::from(go)
            .write_all(&[1])
            .map_err(|e| Error::io("starting the id map writer", e))?;
        let mut msg = String::new();
        let result = writer.result.take().expect("a started writer has its pipe");
        File::from(result)
            .read_to_string(&mut msg)
            .map_err(|e| Error::io("reading the id map writer's result", e))?;
        drop(writer);
        if msg.is_empty() {
            Ok(())
        } else {
            Err(Error::io(
                "writing the rootless id maps",
                std::io::Error::other(msg),
            ))
        }
    }

    fn unshare(&self, flags: libc::c_int) -> Result<()> {
        // SAFETY: unshare has no memory-safety preconditions.
        if unsafe { libc::unshare(flags) } == -1 {
            let what = if flags == libc::CLONE_NEWUSER {
                "unshare(CLONE_NEWUSER) (are unprivileged user namespaces enabled?)"
            } else {
                "unshare(CLONE_NEWNS)"
            };
            return Err(errno(what));
        }
        Ok(())
    }

    fn become_root(&self) -> Result<()> {
        // SAFETY: plain syscalls; the process is single-threaded.
        unsafe {
            if libc::setresgid(0, 0, 0) == -1 {
                return Err(errno("setresgid(0) in the user namespace"));
            }
            if libc::setresuid(0, 0, 0) == -1 {
                return Err(errno("setresuid(0) in the user namespace"));
            }
        }
        Ok(())
    }

    fn make_mounts_slave(&self) -> Result<()> {
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SLAVE,
            None::<&str>,
        )
        .map_err(|e| Error::io("making / a slave mount", e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[derive(Default)]
    struct Recorder {
        calls: RefCell<Vec<String>>,
        threads: usize,
        fail: Option<&'static str>,
    }

    impl Recorder {
        fn log(&self, call: &str) -> Result<()> {
            self.calls.borrow_mut().push(call.to_string());
            if self.fail == Some(call) {
                return Err(Error::io(call, std::io::Error::other("refused")));
            }
            Ok(())
        }
    }

    impl NamespaceOps for Recorder {
        type Writer = usize;
        fn threads(&self) -> Result<usize> {
            Ok(self.threads)
        }
        fn start_map_writer(&self, uids: &[IdRange], gids: &[IdRange]) -> Result<usize> {
            self.log(&format!("writer {} {}", uids.len(), gids.len()))?;
            Ok(7)
        }
        fn finish_map_writer(&self, writer: usize) -> Result<()> {
            self.log(&format!("maps {writer}"))
        }
        fn unshare(&self, flags: libc::c_int) -> Result<()> {
            self.log(match flags {
                libc::CLONE_NEWUSER => "unshare user",
                libc::CLONE_NEWNS => "unshare mount",
                _ => "unshare other",
            })
        }
        fn become_root(&self) -> Result<()> {
            self.log("root")
        }
        fn make_mounts_slave(&self) -> Result<()> {
            self.log("rslave")
        }
    }

    fn maps() -> (Vec<IdRange>, Vec<IdRange>) {
        let one = |host| IdRange {
            container: 0,
            host,
            size: 1,
        };
        let sub = IdRange {
            container: 1,
            host: 100000,
            size: 65536,
        };
        (vec![one(1000), sub], vec![one(1000)])
    }

    #[test]
    fn maps_are_written_after_the_user_namespace_and_before_mounts() {
        let r = Recorder {
            threads: 1,
            ..Default::default()
        };
        let (u, g) = maps();
        enter(&r, &u, &g).unwrap();
        assert_eq!(
            r.calls.into_inner(),
            [
                "writer 2 1",
                "unshare user",
                "maps 7",
                "root",
                "unshare mount",
                "rslave"
            ]
        );
    }

    #[test]
    fn threads_refuse_and_failures_stop_the_sequence() {
        let (u, g) = maps();
        let r = Recorder {
            threads: 3,
            ..Default::default()
        };
        let err = enter(&r, &u, &g).unwrap_err();
        assert!(err.to_string().contains("3 threads"), "{err}");
        assert!(r.calls.into_inner().is_empty());

        let r = Recorder {
            threads: 1,
            fail: Some("unshare user"),
            ..Default::default()
        };
        assert!(enter(&r, &u, &g).is_err());
        assert_eq!(r.calls.into_inner(), ["writer 2 1", "unshare user"]);
    }

    #[test]
    fn root_runs_the_closure_itself() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let pid = std::process::id();
        let out = run_in_rootless_namespaces(|| Ok(std::process::id().to_le_bytes().to_vec()));
        assert_eq!(out.unwrap(), pid.to_le_bytes());
        let err = run_in_rootless_namespaces(|| Err("nope".into())).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
