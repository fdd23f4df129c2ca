//! The engines the run benchmark drives, each a [`Tool`]: berth under one
//! storage driver (as root, or as the unprivileged test user), Docker (the
//! daemon already answering, or a dockerd started here on a scratch data
//! root) and podman on scratch roots. Everything they create lives under one
//! scratch dir that [`Session`] unmounts and removes, together with the
//! dockerd it started, on success, error or Ctrl-C alike.

use std::collections::BTreeSet;
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::scratch::Scratch;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// The image every engine runs, imported from the same busybox tarball.
pub const IMAGE: &str = "berth-bench/busybox:latest";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Berth,
    Docker,
    Podman,
}

/// One column of the table: a program with its global flags, environment
/// and user, and what the bench created with it.
pub struct Tool {
    pub name: String,
    pub kind: Kind,
    program: PathBuf,
    global: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    user: Option<(u32, u32)>,
    cwd: Option<PathBuf>,
    /// Flags given to every `run` and `create`, so all engines run the same
    /// container (no network: only Docker would build a bridge otherwise).
    run_flags: Vec<String>,
    /// Why this column has no numbers, when it has none.
    pub broken: Option<String>,
    /// The store is ours alone (scratch root, own daemon): everything in
    /// it may go at the end, not just what we remember creating.
    owned_store: bool,
    containers: Mutex<BTreeSet<String>>,
    images: Mutex<BTreeSet<String>>,
}

impl Tool {
    fn new(name: impl Into<String>, kind: Kind, program: impl Into<PathBuf>) -> Tool {
        Tool {
            name: name.into(),
            kind,
            program: program.into(),
            global: Vec::new(),
            env: Vec::new(),
            user: None,
            cwd: None,
            run_flags: vec!["--network".into(), "none".into()],
            broken: None,
            owned_store: true,
            containers: Mutex::default(),
            images: Mutex::default(),
        }
    }

    fn unavailable(name: &str, kind: Kind, why: impl Into<String>) -> Tool {
        let mut t = Tool::new(name, kind, name);
        t.broken = Some(why.into());
        t
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.global).args(args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some((uid, gid)) = self.user {
            // As root, std drops the supplementary groups along with the ids.
            c.uid(uid).gid(gid);
        }
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        // A process group of its own: a Ctrl-C reaches only xtask, which
        // stops between samples and cleans up, not the engine mid-command.
        c.stdin(Stdio::null()).process_group(0);
        c
    }

