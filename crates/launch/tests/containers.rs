//! End-to-end container tests as root: busybox rootfs, real namespaces.

mod common;

use std::io::Read;
use std::time::Duration;

use berth_launch::cgroups::{CgroupConfig, Resources};
use berth_launch::{exec, Error, ExecOptions, ExitStatus, LaunchOptions, Stdio};
use common::*;
use oci_spec::runtime::{Process, UserBuilder};

fn root_only() -> bool {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: needs root");
        return false;
    }
    true
}

#[test]
fn echo_hello_prints_hello() {
    if !root_only() {
        return;
    }
    let root = busybox_rootfs();
    let out = run(
        &spec(&["echo", "hello"]),
        root.path(),
        LaunchOptions::default(),
    )
    .unwrap();
    assert_eq!(out.stdout, "hello\n");
    assert_eq!(out.status, ExitStatus::Exited(0));
}

#[test]
fn exit_codes_pass_through_and_exec_failures_are_126_and_127() {
    if !root_only() {
        return;
    }
    let root = busybox_rootfs();
    let out = run(&sh("exit 3"), root.path(), LaunchOptions::default()).unwrap();
    assert_eq!(out.status.code(), 3);

    let err = run(
        &spec(&["no-such-command"]),
        root.path(),
        LaunchOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::CommandNotFound { .. }), "{err}");
    assert_eq!(err.exit_code(), 127);

    let err = run(&spec(&["/notexec"]), root.path(), LaunchOptions::default()).unwrap_err();
    assert!(matches!(err, Error::CannotInvoke { .. }), "{err}");
    assert_eq!(err.exit_code(), 126);
}

#[test]
fn setup_failures_are_reported_with_the_step() {
    if !root_only() {
        return;
    }
    let root = busybox_rootfs();
    let mut s = spec(&["true"]);
    s.process_mut()
        .as_mut()
        .unwrap()
        .set_cwd("/does/not/exist".into());
    let err = run(&s, root.path(), LaunchOptions::default()).unwrap_err();
    assert_eq!(err.exit_code(), 125);
    assert!(
        err.to_string().contains("chdir to cwd /does/not/exist"),
        "{err}"
    );
}

#[test]
fn container_is_pid_1_and_sees_only_its_processes() {
    if !root_only() {
        return;
    }
    let root = busybox_rootfs();
    let out = run(
        &sh("echo $$; ps -o pid,comm; true"),
        root.path(),
        LaunchOptions::default(),
    )
    .unwrap();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "1");
    // Header, the shell, and ps itself.
    assert_eq!(lines.len() - 1, 3, "{}", out.stdout);
    assert!(lines[2].trim().starts_with("1 sh"), "{}", out.stdout);
}

#[test]
fn container_has_its_own_hostname() {
    if !root_only() {
        return;
    }
    let root = busybox_rootfs();
    let out = run(&spec(&["hostname"]), root.path(), LaunchOptions::default()).unwrap();
    assert_eq!(out.stdout, "berth-test\n");
}

#[test]
fn proc_sys_dev_are_mounted_with_dockers_flags() {
    if !root_only() {
        return;
    }
    let root = busybox_rootfs();
    let out = run(
        &sh("cat /proc/mounts; echo x > /dev/null && echo null-ok; ls -l /dev/ptmx"),
        root.path(),
        LaunchOptions::default(),
    )
    .unwrap();
    let mounts = &out.stdout;
    let line = |dest: &str| {
        mounts
            .lines()
            .find(|l| l.split(' ').nth(1) == Some(dest))
            .unwrap_or_else(|| panic!("{dest} not mounted:\n{mounts}"))
            .to_string()
    };
    assert!(
        line("/proc").starts_with("proc /proc proc rw,nosuid,nodev,noexec"),
        "{}",
        line("/proc")
    );
    assert!(line("/sys").contains("sysfs ro,"), "{}", line("/sys"));
    assert!(
        line("/dev").contains(" tmpfs rw,nosuid"),
        "{}",
        line("/dev")
    );
    assert!(line("/dev/pts").contains("devpts"), "{}", line("/dev/pts"));
    assert!(line("/dev/shm").contains("tmpfs rw,nosuid,nodev,noexec"));
    assert!(line("/dev/mqueue").contains("mqueue"));
    assert!(line("/proc/sys").contains(" ro,"), "{}", line("/proc/sys"));
    assert!(mounts.contains("null-ok"));
    assert!(mounts.contains("/dev/ptmx -> pts/ptmx"), "{mounts}");
    // Nothing of the host's mounts is visible.
    assert!(!mounts.contains("/work"), "{mounts}");
}

#[test]
fn masked_paths_are_unreadable_and_readonly_paths_unwritable() {
    if !root_only() {
        return;
    }
    let root = busybox_rootfs();
    let script = "cat /proc/timer_list | wc -c; ls /sys/firmware | wc -l; \
                  (echo 1 > /proc/sysrq-trigger) 2>/dev/null && echo writable || echo readonly";
    let out = run(&sh(script), root.path(), LaunchOptions::default()).unwrap();
    assert_eq!(out.stdout, "0\n0\nreadonly\n", "stderr: {}", out.stderr);
}

