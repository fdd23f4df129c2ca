//! End-to-end: containers through the built `berth` binary, under the
//! kernel overlay and the berth-unionfs (fuse) drivers, as root and as an
//! unprivileged user (`BERTH_TEST_UID`/`BERTH_TEST_GID`, which `cargo xtask
//! test` sets; or the caller, when the tests run unprivileged). Rootless,
//! the container's monitor mounts its root filesystem inside the container's
//! user namespace; root inside is the user on the host.

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::{is_root, test_user, with_busybox, Berth};

const DRIVERS: &[&str] = &["overlay", "fuse"];

/// Fresh roots with `busybox` imported, one per driver in `drivers`, with
/// berth run by the caller and (when the caller is root) by the
/// unprivileged test user too, if there is one.
fn roots_for(drivers: &[&str]) -> Vec<Berth> {
    let mut out = Vec::new();
    for driver in drivers {
        out.push(with_busybox(Berth::new().with_driver(driver)));
    }
    if is_root() {
        for driver in drivers {
            match Berth::new().with_driver(driver).as_test_user() {
                Some(b) => out.push(with_busybox(b)),
                None => {
                    eprintln!("rootless runs skipped: BERTH_TEST_UID/BERTH_TEST_GID not set");
                    break;
                }
            }
        }
    }
    out
}

/// [`roots_for`] the union drivers.
fn roots() -> Vec<Berth> {
    roots_for(DRIVERS)
}

