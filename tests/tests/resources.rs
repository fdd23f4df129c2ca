//! End-to-end: the resource, security and misc flags of `run` / `create`
//! (`-m`, `--memory-swap`, `--cpus`, `-c`, `--cpuset-cpus`, `--pids-limit`,
//! `--blkio-weight`, `--ulimit`, `--cap-add`, `--cap-drop`, `--privileged`,
//! `--stop-signal`, `--stop-timeout`, `--label`, `--label-file`,
//! `--env-file`), as root under the `overlay` and `fuse` drivers: what
//! `inspect` shows, what the container's cgroup on the host holds, what the
//! container feels, and that no cgroup is left once it is removed. Parsing
//! and validation errors, and the rootless warning, run for any user.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::{busybox_tarball, Berth};

const DRIVERS: &[&str] = &["overlay", "fuse"];
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn import_busybox(b: &Berth) {
    let tar = busybox_tarball(b.dir.path());
    b.ok(&[
        "import",
        "-c",
        "CMD [\"/bin/sh\"]",
        tar.to_str().unwrap(),
        "busybox",
    ]);
}

/// A fresh root per driver with `busybox` imported; none when not root
/// (the rootless runs are `as_test_user` ones), as in containers.rs.
fn roots() -> Vec<Berth> {
    let mut out = Vec::new();
    for driver in DRIVERS {
        let b = Berth::new().with_driver(driver);
        import_busybox(&b);
        if !is_root() {
            // The rootless runs of these tests are `as_test_user` ones.
            eprintln!("not root: container tests skipped");
            return Vec::new();
        }
        out.push(b);
    }
    out
}

fn cgroup_v2() -> bool {
    Path::new(CGROUP_ROOT).join("cgroup.controllers").exists()
}

fn inspect(b: &Berth, container: &str, format: &str) -> String {
    b.ok(&["container", "inspect", "-f", format, container])
        .trim_end()
        .to_string()
}

/// Every place a cgroup `berth/<id>` could be: the unified root and each
/// v1 hierarchy.
fn cgroup_dirs_left(id: &str) -> Vec<PathBuf> {
    let rel = Path::new("berth").join(id);
    let mut candidates = vec![Path::new(CGROUP_ROOT).join(&rel)];
    for e in std::fs::read_dir(CGROUP_ROOT).unwrap().flatten() {
        candidates.push(e.path().join(&rel));
    }
    candidates.into_iter().filter(|p| p.exists()).collect()
}

fn assert_no_cgroup(id: &str) {
    assert_eq!(
        cgroup_dirs_left(id),
        Vec::<PathBuf>::new(),
        "cgroup dirs left for {id}"
    );
}

