//! The rootless monitor's path, as the unprivileged user named by
//! BERTH_TEST_UID/BERTH_TEST_GID: a single-threaded process enters the
//! rootless namespaces, mounts the root filesystem there (a bind), and
//! spawns the init with `inside_userns`; from outside, the init runs as the
//! user, the mount is invisible, and `exec` joins it.
//!
//! No libtest harness: entering a user namespace needs a single-threaded
//! process, so this binary re-runs itself in the roles below (chosen by
//! `BERTH_USERNS_ROLE`).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio as ProcStdio};

use berth_launch::{exec, ExecOptions, ExitStatus, LaunchOptions, Stdio};
use common::*;

const ROLE: &str = "BERTH_USERNS_ROLE";

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("monitor") => monitor(),
        Ok("exec") => exec_into(),
        Ok("helper") => helper(),
        _ => {
            drive();
            println!("test result: ok. userns (inside_userns, exec, single-id fallback)");
        }
    }
}

fn test_ids() -> Option<(u32, u32)> {
    let uid = std::env::var("BERTH_TEST_UID").ok()?.parse().ok()?;
    let gid = std::env::var("BERTH_TEST_GID").ok()?.parse().ok()?;
    Some((uid, gid))
}

/// Runs this binary in `role` as the test user.
fn as_user(role: &str, uid: u32, gid: u32) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.env(ROLE, role).env("TMPDIR", "/tmp");
    if nix::unistd::geteuid().is_root() {
        c.uid(uid).gid(gid);
    }
    c
}

/// The test: a monitor as the user, checked from outside, then the same
/// without newuidmap/newgidmap (the single-id fallback).
fn drive() {
    let Some((uid, gid)) = test_ids() else {
        println!("skipped: BERTH_TEST_UID/BERTH_TEST_GID not set");
        return;
    };
    let me = nix::unistd::geteuid();
    if !me.is_root() && me.as_raw() != uid {
        println!("skipped: switching to the test user needs root");
        return;
    }
    let out = as_user("helper", uid, gid).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("0 {uid}\n"));

    let root = busybox_rootfs();
    let work = tempfile::Builder::new()
        .prefix("berth-userns-")
        .tempdir()
        .unwrap();
    std::os::unix::fs::chown(work.path(), Some(uid), Some(gid)).unwrap();
    let subuid = berth_launch::rootless_map(uid, &user_name(uid), Path::new("/etc/subuid"));

    let map = run_monitor(uid, gid, root.path(), work.path(), None);
    assert_eq!(map[0], format!("0 {uid} 1"), "{map:?}");
    assert_eq!(map.len(), subuid.len(), "subordinate ids follow: {map:?}");

    // Without newuidmap and newgidmap: the single-id maps, setgroups denied.
    let empty = work.path().join("no-helpers");
    std::fs::create_dir(&empty).unwrap();
    let map = run_monitor(uid, gid, root.path(), work.path(), Some(&empty));
    assert_eq!(map, [format!("0 {uid} 1")], "single-id fallback");
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into())
        .unwrap()
        .map(|u| u.name)
        .unwrap_or_default()
}

/// Starts a monitor, checks its container from outside and execs into it;
/// returns the uid map the container saw (normalised to single spaces).
fn run_monitor(uid: u32, gid: u32, root: &Path, work: &Path, path: Option<&Path>) -> Vec<String> {
    let mut cmd = as_user("monitor", uid, gid);
    cmd.env("ROOTFS", root)
        .env("WORK", work)
        .stdin(ProcStdio::piped())
        .stdout(ProcStdio::piped());
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    let mut monitor = cmd.spawn().unwrap();
    let mut lines = BufReader::new(monitor.stdout.take().unwrap()).lines();
    let mut next = || lines.next().expect("monitor output").unwrap();

    // What the first container saw: root, its maps, setgroups.
    assert_eq!(next(), "0", "root inside");
    let mut map = Vec::new();
    loop {
        let l = next();
        if l == "setgroups" {
            break;
        }
        map.push(l.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    let setgroups = next();
    assert_eq!(
        setgroups,
        if map.len() == 1 { "deny" } else { "allow" },
        "{map:?}"
    );

    // The running init, seen from the host: the user's ids, another user
    // namespace, and no trace of the monitor's mount.
    let pid: i32 = next().strip_prefix("pid ").unwrap().parse().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    for (key, want) in [("Uid:", uid), ("Gid:", gid)] {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        assert!(
            line.split_whitespace()
                .skip(1)
                .all(|f| f == want.to_string()),
            "{line}"
        );
    }
    let ns = |p: &str| {
        std::fs::metadata(format!("/proc/{p}/ns/user"))
            .unwrap()
            .ino()
    };
    assert_ne!(ns(&pid.to_string()), ns("self"));
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(work.to_str().unwrap()),
        "the monitor's mount shows on the host: {mountinfo}"
    );

    // exec from outside joins the init's user namespace first.
    let out = as_user("exec", uid, gid)
        .env("INIT_PID", pid.to_string())
        .env("WORK", work)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\nsleep\n");

    // Closing its stdin stops the monitor, which kills the init.
    drop(monitor.stdin.take());
    assert_eq!(next(), "done");
    assert!(monitor.wait().unwrap().success());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the init outlived its monitor"
    );
    map
}

