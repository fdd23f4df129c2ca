//! The per-container monitor: no daemon, one process per running container.
//!
//! It holds `containers/<id>/monitor.lock` for its whole life (so `wait`
//! and `stop` can block on it), mounts the root filesystem (and serves it,
//! with the fuse driver), starts the init, copies the init's output into the
//! json-file log and to attached clients, serves the attach socket
//! (`containers/<id>/attach.sock`), waits for the init, unmounts, and
//! records the exit.
//!
//! A foreground `run` / `start -a` is its own monitor (no extra process, no
//! extra hop for the output). `run -d` / `start` re-execute the berth binary
//! as a detached monitor ([`MONITOR_COMMAND`]) in its own session, which
//! reports on an inherited pipe (fd 3) once the container runs or why it
//! could not start.
//!
//! Attach clients speak Docker's multiplexed stream: each chunk of output is
//! an 8-byte header (stream 1 or 2, three zero bytes, big-endian length)
//! and the bytes; what a client sends is the container's stdin.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_launch::{LaunchOptions, Stdio};

use super::error::{CResult, ContainerError};
use super::logs::{LogWriter, Stream};
use super::resources;
use super::run::{is_running, unmount_rootfs};
use super::spec;
use super::state::{self, Record};
use super::terminal::{follow_terminal, forward_stdin, set_handler, stop_following, RawTerminal};
use crate::images::now_rfc3339;
use crate::Engine;

/// The hidden subcommand that runs a detached monitor: `berth
/// container-monitor ID`, with the readiness pipe on fd 3.
pub const MONITOR_COMMAND: &str = "container-monitor";

/// The fd on which a detached monitor reports readiness.
const READY_FD: i32 = 3;

/// How the monitor's caller takes part.
pub(crate) enum Mode {
    /// The caller's terminal: output to its stdout/stderr, its stdin to the
    /// container when `stdin`.
    Foreground { stdin: bool },
    /// Nobody: output to the log and attach clients only; readiness goes to
    /// this pipe.
    Detached { ready: Option<File> },
}

/// The monitor's lock file: held exclusively while a monitor lives.
pub(crate) fn lock_path(dir: &Path) -> PathBuf {
    dir.join("monitor.lock")
}

fn open_lock(dir: &Path) -> CResult<File> {
    let path = lock_path(dir);
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| ContainerError::io(format!("opening {}", path.display()), e))
}

/// True while a monitor holds the container's lock.
pub(crate) fn monitor_alive(dir: &Path) -> bool {
    let Ok(file) = File::open(lock_path(dir)) else {
        return false;
    };
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared).is_err()
}

/// Blocks until no monitor holds the container's lock.
pub(crate) fn wait_monitor(dir: &Path) {
    if let Ok(file) = File::open(lock_path(dir)) {
        let _ = rustix::fs::flock(&file, rustix::fs::FlockOperation::LockShared);
    }
}

/// The container's json-file log.
pub(crate) fn log_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}-json.log"))
}

/// Where the attach socket is bound: through an `O_PATH` fd of the
/// container dir, since the full path can exceed `sun_path`'s 108 bytes.
fn socket_via(dir_fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/attach.sock", dir_fd.as_raw_fd()))
}

fn open_dir_path(dir: &Path) -> CResult<OwnedFd> {
    rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| ContainerError::io(format!("opening {}", dir.display()), e.into()))
}

/// The first byte a client sends on the attach socket: a stream of the
/// container's output (and its input, with `-i`) follows.
const ATTACH: u8 = b'a';
/// ... or: the pty's new size follows (rows, columns; u16, big-endian),
/// then the connection ends.
const RESIZE: u8 = b'r';

fn connect_for(dir: &Path, request: &[u8]) -> CResult<UnixStream> {
    let fd = open_dir_path(dir)?;
    let mut conn = UnixStream::connect(socket_via(&fd))
        .map_err(|e| ContainerError::io(format!("attaching to {}", dir.display()), e))?;
    conn.write_all(request)
        .map_err(|e| ContainerError::io(format!("attaching to {}", dir.display()), e))?;
    Ok(conn)
}

/// Attaches to a running container: its output comes as Docker's frames.
pub(crate) fn connect(dir: &Path) -> CResult<UnixStream> {
    connect_for(dir, &[ATTACH])
}

