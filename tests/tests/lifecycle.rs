//! End-to-end: detached containers and their monitor — `run -d`, `ps`,
//! `logs`, `exec`, `stop`, `start`, `restart`, `kill`, `wait`, `attach`,
//! `top`, `rename`, `-it` under a real pty, signal forwarding — as root
//! under the overlay and fuse drivers, and as the unprivileged test user
//! with vfs.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::{is_root, with_busybox, Berth};

/// Root with each union driver; the test user with vfs when there is one.
fn roots() -> Vec<Berth> {
    let mut out = Vec::new();
    if is_root() {
        for driver in ["overlay", "fuse"] {
            out.push(with_busybox(Berth::new().with_driver(driver)));
        }
        for driver in ["overlay", "fuse", "vfs"] {
            if let Some(b) = Berth::new().with_driver(driver).as_test_user() {
                out.push(with_busybox(b));
            }
        }
    } else {
        for driver in ["overlay", "fuse", "vfs"] {
            out.push(with_busybox(Berth::new().with_driver(driver)));
        }
    }
    out
}

fn label(b: &Berth) -> String {
    let driver = b.ok(&["info", "--format", "{{.Driver}}"]);
    format!(
        "{} as {}",
        driver.trim(),
        if b.rootless() { "user" } else { "root" }
    )
}

/// Polls `f` until it is true, for at most 10 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status(b: &Berth, name: &str) -> String {
    b.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        name,
    ])
    .trim()
    .to_string()
}

/// The pids of processes whose command line mentions `needle` (to check
/// that no monitor is left behind).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(needle) {
                out.push(name);
            }
        }
    }
    out
}

fn assert_nothing_left(b: &Berth, id: &str) {
    let root = b.root.canonicalize().unwrap();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.lines().any(|l| l.contains(id)),
        "mounts of {id} left"
    );
    assert!(
        !root.join("containers").join(id).exists(),
        "container dir left"
    );
    assert_eq!(
        processes_mentioning(id),
        Vec::<String>::new(),
        "monitor left"
    );
}