/// Asserts nothing of any container is left: no mounts under the root, no
/// container dirs, no layer records, no snapshot dirs beside the layers.
fn assert_clean(b: &Berth, layer_dirs: usize) {
    let root = b.root.canonicalize().unwrap();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root_str = root.to_str().unwrap();
    assert!(
        !mountinfo.lines().any(|l| l.contains(root_str)),
        "mounts left under {root_str}:\n{mountinfo}"
    );
    // Dot files are locks, not containers.
    let count = |p: std::path::PathBuf| {
        std::fs::read_dir(p)
            .map(|d| {
                d.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(count(root.join("containers")), 0, "container dirs left");
    let driver = b.ok(&["info", "--format", "{{.Driver}}"]);
    let driver = driver.trim();
    assert_eq!(
        count(root.join("image").join(driver).join("layerdb/mounts")),
        0,
        "layer records left"
    );
    assert_eq!(count(root.join(driver)), layer_dirs, "snapshot dirs left");
}

#[test]
fn concurrent_creates_with_one_name_give_one_container() {
    for b in roots() {
        let children: Vec<_> = (0..4)
            .map(|_| {
                b.cmd(&["create", "--name", "same", "busybox"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let ok = children
            .into_iter()
            .filter_map(|mut c| c.wait().unwrap().success().then_some(()))
            .count();
        assert_eq!(ok, 1, "exactly one create wins the name");
        assert_eq!(b.ok(&["ps", "-aq"]).lines().count(), 1);
        b.ok(&["rm", "same"]);
    }
}

fn layer_dirs(b: &Berth) -> usize {
    let driver = b.ok(&["info", "--format", "{{.Driver}}"]);
    std::fs::read_dir(b.root.join(driver.trim()))
        .unwrap()
        .count()
}

#[test]
fn run_rm_prints_exactly_and_leaves_nothing() {
    for b in roots() {
        let layers = layer_dirs(&b);
        assert_eq!(
            b.ok(&["run", "--rm", "busybox", "echo", "hello"]),
            "hello\n"
        );
        assert_clean(&b, layers);
        // A failed start is cleaned up too.
        b.fails(&["run", "--rm", "busybox", "/nonexistent"], 127);
        assert_clean(&b, layers);
    }
}

#[test]
fn exit_codes_pass_through() {
    for b in roots() {
        b.fails(&["run", "--rm", "busybox", "sh", "-c", "exit 3"], 3);
        let err = b.fails(&["run", "--rm", "busybox", "no-such-command"], 127);
        assert!(err.contains("executable file not found"), "{err}");
        let err = b.fails(&["run", "--rm", "busybox", "/etc/passwd"], 126);
        assert!(err.contains("/etc/passwd"), "{err}");
        let err = b.fails(&["run", "--rm", "no-such-image", "true"], 125);
        assert!(err.contains("No such image: no-such-image:latest"), "{err}");
        b.fails(
            &["run", "--rm", "--network", "bridge0", "busybox", "true"],
            125,
        );
        b.fails(&["run", "--rm", "-w", "relative", "busybox", "true"], 125);
    }
}

#[test]
fn isolation_pid_one_hostname_user() {
    for b in roots() {
        let out = b.ok(&[
            "run",
            "--name",
            "iso",
            "busybox",
            "sh",
            "-c",
            "echo $$; hostname; id -u; ps -o pid,comm",
        ]);
        let id = b.ok(&["ps", "-aq", "--no-trunc"]);
        let id = id.trim();
        assert_eq!(id.len(), 64, "{id}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "1", "pid 1 inside: {out}");
        assert_eq!(lines[1], &id[..12], "hostname is the short ID");
        assert_eq!(lines[2], "0", "root inside");
        // No pipeline, so no race with a half-forked pipe: the header, then
        // the shell and ps (busybox sh may exec its last command, so ps can
        // be pid 1 itself), and nothing of the host.
        let procs: Vec<Vec<&str>> = lines[3..]
            .iter()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(procs[0], ["PID", "COMMAND"], "{out}");
        assert!(procs.len() <= 3, "{out}");
        assert_eq!(procs[1][0], "1", "{out}");
        assert!(
            procs[1..].iter().all(|p| p[1] == "sh" || p[1] == "ps"),
            "{out}"
        );
        assert_eq!(procs.last().unwrap()[1], "ps", "{out}");
        b.ok(&["rm", "iso"]);

        let out = b.ok(&[
            "run",
            "--rm",
            "-u",
            "nobody",
            "-w",
            "/tmp",
            "-e",
            "FOO=bar",
            "-h",
            "box",
            "--read-only",
            "busybox",
            "sh",
            "-c",
            "id -u; pwd; echo $FOO $HOSTNAME $HOME; hostname; touch /x || echo ro",
        ]);
        assert_eq!(out, "65534\n/tmp\nbar box /\nbox\nro\n");
        let out = b.ok(&[
            "run",
            "--rm",
            "--entrypoint",
            "/bin/echo",
            "busybox",
            "a",
            "b",
        ]);
        assert_eq!(out, "a b\n");
        // Only a loopback with --network none; the host's links with host.
        let links = |net: &str| {
            let out = b.ok(&[
                "run",
                "--rm",
                "--network",
                net,
                "busybox",
                "cat",
                "/proc/net/dev",
            ]);
            out.lines().count() - 2
        };
        assert_eq!(links("none"), 1);
        let host = std::fs::read_to_string("/proc/net/dev").unwrap();
        assert_eq!(links("host"), host.lines().count() - 2);
    }
}

#[test]
fn create_start_ps_diff_rm() {
    for b in roots() {
        let layers = layer_dirs(&b);
        let id = b.ok(&[
            "create",
            "--name",
            "web",
            "busybox",
            "sh",
            "-c",
            "echo hi > /new; rm /etc/passwd; exit 4",
        ]);
        let id = id.trim().to_string();
        assert_eq!(id.len(), 64);
        let ps = b.ok(&["ps", "-a"]);
        let mut lines = ps.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("CONTAINER ID   IMAGE "), "{header}");
        for col in ["COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"] {
            assert!(header.contains(col), "{header}");
        }
        let row = lines.next().unwrap();
        assert!(row.starts_with(&id[..12]), "{row}");
        assert!(
            row.contains(" busybox ") && row.contains("\"sh -c echo hi > /ne…\""),
            "{row}"
        );
        assert!(row.contains(" Created ") && row.ends_with(" web"), "{row}");
        assert_eq!(b.ok(&["ps", "-q"]), "", "ps without -a shows running only");

        b.fails(&["start", "-a", "web"], 4);
        let ps = b.ok(&["ps", "-a"]);
        assert!(ps.contains("Exited (4) Less than a second ago"), "{ps}");
        assert_eq!(
            b.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]),
            "web exited\n"
        );
        assert_eq!(b.ok(&["ps", "-n", "1", "-q"]), format!("{}\n", &id[..12]));
        assert_eq!(
            b.ok(&["container", "ls", "--latest", "-q"]),
            format!("{}\n", &id[..12])
        );
        assert_eq!(b.ok(&["diff", &id[..5]]), "C /etc\nD /etc/passwd\nA /new\n");

        let f =
            "{{.Id}} {{.Name}} {{.State.Status}} {{.State.ExitCode}} {{.HostConfig.NetworkMode}}";
        assert_eq!(
            b.ok(&["container", "inspect", "-f", f, "web"]),
            format!("{id} /web exited 4 default\n")
        );
        let doc = b.ok(&["container", "inspect", "web"]);
        let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(doc[0]["Config"]["Cmd"][0], "sh");
        assert_eq!(doc[0]["Config"]["Hostname"], &id[..12]);
        assert_eq!(
            doc[0]["GraphDriver"]["Name"],
            b.ok(&["info", "--format", "{{.Driver}}"]).trim()
        );
        let err = b.fails(&["create", "--name", "web", "busybox"], 125);
        assert!(err.contains("\"/web\" is already in use"), "{err}");
        let err = b.fails(&["rm", "nope"], 1);
        assert!(err.contains("No such container: nope"), "{err}");
        // An image a container uses stays; forced, only its name goes.
        let err = b.fails(&["rmi", "busybox"], 1);
        assert!(err.contains("being used by container"), "{err}");
        b.ok(&["tag", "busybox", "spare:tag"]);
        assert_eq!(
            b.ok(&["rmi", "-f", "spare:tag"]).trim(),
            "Untagged: spare:tag"
        );
        assert_eq!(
            b.ok(&["inspect", "-f", "{{.RepoTags}}", "busybox"]).trim(),
            "[busybox:latest]"
        );
        assert_eq!(b.ok(&["rm", "web"]), "web\n");
        assert_clean(&b, layers);
    }
}

#[test]
fn generated_names_are_unique_adjective_surname() {
    for b in roots() {
        b.ok(&["create", "busybox"]);
        b.ok(&["create", "busybox"]);
        let names = b.ok(&["ps", "-a", "--no-trunc"]);
        let names: Vec<&str> = names
            .lines()
            .skip(1)
            .map(|l| l.rsplit(' ').next().unwrap())
            .collect();
        assert_eq!(names.len(), 2);
        assert_ne!(names[0], names[1]);
        for n in &names {
            let (a, s) = n.split_once('_').expect("adjective_surname");
            assert!(!a.is_empty() && !s.is_empty(), "{n}");
        }
        for n in names {
            b.ok(&["rm", n]);
        }
    }
}

#[test]
fn rm_refuses_a_running_container_unless_forced() {
    for b in roots() {
        let layers = layer_dirs(&b);
        let child = b.run_in_background("long", &["busybox", "sleep", "30"]);
        assert!(b.ok(&["ps"]).contains(" Up "), "running shows as Up");
        let err = b.fails(&["rm", "long"], 1);
        assert!(err.contains("cannot remove a running container"), "{err}");
        b.ok(&["rm", "-f", "long"]);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(137), "killed by SIGKILL");
        assert_clean(&b, layers);
    }
}

#[test]
fn rm_f_cleans_up_after_a_killed_monitor() {
    for b in roots() {
        let layers = layer_dirs(&b);
        let mut child = b.run_in_background("orphan", &["busybox", "sleep", "30"]);
        // The monitor dies without recording anything; its container's
        // init lives on until rm -f kills it.
        child.kill().unwrap();
        child.wait().unwrap();
        b.ok(&["rm", "-f", "orphan"]);
        assert_clean(&b, layers);
    }
}

/// vfs works the same for root and for an unprivileged user (the launcher
/// binds the copy inside the container's user namespace).
#[test]
fn vfs_driver_runs_containers_as_any_user() {
    for b in roots_for(&["vfs"]) {
        let layers = layer_dirs(&b);
        let out = b.ok(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo hello; echo $$; id -u; touch /new",
        ]);
        assert_eq!(
            out, "hello\n1\n0\n",
            "pid 1 and root inside, for any caller"
        );
        b.fails(&["run", "--rm", "busybox", "sh", "-c", "exit 3"], 3);
        b.fails(&["run", "--rm", "busybox", "no-such-command"], 127);
        assert_clean(&b, layers);
    }
}

/// The first subordinate id of `uid` in `file` (/etc/subuid or /etc/subgid).
fn subid_start(file: &str, uid: u32) -> Option<u32> {
    let out = Command::new("id")
        .args(["-nu", &uid.to_string()])
        .output()
        .ok()?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
    std::fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() == 3 && (f[0] == name || f[0] == uid.to_string()))
            .then(|| f[1].parse().ok())
            .flatten()
    })
}