#[test]
fn capabilities_are_dockers_default_set() {
    if !root_only() {
        return;
    }
    let root = busybox_rootfs();
    let out = run(
        &sh("grep -E '^Cap(Eff|Bnd)|^NoNewPrivs' /proc/self/status"),
        root.path(),
        LaunchOptions::default(),
    )
    .unwrap();
    assert!(
        out.stdout.contains("CapEff:\t00000000a80425fb"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("CapBnd:\t00000000a80425fb"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("NoNewPrivs:\t1"), "{}", out.stdout);
}

#[test]
fn user_groups_env_and_cwd_are_applied() {
    if !root_only() {
        return;
    }
    let root = busybox_rootfs();
    let mut s = sh("id; echo $FOO; pwd");
    let p = s.process_mut().as_mut().unwrap();
    p.set_user(
        UserBuilder::default()
            .uid(1000u32)
            .gid(1001u32)
            .additional_gids(vec![20u32])
            .build()
            .unwrap(),
    );
    p.set_env(Some(vec!["PATH=/bin".into(), "FOO=bar".into()]));
    p.set_cwd("/tmp".into());
    let out = run(&s, root.path(), LaunchOptions::default()).unwrap();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "uid=1000 gid=1001 groups=20", "{}", out.stdout);
    assert_eq!(&lines[1..], ["bar", "/tmp"]);
}

#[test]
fn terminal_gives_a_pty_inside() {
    if !root_only() {
        return;
    }
    let root = busybox_rootfs();
    let mut s = sh("[ -t 0 ] && [ -t 1 ] && echo is-a-tty; ls -l /dev/console | wc -l");
    s.process_mut().as_mut().unwrap().set_terminal(Some(true));
    let mut c = berth_launch::spawn(&s, root.path(), &LaunchOptions::default()).unwrap();
    let master = c.take_pty_master().expect("pty master");
    let mut out = Vec::new();
    // Reading the master fails with EIO once the slave side is closed.
    let _ = std::fs::File::from(master).read_to_end(&mut out);
    assert_eq!(c.wait().unwrap(), ExitStatus::Exited(0));
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("is-a-tty\r\n1\r\n"), "{out:?}");
}

fn exec_process(args: &[&str]) -> Process {
    spec(args).process().clone().unwrap()
}

#[test]
fn exec_joins_the_containers_namespaces() {
    if !root_only() {
        return;
    }
    let root = busybox_rootfs();
    let (mut c, _out, _err) = start(
        &spec(&["sleep", "30"]),
        root.path(),
        LaunchOptions::default(),
    )
    .unwrap();
    let (r, w) = pipe();
    let opts = ExecOptions {
        stdio: Stdio::Fds {
            stdin: None,
            stdout: Some(w),
            stderr: None,
        },
        cgroup: None,
    };
    let mut e = exec(
        c.pid(),
        &exec_process(&[
            "sh",
            "-c",
            "hostname; cat /proc/1/comm; echo $$; cat /proc/timer_list | wc -c",
        ]),
        &opts,
    )
    .unwrap();
    drop(opts);
    let out = read_all(r);
    assert_eq!(e.wait().unwrap(), ExitStatus::Exited(0));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["berth-test", "sleep"], "{out}");
    assert_ne!(
        lines[2], "1",
        "the exec'd shell has its own pid in the namespace"
    );
    assert_eq!(
        lines[3], "0",
        "masked path seen through the container's mounts"
    );

    let err = exec(c.pid(), &exec_process(&["nope"]), &ExecOptions::default()).unwrap_err();
    assert_eq!(err.exit_code(), 127, "{err}");

    c.kill(libc::SIGKILL).unwrap();
    assert_eq!(c.wait().unwrap(), ExitStatus::Signaled(libc::SIGKILL));
}

#[test]
fn exec_with_a_terminal() {
    if !root_only() {
        return;
    }
    let root = busybox_rootfs();
    let (mut c, _out, _err) = start(
        &spec(&["sleep", "30"]),
        root.path(),
        LaunchOptions::default(),
    )
    .unwrap();
    let mut p = exec_process(&["sh", "-c", "[ -t 1 ] && echo tty"]);
    p.set_terminal(Some(true));
    let mut e = exec(c.pid(), &p, &ExecOptions::default()).unwrap();
    let mut out = Vec::new();
    let _ = std::fs::File::from(e.take_pty_master().unwrap()).read_to_end(&mut out);
    assert_eq!(e.wait().unwrap(), ExitStatus::Exited(0));
    assert_eq!(String::from_utf8_lossy(&out), "tty\r\n");
    c.kill(libc::SIGKILL).unwrap();
    c.wait().unwrap();
}