/// Asks a running container's monitor to set its pty to `ws`.
pub(crate) fn send_resize(dir: &Path, ws: &libc::winsize) {
    let mut request = vec![RESIZE];
    request.extend_from_slice(&ws.ws_row.to_be_bytes());
    request.extend_from_slice(&ws.ws_col.to_be_bytes());
    if let Err(e) = connect_for(dir, &request) {
        log::debug!("resizing the container's terminal: {e}");
    }
}

/// Where the output goes, shared by the pump threads and the attach server.
struct Hub {
    log: Mutex<LogWriter>,
    clients: Mutex<Vec<UnixStream>>,
    /// The container's stdin (pipe or pty master) while it may be written.
    stdin: Mutex<Option<File>>,
    /// Close the container's stdin when the first attached client's stdin
    /// ends (Docker's `StdinOnce`).
    stdin_once: bool,
    /// Copy output to this process's stdout/stderr.
    local: bool,
    /// The pty master, for clients' resize requests.
    pty: Option<File>,
}

impl Hub {
    /// Hands a chunk to every sink. False when the caller's own stdout or
    /// stderr is a pipe whose reader left: the stream should end there, as
    /// in a shell pipeline (`berth run IMG yes | head -1` ends).
    fn output(&self, stream: Stream, chunk: &[u8]) -> bool {
        if self.local {
            let res = match stream {
                Stream::Stdout => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(chunk).and_then(|()| out.flush())
                }
                Stream::Stderr => std::io::stderr().lock().write_all(chunk),
            };
            if let Err(e) = res {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return false;
                }
                log::debug!("writing container output: {e}");
            }
        }
        self.log.lock().expect("log lock").write(stream, chunk);
        let mut clients = self.clients.lock().expect("clients lock");
        if clients.is_empty() {
            return true;
        }
        let mut frame = Vec::with_capacity(8 + chunk.len());
        frame.extend_from_slice(&[stream.frame_id(), 0, 0, 0]);
        frame.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        frame.extend_from_slice(chunk);
        // A client that cannot keep up (or left) is dropped.
        clients.retain_mut(|c| c.write_all(&frame).is_ok());
        true
    }

    fn input(&self, bytes: &[u8]) -> bool {
        let mut stdin = self.stdin.lock().expect("stdin lock");
        match stdin.as_mut() {
            Some(f) => f.write_all(bytes).is_ok(),
            None => false,
        }
    }

    fn close_stdin(&self) {
        self.stdin.lock().expect("stdin lock").take();
    }

    fn resize(&self, rows: u16, cols: u16) {
        if let Some(pty) = &self.pty {
            let ws = libc::winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            // SAFETY: TIOCSWINSZ with a valid winsize on an open fd.
            unsafe { libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        }
    }
}

/// Copies one of the init's outputs until it ends.
fn pump(src: File, stream: Stream, hub: Arc<Hub>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut src = src;
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if !hub.output(stream, &buf[..n]) {
                        // Closing the read end gives the writer EPIPE.
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // EIO: the pty's last slave fd closed.
                Err(_) => break,
            }
        }
    })
}

/// Accepts attach clients until the listener is shut down.
fn serve_attach(listener: UnixListener, hub: Arc<Hub>, open_stdin: bool) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { break };
            let hub = hub.clone();
            std::thread::spawn(move || serve_client(conn, hub, open_stdin));
        }
    });
}

/// One client: what it asks for comes first (see [`ATTACH`], [`RESIZE`]).
fn serve_client(mut conn: UnixStream, hub: Arc<Hub>, open_stdin: bool) {
    let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
    let mut request = [0u8; 1];
    if conn.read_exact(&mut request).is_err() {
        return;
    }
    match request[0] {
        ATTACH => {
            let Ok(output) = conn.try_clone() else {
                return;
            };
            hub.clients.lock().expect("clients lock").push(output);
            if open_stdin {
                client_input(conn, hub);
            }
        }
        RESIZE => {
            let mut size = [0u8; 4];
            if conn.read_exact(&mut size).is_ok() {
                hub.resize(
                    u16::from_be_bytes([size[0], size[1]]),
                    u16::from_be_bytes([size[2], size[3]]),
                );
            }
        }
        other => log::debug!("attach socket: unknown request {other}"),
    }
}

