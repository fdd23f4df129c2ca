//! Shared harness: layer fixtures, and running a shell scenario against a
//! berth-unionfs mount as root, as an unprivileged user through fusermount3,
//! and as an unprivileged user inside `unshare -Urm`.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_berth-unionfs");

/// How the scenario is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Root,
    /// Unprivileged user, mounted through the setuid fusermount3.
    UserFusermount(u32, u32),
    /// Unprivileged user, root in a new user + mount namespace.
    UserNs(u32, u32),
}

impl Mode {
    /// Every mode this run can use; the rootless ones need BERTH_TEST_UID/GID.
    pub fn all() -> Vec<Mode> {
        let mut v = vec![Mode::Root];
        match (test_ids(), is_root()) {
            (Some((u, g)), true) => {
                // The userns mount opens /dev/fuse itself.
                let _ = fs::set_permissions("/dev/fuse", fs::Permissions::from_mode(0o666));
                v.push(Mode::UserFusermount(u, g));
                v.push(Mode::UserNs(u, g));
            }
            _ => eprintln!("rootless scenarios skipped: BERTH_TEST_UID/BERTH_TEST_GID not set"),
        }
        if !is_root() {
            eprintln!("root scenarios skipped: not running as root");
            v.retain(|m| *m != Mode::Root);
        }
        v
    }
}

pub fn is_root() -> bool {
    // SAFETY: trivial getter.
    unsafe { libc::geteuid() == 0 }
}

fn test_ids() -> Option<(u32, u32)> {
    let u = std::env::var("BERTH_TEST_UID").ok()?.parse().ok()?;
    let g = std::env::var("BERTH_TEST_GID").ok()?.parse().ok()?;
    Some((u, g))
}

/// A set of layer directories in a private temp dir.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub lowers: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub mnt: PathBuf,
}

impl Fixture {
    pub fn new(nlower: usize) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("berth-unionfs-test")
            .tempdir()
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let lowers: Vec<PathBuf> = (0..nlower)
            .map(|i| dir.path().join(format!("l{i}")))
            .collect();
        for l in &lowers {
            fs::create_dir(l).unwrap();
        }
        let upper = dir.path().join("u");
        let work = dir.path().join("w");
        let mnt = dir.path().join("m");
        for d in [&upper, &work, &mnt] {
            fs::create_dir(d).unwrap();
        }
        Fixture {
            dir,
            lowers,
            upper,
            work,
            mnt,
        }
    }

    pub fn lower(&self, i: usize) -> &Path {
        &self.lowers[i]
    }

    pub fn options(&self) -> String {
        let lowers: Vec<String> = self
            .lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers.join(":"),
            self.upper.display(),
            self.work.display()
        )
    }

    /// Runs `script` (sh) with the overlay mounted at $M; $U is the upper dir,
    /// $L0.. the lowers. Returns stdout; panics with stderr on failure.
    pub fn run(&self, mode: Mode, script: &str) -> String {
        self.run_opts(mode, &self.options(), script)
    }

    pub fn run_opts(&self, mode: Mode, opts: &str, script: &str) -> String {
        // A mount point of its own per run: the daemon of the previous run,
        // lazily unmounted, may still be exiting, and its exit unmounts its
        // path, which would take this run's mount with it.
        let mnt = tempfile::Builder::new()
            .prefix("m")
            .tempdir_in(self.dir.path())
            .expect("mount point")
            .keep();
        if let Mode::UserFusermount(u, g) | Mode::UserNs(u, g) = mode {
            chown_tree(self.dir.path(), u, g);
        }
        let unmount = match mode {
            Mode::UserFusermount(..) => "fusermount3 -u -z \"$M\"",
            _ => "umount -l \"$M\"",
        };
        let full = format!(
            "set -e\n{HELPERS}\n\"$BIN\" -o \"$OPTS\" \"$M\"\ntrap '{unmount}' EXIT\n{script}\n"
        );
        let mut cmd = match mode {
            Mode::Root => Command::new("sh"),
            Mode::UserFusermount(u, g) => {
                let mut c = Command::new("setpriv");
                c.args([
                    &format!("--reuid={u}"),
                    &format!("--regid={g}"),
                    "--clear-groups",
                    "--",
                    "sh",
                ]);
                c
            }
            Mode::UserNs(u, g) => {
                let mut c = Command::new("setpriv");
                c.args([
                    &format!("--reuid={u}"),
                    &format!("--regid={g}"),
                    "--clear-groups",
                    "--",
                    "unshare",
                    "-Urm",
                    "--",
                    "sh",
                ]);
                c
            }
        };
        cmd.arg("-c").arg(&full);
        cmd.env("BIN", BIN)
            .env("OPTS", opts)
            .env("M", &mnt)
            .env("U", &self.upper)
            .env("HOME", self.dir.path());
        for (i, l) in self.lowers.iter().enumerate() {
            cmd.env(format!("L{i}"), l);
        }
        let _guard = UnmountGuard(mnt.clone());
        let out = cmd.output().expect("running scenario shell");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "scenario failed in {mode:?}\nstdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// True if the upper layer has a whiteout for `rel`, in either style.
    pub fn upper_whiteout(&self, rel: &str) -> bool {
        is_whiteout(&self.upper, rel)
    }
}

pub fn is_whiteout(layer: &Path, rel: &str) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let p = layer.join(rel);
    if let Ok(m) = fs::symlink_metadata(&p) {
        return m.file_type().is_char_device() && m.rdev() == 0;
    }
    let name = p.file_name().unwrap().to_string_lossy().into_owned();
    p.with_file_name(format!(".wh.{name}")).exists()
}

/// Lazily unmounts on drop, so a failed test never leaves a mount behind.
pub struct UnmountGuard(pub PathBuf);

impl Drop for UnmountGuard {
    fn drop(&mut self) {
        if is_mounted(&self.0) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

pub fn is_mounted(p: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let s = p.display().to_string();
    info.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| m == s))
}

pub fn chown_tree(p: &Path, u: u32, g: u32) {
    let st = Command::new("chown")
        .arg("-R")
        .arg("-h")
        .arg(format!("{u}:{g}"))
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

pub fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
    assert!(st.success(), "{cmd}");
}

/// Shell helpers every scenario can use.
const HELPERS: &str = r#"
fail() { echo "FAIL: $*" >&2; exit 1; }
expect() { got=$(eval "$1" 2>/dev/null || true); [ "$got" = "$2" ] || fail "$1: got [$got] want [$2]"; }
is_wh() { if [ -c "$1" ]; then [ "$(stat -c %t:%T "$1")" = 0:0 ]; else [ -e "$(dirname "$1")/.wh.$(basename "$1")" ]; fi; }
"#;