fn with_cgroup(test: &str, resources: Resources) -> LaunchOptions {
    LaunchOptions {
        cgroup: Some(CgroupConfig {
            path: cgroup_path(test),
            resources,
        }),
        ..Default::default()
    }
}

#[test]
fn memory_limit_oom_kills_an_allocating_process() {
    if !root_only() {
        return;
    }
    let root = busybox_rootfs();
    let opts = with_cgroup(
        "oom",
        Resources {
            memory: Some(32 << 20),
            memory_swap: Some(32 << 20),
            ..Default::default()
        },
    );
    let (mut c, out, err) = start(
        &spec(&["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"]),
        root.path(),
        opts,
    )
    .unwrap();
    drop((out, err));
    let status = c.wait().unwrap();
    let cg = c.cgroup().expect("cgroup as root");
    let kills = cg.oom_kill_count().unwrap();
    cg.destroy().unwrap();
    assert_eq!(status.code(), 137);
    assert!(kills >= 1, "no OOM kill recorded");
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    if !root_only() {
        return;
    }
    let root = busybox_rootfs();
    let opts = with_cgroup(
        "pids",
        Resources {
            pids_limit: Some(10),
            ..Default::default()
        },
    );
    let script = "i=0; while [ $i -lt 50 ]; do sleep 30 & i=$((i+1)); done; echo all-forked";
    let out = run(&sh(script), root.path(), opts);
    let out = out.unwrap();
    assert!(!out.stdout.contains("all-forked"), "{}", out.stdout);
    assert!(out.stderr.contains("fork"), "{}", out.stderr);
    let cg = berth_launch::cgroups::open(&cgroup_path("pids")).unwrap();
    cg.destroy().unwrap();
}

#[test]
fn freeze_stops_and_thaw_resumes_the_container() {
    if !root_only() {
        return;
    }
    let root = busybox_rootfs();
    let opts = with_cgroup("freeze", Resources::default());
    let (mut c, out, _err) = start(
        &sh("while :; do echo x; sleep 0.01; done"),
        root.path(),
        opts,
    )
    .unwrap();
    let mut out = std::fs::File::from(out);
    let mut buf = [0u8; 4096];
    assert!(
        out.read(&mut buf).unwrap() > 0,
        "the loop runs before the freeze"
    );
    let cg = c.cgroup().unwrap();
    cg.freeze().unwrap();
    // Drain what was written before the freeze, then expect silence.
    nix::fcntl::fcntl(
        &out,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    while out.read(&mut buf).is_ok() {}
    std::thread::sleep(Duration::from_millis(200));
    let frozen = out.read(&mut buf);
    assert!(frozen.is_err(), "output while frozen: {frozen:?}");
    cg.thaw().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(out.read(&mut buf).unwrap() > 0, "no output after thaw");
    assert!(cg.stats().unwrap().pids_current >= 1);
    c.kill(libc::SIGKILL).unwrap();
    c.wait().unwrap();
    c.cgroup().unwrap().destroy().unwrap();
}

#[test]
fn spec_mounts_readonly_root_and_rlimits_are_applied() {
    if !root_only() {
        return;
    }
    use oci_spec::runtime::{MountBuilder, PosixRlimitBuilder, PosixRlimitType, RootBuilder};
    let root = busybox_rootfs();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("data"), "from-host\n").unwrap();
    let script = "cat /data/data; touch /data/new 2>/dev/null || echo data-ro; \
                  touch /scratch/new && echo scratch-rw; touch /new 2>/dev/null || echo root-ro; \
                  ulimit -n";
    let mut s = sh(script);
    let mut mounts = s.mounts().clone().unwrap();
    mounts.push(
        MountBuilder::default()
            .destination("/data")
            .typ("bind")
            .source(host.path())
            .options(vec!["rbind".to_string(), "ro".to_string()])
            .build()
            .unwrap(),
    );
    mounts.push(
        MountBuilder::default()
            .destination("/scratch")
            .typ("tmpfs")
            .source("tmpfs")
            .options(vec!["size=1m".to_string()])
            .build()
            .unwrap(),
    );
    s.set_mounts(Some(mounts));
    s.set_root(Some(
        RootBuilder::default()
            .path("rootfs")
            .readonly(true)
            .build()
            .unwrap(),
    ));
    s.process_mut()
        .as_mut()
        .unwrap()
        .set_rlimits(Some(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(123u64)
            .hard(456u64)
            .build()
            .unwrap()]));
    let out = run(&s, root.path(), LaunchOptions::default()).unwrap();
    assert_eq!(
        out.stdout, "from-host\ndata-ro\nscratch-rw\nroot-ro\n123\n",
        "stderr: {}",
        out.stderr
    );
    assert!(!host.path().join("new").exists());
    assert!(
        !root.path().join("scratch").join("new").exists(),
        "tmpfs, not the rootfs"
    );
}