#[test]
fn detached_lifecycle_with_dockers_states() {
    for b in roots() {
        let l = label(&b);
        let script = "echo started; trap 'echo bye; exit 0' TERM; \
                      while :; do sleep 0.05; done";
        let id = b.ok(&["run", "-d", "--name", "web", "busybox", "sh", "-c", script]);
        let id = id.trim().to_string();
        assert_eq!(id.len(), 64, "{l}: run -d prints the full ID: {id}");
        let ps = b.ok(&["ps"]);
        assert!(ps.contains(&id[..12]) && ps.contains(" Up "), "{l}: {ps}");
        assert_eq!(status(&b, "web"), "running 0", "{l}");
        let pid: i32 = b
            .ok(&["inspect", "-f", "{{.State.Pid}}", "web"])
            .trim()
            .parse()
            .unwrap();
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{l}: State.Pid is the init on the host"
        );
        eventually("the first log line", || {
            b.ok(&["logs", "web"]) == "started\n"
        });

        // exec: output, exit codes, flags.
        assert_eq!(b.ok(&["exec", "web", "echo", "hi"]), "hi\n", "{l}");
        b.fails(&["exec", "web", "sh", "-c", "exit 7"], 7);
        let err = b.fails(&["exec", "web", "no-such-cmd"], 127);
        assert!(err.contains("executable file not found"), "{l}: {err}");
        let out = b.ok(&[
            "exec",
            "-e",
            "A=1",
            "-w",
            "/tmp",
            "-u",
            "nobody",
            "web",
            "sh",
            "-c",
            "echo $A; pwd; id -u",
        ]);
        assert_eq!(out, "1\n/tmp\n65534\n", "{l}");
        // exec sees the container's processes, and is one of them.
        let ps_inside = b.ok(&["exec", "web", "ps", "-o", "pid,comm"]);
        assert!(ps_inside.contains("    1 sh"), "{l}: {ps_inside}");
        let out = b.run_stdin(&["exec", "-i", "web", "cat"], b"piped\n");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "piped\n", "{l}");
        b.ok(&["exec", "-d", "web", "sh", "-c", "echo detached > /tmp/d"]);
        eventually("exec -d to run", || {
            b.run(&["exec", "web", "cat", "/tmp/d"]).stdout == b"detached\n"
        });

        // top lists the container's processes only.
        let top = b.ok(&["top", "web"]);
        assert!(top.starts_with("UID"), "{l}: {top}");
        assert!(top.contains("while :"), "{l}: {top}");
        assert!(!top.contains("cargo"), "{l}: {top}");

        // logs -f follows until the container stops.
        let mut follow = b
            .cmd(&["logs", "-f", "web"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        b.ok(&["stop", "web"]);
        let mut followed = String::new();
        follow
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut followed)
            .unwrap();
        assert!(follow.wait().unwrap().success());
        assert_eq!(followed, "started\nbye\n", "{l}");
        assert_eq!(status(&b, "web"), "exited 0", "{l}: the trap exits 0");
        let ps = b.ok(&["ps", "-a"]);
        assert!(ps.contains("Exited (0) "), "{l}: {ps}");
        assert!(b.ok(&["ps", "-q"]).is_empty(), "{l}");
        let err = b.fails(&["exec", "web", "true"], 1);
        assert!(err.contains("is not running"), "{l}: {err}");

        // start again: same container, log appended.
        assert_eq!(b.ok(&["start", "web"]), "web\n");
        assert_eq!(status(&b, "web"), "running 0", "{l}");
        eventually("the second start's output", || {
            b.ok(&["logs", "web"]) == "started\nbye\nstarted\n"
        });
        let tail = b.ok(&["logs", "--tail", "1", "-t", "web"]);
        assert!(tail.ends_with("Z started\n"), "{l}: {tail}");
        assert!(tail.starts_with("20"), "{l}: {tail}");
        let old_pid = b.ok(&["inspect", "-f", "{{.State.Pid}}", "web"]);
        assert_eq!(b.ok(&["restart", "-t", "5", "web"]), "web\n");
        assert_eq!(status(&b, "web"), "running 0", "{l}");
        assert_ne!(
            b.ok(&["inspect", "-f", "{{.State.Pid}}", "web"]),
            old_pid,
            "{l}: restart starts a new init"
        );

        // kill + wait.
        let waiter = b
            .cmd(&["wait", "web"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        assert_eq!(b.ok(&["kill", "web"]), "web\n");
        let waited = waiter.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&waited.stdout), "137\n", "{l}");
        assert_eq!(status(&b, "web"), "exited 137", "{l}");
        let err = b.fails(&["kill", "web"], 1);
        assert!(err.contains("is not running"), "{l}: {err}");

        b.ok(&["rename", "web", "site"]);
        assert!(b.ok(&["ps", "-a"]).contains(" site"), "{l}");
        b.fails(&["logs", "web"], 1);
        b.ok(&["rm", "site"]);
        assert_nothing_left(&b, &id);
    }
}

#[test]
fn stop_kills_what_ignores_sigterm_and_wait_reports_codes() {
    for b in roots() {
        let l = label(&b);
        // sh as pid 1 ignores SIGTERM without a trap: stop -t 1 kills it.
        let id = b.ok(&["run", "-d", "busybox", "sleep", "1000"]);
        let id = id.trim();
        b.ok(&["stop", "-t", "1", id]);
        assert_eq!(status(&b, id), "exited 137", "{l}");
        // stop of a stopped container is fine, as in Docker.
        b.ok(&["stop", id]);
        b.ok(&["rm", id]);
        assert_nothing_left(&b, id);

        let id = b.ok(&["run", "-d", "busybox", "sh", "-c", "sleep 0.2; exit 5"]);
        assert_eq!(b.ok(&["wait", id.trim()]), "5\n", "{l}");
        b.ok(&["rm", id.trim()]);

        // --rm with -d: the monitor removes the container itself.
        let id = b.ok(&["run", "-d", "--rm", "busybox", "sh", "-c", "exit 0"]);
        let id = id.trim().to_string();
        eventually("the --rm container to go", || {
            !b.ok(&["ps", "-aq", "--no-trunc"]).contains(&id)
        });
        eventually("its files to go", || {
            !b.root.join("containers").join(&id).exists()
        });
        assert_nothing_left(&b, &id);
    }
}

