//! The commands that act on a running container through its monitor's
//! files and its init's pid: stop, kill, wait, logs, attach, exec, top,
//! rename.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_launch::Stdio;
use serde_json::{json, Value};

use super::error::{CResult, ContainerError};
use super::flags;
use super::logs::{self, LogEntry, LogOptions};
use super::monitor;
use super::run::is_running;
use super::state::{self, Record};
use super::terminal::{self, RawTerminal};
use super::{names, set_env, spec, strings};
use crate::Engine;

/// One container's numbers for `stats`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerStats {
    pub id: String,
    pub name: String,
    /// CPU time over wall time across the sample, in percent (100 = one
    /// CPU busy), as Docker computes it.
    pub cpu_percent: f64,
    pub memory_usage: u64,
    /// The cgroup's limit, else the host's memory.
    pub memory_limit: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub pids: u64,
}

/// `exec` flags.
#[derive(Debug, Default, Clone)]
pub struct ExecOptions {
    pub cmd: Vec<String>,
    /// `-i`: pass our stdin on.
    pub interactive: bool,
    /// `-t`: a pty.
    pub tty: bool,
    /// `-d`: do not wait.
    pub detach: bool,
    /// `-e`.
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
}

fn parse_signal(s: &str) -> CResult<i32> {
    flags::parse_signal(s).map_err(ContainerError::InvalidArgument)
}