    /// Runs the tool and returns its stdout; the error is the first line
    /// of its stderr, which is what the table's footnotes show.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self
            .cmd(args)
            .output()
            .with_context(|| format!("cannot run {}", self.program.display()))?;
        self.check(args, out)
    }

    /// stdout of a finished run of `args`, or the error [`Tool::ok`] gives.
    pub fn check(&self, args: &[&str], out: Output) -> Result<String> {
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let first = stderr
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| out.status.to_string());
            bail!(
                "`{} {}`: {first}",
                self.short(),
                args.first().unwrap_or(&"")
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn short(&self) -> &'static str {
        match self.kind {
            Kind::Berth => "berth",
            Kind::Docker => "docker",
            Kind::Podman => "podman",
        }
    }

    /// `SUB FLAGS ARGS...` for `run` and `create`.
    pub fn container_args<'a>(&'a self, sub: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec![sub];
        v.extend(self.run_flags.iter().map(String::as_str));
        v.extend_from_slice(rest);
        v
    }

    pub fn run_flags(&self) -> &[String] {
        &self.run_flags
    }

    /// Whether the tool has a subcommand: berth grows them while this bench
    /// exists, the peers have them all.
    pub fn supports(&self, sub: &str) -> Result<()> {
        if self.kind != Kind::Berth {
            return Ok(());
        }
        let st = self
            .cmd(&[sub, "--help"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !st.success() {
            let code = st.code().map_or("on a signal".into(), |c| c.to_string());
            bail!("berth has no `{sub}` yet (`berth {sub} --help` exits {code})");
        }
        Ok(())
    }

    /// Whether `run -d` exists.
    pub fn supports_detach(&self) -> Result<()> {
        if self.kind != Kind::Berth {
            return Ok(());
        }
        let help = self.ok(&["run", "--help"])?;
        if !help.contains("--detach") {
            bail!("berth has no `run -d` yet");
        }
        Ok(())
    }

    pub fn track_container(&self, id: &str) {
        self.containers
            .lock()
            .unwrap()
            .insert(id.trim().to_string());
    }

    /// Removes containers (killed if running) and forgets them.
    pub fn remove_containers(&self, ids: &[String]) -> Result<()> {
        for chunk in ids.chunks(50) {
            let mut args = vec!["rm", "-f"];
            if self.kind == Kind::Podman {
                // Else podman gives the container 10 s to stop on SIGTERM,
                // which a `sleep` as pid 1 ignores.
                args.extend(["-t", "0"]);
            }
            args.extend(chunk.iter().map(String::as_str));
            self.ok(&args)?;
            let mut set = self.containers.lock().unwrap();
            for id in chunk {
                set.remove(id);
            }
        }
        Ok(())
    }

    pub fn track_image(&self, name: &str) {
        self.images.lock().unwrap().insert(name.to_string());
    }

    pub fn remove_image(&self, name: &str) -> Result<()> {
        self.ok(&["rmi", name])?;
        self.images.lock().unwrap().remove(name);
        Ok(())
    }

    /// Removes what the bench created; with a store of our own, whatever
    /// is left in it too (a command cut short may not have told its id).
    fn clean(&self) {
        let mut ids: Vec<String> = self.containers.lock().unwrap().iter().cloned().collect();
        if self.owned_store && self.broken.is_none() {
            if let Ok(out) = self.ok(&["ps", "-aq", "--no-trunc"]) {
                ids.extend(out.split_whitespace().map(str::to_string));
            }
        }
        ids.sort();
        ids.dedup();
        if let Err(e) = self.remove_containers(&ids) {
            eprintln!("bench: {}: {e:#}", self.name);
        }
        let images: Vec<String> = self.images.lock().unwrap().iter().cloned().collect();
        for i in images.iter().rev() {
            let _ = self.ok(&["rmi", "-f", i]);
        }
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// From here on SIGINT, SIGTERM and SIGHUP only ask the bench to stop (at
/// the next sample) and clean up; a second one kills it outright.
pub fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores to an
        // atomic, which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESETHAND;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

pub fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// The scratch dir, the tools and the dockerd we started; dropping it
/// removes them all, in the order that works: containers and images
/// through each tool, then the daemon, then mounts, then files.
pub struct Session {
    pub scratch: PathBuf,
    /// The fresh ext4 mounted at `scratch`, if it could be made (see
    /// `crate::scratch`); dropped after `clean` has unmounted it.
    _fs: Option<Scratch>,
    pub tools: Vec<Tool>,
    dockerd: Option<Dockerd>,
    /// Host dirs of [`HOST_LITTER`] that were not there when we started.
    absent: Vec<&'static str>,
}

/// Where the peers write whatever flags they are given: podman as root
/// keeps a blob-info cache in /var/lib/containers, containerd's shims put
/// sockets in /run/containerd/s, dockerd looks for plugins in
/// /run/docker/plugins. Each is removed at the end if we made it and it is
/// empty (deepest first).
const HOST_LITTER: &[&str] = &[
    "/var/lib/containers/cache",
    "/var/lib/containers",
    "/run/containerd/s",
    "/run/containerd",
    "/run/docker/plugins",
    "/run/docker",
];

impl Session {
    pub fn new() -> Result<Session> {
        let scratch = PathBuf::from(format!("/var/tmp/berth-bench-run-{}", std::process::id()));
        if scratch.exists() {
            remove_tree(&scratch)?;
        }
        std::fs::create_dir_all(&scratch)?;
        let fs = if crate::env::is_root() {
            Scratch::make(&scratch, &scratch.with_extension("img"))
                .map_err(|e| {
                    eprintln!("bench: no scratch ext4 ({e:#}); running on the host's disk")
                })
                .ok()
        } else {
            None
        };
        // The rootless columns must reach the tarball and their own dirs.
        std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o755))?;
        Ok(Session {
            scratch,
            _fs: fs,
            tools: Vec::new(),
            dockerd: None,
            absent: HOST_LITTER
                .iter()
                .copied()
                .filter(|d| !Path::new(d).exists())
                .collect(),
        })
    }

    /// berth with `driver`, as root or (with `user`) as that user.
    pub fn add_berth(
        &mut self,
        berth: &Path,
        driver: &str,
        user: Option<(u32, u32)>,
    ) -> Result<()> {
        let rootless = user.is_some() || !crate::env::is_root();
        let slug = format!("berth-{driver}{}", if rootless { "-rootless" } else { "" });
        let name = format!("berth {driver}{}", if rootless { " rootless" } else { "" });
        let dir = self.scratch.join(&slug);
        let mut t = Tool::new(name, Kind::Berth, berth);
        t.env.push(("BERTH_ROOT".into(), dir.join("root").into()));
        t.env.push(("BERTH_STORAGE_DRIVER".into(), driver.into()));
        if let Some((uid, gid)) = user {
            let (home, run) = (dir.join("home"), dir.join("run"));
            for d in [&dir, &dir.join("root"), &home, &run] {
                std::fs::create_dir_all(d)?;
                std::os::unix::fs::chown(d, Some(uid), Some(gid))?;
            }
            std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700))?;
            for (k, v) in [
                ("HOME", home.clone().into_os_string()),
                ("XDG_DATA_HOME", home.join(".local/share").into()),
                ("XDG_CONFIG_HOME", home.join(".config").into()),
                ("XDG_RUNTIME_DIR", run.into()),
                ("USER", crate::env::TEST_USER.into()),
                ("LOGNAME", crate::env::TEST_USER.into()),
            ] {
                t.env.push((k.into(), v));
            }
            t.user = Some((uid, gid));
            t.cwd = Some(home);
        }
        self.tools.push(t);
        Ok(())
    }

    /// Docker: the daemon that answers already, else a dockerd of our own
    /// on a scratch data root, else a column of n/a.
    pub fn add_docker(&mut self) {
        // Debian's docker.io client is 20.10, like its daemon; a newer
        // client elsewhere on PATH would only add API negotiation.
        let client = ["/usr/bin/docker"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| "docker".into());
        let mut t = Tool::new("docker", Kind::Docker, &client);
        if t.ok(&["info"]).is_ok() {
            eprintln!("bench: using the running Docker daemon");
            t.owned_store = false;
        } else if !runs("dockerd", &["--version"]) {
            self.tools.push(Tool::unavailable(
                "docker",
                Kind::Docker,
                "dockerd not installed (apt-get install docker.io)",
            ));
            return;
        } else {
            match Dockerd::start(&self.scratch.join("docker"), &client) {
                Ok(d) => {
                    t.global = vec!["-H".into(), d.host().into()];
                    self.dockerd = Some(d);
                }
                Err(e) => {
                    self.tools
                        .push(Tool::unavailable("docker", Kind::Docker, format!("{e:#}")));
                    return;
                }
            }
        }
        if let Ok(v) = t.ok(&["version", "-f", "{{.Server.Version}}"]) {
            t.name = format!("docker {}", short_version(&v));
        }
        self.tools.push(t);
    }

    /// podman with `--runtime runc` on scratch roots, so the host's
    /// storage is neither used nor touched.
    pub fn add_podman(&mut self) {
        if !runs("podman", &["--version"]) {
            self.tools.push(Tool::unavailable(
                "podman",
                Kind::Podman,
                "podman not installed (apt-get install podman)",
            ));
            return;
        }
        let dir = self.scratch.join("podman");
        let mut t = Tool::new("podman", Kind::Podman, "podman");
        let d = |s: &str| dir.join(s).into_os_string();
        t.global = vec![
            "--root".into(),
            d("root"),
            "--runroot".into(),
            d("runroot"),
            "--tmpdir".into(),
            d("tmp"),
            "--runtime".into(),
            "runc".into(),
            "--cgroup-manager".into(),
            "cgroupfs".into(),
            "--events-backend".into(),
            "file".into(),
        ];
        // Image copies stage through $TMPDIR (else /var/tmp).
        if std::fs::create_dir_all(dir.join("tmp")).is_ok() {
            t.env.push(("TMPDIR".into(), d("tmp")));
        }
        if let Ok(v) = t.ok(&["version", "-f", "{{.Client.Version}}"]) {
            t.name = format!("podman {}", short_version(&v));
        }
        self.tools.push(t);
    }

    /// Imports the image into every tool and runs one container with it;
    /// a tool that cannot becomes a column of n/a with the reason.
    pub fn prepare(&mut self, tarball: &Path) {
        let tar = tarball.to_string_lossy().into_owned();
        for t in &mut self.tools {
            if t.broken.is_some() {
                continue;
            }
            let imported = t.ok(&["import", "-c", "CMD [\"/bin/sh\"]", &tar, IMAGE]);
            t.track_image(IMAGE);
            let probe = imported.and_then(|_| {
                let args = t.container_args("run", &["--rm", IMAGE, "/bin/true"]);
                match t.ok(&args) {
                    // podman asks for nofile/nproc limits above what a
                    // confined root may set; any limits will do for timing.
                    Err(e) if t.kind == Kind::Podman && e.to_string().contains("rlimit") => {
                        eprintln!("bench: podman cannot raise rlimits here: passing --ulimit");
                        t.run_flags.extend(
                            [
                                "--ulimit",
                                "nofile=1024:4096",
                                "--ulimit",
                                "nproc=4096:4096",
                            ]
                            .map(String::from),
                        );
                        let args = t.container_args("run", &["--rm", IMAGE, "/bin/true"]);
                        t.ok(&args)
                    }
                    r => r,
                }
            });
            if let Err(e) = probe {
                eprintln!("bench: {}: {e:#}", t.name);
                t.broken = Some(format!("{e:#}"));
            }
        }
    }

    fn clean(&mut self) {
        for t in &self.tools {
            t.clean();
        }
        if let Some(d) = self.dockerd.take() {
            d.stop();
        }
        if let Err(e) = remove_tree(&self.scratch) {
            eprintln!("bench: {e:#}");
        }
        for dir in &self.absent {
            if dir.ends_with("containers/cache") {
                let _ = std::fs::remove_file(Path::new(dir).join("blob-info-cache-v1.boltdb"));
            }
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.clean();
    }
}