fn client_input(mut conn: UnixStream, hub: Arc<Hub>) {
    let mut buf = [0u8; 8192];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if !hub.input(&buf[..n]) {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
    if hub.stdin_once {
        hub.close_stdin();
    }
}

/// The init's pid, for the signal handlers of a foreground monitor.
static INIT_PID: AtomicI32 = AtomicI32::new(0);
extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = INIT_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Docker's `--sig-proxy`: the signals a foreground client gets go to the
/// container's init.
const PROXIED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

pub(crate) fn pipe() -> CResult<(File, File)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| ContainerError::io("creating a pipe", e.into()))?;
    Ok((File::from(r), File::from(w)))
}

/// A container removed when it exits (`--rm`) needs no durable writes:
/// kernel overlayfs's `volatile` skips the sync of the whole upper
/// filesystem that an unmount otherwise does (200 ms on a busy disk).
fn volatile(mounts: &mut [berth_snapshot::Mount]) {
    for m in mounts.iter_mut().filter(|m| m.fstype == "overlay") {
        m.options.push("volatile".into());
    }
}

fn flag(record: &Record, key: &str) -> bool {
    record
        .config
        .get(key)
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
}

impl Engine {
    /// `start -a` and foreground `run`: runs the container to completion,
    /// this process being its monitor, with the output on this process's
    /// stdout and stderr (and its stdin when `interactive`, else an empty
    /// one, as Docker without `-i`). Returns the container's exit code
    /// (Docker's: the command's, or 128 + signal).
    pub fn run_attached(&self, query: &str, interactive: bool) -> CResult<i32> {
        self.monitor(query, Mode::Foreground { stdin: interactive })
    }