#[test]
fn detached_start_failures_report_dockers_codes() {
    for b in roots() {
        let l = label(&b);
        let err = b.fails(&["run", "-d", "--name", "bad", "busybox", "no-such"], 127);
        assert!(err.contains("executable file not found"), "{l}: {err}");
        assert_eq!(status(&b, "bad"), "exited 127", "{l}");
        let err = b.fails(&["start", "bad"], 1);
        assert!(err.contains("executable file not found"), "{l}: {err}");
        assert!(
            err.contains("failed to start containers: bad"),
            "{l}: {err}"
        );
        b.ok(&["rm", "bad"]);
        for cmd in [
            &["stop", "nope"][..],
            &["kill", "nope"],
            &["logs", "nope"],
            &["exec", "nope", "true"],
            &["wait", "nope"],
            &["top", "nope"],
        ] {
            let err = b.fails(cmd, 1);
            assert!(
                err.contains("No such container: nope"),
                "{l} {cmd:?}: {err}"
            );
        }
        let err = b.fails(&["kill", "-s", "SIGNOPE", "x"], 1);
        assert!(err.contains("Invalid signal: SIGNOPE"), "{l}: {err}");
    }
}

#[test]
fn attach_passes_stdin_and_returns_the_exit_code() {
    for b in roots() {
        let l = label(&b);
        b.ok(&[
            "run",
            "-d",
            "-i",
            "--name",
            "reader",
            "busybox",
            "sh",
            "-c",
            "read line; echo got $line; echo err >&2; exit 4",
        ]);
        let out = b.run_stdin(&["attach", "reader"], b"hello\n");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "got hello\n", "{l}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n", "{l}");
        assert_eq!(out.status.code(), Some(4), "{l}");
        let err = b.fails(&["attach", "reader"], 1);
        assert!(
            err.contains("cannot attach to a stopped container"),
            "{l}: {err}"
        );
        b.ok(&["rm", "reader"]);
    }
}

/// Runs `berth ARGS` under `script`, so it has a real terminal, feeding it
/// `input` line by line; returns what the terminal showed and the code.
fn under_pty(b: &Berth, args: &str, input: &[&str]) -> (String, Option<i32>) {
    let berth = berth_e2e::berth_bin();
    let driver = b.ok(&["info", "--format", "{{.Driver}}"]);
    // A terminal of a known size, for the tests of its size inside.
    let line = format!(
        "stty rows 33 cols 111; BERTH_ROOT={} BERTH_STORAGE_DRIVER={} {} {args}",
        b.root.display(),
        driver.trim(),
        berth.display()
    );
    let mut script = if b.rootless() {
        let (uid, gid) = berth_e2e::test_user().unwrap();
        let mut c = Command::new("setpriv");
        c.args([
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            "--clear-groups".into(),
            "script".into(),
        ]);
        c
    } else {
        Command::new("script")
    };
    let mut child = script
        .args(["-qefc", &line, "/dev/null"])
        .env("HOME", b.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut all = String::new();
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            all.push_str(&line);
            let _ = tx.send(line.clone());
            line.clear();
        }
    });
    // Wait for the shell's prompt-free readiness marker before typing.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = String::new();
    while !seen.contains("READY") {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no READY under the pty: {seen}");
        if let Ok(l) = rx.recv_timeout(left) {
            seen.push_str(&l);
        }
    }
    for i in input {
        stdin.write_all(i.as_bytes()).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = child.wait().unwrap();
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
        seen.push_str(&l);
    }
    (seen, status.code())
}

