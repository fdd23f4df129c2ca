//! Rootless containers: run as the unprivileged user named by
//! BERTH_TEST_UID/BERTH_TEST_GID (the test re-executes itself as that user).

mod common;

use std::os::unix::process::CommandExt;
use std::process::Command;

use berth_launch::cgroups::{CgroupConfig, Resources};
use berth_launch::{exec, ExecOptions, ExitStatus, LaunchOptions, Stdio};
use common::*;
use oci_spec::runtime::LinuxNamespaceType;

fn test_ids() -> Option<(u32, u32)> {
    let uid = std::env::var("BERTH_TEST_UID").ok()?.parse().ok()?;
    let gid = std::env::var("BERTH_TEST_GID").ok()?.parse().ok()?;
    Some((uid, gid))
}

#[test]
fn rootless_containers_work_as_an_unprivileged_user() {
    let Some((uid, gid)) = test_ids() else {
        println!("skipped: BERTH_TEST_UID/BERTH_TEST_GID not set");
        return;
    };
    if nix::unistd::geteuid().as_raw() == uid {
        return rootless_checks(uid);
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "rootless_inner",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .uid(uid)
        .gid(gid)
        .env("TMPDIR", "/tmp")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

#[test]
#[ignore = "run by rootless_containers_work_as_an_unprivileged_user as that user"]
fn rootless_inner() {
    let (uid, _) = test_ids().expect("BERTH_TEST_UID set");
    assert_eq!(nix::unistd::geteuid().as_raw(), uid);
    rootless_checks(uid);
}

fn rootless() -> LaunchOptions {
    LaunchOptions {
        rootless: true,
        ..Default::default()
    }
}

fn rootless_checks(uid: u32) {
    let root = busybox_rootfs();

    // root inside, pid 1, own hostname, working /dev nodes and mounts.
    let script = "id -u; echo $$; hostname; echo x > /dev/null && echo null-ok; \
                  grep -E ' /(proc|sys|dev|dev/pts|dev/shm|dev/mqueue) ' /proc/mounts | cut -d' ' -f2,3,4";
    let out = run(&sh(script), root.path(), rootless()).unwrap();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[..4],
        ["0", "1", "berth-test", "null-ok"],
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    for dest in ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"] {
        assert!(
            lines.iter().any(|l| l.starts_with(&format!("{dest} "))),
            "{dest}: {}",
            out.stdout
        );
    }
    assert!(
        lines.iter().any(|l| l.starts_with("/sys sysfs ro,")),
        "{}",
        out.stdout
    );

    // The user's own id is root inside; subordinate ids (newuidmap) follow
    // when /etc/subuid has a range for the user.
    let out = run(
        &spec(&["cat", "/proc/self/uid_map"]),
        root.path(),
        rootless(),
    )
    .unwrap();
    let map: Vec<Vec<String>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    assert_eq!(map[0], ["0", &uid.to_string(), "1"], "{}", out.stdout);
    let name = nix::unistd::User::from_uid(uid.into())
        .unwrap()
        .map(|u| u.name)
        .unwrap_or_default();
    let expected = berth_launch::rootless_map(uid, &name, std::path::Path::new("/etc/subuid"));
    assert_eq!(map.len(), expected.len(), "{}", out.stdout);

    // Exit codes.
    assert_eq!(
        run(&sh("exit 3"), root.path(), rootless())
            .unwrap()
            .status
            .code(),
        3
    );
    let err = run(&spec(&["nope"]), root.path(), rootless()).unwrap_err();
    assert_eq!(err.exit_code(), 127);

    // Without a network namespace sysfs cannot be mounted: the host's /sys
    // is bound read-only instead.
    let mut s = sh("grep ' /sys ' /proc/mounts; touch /sys/x 2>/dev/null || echo sys-ro");
    let linux = s.linux_mut().as_mut().unwrap();
    let ns = linux.namespaces().clone().unwrap();
    linux.set_namespaces(Some(
        ns.into_iter()
            .filter(|n| n.typ() != LinuxNamespaceType::Network)
            .collect(),
    ));
    let out = run(&s, root.path(), rootless()).unwrap();
    assert!(
        out.stdout.contains("sys-ro"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );

    // Unwritable cgroups are a warning, not an error.
    let opts = LaunchOptions {
        rootless: true,
        cgroup: Some(CgroupConfig {
            path: cgroup_path("rootless"),
            resources: Resources {
                memory: Some(64 << 20),
                ..Default::default()
            },
        }),
        ..Default::default()
    };
    let (mut c, out, err) = start(&spec(&["sleep", "30"]), root.path(), opts).unwrap();
    drop((out, err));
    let _ = c.cgroup().map(|cg| cg.destroy());

    // On the host the container runs as the user.
    let status = std::fs::read_to_string(format!("/proc/{}/status", c.pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line
            .split_whitespace()
            .all(|f| f == "Uid:" || f == uid.to_string()),
        "{uid_line}"
    );

    // exec joins the user namespace too: root, same pid 1.
    let (r, w) = pipe();
    let opts = ExecOptions {
        stdio: Stdio::Fds {
            stdin: None,
            stdout: Some(w),
            stderr: None,
        },
        cgroup: None,
    };
    let p = spec(&["sh", "-c", "id -u; cat /proc/1/comm"])
        .process()
        .clone()
        .unwrap();
    let mut e = exec(c.pid(), &p, &opts).unwrap();
    drop(opts);
    assert_eq!(read_all(r), "0\nsleep\n");
    assert_eq!(e.wait().unwrap(), ExitStatus::Exited(0));
    c.kill(libc::SIGKILL).unwrap();
    c.wait().unwrap();
}