    /// `run -d` and `start`: starts the container under a detached monitor
    /// process and returns its ID once it runs (or why it could not start,
    /// with the code Docker gives). A running container is left as it is.
    pub fn start_detached(&self, query: &str) -> CResult<String> {
        let record = self.container(query)?;
        let dir = self.container_dir(&record.id);
        if is_running(&record) {
            return Ok(record.id);
        }
        let (mut ready_r, ready_w) = pipe()?;
        let log = dir.join("monitor.log");
        let stderr = File::create(&log)
            .map_err(|e| ContainerError::io(format!("creating {}", log.display()), e))?;
        let exe = std::env::current_exe()
            .map_err(|e| ContainerError::io("finding the berth binary", e))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg(MONITOR_COMMAND)
            .arg(&record.id)
            .env("BERTH_ROOT", self.store.root())
            .env("BERTH_STORAGE_DRIVER", self.driver())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr);
        let ready_raw = ready_w.as_raw_fd();
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                // dup2 leaves the copy without close-on-exec.
                if libc::dup2(ready_raw, READY_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| ContainerError::io("starting the container monitor", e))?;
        drop(ready_w);
        let mut report = String::new();
        let _ = ready_r.read_to_string(&mut report);
        // The monitor lives on, in its own session; it is reparented when
        // this process exits.
        drop(child);
        match report.split_once('\n') {
            Some(("ok", _)) => Ok(record.id),
            Some((code, msg)) if code.starts_with("err ") => {
                let code: u8 = code[4..].trim().parse().unwrap_or(125);
                Err(ContainerError::StartFailed {
                    code,
                    message: msg.trim_end().to_string(),
                })
            }
            _ => {
                let detail = std::fs::read_to_string(&log).unwrap_or_default();
                Err(ContainerError::StartFailed {
                    code: 125,
                    message: format!(
                        "the container monitor exited before the container started: {}",
                        detail.trim()
                    ),
                })
            }
        }
    }

    /// The body of [`MONITOR_COMMAND`]: monitors container `id` until it
    /// exits, reporting on fd 3 whether it started.
    pub fn serve_monitor(&self, id: &str) -> CResult<i32> {
        // SAFETY: fd 3 was set up by start_detached and is ours alone.
        let ready = unsafe { File::from_raw_fd(READY_FD) };
        // Detached: nobody to signal us but `stop`, which signals the init.
        for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGPIPE] {
            set_handler(sig, libc::SIG_IGN);
        }
        self.monitor(id, Mode::Detached { ready: Some(ready) })
    }

    pub(crate) fn monitor(&self, query: &str, mut mode: Mode) -> CResult<i32> {
        let result = self.monitor_inner(query, &mut mode);
        if let (Err(e), Mode::Detached { ready: Some(ready) }) = (&result, &mut mode) {
            // Never started: tell the waiting `run -d` / `start` why.
            let _ = writeln!(ready, "err {}\n{e}", e.exit_code());
        }
        result
    }

    fn monitor_inner(&self, query: &str, mode: &mut Mode) -> CResult<i32> {
        let mut record = self.container(query)?;
        let dir = self.container_dir(&record.id);
        let already = || {
            ContainerError::InvalidArgument(format!(
                "container {} is already running",
                &record.id[..12]
            ))
        };
        let lock = open_lock(&dir)?;
        if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err()
            || is_running(&record)
        {
            return Err(already());
        }
        // Rootless, this process becomes root of the container's user
        // namespace, with a mount namespace of its own,
        // before it mounts anything (and before any FUSE thread starts). The
        // rootfs mount is then private to it.
        log::debug!("monitor: locked");
        let inside_userns = super::rootless::in_monitor_userns(self);
        if inside_userns {
            berth_launch::enter_rootless_namespaces()?;
        }
        let mount = self.store.mount(&record.id)?.ok_or_else(|| {
            ContainerError::InvalidArgument(format!("container {} has no layer", record.id))
        })?;
        let mut mounts = self.snapshotter()?.mounts(&mount.mount_id)?;
        if record.host_config.auto_remove {
            volatile(&mut mounts);
        }
        let rootfs = dir.join("rootfs");
        unmount_rootfs(&rootfs)?;
        // Made here, in the namespaces entered above when rootless.
        std::fs::create_dir(&rootfs)
            .map_err(|e| ContainerError::io(format!("creating {}", rootfs.display()), e))?;
        let guard = match berth_snapshot::mount_all(&mounts, &rootfs) {
            // Kernels before 5.10 know no `volatile`.
            Err(_)
                if mounts
                    .iter()
                    .any(|m| m.options.iter().any(|o| o == "volatile")) =>
            {
                for m in &mut mounts {
                    m.options.retain(|o| o != "volatile");
                }
                berth_snapshot::mount_all(&mounts, &rootfs)?
            }
            other => other?,
        };

        log::debug!("monitor: root filesystem mounted");
        let tty = flag(&record, "Tty");
        let open_stdin = flag(&record, "OpenStdin");
        let foreground = matches!(mode, Mode::Foreground { .. });
        let fg_stdin = matches!(mode, Mode::Foreground { stdin: true });
        // Pipes for output and, detached with -i, for input.
        let mut outputs: Vec<(File, Stream)> = Vec::new();
        let mut stdin_w: Option<File> = None;
        let cgroup = resources::cgroup_config(&record, self.rootless);
        let started = spec::build(&record, &rootfs).and_then(|mut spec| {
            if let Some(p) = spec.process_mut() {
                p.set_terminal(Some(tty));
            }
            let stdio = if tty {
                Stdio::Inherit
            } else {
                let (out_r, out_w) = pipe()?;
                let (err_r, err_w) = pipe()?;
                outputs.push((out_r, Stream::Stdout));
                outputs.push((err_r, Stream::Stderr));
                let stdin: Option<OwnedFd> = if fg_stdin {
                    None
                } else if open_stdin && !foreground {
                    let (in_r, in_w) = pipe()?;
                    stdin_w = Some(in_w);
                    Some(in_r.into())
                } else {
                    let null = File::open("/dev/null")
                        .map_err(|e| ContainerError::io("opening /dev/null", e))?;
                    Some(null.into())
                };
                Stdio::Fds {
                    stdin,
                    stdout: Some(out_w.into()),
                    stderr: Some(err_w.into()),
                }
            };
            let opts = LaunchOptions {
                rootless: self.rootless,
                inside_userns,
                stdio,
                cgroup: cgroup.clone(),
                init: record.host_config.init == Some(true),
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
                drop(guard);
                let _ = std::fs::remove_dir(&rootfs);
                return Err(e);
            }
        };
        let pid = container.pid();
        log::debug!("monitor: init {pid} started");
        INIT_PID.store(pid, Ordering::SeqCst);
        if foreground {
            for sig in PROXIED {
                set_handler(sig, forward_signal as *const () as usize);
            }
        }
        // The pty master is both the output and (with -i) the input.
        let mut raw_terminal = None;
        let mut pty = None;
        if let Some(master) = container.take_pty_master() {
            let master = File::from(master);
            pty = master.try_clone().ok();
            if foreground {
                follow_terminal(master.as_raw_fd());
                if fg_stdin {
                    raw_terminal = Some(RawTerminal::enter());
                    let input = master
                        .try_clone()
                        .map_err(|e| ContainerError::io("cloning the pty", e))?;
                    forward_stdin(input, false);
                }
            } else if open_stdin {
                stdin_w = Some(
                    master
                        .try_clone()
                        .map_err(|e| ContainerError::io("cloning the pty", e))?,
                );
            }
            outputs.push((master, Stream::Stdout));
        }

        let hub = Arc::new(Hub {
            log: Mutex::new(LogWriter::create(&log_path(&dir, &record.id))?),
            clients: Mutex::new(Vec::new()),
            stdin: Mutex::new(stdin_w),
            stdin_once: flag(&record, "StdinOnce"),
            local: foreground,
            pty,
        });
        let dir_fd = open_dir_path(&dir)?;
        let sock = socket_via(&dir_fd);
        let _ = std::fs::remove_file(&sock);
        let listener = UnixListener::bind(&sock)
            .map_err(|e| ContainerError::io("binding the attach socket", e))?;
        let listener_fd = listener
            .try_clone()
            .map_err(|e| ContainerError::io("cloning the attach socket", e))?;
        serve_attach(listener, hub.clone(), open_stdin);
        let pumps: Vec<_> = outputs
            .into_iter()
            .map(|(src, stream)| pump(src, stream, hub.clone()))
            .collect();

        record.state = state::State {
            status: "running".into(),
            running: true,
            pid,
            started_at: now_rfc3339(),
            ..Default::default()
        };
        record.log_path = log_path(&dir, &record.id).display().to_string();
        record.cgroup_path = resources::recorded_path(cgroup.as_ref(), container.cgroup());
        state::save(&dir, &record)?;
        if let Mode::Detached { ready } = mode {
            if let Some(mut r) = ready.take() {
                let _ = r.write_all(b"ok\n");
            }
        }

        log::debug!("monitor: running is on record");
        let waited = container.wait();
        log::debug!("monitor: init exited");
        INIT_PID.store(0, Ordering::SeqCst);
        // OOMKilled, then the cgroup goes.
        resources::after_exit(container.cgroup(), &mut record.state);
        log::debug!("monitor: cgroup removed");
        // Every process in the pid namespace is gone with the init, so the
        // outputs end (a pty reports EIO once its slave closes).
        for p in pumps {
            let _ = p.join();
        }
        stop_following();
        drop(raw_terminal);
        hub.log.lock().expect("log lock").finish();
        hub.close_stdin();
        // Unmount before recording the exit: `rm -f` waits for the record
        // to say exited, then removes what is left.
        let unmounted = guard
            .unmount()
            .map_err(ContainerError::from)
            .and_then(|()| unmount_rootfs(&rootfs));
        log::debug!("monitor: outputs closed, root filesystem unmounted");
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
        // Others may have changed the record meanwhile (rename, pause):
        // keep theirs, with this exit as its state.
        if let Ok(Some(mut current)) = state::load(&dir) {
            current.state = record.state.clone();
            current.state.paused = false;
            record = current;
        }
        state::save(&dir, &record)?;
        log::debug!("monitor: exit on record");
        // Attached clients see the end of the stream once the exit is on
        // record.
        let _ = rustix::net::shutdown(&listener_fd, rustix::net::Shutdown::Both);
        let _ = std::fs::remove_file(&sock);
        for c in hub.clients.lock().expect("clients lock").drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        drop(lock);
        if !foreground && record.host_config.auto_remove {
            match self.destroy(&record.id) {
                Ok(()) => self.release_anonymous_volumes(&record),
                Err(e) => log::warn!("removing container {}: {e}", &record.id[..12]),
            }
        }
        unmounted?;
        waited?;
        Ok(code)
    }
}
