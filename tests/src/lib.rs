//! Helpers for berth's end-to-end tests: finding the built binaries, a
//! throw-away berth root per test, a busybox root filesystem, and a raw tar
//! writer that can produce the malformed archives the error-path tests need.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Where the built binaries are: `BERTH_BIN_DIR` (set by `cargo xtask
/// test`), else the workspace's `target/debug`.
pub fn bin_dir() -> PathBuf {
    std::env::var_os("BERTH_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("tests/ sits in the workspace")
                .join("target/debug")
        })
}

pub fn berth_bin() -> PathBuf {
    let p = bin_dir().join("berth");
    assert!(
        p.exists(),
        "{} not found: run `cargo build --bins` or `cargo xtask test`",
        p.display()
    );
    p
}

/// The unprivileged user the rootless suites run as (`cargo xtask test`
/// creates it and exports its ids).
pub fn test_user() -> Option<(u32, u32)> {
    let uid = std::env::var("BERTH_TEST_UID").ok()?.parse().ok()?;
    let gid = std::env::var("BERTH_TEST_GID").ok()?.parse().ok()?;
    Some((uid, gid))
}

/// A berth root in a temporary directory, and a way to run berth on it.
pub struct Berth {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    driver: Option<String>,
    /// Run berth as this (uid, gid) through setpriv.
    user: Option<(u32, u32)>,
}

/// A test that fails half-way must not leave containers (and their
/// monitors and mounts) behind: force-remove whatever is left.
impl Drop for Berth {
    fn drop(&mut self) {
        if !self.root.join("containers").exists() {
            return;
        }
        let ids = self.run(&["ps", "-aq", "--no-trunc"]);
        let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.run(&args);
        }
    }
}

impl Default for Berth {
    fn default() -> Self {
        Self::new()
    }
}

impl Berth {
    pub fn new() -> Berth {
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().join("root");
        Berth {
            dir,
            root,
            driver: None,
            user: None,
        }
    }

    /// As the unprivileged test user (see [`test_user`]), when there is one:
    /// the temporary dir becomes theirs and every command runs through
    /// `setpriv` with their ids.
    pub fn as_test_user(mut self) -> Option<Berth> {
        let (uid, gid) = test_user()?;
        if !is_root() {
            eprintln!("switching to the test user needs root");
            return None;
        }
        std::os::unix::fs::chown(self.dir.path(), Some(uid), Some(gid)).expect("chown test dir");
        self.user = Some((uid, gid));
        Some(self)
    }

    /// True when commands run as the unprivileged test user.
    pub fn rootless(&self) -> bool {
        self.user.is_some()
    }

    pub fn with_driver(mut self, driver: &str) -> Berth {
        self.driver = Some(driver.to_string());
        self
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = match self.user {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.args([
                    format!("--reuid={uid}"),
                    format!("--regid={gid}"),
                    "--clear-groups".into(),
                ])
                .arg(berth_bin())
                .env("HOME", self.dir.path());
                c
            }
            None => Command::new(berth_bin()),
        };
        c.args(args)
            .env("BERTH_ROOT", &self.root)
            .env_remove("BERTH_STORAGE_DRIVER");
        if let Some(d) = &self.driver {
            c.env("BERTH_STORAGE_DRIVER", d);
        }
        c
    }

    /// Starts a foreground `berth run --name NAME ARGS...` in the background
    /// (output discarded) and waits until `ps` shows it running.
    pub fn run_in_background(&self, name: &str, args: &[&str]) -> std::process::Child {
        let mut full = vec!["run", "--name", name];
        full.extend_from_slice(args);
        let child = self
            .cmd(&full)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn berth run");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !self.ok(&["ps"]).contains(&format!(" {name}")) {
            assert!(
                std::time::Instant::now() < deadline,
                "container {name} never showed as running"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child
    }

    /// Runs berth and returns its output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("run berth")
    }

    /// Runs berth with `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth");
        let mut stdin = child.stdin.take().expect("stdin");
        // berth may stop reading early on bad input: a broken pipe is fine.
        let _ = stdin.write_all(input);
        drop(stdin);
        child.wait_with_output().expect("wait berth")
    }

    /// Runs berth, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs berth, asserts failure with `code`, returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "berth {args:?}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Every path under the root with its size: two equal snapshots mean
    /// nothing was added, removed or changed in size.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        if self.root.exists() {
            walk(&self.root, &self.root, &mut out);
        }
        out.sort();
        out
    }

    /// The layerdb chainID directories (hex), sorted.
    pub fn layerdb(&self) -> Vec<String> {
        let mut out = Vec::new();
        for driver in ["overlay", "fuse", "vfs"] {
            let dir = self.root.join("image").join(driver).join("layerdb/sha256");
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    out.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out
    }
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, u64)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let meta = match std::fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(_) => continue,
        };
        let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
        // lastUpdated and lock files change without meaning anything.
        if rel.ends_with(".lock") {
            continue;
        }
        let size = if meta.is_file() { meta.len() } else { 0 };
        out.push((rel, size));
        if meta.is_dir() {
            walk(base, &p, out);
        }
    }
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// A fresh root with the driver given and `busybox` (CMD sh) imported.
pub fn with_busybox(b: Berth) -> Berth {
    let tar = busybox_tarball(b.dir.path());
    if let Some((uid, gid)) = b.user {
        std::os::unix::fs::chown(&tar, Some(uid), Some(gid)).expect("chown tarball");
    }
    b.ok(&[
        "import",
        "-c",
        "CMD [\"/bin/sh\"]",
        tar.to_str().expect("utf-8 temp path"),
        "busybox",
    ]);
    b
}