#[test]
fn run_it_and_exec_it_work_under_a_real_pty() {
    for b in roots() {
        let l = label(&b);
        let (out, code) = under_pty(
            &b,
            "run -it --rm busybox sh -c 'tty; echo READY; read x; echo got:$x; stty size; exit 3'",
            &["typed\r"],
        );
        // The pty comes from the container's own devpts, as with runc.
        assert_eq!(out.lines().next(), Some("/dev/pts/0"), "{l}: {out}");
        assert!(out.contains("got:typed"), "{l}: {out}");
        assert!(out.contains("33 111"), "{l}: the terminal's size: {out}");
        assert_eq!(code, Some(3), "{l}: {out}");

        b.ok(&["run", "-d", "--name", "tt", "busybox", "sleep", "1000"]);
        let (out, code) = under_pty(
            &b,
            "exec -it tt sh -c 'tty; echo READY; read x; echo got:$x; stty size'",
            &["more\r"],
        );
        // The container's own devpts, whose first pty this is.
        assert_eq!(out.lines().next(), Some("/dev/pts/0"), "{l}: {out}");
        assert!(out.contains("got:more"), "{l}: {out}");
        assert!(out.contains("33 111"), "{l}: the terminal's size: {out}");
        assert_eq!(code, Some(0), "{l}: {out}");
        b.ok(&["rm", "-f", "tt"]);

        // attach resizes a -t container's terminal to the client's, then
        // ctrl-p ctrl-q detaches.
        b.ok(&[
            "run",
            "-dit",
            "--name",
            "sized",
            "busybox",
            "sh",
            "-c",
            // READY once the client's size arrived (under_pty waits for it).
            "while :; do s=$(stty size); echo size:$s; [ \"$s\" = \"33 111\" ] && echo READY; sleep 0.1; done",
        ]);
        let (out, code) = under_pty(&b, "attach sized", &["\x10\x11"]);
        assert!(out.contains("size:33 111"), "{l}: {out}");
        assert_eq!(code, Some(0), "{l}: detached: {out}");
        assert_eq!(status(&b, "sized"), "running 0", "{l}");
        b.ok(&["rm", "-f", "sized"]);
        let err = b.fails(&["run", "-it", "--rm", "busybox", "true"], 1);
        assert!(err.contains("the input device is not a TTY"), "{l}: {err}");
    }
}