/// The host's copy of one of the container's cgroup files: `v1` is
/// `controller/file`, `v2` the unified file name.
fn cgroup_file(cgroup_path: &str, v1: &str, v2: &str) -> String {
    let path = if cgroup_v2() {
        Path::new(CGROUP_ROOT).join(cgroup_path).join(v2)
    } else {
        let (controller, file) = v1.split_once('/').unwrap();
        Path::new(CGROUP_ROOT)
            .join(controller)
            .join(cgroup_path)
            .join(file)
    };
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// Starts `run -i --name NAME FLAGS busybox` with a command that says
/// `ready` and waits for its stdin to close; returns once it said ready.
fn run_waiting(b: &Berth, name: &str, flags: &[&str]) -> (Child, ChildStdin) {
    let mut args = vec!["run", "-i", "--name", name];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "sh", "-c", "echo ready; read x; echo bye"]);
    let mut child = b
        .cmd(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn berth run");
    let stdin = child.stdin.take().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n", "berth run {flags:?} did not start");
    // The command may speak before its monitor has saved the running state.
    let deadline = Instant::now() + Duration::from_secs(30);
    while inspect(b, name, "{{.State.Running}}") != "true" {
        assert!(
            Instant::now() < deadline,
            "{name} never recorded as running"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    (child, stdin)
}

/// Closes the container's stdin so it exits, and checks it exited well.
fn finish(mut child: Child, stdin: ChildStdin) {
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn memory_limit_oom_kills_and_inspect_says_so() {
    for b in roots() {
        let alloc = ["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"];
        // Without a limit the 100 MB buffer is fine.
        let mut args = vec!["run", "--rm", "busybox"];
        args.extend_from_slice(&alloc);
        b.ok(&args);

        let mut args = vec!["run", "--name", "oom", "--memory", "32m", "busybox"];
        args.extend_from_slice(&alloc);
        b.fails(&args, 137);
        let id = inspect(&b, "oom", "{{.Id}}");
        assert_eq!(inspect(&b, "oom", "{{.State.OOMKilled}}"), "true");
        assert_eq!(inspect(&b, "oom", "{{.State.ExitCode}}"), "137");
        assert_eq!(inspect(&b, "oom", "{{.HostConfig.Memory}}"), "33554432");
        let swap = inspect(&b, "oom", "{{.HostConfig.MemorySwap}}");
        assert!(swap == "67108864" || swap == "-1", "{swap}");
        assert_no_cgroup(&id);
        b.ok(&["rm", "oom"]);

        // A limit that is not reached leaves OOMKilled false.
        b.ok(&["run", "--name", "fits", "-m", "32m", "busybox", "true"]);
        assert_eq!(inspect(&b, "fits", "{{.State.OOMKilled}}"), "false");
        b.ok(&["rm", "fits"]);

        // --memory-swap -1: unlimited swap, still a memory limit.
        b.ok(&[
            "create",
            "--name",
            "sw",
            "-m",
            "64m",
            "--memory-swap",
            "-1",
            "busybox",
        ]);
        assert_eq!(inspect(&b, "sw", "{{.HostConfig.MemorySwap}}"), "-1");
        b.ok(&["rm", "sw"]);
    }
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    for b in roots() {
        let bomb = "i=0; while [ $i -lt 50 ]; do sleep 1000 & i=$((i+1)); echo $i; done";
        // Unlimited, all 50 start (and die with the init).
        let out = b.ok(&["run", "--rm", "busybox", "sh", "-c", bomb]);
        assert_eq!(out.lines().last(), Some("50"));

        let out = b.run(&[
            "run",
            "--name",
            "bomb",
            "--pids-limit",
            "10",
            "busybox",
            "sh",
            "-c",
            bomb,
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let started: usize = stdout.lines().last().unwrap_or("0").parse().unwrap();
        assert!(
            started < 10,
            "{started} sleeps beside the shell under pids.max 10"
        );
        assert!(stderr.contains("can't fork"), "{stderr}");
        assert_eq!(
            out.status.code(),
            Some(2),
            "the shell gave up, the container ended"
        );
        assert_eq!(inspect(&b, "bomb", "{{.HostConfig.PidsLimit}}"), "10");
        let id = inspect(&b, "bomb", "{{.Id}}");
        b.ok(&["rm", "bomb"]);
        assert_no_cgroup(&id);
    }
}

#[test]
fn cpu_blkio_pids_and_memory_limits_reach_the_cgroup() {
    for b in roots() {
        let (child, stdin) = run_waiting(
            &b,
            "limits",
            &[
                "--cpus",
                "0.5",
                "-c",
                "512",
                "--cpuset-cpus",
                "0",
                "--blkio-weight",
                "300",
                "--pids-limit",
                "20",
                "-m",
                "64m",
            ],
        );
        let id = inspect(&b, "limits", "{{.Id}}");
        let cg = inspect(&b, "limits", "{{.CgroupPath}}");
        assert_eq!(cg, format!("berth/{id}"));
        if cgroup_v2() {
            assert_eq!(cgroup_file(&cg, "", "cpu.max"), "50000 100000");
        } else {
            assert_eq!(cgroup_file(&cg, "cpu/cpu.cfs_quota_us", ""), "50000");
            assert_eq!(cgroup_file(&cg, "cpu/cpu.cfs_period_us", ""), "100000");
            assert_eq!(cgroup_file(&cg, "cpu/cpu.shares", ""), "512");
            assert_eq!(
                cgroup_file(&cg, "memory/memory.limit_in_bytes", ""),
                "67108864"
            );
            let blkio = Path::new(CGROUP_ROOT).join("blkio").join(&cg);
            let weight = ["blkio.weight", "blkio.bfq.weight"]
                .iter()
                .map(|f| blkio.join(f))
                .find(|p| p.exists());
            match weight {
                Some(p) => {
                    let text = std::fs::read_to_string(&p).unwrap();
                    assert!(text.contains("300"), "{}: {text}", p.display());
                }
                None => eprintln!("no blkio weight file on this kernel: not checked"),
            }
        }
        assert_eq!(cgroup_file(&cg, "cpuset/cpuset.cpus", "cpuset.cpus"), "0");
        assert_eq!(cgroup_file(&cg, "pids/pids.max", "pids.max"), "20");
        let hc = inspect(
            &b,
            "limits",
            "{{.HostConfig.NanoCpus}} {{.HostConfig.CpuShares}} {{.HostConfig.CpusetCpus}} \
             {{.HostConfig.BlkioWeight}} {{.HostConfig.PidsLimit}} {{.HostConfig.Memory}}",
        );
        assert_eq!(hc, "500000000 512 0 300 20 67108864");
        finish(child, stdin);
        assert_no_cgroup(&id);
        b.ok(&["rm", "limits"]);
        assert_no_cgroup(&id);
    }
}

#[test]
fn a_container_without_limits_still_gets_a_cgroup() {
    for b in roots() {
        let (child, stdin) = run_waiting(&b, "plain", &[]);
        let id = inspect(&b, "plain", "{{.Id}}");
        assert!(!cgroup_dirs_left(&id).is_empty(), "no cgroup for {id}");
        let pid = inspect(&b, "plain", "{{.State.Pid}}");
        let procs = cgroup_file(&format!("berth/{id}"), "pids/cgroup.procs", "cgroup.procs");
        assert!(procs.lines().any(|l| l == pid), "{pid} not in {procs}");
        finish(child, stdin);
        assert_no_cgroup(&id);
        b.ok(&["rm", "plain"]);
    }
}

#[test]
fn rm_removes_a_leftover_cgroup() {
    if !is_root() {
        eprintln!("not root: skipped");
        return;
    }
    let b = Berth::new().with_driver("vfs");
    import_busybox(&b);
    let id = b.ok(&["create", "busybox"]).trim().to_string();
    // As a monitor that died would leave it.
    let dir = if cgroup_v2() {
        Path::new(CGROUP_ROOT).join("berth").join(&id)
    } else {
        Path::new(CGROUP_ROOT).join("pids/berth").join(&id)
    };
    std::fs::create_dir_all(&dir).unwrap();
    b.ok(&["rm", &id]);
    assert_no_cgroup(&id);
}

#[test]
fn ulimits_apply_inside() {
    for b in roots() {
        let out = b.ok(&[
            "run",
            "--name",
            "ul",
            "--ulimit",
            "nofile=100:200",
            "--ulimit",
            "core=0",
            "busybox",
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn; ulimit -c",
        ]);
        assert_eq!(out, "100\n200\n0\n");
        assert_eq!(
            inspect(&b, "ul", "{{json .HostConfig.Ulimits}}"),
            r#"[{"Name":"nofile","Hard":200,"Soft":100},{"Name":"core","Hard":0,"Soft":0}]"#
        );
        b.ok(&["rm", "ul"]);
        // No --ulimit: the caller's limits, none added.
        let own = Command::new("sh")
            .args(["-c", "ulimit -n"])
            .output()
            .unwrap();
        assert_eq!(
            b.ok(&["run", "--rm", "busybox", "sh", "-c", "ulimit -n"]),
            String::from_utf8_lossy(&own.stdout)
        );
    }
}

/// A block device of the host that Docker's default `/dev` does not have.
fn host_block_device() -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    let mut names: Vec<String> = std::fs::read_dir("/dev")
        .ok()?
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_block_device()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.into_iter().next()
}

#[test]
fn capabilities_add_drop_and_privileged() {
    for b in roots() {
        let chown = "touch /f && chown 5 /f && echo chowned";
        assert_eq!(
            b.ok(&["run", "--rm", "busybox", "sh", "-c", chown]),
            "chowned\n"
        );
        for name in ["CHOWN", "chown", "CAP_CHOWN"] {
            let err = b.fails(
                &[
                    "run",
                    "--rm",
                    "--cap-drop",
                    name,
                    "busybox",
                    "sh",
                    "-c",
                    chown,
                ],
                1,
            );
            assert!(err.contains("Operation not permitted"), "{name}: {err}");
        }
        let err = b.fails(
            &[
                "run",
                "--rm",
                "--cap-drop",
                "ALL",
                "busybox",
                "sh",
                "-c",
                chown,
            ],
            1,
        );
        assert!(err.contains("Operation not permitted"), "{err}");

        let mount = "mkdir -p /m && mount -t tmpfs t /m && echo mounted";
        b.fails(&["run", "--rm", "busybox", "sh", "-c", mount], 1);
        for flags in [
            &["--cap-add", "SYS_ADMIN"][..],
            &["--cap-add", "sys_admin"][..],
            &["--cap-add", "ALL"][..],
            &["--privileged"][..],
        ] {
            let mut args = vec!["run", "--rm"];
            args.extend_from_slice(flags);
            args.extend_from_slice(&["busybox", "sh", "-c", mount]);
            assert_eq!(b.ok(&args), "mounted\n", "{flags:?}");
        }

        b.ok(&[
            "create",
            "--name",
            "caps",
            "--cap-add",
            "sys_admin",
            "--cap-drop",
            "chown",
            "busybox",
        ]);
        assert_eq!(
            inspect(&b, "caps", "{{json .HostConfig.CapAdd}} {{json .HostConfig.CapDrop}} {{.HostConfig.Privileged}}"),
            r#"["CAP_SYS_ADMIN"] ["CAP_CHOWN"] false"#
        );
        b.ok(&["rm", "caps"]);

        // Privileged: the host's devices, /proc/sys not read-only.
        let ro_proc_sys = "grep -q ' /proc/sys ' /proc/self/mountinfo && echo masked || echo open";
        assert_eq!(
            b.ok(&["run", "--rm", "busybox", "sh", "-c", ro_proc_sys]),
            "masked\n"
        );
        assert_eq!(
            b.ok(&[
                "run",
                "--rm",
                "--privileged",
                "busybox",
                "sh",
                "-c",
                ro_proc_sys
            ]),
            "open\n"
        );
        if let Some(dev) = host_block_device() {
            let test = format!("test -b /dev/{dev} && echo present || echo absent");
            assert_eq!(
                b.ok(&["run", "--rm", "busybox", "sh", "-c", &test]),
                "absent\n"
            );
            assert_eq!(
                b.ok(&["run", "--rm", "--privileged", "busybox", "sh", "-c", &test]),
                "present\n"
            );
        }
        b.ok(&["create", "--name", "priv", "--privileged", "busybox"]);
        assert_eq!(inspect(&b, "priv", "{{.HostConfig.Privileged}}"), "true");
        b.ok(&["rm", "priv"]);
    }
}

#[test]
fn labels_env_files_and_stop_settings() {
    for b in roots() {
        let env_file = b.dir.path().join("app.env");
        std::fs::write(&env_file, "# settings\nA=from-file\nB=from-file\n\nC=x=y\n").unwrap();
        let label_file = b.dir.path().join("labels");
        std::fs::write(&label_file, "team=core\ntier=file\n").unwrap();
        b.ok(&[
            "create",
            "--name",
            "meta",
            "--env-file",
            env_file.to_str().unwrap(),
            "-e",
            "B=from-flag",
            "--label",
            "tier=flag",
            "--label",
            "empty=",
            "--label-file",
            label_file.to_str().unwrap(),
            "--stop-signal",
            "SIGUSR1",
            "--stop-timeout",
            "3",
            "busybox",
            "sh",
            "-c",
            "echo $A $B $C",
        ]);
        assert_eq!(
            inspect(&b, "meta", "{{json .Config.Labels}}"),
            r#"{"empty":"","team":"core","tier":"flag"}"#
        );
        assert_eq!(
            inspect(&b, "meta", "{{.Config.StopSignal}} {{.Config.StopTimeout}}"),
            "SIGUSR1 3"
        );
        let env = inspect(&b, "meta", "{{json .Config.Env}}");
        for e in ["A=from-file", "B=from-flag", "C=x=y"] {
            assert!(env.contains(&format!("\"{e}\"")), "{e} in {env}");
        }
        assert!(!env.contains("B=from-file"), "-e wins: {env}");
        assert_eq!(b.ok(&["start", "-a", "meta"]), "from-file from-flag x=y\n");
        b.ok(&["rm", "meta"]);

        b.ok(&["create", "--name", "nolabels", "busybox"]);
        assert_eq!(inspect(&b, "nolabels", "{{json .Config.Labels}}"), "{}");
        b.ok(&["rm", "nolabels"]);
    }
}

#[test]
fn bad_flags_exit_125_with_dockers_messages_and_create_nothing() {
    // Validation happens before anything runs: any user, the vfs driver.
    let b = Berth::new().with_driver("vfs");
    import_busybox(&b);
    let missing = b.dir.path().join("missing.env");
    let missing = missing.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["-m", "4m"], "Minimum memory limit allowed is 6MB"),
        (&["-m", "12x"], "invalid size: '12x'"),
        (
            &["-m", "32m", "--memory-swap", "16m"],
            "Minimum memoryswap limit should be larger than memory limit",
        ),
        (
            &["--memory-swap", "64m"],
            "You should always set the Memory limit when using Memoryswap limit",
        ),
        (
            &["--cpus", "abc"],
            "failed to parse abc as a rational number",
        ),
        (&["--cpus", "100000"], "Range of CPUs is from 0.01 to"),
        (&["--cpus", "0.0000000001"], "value is too precise"),
        (
            &["--cpuset-cpus", "a-b"],
            "Invalid value a-b for cpuset cpus",
        ),
        (
            &["--cpuset-cpus", "4095"],
            "Requested CPUs are not available",
        ),
        (
            &["--blkio-weight", "5"],
            "Range of blkio weight is from 10 to 1000",
        ),
        (
            &["--ulimit", "nofile=2:1"],
            "ulimit soft limit must be less than or equal to hard limit: 2 > 1",
        ),
        (&["--ulimit", "files=1"], "invalid ulimit type: files"),
        (
            &["--cap-add", "FOO"],
            "invalid CapAdd: unknown capability: \"CAP_FOO\"",
        ),
        (
            &["--cap-drop", "nope"],
            "invalid CapDrop: unknown capability: \"CAP_NOPE\"",
        ),
        (&["--stop-signal", "SIGFOO"], "Invalid signal: SIGFOO"),
        (&["--label", "novalue"], "bad attribute format: novalue"),
        (
            &["--env-file", missing],
            "missing.env: no such file or directory",
        ),
        (&["--label-file", missing], "missing.env"),
    ];
    for (flags, message) in cases {
        for cmd in ["create", "run"] {
            let mut args = vec![cmd];
            args.extend_from_slice(flags);
            args.extend_from_slice(&["busybox", "true"]);
            let err = b.fails(&args, 125);
            assert!(err.contains(message), "{args:?}: {err}");
        }
    }
    assert_eq!(
        b.ok(&["ps", "-aq"]),
        "",
        "a refused create left a container"
    );
}

#[test]
fn rootless_limits_warn_and_the_container_runs() {
    for driver in ["overlay", "fuse", "vfs"] {
        rootless_limits_warn_and_the_container_runs_on(driver);
    }
}

fn rootless_limits_warn_and_the_container_runs_on(driver: &str) {
    let Some(b) = Berth::new().with_driver(driver).as_test_user() else {
        eprintln!("skipped: no unprivileged test user (cargo xtask test creates one)");
        return;
    };
    let (uid, _) = berth_e2e::test_user().unwrap();
    let b = berth_e2e::with_busybox(b);
    let run = |args: &[&str]| b.run(args);
    let out = run(&[
        "run",
        "--rm",
        "-m",
        "32m",
        "--pids-limit",
        "10",
        "busybox",
        "echo",
        "ran",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
    let writable = std::fs::metadata(Path::new(CGROUP_ROOT).join("pids"))
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == uid)
        .unwrap_or(false);
    if !cgroup_v2() && !writable {
        assert!(
            stderr.contains("running without resource limits"),
            "{stderr}"
        );
    }
    // Without limits there is nothing to warn about.
    let out = run(&["run", "--rm", "busybox", "echo", "plain"]);
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("cgroup"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