/// A dockerd we started, on a data root, exec root and socket of our own.
pub(crate) struct Dockerd {
    child: Child,
    dir: PathBuf,
}

impl Dockerd {
    pub(crate) fn start(dir: &Path, client: &Path) -> Result<Dockerd> {
        std::fs::create_dir_all(dir)?;
        // An empty config file so /etc/docker/daemon.json changes nothing.
        std::fs::write(dir.join("daemon.json"), "{}")?;
        let log = std::fs::File::create(dir.join("dockerd.log"))?;
        let child = Command::new("dockerd")
            .args(["--bridge=none", "--iptables=false", "--ip-masq=false"])
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", dir.join("docker.sock").display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting dockerd")?;
        eprintln!("bench: started dockerd, pid {}", child.id());
        let mut d = Dockerd {
            child,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = d.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default();
                let last = log.lines().last().unwrap_or("").to_string();
                d.stop();
                bail!("dockerd exited ({st}): {last}");
            }
            let ready = Command::new(client)
                .args(["-H", &d.host(), "version"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                return Ok(d);
            }
            if Instant::now() > deadline {
                d.stop();
                bail!("dockerd did not answer within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    /// SIGTERM to exactly our dockerd (it stops its containerd), SIGKILL
    /// after 30 s; then its own children, should any outlive it.
    pub(crate) fn stop(mut self) {
        let pid = self.child.id();
        let children = children_of(pid);
        // SAFETY: kill on the pid of a child we have not reaped yet.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    eprintln!("bench: dockerd {pid} ignored SIGTERM: killing it");
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        for (child, comm) in children {
            if proc_stat(child).is_some_and(|(_, c)| c == comm) {
                eprintln!("bench: {comm} {child} outlived dockerd: killing it");
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(child as libc::pid_t, libc::SIGKILL) };
            }
        }
        eprintln!("bench: stopped dockerd {pid}");
    }
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// "20.10.24+dfsg1" -> "20.10.24".
fn short_version(v: &str) -> String {
    v.trim()
        .split(['+', '-', '~'])
        .next()
        .unwrap_or("")
        .to_string()
}

/// A process's parent pid and command name, from /proc.
pub fn proc_stat(pid: u32) -> Option<(u32, String)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat(stat: &str) -> Option<(u32, String)> {
    // The name is in parentheses and may itself hold spaces or ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let ppid = stat[close + 2..].split(' ').nth(1)?.parse().ok()?;
    Some((ppid, comm))
}

pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn children_of(pid: u32) -> Vec<(u32, String)> {
    all_pids()
        .into_iter()
        .filter_map(|p| {
            let (ppid, comm) = proc_stat(p)?;
            (ppid == pid).then_some((p, comm))
        })
        .collect()
}

/// The pid whose argv is exactly `argv`.
pub fn pid_of_argv(argv: &[&str]) -> Option<u32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    all_pids()
        .into_iter()
        .find(|p| std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == want))
}

/// Unmounts everything under `dir`, deepest first, then removes it; never
/// removes through a mount that would not go.
fn remove_tree(dir: &Path) -> Result<()> {
    let mut mounts: Vec<PathBuf> = berth_snapshot::mount_points()
        .into_iter()
        .filter(|m| m.starts_with(dir))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    mounts.dedup();
    for m in &mounts {
        let c = CString::new(m.as_os_str().as_bytes())?;
        // SAFETY: c is a valid NUL-terminated path.
        let ok = unsafe { libc::umount2(c.as_ptr(), 0) } == 0
            || unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0;
        if !ok {
            return Err(anyhow!(
                "cannot unmount {}: {}; leaving {} in place",
                m.display(),
                std::io::Error::last_os_error(),
                dir.display()
            ));
        }
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_names_may_hold_spaces_and_parens() {
        let (ppid, comm) = parse_stat("42 (a b) c) S 7 42 42 0").unwrap();
        assert_eq!((ppid, comm.as_str()), (7, "a b) c"));
        let (ppid, _) = proc_stat(std::process::id()).unwrap();
        assert_eq!(ppid, std::os::unix::process::parent_id());
    }

    #[test]
    fn versions_lose_distribution_suffixes() {
        assert_eq!(short_version("20.10.24+dfsg1\n"), "20.10.24");
        assert_eq!(short_version("4.3.1"), "4.3.1");
    }
}