/// Starts `berth ARGS` with its stdout on a pipe and reads the first line.
fn spawn_reading_a_line(
    b: &Berth,
    args: &[&str],
) -> (
    std::process::Child,
    BufReader<std::process::ChildStdout>,
    String,
) {
    let mut child = b
        .cmd(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    (child, out, line)
}

#[test]
fn foreground_run_forwards_signals_and_logs_its_output() {
    for b in roots() {
        let l = label(&b);
        let (mut child, mut out, line) = spawn_reading_a_line(
            &b,
            &[
                "run",
                "--name",
                "fg",
                "busybox",
                "sh",
                "-c",
                "trap 'echo caught; exit 3' INT; echo ready; while :; do sleep 0.05; done",
            ],
        );
        assert_eq!(line, "ready\n", "{l}");
        // SIGINT to berth (as ctrl-c would) reaches the container's init.
        // SAFETY: kill on the pid of a child we started.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "caught\n", "{l}");
        assert_eq!(child.wait().unwrap().code(), Some(3), "{l}");
        assert_eq!(b.ok(&["logs", "fg"]), "ready\ncaught\n", "{l}");
        b.ok(&["rm", "fg"]);
    }
}

#[test]
fn ps_filters_and_sizes() {
    for b in roots() {
        let l = label(&b);
        let wrote = ["run", "--name", "wrote", "busybox", "sh", "-c"];
        // Rootless, /d belongs to a subordinate id and is closed to the
        // user outside the container's namespace: it still counts.
        let script =
            "echo 12345 > /f; mkdir /d; echo 1234 > /d/g; chown -R 1000 /d; chmod 700 /d; exit 2";
        b.fails(&[&wrote[..], &[script]].concat(), 2);
        b.ok(&["run", "-d", "--name", "up", "busybox", "sleep", "1000"]);
        b.ok(&["create", "--name", "fresh", "busybox"]);
        let names = |args: &[&str]| -> Vec<String> {
            let mut a = vec!["ps", "--format", "{{.Names}}"];
            a.extend_from_slice(args);
            b.ok(&a).lines().map(str::to_string).collect()
        };
        assert_eq!(names(&[]), ["up"], "{l}");
        assert_eq!(names(&["-f", "exited=2"]), ["wrote"], "{l}");
        assert_eq!(names(&["-f", "status=created"]), ["fresh"], "{l}");
        assert_eq!(names(&["-a", "-f", "name=e"]), ["fresh", "wrote"], "{l}");
        assert_eq!(
            names(&["-f", "status=exited", "-f", "status=running"]),
            ["up", "wrote"],
            "{l}: values of one key are alternatives"
        );
        assert_eq!(
            names(&["-a", "-f", "ancestor=busybox", "-n", "1"]),
            ["fresh"]
        );
        let err = b.fails(&["ps", "-f", "colour=red"], 1);
        assert!(err.contains("invalid filter 'colour'"), "{l}: {err}");
        let err = b.fails(&["ps", "-f", "status=sleepy"], 1);
        assert!(err.contains("Unrecognised filter value"), "{l}: {err}");
        let sizes = b.ok(&["ps", "-a", "-s", "--format", "{{.Names}} {{.Size}}"]);
        assert!(sizes.contains("wrote 11B (virtual "), "{l}: {sizes}");
        assert!(sizes.contains("fresh 0B (virtual "), "{l}: {sizes}");
        let table = b.ok(&["ps", "-s"]);
        assert!(
            table.lines().next().unwrap().ends_with("SIZE"),
            "{l}: {table}"
        );
        b.ok(&["rm", "-f", "wrote", "up", "fresh"]);
    }
}

#[test]
fn pause_unpause_and_stats() {
    for b in roots() {
        let l = label(&b);
        let counter = "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.02; done";
        b.ok(&[
            "run", "-d", "--name", "pz", "-m", "64m", "busybox", "sh", "-c", counter,
        ]);
        if b.rootless() {
            // No writable cgroups for this user on this host: no freezer.
            let err = b.fails(&["pause", "pz"], 1);
            assert!(err.contains("has no cgroup"), "{l}: {err}");
            b.ok(&["rm", "-f", "pz"]);
            continue;
        }
        let pid = b.ok(&["inspect", "-f", "{{.State.Pid}}", "pz"]);
        let n_file = format!("/proc/{}/root/tmp/n", pid.trim());
        let count = || -> u64 {
            std::fs::read_to_string(&n_file)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0)
        };
        eventually("the counter to start", || count() > 0);
        assert_eq!(b.ok(&["pause", "pz"]), "pz\n");
        assert_eq!(status(&b, "pz"), "paused 0", "{l}");
        assert!(b.ok(&["ps"]).contains("(Paused)"), "{l}");
        assert_eq!(
            b.ok(&["ps", "-q", "-f", "status=paused"]).lines().count(),
            1
        );
        let frozen = count();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(count(), frozen, "{l}: nothing runs while paused");
        let err = b.fails(&["pause", "pz"], 1);
        assert!(err.contains("is already paused"), "{l}: {err}");
        // exec would join the frozen cgroup and hang: refused, as Docker does.
        let err = b.fails(&["exec", "pz", "true"], 1);
        assert!(
            err.contains("is paused, unpause the container before exec"),
            "{l}: {err}"
        );

        b.ok(&["unpause", "pz"]);
        assert_eq!(status(&b, "pz"), "running 0", "{l}");
        eventually("the counter to move again", || count() > frozen);
        let err = b.fails(&["unpause", "pz"], 1);
        assert!(err.contains("is not paused"), "{l}: {err}");

        // An exec'd process is in the container's cgroup: its limits, top
        // and stats cover it.
        b.ok(&["exec", "-d", "pz", "sleep", "30"]);
        let top = b.ok(&["top", "pz"]);
        assert!(top.contains("sleep 30"), "{l}: {top}");
        assert_eq!(
            b.ok(&["exec", "pz", "cat", "/proc/self/cgroup"]),
            b.ok(&["exec", "pz", "cat", "/proc/1/cgroup"]),
            "{l}"
        );

        let stats = b.ok(&["stats", "--no-stream", "pz"]);
        let mut lines = stats.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("CONTAINER ID"), "{l}: {stats}");
        assert!(header.ends_with("PIDS"), "{l}: {stats}");
        let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(row[1], "pz", "{l}: {stats}");
        assert!(row[2].ends_with('%'), "{l}: {stats}");
        assert!(stats.contains("/ 64MiB"), "{l}: the limit shows: {stats}");
        let pids: u64 = row.last().unwrap().parse().unwrap();
        assert!((1..10).contains(&pids), "{l}: {stats}");

        // commit -p freezes the container only while it reads its layer.
        let before = count();
        b.ok(&["commit", "pz", "pz:snap"]);
        assert_eq!(status(&b, "pz"), "running 0", "{l}");
        eventually("the counter to move after commit", || count() > before);

        // A paused container still stops (thawed first, as Docker does).
        b.ok(&["pause", "pz"]);
        b.ok(&["stop", "-t", "1", "pz"]);
        assert_eq!(status(&b, "pz"), "exited 137", "{l}");
        let err = b.fails(&["stats", "--no-stream", "pz"], 1);
        assert!(err.contains("is not running"), "{l}: {err}");
        b.ok(&["rm", "pz"]);
    }
}