/// The inode of a process's user namespace.
fn userns_of(pid: &str) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/user"))
        .ok()
        .map(|m| m.ino())
}

/// Pids of the processes in user namespace `ino`.
fn processes_in_userns(ino: u64) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .filter(|p| userns_of(p) == Some(ino))
        .collect()
}

/// The container's writable layer on the host.
fn upper_dir(b: &Berth, id: &str) -> std::path::PathBuf {
    let driver = b.ok(&["info", "--format", "{{.Driver}}"]);
    let driver = driver.trim();
    let mounts = b.root.join("image").join(driver).join("layerdb/mounts");
    let mount_id = std::fs::read_to_string(mounts.join(id).join("mount-id")).unwrap();
    b.root.join(driver).join(mount_id.trim()).join("upper")
}

/// Rootless, with each union driver: root inside is the user on the host,
/// ids above 0 are the user's subordinate ids, the mounts stay inside the
/// container's own namespaces, and nothing outlives the container.
#[test]
fn rootless_union_containers_run_as_the_user_on_the_host() {
    let user = if is_root() {
        test_user()
    } else {
        let id = |flag| {
            let out = Command::new("id").arg(flag).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        Some((id("-u"), id("-g")))
    };
    let Some((uid, gid)) = user else {
        eprintln!("skipped: BERTH_TEST_UID/BERTH_TEST_GID not set");
        return;
    };
    for driver in DRIVERS {
        let b = Berth::new().with_driver(driver);
        let b = if is_root() {
            b.as_test_user().expect("the test user")
        } else {
            b
        };
        let b = with_busybox(b);
        let layers = layer_dirs(&b);

        // The init runs as the user on the host, root inside, in a user
        // namespace with the user's maps.
        // (The container writes into a directory only a subordinate id may
        // open, then sleeps: diff reads it through its monitor.)
        let script = "mkdir /d; touch /d/f; chown -R 1000:1000 /d; chmod 700 /d; \
                      touch /ready; exec sleep 30";
        let child = b
            .cmd(&["run", "--name", "ids", "busybox", "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = b.run(&["diff", "ids"]);
            if String::from_utf8_lossy(&out.stdout).contains("A /ready") {
                break;
            }
            assert!(Instant::now() < deadline, "{driver}: never ready: {out:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            b.ok(&["diff", "ids"]),
            "A /d\nA /d/f\nA /ready\n",
            "{driver}: diff of a running container"
        );
        let pid = b.ok(&["container", "inspect", "-f", "{{.State.Pid}}", "ids"]);
        let pid = pid.trim().to_string();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        for (key, want) in [("Uid:", uid), ("Gid:", gid)] {
            let line = status.lines().find(|l| l.starts_with(key)).unwrap();
            let ids: Vec<&str> = line.split_whitespace().skip(1).collect();
            let want = want.to_string();
            assert_eq!(ids, [want.as_str(); 4], "{driver}: {line}");
        }
        let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
        let first: Vec<&str> = map.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(first, ["0", &uid.to_string(), "1"], "{driver}: {map}");
        if let Some(start) = subid_start("/etc/subuid", uid) {
            let second: Vec<&str> = map.lines().nth(1).unwrap().split_whitespace().collect();
            assert_eq!(second[..2], ["1", &start.to_string()], "{driver}: {map}");
        }
        let userns = userns_of(&pid).unwrap();
        assert_ne!(
            userns_of("self"),
            Some(userns),
            "a user namespace of its own"
        );
        // The root filesystem is mounted in the container's namespaces only.
        let root_str = b.root.canonicalize().unwrap().display().to_string();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mountinfo.contains(&root_str),
            "{driver}: host sees {mountinfo}"
        );
        b.ok(&["rm", "-f", "ids"]);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(137), "{driver}: killed by SIGKILL");
        assert_eq!(
            processes_in_userns(userns),
            Vec::<String>::new(),
            "{driver}: processes left in the container's user namespace"
        );
        assert_clean(&b, layers);

        // Files written as root inside belong to the user; chowned to 1000
        // inside, to the subordinate id 999 above the range's start. diff
        // and rm read and delete them, even in a directory only that
        // subordinate id may open.
        let Some(start) = subid_start("/etc/subuid", uid) else {
            eprintln!("{driver}: no subordinate ids for {uid}: chown checks skipped");
            continue;
        };
        let gstart = subid_start("/etc/subgid", uid).expect("a subgid range too");
        let id = b.ok(&[
            "run",
            "--name",
            "own",
            "busybox",
            "sh",
            "-c",
            "touch /rootfile /owned; chown 1000:1000 /owned; mkdir -p /d/e; touch /d/e/f; \
             chown -R 1000:1000 /d; chmod 700 /d /d/e; id -u",
        ]);
        assert_eq!(id, "0\n");
        let id = b.ok(&["ps", "-aq", "--no-trunc"]);
        let upper = upper_dir(&b, id.trim());
        let owner = |p: &str| {
            let m = std::fs::symlink_metadata(upper.join(p)).unwrap();
            (m.uid(), m.gid())
        };
        assert_eq!(owner("rootfile"), (uid, gid), "{driver}");
        assert_eq!(owner("owned"), (start + 999, gstart + 999), "{driver}");
        assert_eq!(owner("d"), (start + 999, gstart + 999), "{driver}");
        assert_eq!(
            b.ok(&["diff", "own"]),
            "A /d\nA /d/e\nA /d/e/f\nA /owned\nA /rootfile\n",
            "{driver}"
        );
        assert_eq!(b.ok(&["rm", "own"]), "own\n");
        assert!(!upper.exists(), "{driver}: the writable layer is gone");
        assert_clean(&b, layers);
    }
}

/// With no driver named, root gets kernel overlayfs and an unprivileged
/// user berth-unionfs (which shows the image's owners a rootless unpack
/// could not write; kernel overlayfs would show them all as root), each
/// falling back where the machine lacks it; a root keeps its driver.
#[test]
fn auto_selection_prefers_overlay_as_root_and_fuse_rootless() {
    let overlay = std::fs::read_to_string("/proc/filesystems")
        .unwrap()
        .lines()
        .any(|l| l.trim_end().ends_with("\toverlay"));
    let fuse_for_all = std::fs::metadata("/dev/fuse")
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o006 == 0o006)
        .unwrap_or(false);
    let driver = |b: &Berth| b.ok(&["info", "-f", "{{.Driver}}"]).trim().to_string();
    if is_root() && overlay {
        let b = Berth::new();
        assert_eq!(driver(&b), "overlay");
        let b = with_busybox(b);
        assert_eq!(b.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi\n");
    }
    if let (Some(b), true) = (Berth::new().as_test_user(), fuse_for_all) {
        assert_eq!(driver(&b), "fuse");
        let b = with_busybox(b);
        assert_eq!(b.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi\n");
        // The store now has its driver: later commands keep it.
        assert_eq!(driver(&b), "fuse");
    }
}