fn pid_alive(pid: i32) -> bool {
    rustix::process::Pid::from_raw(pid)
        .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

fn signal(pid: i32, sig: i32) -> CResult<()> {
    // SAFETY: kill with a pid and signal number has no memory effects.
    if unsafe { libc::kill(pid, sig) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) {
        return Ok(());
    }
    Err(ContainerError::io(format!("signalling {pid}"), e))
}

/// Waits up to `timeout` for the container's init to be gone and its
/// monitor to have recorded it; true if both happened.
fn wait_stopped(dir: &Path, pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !pid_alive(pid) && !monitor::monitor_alive(dir) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Received and sent bytes over the interfaces (but `lo`) of the network
/// namespace `pid` is in.
fn net_bytes(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    let mut rx = 0;
    let mut tx = 0;
    for line in text.lines().skip(2) {
        let Some((name, fields)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = fields
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        rx += f.first().copied().unwrap_or(0);
        tx += f.get(8).copied().unwrap_or(0);
    }
    (rx, tx)
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

impl Engine {
    /// The cgroup of a running container (rootless containers on a host
    /// whose cgroups they cannot write have none).
    fn cgroup_of(&self, record: &Record) -> CResult<Box<dyn berth_launch::cgroups::Cgroup>> {
        if record.cgroup_path.is_empty() {
            return Err(ContainerError::InvalidArgument(format!(
                "container {} has no cgroup (cgroups are not writable for this user)",
                &record.id[..12]
            )));
        }
        Ok(berth_launch::cgroups::open(Path::new(&record.cgroup_path))?)
    }

    /// `pause`: freezes every process of the container.
    pub fn pause_container(&self, query: &str) -> CResult<()> {
        let _lock = state::lock(self.store.root())?;
        let mut record = self.running_record(query)?;
        if record.state.paused {
            return Err(ContainerError::InvalidArgument(format!(
                "Container {} is already paused",
                record.id
            )));
        }
        self.cgroup_of(&record)?.freeze()?;
        record.state.paused = true;
        record.state.status = "paused".into();
        state::save(&self.container_dir(&record.id), &record)
    }

    /// `unpause`.
    pub fn unpause_container(&self, query: &str) -> CResult<()> {
        let _lock = state::lock(self.store.root())?;
        let mut record = self.running_record(query)?;
        if !record.state.paused {
            return Err(ContainerError::InvalidArgument(format!(
                "Container {} is not paused",
                record.id
            )));
        }
        self.cgroup_of(&record)?.thaw()?;
        record.state.paused = false;
        record.state.status = "running".into();
        state::save(&self.container_dir(&record.id), &record)
    }

    /// Thaws a paused container so that signals reach it (stop, kill, rm).
    pub(crate) fn thaw_if_paused(&self, record: &Record) {
        if record.state.paused {
            if let Err(e) = self.unpause_container(&record.id) {
                log::warn!("unpausing {}: {e}", &record.id[..12]);
            }
        }
    }

    /// `stats --no-stream`: one sample of each running container named
    /// (all running ones when `queries` is empty), CPU measured over
    /// `interval`.
    pub fn container_stats(
        &self,
        queries: &[String],
        interval: Duration,
    ) -> CResult<Vec<ContainerStats>> {
        let records = if queries.is_empty() {
            self.list_containers()?
                .into_iter()
                .filter(is_running)
                .collect()
        } else {
            queries
                .iter()
                .map(|q| self.running_record(q))
                .collect::<CResult<Vec<_>>>()?
        };
        let groups = records
            .iter()
            .map(|r| self.cgroup_of(r))
            .collect::<CResult<Vec<_>>>()?;
        let first: Vec<u64> = groups
            .iter()
            .map(|g| g.stats().map_or(0, |s| s.cpu_usage_ns))
            .collect();
        let started = Instant::now();
        std::thread::sleep(interval);
        let wall = started.elapsed().as_nanos().max(1) as f64;
        let host = host_memory();
        let mut out = Vec::new();
        for ((record, group), cpu0) in records.iter().zip(&groups).zip(first) {
            let s = group.stats()?;
            let (net_rx, net_tx) = net_bytes(record.state.pid);
            out.push(ContainerStats {
                id: record.id.clone(),
                name: record.short_name().to_string(),
                cpu_percent: s.cpu_usage_ns.saturating_sub(cpu0) as f64 / wall * 100.0,
                memory_usage: s.memory_usage,
                memory_limit: s.memory_limit.unwrap_or(host).min(host.max(1)),
                net_rx,
                net_tx,
                pids: s.pids_current,
            });
        }
        Ok(out)
    }

    fn running_record(&self, query: &str) -> CResult<Record> {
        let record = self.container(query)?;
        if !is_running(&record) {
            return Err(ContainerError::NotRunning(record.id[..12].to_string()));
        }
        Ok(record)
    }

    /// `stop`: the stop signal (`--stop-signal`, else SIGTERM), then
    /// SIGKILL after `timeout` seconds (`-t`, else `--stop-timeout`, else
    /// 10). A container that is not running is left alone.
    pub fn stop_container(&self, query: &str, timeout: Option<i64>) -> CResult<()> {
        let record = self.container(query)?;
        if !is_running(&record) {
            return Ok(());
        }
        self.thaw_if_paused(&record);
        let dir = self.container_dir(&record.id);
        let pid = record.state.pid;
        let sig = record.stop_signal();
        let timeout = timeout.unwrap_or_else(|| record.stop_timeout());
        if timeout != 0 {
            signal(pid, sig)?;
            // A negative timeout waits for ever, as Docker's.
            let wait = if timeout < 0 {
                Duration::MAX
            } else {
                Duration::from_secs(timeout as u64)
            };
            if wait_stopped(&dir, pid, wait) {
                return Ok(());
            }
        }
        signal(pid, libc::SIGKILL)?;
        if !wait_stopped(&dir, pid, Duration::from_secs(30)) {
            log::warn!("container {} did not stop", &record.id[..12]);
        }
        Ok(())
    }

    /// `kill -s SIGNAL`. SIGKILL waits for the exit to be on record, so a
    /// `ps` right after shows it.
    pub fn kill_container(&self, query: &str, sig: &str) -> CResult<()> {
        let sig = parse_signal(sig)?;
        let record = self.container(query)?;
        if !is_running(&record) {
            return Err(ContainerError::InvalidArgument(format!(
                "Cannot kill container: {query}: Container {} is not running",
                record.id
            )));
        }
        if sig == libc::SIGKILL {
            self.thaw_if_paused(&record);
        }
        signal(record.state.pid, sig)?;
        if sig == libc::SIGKILL {
            wait_stopped(
                &self.container_dir(&record.id),
                record.state.pid,
                Duration::from_secs(10),
            );
        }
        Ok(())
    }

    /// `wait`: blocks until the container stops; returns its exit code.
    pub fn wait_container(&self, query: &str) -> CResult<i32> {
        let record = self.container(query)?;
        let dir = self.container_dir(&record.id);
        // Running on record (a lost monitor's container already shows
        // exited): wait for the monitor to record the exit.
        if record.state.running {
            monitor::wait_monitor(&dir);
            // A monitor killed with its container leaves the init behind
            // for a moment.
            wait_stopped(&dir, record.state.pid, Duration::from_secs(10));
        }
        Ok(self.container(&record.id)?.state.exit_code)
    }

    /// `rename OLD NEW`.
    pub fn rename_container(&self, query: &str, new: &str) -> CResult<()> {
        let new = new.strip_prefix('/').unwrap_or(new);
        if !names::valid(new) {
            return Err(ContainerError::InvalidArgument(format!(
                "Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let _lock = state::lock(self.store.root())?;
        let all = self.list_containers()?;
        let mut record = state::resolve(&all, query)?.clone();
        if record.short_name() == new {
            return Err(ContainerError::InvalidArgument(
                "Renaming a container with the same name as its current name".into(),
            ));
        }
        if all.iter().any(|r| r.short_name() == new) {
            return Err(ContainerError::NameInUse(new.to_string()));
        }
        // Re-read: the monitor may have changed the state meanwhile.
        let dir = self.container_dir(&record.id);
        if let Some(current) = state::load(&dir)? {
            record = current;
        }
        record.name = format!("/{new}");
        state::save(&dir, &record)
    }

    /// `logs`: hands each selected entry of the container's log to `emit`.
    pub fn container_logs(
        &self,
        query: &str,
        opts: &LogOptions,
        emit: impl FnMut(&LogEntry) -> std::io::Result<()>,
    ) -> CResult<()> {
        let record = self.container(query)?;
        let dir = self.container_dir(&record.id);
        let path = monitor::log_path(&dir, &record.id);
        logs::read(&path, opts, || monitor::monitor_alive(&dir), emit)
    }

    /// `attach`: our stdout/stderr get the container's output from now on,
    /// our stdin goes to it (unless `no_stdin`, or it was not created with
    /// `-i`). With a terminal, ctrl-p ctrl-q detaches. Returns the exit
    /// code, or `None` when detached.
    pub fn attach_container(&self, query: &str, no_stdin: bool) -> CResult<Option<i32>> {
        let record = self.container(query)?;
        if !is_running(&record) {
            return Err(ContainerError::InvalidArgument(
                "You cannot attach to a stopped container, start it first".into(),
            ));
        }
        let dir = self.container_dir(&record.id);
        let mut conn = monitor::connect(&dir)?;
        let flag = |k: &str| record.config.get(k).and_then(Value::as_bool) == Some(true);
        let tty = flag("Tty");
        let detached = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut _raw = None;
        if tty && std::io::stdin().is_terminal() {
            terminal::follow_terminal_remotely(&dir);
        }
        if flag("OpenStdin") && !no_stdin {
            if tty {
                _raw = Some(RawTerminal::enter());
            }
            let mut input = conn
                .try_clone()
                .map_err(|e| ContainerError::io("cloning the attach socket", e))?;
            let detached = detached.clone();
            std::thread::spawn(move || {
                let mut stdin = std::io::stdin().lock();
                let mut buf = [0u8; 8192];
                let mut keys = DetachKeys::default();
                loop {
                    let n = match stdin.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let (pass, detach) = if tty {
                        keys.scan(&buf[..n])
                    } else {
                        (buf[..n].to_vec(), false)
                    };
                    if input.write_all(&pass).is_err() {
                        return;
                    }
                    if detach {
                        detached.store(true, std::sync::atomic::Ordering::SeqCst);
                        let _ = input.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                }
                let _ = input.shutdown(std::net::Shutdown::Write);
            });
        }
        copy_frames(&mut conn);
        if detached.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(None);
        }
        drop(_raw);
        Ok(Some(self.wait_container(&record.id)?))
    }

    /// `exec`: runs a command in the running container (its namespaces,
    /// its user, env and working dir unless overridden). Returns its exit
    /// code, or 0 at once with `detach`.
    pub fn exec_container(&self, query: &str, opts: &ExecOptions) -> CResult<i32> {
        let mut record = self.running_record(query)?;
        if record.state.paused {
            // It would join the frozen cgroup and hang.
            return Err(ContainerError::InvalidArgument(format!(
                "Container {} is paused, unpause the container before exec",
                record.id
            )));
        }
        let pid = record.state.pid;
        if opts.cmd.is_empty() {
            return Err(ContainerError::InvalidArgument(
                "No exec command specified".into(),
            ));
        }
        if let Some(w) = &opts.workdir {
            if !w.starts_with('/') {
                return Err(ContainerError::InvalidArgument(format!(
                    "the working directory '{w}' is invalid, it needs to be an absolute path"
                )));
            }
            record.config["WorkingDir"] = json!(w);
        }
        if let Some(u) = &opts.user {
            record.config["User"] = json!(u);
        }
        let mut env = strings(record.config.get("Env"));
        for e in &opts.env {
            if e.contains('=') {
                set_env(&mut env, e.clone());
            } else if let Ok(v) = std::env::var(e) {
                set_env(&mut env, format!("{e}={v}"));
            }
        }
        record.config["Env"] = json!(env);
        record.path = opts.cmd[0].clone();
        record.args = opts.cmd[1..].to_vec();
        // The container's own files, as its init sees them.
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        // Read inside the container's namespaces: a rootless union mount is
        // only there, and its FUSE server answers nobody outside.
        let files = berth_launch::read_container_files(pid, &["/etc/passwd", "/etc/group"])?;
        let text = |i: usize| {
            String::from_utf8_lossy(files[i].as_deref().unwrap_or_default()).into_owned()
        };
        let spec = spec::build_with_users(&record, &root, &text(0), &text(1))?;
        let mut process = spec.process().clone().ok_or_else(|| {
            ContainerError::InvalidArgument("the container's spec has no process".into())
        })?;
        process.set_terminal(Some(opts.tty));
        let stdio = if opts.interactive && !opts.detach {
            Stdio::Inherit
        } else {
            let null = || {
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                    .map(Into::into)
                    .map_err(|e| ContainerError::io("opening /dev/null", e))
            };
            // Detached, the output goes nowhere (as with Docker): a process
            // left holding our stdout would keep a reader of it waiting.
            let quiet = || {
                if opts.detach {
                    null().map(Some)
                } else {
                    Ok(None)
                }
            };
            Stdio::Fds {
                stdin: Some(null()?),
                stdout: quiet()?,
                stderr: quiet()?,
            }
        };
        // Like Docker, the process counts against the container's limits,
        // and pause, stats and top see it.
        let cgroup = self.cgroup_of(&record).ok();
        let exec_opts = berth_launch::ExecOptions {
            stdio,
            cgroup: cgroup.as_deref(),
        };
        let mut child = berth_launch::exec(pid, &process, &exec_opts)?;
        if opts.detach {
            return Ok(0);
        }
        let mut _raw = None;
        if let Some(master) = child.take_pty_master() {
            let master = File::from(master);
            if opts.interactive {
                _raw = Some(RawTerminal::enter());
                let input = master
                    .try_clone()
                    .map_err(|e| ContainerError::io("cloning the pty", e))?;
                terminal::forward_stdin(input, false);
            }
            terminal::follow_terminal(master.as_raw_fd());
            copy_pty(master);
            terminal::stop_following();
        }
        let status = child.wait()?;
        Ok(status.code())
    }

    /// `top`: `ps` output (with `ps_args`, default `-ef`) of the
    /// container's processes only: the header and the rows.
    pub fn top_container(
        &self,
        query: &str,
        ps_args: &[String],
    ) -> CResult<(Vec<String>, Vec<Vec<String>>)> {
        let record = self.running_record(query)?;
        let pids = namespace_pids(record.state.pid)?;
        let args: Vec<String> = if ps_args.is_empty() {
            vec!["-ef".into()]
        } else {
            ps_args.to_vec()
        };
        let out = std::process::Command::new("ps")
            .args(&args)
            .output()
            .map_err(|e| ContainerError::io("running ps", e))?;
        if !out.status.success() {
            return Err(ContainerError::InvalidArgument(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        parse_ps(&text, &pids)
    }
}

/// Copies Docker-framed output from an attach socket to our stdout and
/// stderr until it ends.
fn copy_frames(conn: &mut impl Read) {
    let mut header = [0u8; 8];
    let mut buf = Vec::new();
    loop {
        if conn.read_exact(&mut header).is_err() {
            return;
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        buf.resize(len, 0);
        if conn.read_exact(&mut buf).is_err() {
            return;
        }
        let res = if header[0] == 2 {
            std::io::stderr().lock().write_all(&buf)
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(&buf).and_then(|()| out.flush())
        };
        if res.is_err() {
            return;
        }
    }
}

/// Copies a pty's output to our stdout until every slave is closed.
fn copy_pty(mut master: File) {
    let mut buf = [0u8; 32 * 1024];
    let mut out = std::io::stdout();
    loop {
        match master.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}

/// Docker's default detach keys, ctrl-p ctrl-q, found across reads.
#[derive(Default)]
struct DetachKeys {
    /// A ctrl-p seen at the end of the last read, held back.
    held: bool,
}

impl DetachKeys {
    const P: u8 = 0x10;
    const Q: u8 = 0x11;

    /// The bytes to pass on, and whether the sequence was typed.
    fn scan(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len() + 1);
        for &b in input {
            if self.held {
                self.held = false;
                if b == Self::Q {
                    return (out, true);
                }
                out.push(Self::P);
            }
            if b == Self::P {
                self.held = true;
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// The pids (as the host sees them) in the pid namespace of `pid`.
fn namespace_pids(pid: i32) -> CResult<Vec<i32>> {
    let ns = |p: &str| std::fs::metadata(format!("/proc/{p}/ns/pid")).map(|m| m.ino());
    let target = ns(&pid.to_string())
        .map_err(|e| ContainerError::io(format!("reading /proc/{pid}/ns/pid"), e))?;
    let mut pids = Vec::new();
    let entries = std::fs::read_dir("/proc").map_err(|e| ContainerError::io("listing /proc", e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(p) = name.parse::<i32>() else { continue };
        if ns(name).is_ok_and(|i| i == target) {
            pids.push(p);
        }
    }
    Ok(pids)
}

/// Splits `ps` output into the header and the rows of `pids`; the last
/// column (the command) keeps its spaces.
fn parse_ps(text: &str, pids: &[i32]) -> CResult<(Vec<String>, Vec<Vec<String>>)> {
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let pid_col = header.iter().position(|h| h == "PID").ok_or_else(|| {
        ContainerError::InvalidArgument("Couldn't find PID field in ps output".into())
    })?;
    let mut rows = Vec::new();
    for line in lines {
        let mut fields: Vec<String> = Vec::new();
        let mut rest = line.trim_start();
        while fields.len() + 1 < header.len() {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            fields.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
        fields.push(rest.to_string());
        if fields
            .get(pid_col)
            .and_then(|p| p.parse::<i32>().ok())
            .is_some_and(|p| pids.contains(&p))
        {
            rows.push(fields);
        }
    }
    Ok((header, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_are_found_across_reads_and_lone_ctrl_p_passes() {
        let mut k = DetachKeys::default();
        assert_eq!(k.scan(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(k.scan(b"x"), (b"\x10x".to_vec(), false));
        assert_eq!(k.scan(b"z\x10"), (b"z".to_vec(), false));
        assert_eq!(k.scan(b"\x11rest"), (Vec::new(), true));
        let mut k = DetachKeys::default();
        assert_eq!(k.scan(b"\x10\x10\x11"), (b"\x10".to_vec(), true));
    }

    #[test]
    fn ps_rows_are_filtered_and_the_command_keeps_spaces() {
        let text = "UID PID PPID C STIME TTY TIME CMD\n\
                    root 1 0 0 10:00 ? 00:00:01 /sbin/init splash\n\
                    root 42 1 0 10:01 ? 00:00:00 sleep 100 --x\n";
        let (h, rows) = parse_ps(text, &[42]).unwrap();
        assert_eq!(h.len(), 8);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0][1], "42");
        assert_eq!(rows[0][7], "sleep 100 --x");
        assert!(parse_ps("USER COMMAND\n", &[1]).is_err());
    }
}