#[test]
fn init_runs_the_command_as_its_child_and_forwards_signals() {
    for b in roots() {
        let l = label(&b);
        let out = b.ok(&[
            "run",
            "--rm",
            "--init",
            "busybox",
            "sh",
            "-c",
            "echo $$; ps -o pid,comm",
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0], "2",
            "{l}: the command is pid 2 under --init: {out}"
        );
        let pid1 = lines.iter().find(|x| x.trim_start().starts_with("1 "));
        assert!(
            pid1.is_some_and(|x| !x.ends_with(" sh")),
            "{l}: pid 1 is the init: {out}"
        );
        b.fails(
            &["run", "--rm", "--init", "busybox", "sh", "-c", "exit 7"],
            7,
        );
        let err = b.fails(&["run", "--rm", "--init", "busybox", "no-such"], 127);
        assert!(err.contains("executable file not found"), "{l}: {err}");
        // sleep as pid 1 would ignore SIGTERM (stop would wait, then kill
        // with 137); under the init it gets the signal and dies of it.
        let id = b.ok(&["run", "-d", "--init", "busybox", "sleep", "1000"]);
        let id = id.trim();
        b.ok(&["stop", "-t", "60", id]);
        assert_eq!(status(&b, id), "exited 143", "{l}");
        assert_eq!(
            b.ok(&["inspect", "-f", "{{.HostConfig.Init}}", id]),
            "true\n"
        );
        b.ok(&["rm", id]);
        // An orphan is reaped by the init: no zombie is left.
        let out = b.ok(&[
            "run",
            "--rm",
            "--init",
            "busybox",
            "sh",
            "-c",
            "sh -c 'sleep 0.1 &'; sleep 0.6; ps -o stat | grep -c Z; true",
        ]);
        assert_eq!(out, "0\n", "{l}");
    }
}

#[test]
fn a_closed_stdout_ends_a_foreground_run_like_a_pipeline() {
    for b in roots() {
        let l = label(&b);
        // `berth run ... | head -1`: once the reader is gone the container
        // gets EPIPE/SIGPIPE (its command is not pid 1 under --init).
        let (mut child, out, line) = spawn_reading_a_line(
            &b,
            &[
                "run",
                "--rm",
                "--init",
                "busybox",
                "sh",
                "-c",
                "while :; do echo y; done",
            ],
        );
        assert_eq!(line, "y\n", "{l}");
        drop(out);
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{l}: the run did not end when its reader left");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(141), "{l}: 128 + SIGPIPE");
    }
}