/// The monitor role: enter, mount, run one container to print what it sees,
/// start a long one, and stop it when stdin closes.
fn monitor() {
    let rootfs = std::env::var("ROOTFS").unwrap();
    let target =
        Path::new(&std::env::var("WORK").unwrap()).join(format!("rootfs-{}", std::process::id()));
    berth_launch::enter_rootless_namespaces().unwrap();
    assert!(nix::unistd::geteuid().is_root());
    std::fs::create_dir(&target).unwrap();
    nix::mount::mount(
        Some(rootfs.as_str()),
        &target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
        None::<&str>,
    )
    .unwrap();
    let inside = || LaunchOptions {
        rootless: true,
        inside_userns: true,
        ..Default::default()
    };
    let out = run(
        &sh("id -u; cat /proc/self/uid_map; echo setgroups; cat /proc/self/setgroups"),
        &target,
        inside(),
    )
    .unwrap();
    assert_eq!(out.status, ExitStatus::Exited(0), "{}", out.stderr);
    print!("{}", out.stdout);

    let (mut c, o, e) = start(&spec(&["sleep", "30"]), &target, inside()).unwrap();
    drop((o, e));
    println!("pid {}", c.pid());
    std::io::stdout().flush().unwrap();
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    c.kill(libc::SIGKILL).unwrap();
    c.wait().unwrap();
    nix::mount::umount(&target).unwrap();
    std::fs::remove_dir(&target).unwrap();
    println!("done");
}

/// The helper role: a closure runs as root of a fresh user namespace, the
/// caller stays the user; the closure's error comes back.
fn helper() {
    let inside = berth_launch::run_in_rootless_namespaces(|| {
        Ok(nix::unistd::geteuid().as_raw().to_string().into_bytes())
    })
    .unwrap();
    let err = berth_launch::run_in_rootless_namespaces(|| Err("refused".into())).unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
    println!(
        "{} {}",
        String::from_utf8(inside).unwrap(),
        nix::unistd::geteuid()
    );
}

/// The exec role: read files as the container sees them, and run
/// `id -u; cat /proc/1/comm` in it.
fn exec_into() {
    let pid: i32 = std::env::var("INIT_PID").unwrap().parse().unwrap();
    let (r, w) = pipe();
    let opts = ExecOptions {
        stdio: Stdio::Fds {
            stdin: None,
            stdout: Some(w),
            stderr: None,
        },
        cgroup: None,
    };
    let files = berth_launch::read_container_files(pid, &["/notexec", "/missing"]).unwrap();
    assert_eq!(files, [Some(b"#!/bin/sh\necho no\n".to_vec()), None]);

    // The monitor's namespaces: its mount of the rootfs, our working dir,
    // root there; this process stays the user.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let monitor: i32 = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mounted = Path::new(&std::env::var("WORK").unwrap())
        .join(format!("rootfs-{monitor}"))
        .join("notexec");
    let cwd = std::env::current_dir().unwrap();
    let seen = berth_launch::run_in_namespaces_of(monitor, || {
        let text = std::fs::read(&mounted).map_err(|e| e.to_string())?;
        let here = std::env::current_dir().map_err(|e| e.to_string())?;
        Ok(format!(
            "{} {} {}",
            nix::unistd::geteuid(),
            here == cwd,
            String::from_utf8_lossy(&text).lines().next().unwrap_or("")
        )
        .into_bytes())
    })
    .unwrap();
    assert_eq!(String::from_utf8(seen).unwrap(), "0 true #!/bin/sh");
    assert!(!mounted.exists(), "the rootfs mount is the monitor's alone");
    assert!(!nix::unistd::geteuid().is_root());
    let p = sh("id -u; cat /proc/1/comm").process().clone().unwrap();
    let mut child = exec(pid, &p, &opts).unwrap();
    drop(opts);
    print!("{}", read_all(r));
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
}