/// A busybox root filesystem tarball (from busybox-static) at
/// `dir/busybox.tar`; returns its path.
pub fn busybox_tarball(dir: &Path) -> PathBuf {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("busybox not found: apt-get install busybox-static (cargo xtask test does)");
    let rootfs = dir.join("busybox-rootfs");
    let _ = std::fs::remove_dir_all(&rootfs);
    for d in [
        "bin", "etc", "proc", "sys", "dev", "tmp", "root", "var", "home",
    ] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(busybox, rootfs.join("bin/busybox")).unwrap();
    let list = Command::new(busybox).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnobody:x:65534:\n").unwrap();
    let tar = dir.join("busybox.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args([
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "--sort=name",
            "--mtime=2024-01-01",
            "-cf",
        ])
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success(), "tar failed");
    std::fs::remove_dir_all(&rootfs).unwrap();
    tar
}

/// A hand-rolled ustar writer: unlike a tar library it will write any name,
/// link target or header, which is what malformed-input tests need.
#[derive(Default)]
pub struct RawTar {
    buf: Vec<u8>,
}

/// Tar entry types used by the tests.
#[derive(Clone, Copy)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    HardLink,
}

impl RawTar {
    pub fn new() -> RawTar {
        RawTar::default()
    }

    pub fn file(self, name: &str, data: &[u8]) -> RawTar {
        self.entry(name, Kind::File, "", data)
    }

    pub fn dir(self, name: &str) -> RawTar {
        self.entry(name, Kind::Dir, "", b"")
    }

    pub fn symlink(self, name: &str, target: &str) -> RawTar {
        self.entry(name, Kind::Symlink, target, b"")
    }

    pub fn hardlink(self, name: &str, target: &str) -> RawTar {
        self.entry(name, Kind::HardLink, target, b"")
    }

    pub fn entry(mut self, name: &str, kind: Kind, link: &str, data: &[u8]) -> RawTar {
        let (flag, mode) = match kind {
            Kind::File => (b'0', 0o644),
            Kind::Dir => (b'5', 0o755),
            Kind::Symlink => (b'2', 0o777),
            Kind::HardLink => (b'1', 0o644),
        };
        self.header(name, flag, mode, link, data.len() as u64);
        self.data(data);
        self
    }

    /// A PAX extended header applying `records` to the next entry.
    pub fn pax(mut self, records: &[(&str, &str)]) -> RawTar {
        let mut body = Vec::new();
        for (k, v) in records {
            // The length prefix counts itself.
            let rest = format!(" {k}={v}\n");
            let mut len = rest.len() + 1;
            while format!("{len}{rest}").len() != len {
                len += 1;
            }
            body.extend_from_slice(format!("{len}{rest}").as_bytes());
        }
        self.header("PaxHeaders/x", b'x', 0o644, "", body.len() as u64);
        self.data(&body);
        self
    }

    /// A header whose size field says `size` but with `data` following.
    pub fn file_with_size(mut self, name: &str, size: u64, data: &[u8]) -> RawTar {
        self.header(name, b'0', 0o644, "", size);
        self.data(data);
        self
    }

    fn header(&mut self, name: &str, flag: u8, mode: u32, link: &str, size: u64) {
        let mut h = [0u8; 512];
        assert!(
            name.len() <= 100 && link.len() <= 100,
            "names over 100 bytes"
        );
        h[..name.len()].copy_from_slice(name.as_bytes());
        let octal = |h: &mut [u8; 512], at: usize, width: usize, v: u64| {
            let s = format!("{v:0w$o}\0", w = width - 1);
            h[at..at + width].copy_from_slice(s.as_bytes());
        };
        octal(&mut h, 100, 8, mode as u64);
        octal(&mut h, 108, 8, 0);
        octal(&mut h, 116, 8, 0);
        octal(&mut h, 124, 12, size);
        octal(&mut h, 136, 12, 1_700_000_000);
        h[156] = flag;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| *b as u32).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        self.buf.extend_from_slice(&h);
    }

    fn data(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.buf.extend(std::iter::repeat_n(0u8, pad));
    }

    /// The archive with its end-of-archive blocks.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend(std::iter::repeat_n(0u8, 1024));
        self.buf
    }

    /// The archive without end blocks (a truncated stream).
    pub fn unfinished(self) -> Vec<u8> {
        self.buf
    }
}

/// sha256 of bytes as `sha256:hex`, via coreutils (the tests avoid linking
/// the code under test for their expectations).
pub fn sha256(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha256:{}", text.split_whitespace().next().unwrap())
}
