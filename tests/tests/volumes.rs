//! End-to-end: volumes, bind mounts and tmpfs mounts through the built
//! `berth` binary, as root under the overlay and fuse drivers, and rootless
//! (as the test user) under vfs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_e2e::{busybox_tarball, Berth};

const DRIVERS: &[&str] = &["overlay", "fuse"];

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// The busybox tarball with extras appended: `/data/seed.txt` (what a new
/// volume on /data is seeded with) and `/escape`, a symlink to `outside`,
/// a directory on the host that no container may touch.
fn tarball_with_extras(dir: &Path, outside: &Path) -> PathBuf {
    let tar = busybox_tarball(dir);
    let extra = dir.join("extra");
    std::fs::create_dir_all(extra.join("data/sub")).unwrap();
    std::fs::write(extra.join("data/seed.txt"), "from the image\n").unwrap();
    std::fs::write(extra.join("data/sub/deep.txt"), "deep\n").unwrap();
    std::os::unix::fs::symlink(outside, extra.join("escape")).unwrap();
    // `..` enough times to leave any root, then the same place.
    let up = format!("../../../../../../../..{}", outside.display());
    std::os::unix::fs::symlink(up, extra.join("escape-up")).unwrap();
    let status = Command::new("tar")
        .arg("-C")
        .arg(&extra)
        .args(["--numeric-owner", "--owner=0", "--group=0", "-rf"])
        .arg(&tar)
        .args(["./data", "./escape", "./escape-up"])
        .status()
        .unwrap();
    assert!(status.success(), "tar -r failed");
    tar
}

/// A berth root with `busybox` (the extras above) and `withvol` (the same
/// plus `VOLUME /data`) imported; `outside` is the host dir of `/escape`.
struct Setup {
    b: Berth,
    outside: PathBuf,
}

fn setup(driver: &str) -> Setup {
    let b = Berth::new().with_driver(driver);
    let outside = b.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), "host only\n").unwrap();
    let tar = tarball_with_extras(b.dir.path(), &outside);
    let tar = tar.to_str().unwrap();
    b.ok(&["import", "-c", "CMD [\"/bin/sh\"]", tar, "busybox"]);
    b.ok(&[
        "import",
        "-c",
        "CMD [\"/bin/sh\"]",
        "-c",
        "VOLUME /data",
        tar,
        "withvol",
    ]);
    Setup { b, outside }
}

/// One setup per union driver, or none when
/// not root, as `roots()` in containers.rs.
fn roots() -> Vec<Setup> {
    let mut out = Vec::new();
    for driver in DRIVERS {
        let s = setup(driver);
        if !is_root() {
            // The rootless runs of these tests are `as_test_user` ones.
            eprintln!("not root: volume tests skipped");
            return Vec::new();
        }
        out.push(s);
    }
    out
}

fn sh(b: &Berth, flags: &[&str], script: &str) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "sh", "-c", script]);
    b.ok(&args)
}

fn volumes(b: &Berth) -> Vec<String> {
    b.ok(&["volume", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .collect()
}

/// No mounts left under the root, as after every well-behaved command.
fn assert_no_mounts(b: &Berth) {
    let root = b.root.canonicalize().unwrap();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = root.to_str().unwrap();
    assert!(
        !mountinfo.lines().any(|l| l.contains(root)),
        "mounts left under {root}:\n{mountinfo}"
    );
}

#[test]
fn bind_mounts_and_named_volumes_keep_data_across_containers() {
    for Setup { b, .. } in roots() {
        let host = b.dir.path().join("host");
        let bind = format!("{}:/mnt", host.display());
        // Docker makes a missing host directory for -v.
        sh(&b, &["-v", &bind], "echo one > /mnt/f");
        assert_eq!(std::fs::read_to_string(host.join("f")).unwrap(), "one\n");
        std::fs::write(host.join("from-host"), "h\n").unwrap();
        assert_eq!(
            sh(&b, &["-v", &bind], "cat /mnt/f /mnt/from-host"),
            "one\nh\n"
        );

        let out = b.ok(&[
            "run",
            "--name",
            "writer",
            "-v",
            "store:/store",
            "busybox",
            "sh",
            "-c",
            "echo kept > /store/k; echo layer > /in-layer",
        ]);
        assert_eq!(out, "");
        assert_eq!(sh(&b, &["-v", "store:/store"], "cat /store/k"), "kept\n");
        // What a container writes in a volume is not in its layer.
        let diff = b.ok(&["diff", "writer"]);
        assert!(diff.contains("A /in-layer"), "{diff}");
        assert!(!diff.contains("/store/k"), "{diff}");
        assert_eq!(
            std::fs::read_to_string(b.root.join("volumes/store/_data/k")).unwrap(),
            "kept\n"
        );
        b.ok(&["rm", "writer"]);
        assert_eq!(volumes(&b), ["store"], "rm without -v keeps volumes");

        // :ro refuses writes for binds and volumes alike; rw is the default.
        let ro = format!("{}:/mnt:ro", host.display());
        let out = sh(
            &b,
            &["-v", &ro, "-v", "store:/store:ro"],
            "cat /mnt/f; touch /mnt/x || echo bind-ro; touch /store/x || echo vol-ro",
        );
        assert_eq!(out, "one\nbind-ro\nvol-ro\n");
        assert!(!host.join("x").exists());
        let out = sh(&b, &["-v", "store:/store:rw"], "touch /store/x && echo rw");
        assert_eq!(out, "rw\n");
        // A read-only root leaves volumes writable.
        let out = sh(
            &b,
            &["--read-only", "-v", "store:/store"],
            "touch /nope 2>/dev/null || echo root-ro; touch /store/y && echo vol-rw",
        );
        assert_eq!(out, "root-ro\nvol-rw\n");

        // --mount says the same things in another syntax.
        let m = format!("type=bind,source={},target=/m,readonly", host.display());
        assert_eq!(
            sh(
                &b,
                &["--mount", &m, "--mount", "type=volume,src=store,dst=/s"],
                "cat /m/f /s/k; touch /m/y || echo ro"
            ),
            "one\nkept\nro\n"
        );
        b.ok(&["volume", "rm", "store"]);
        assert_no_mounts(&b);
    }
}

#[test]
fn new_volumes_are_seeded_from_the_image_binds_are_not() {
    for Setup { b, .. } in roots() {
        let out = sh(
            &b,
            &["-v", "seeded:/data"],
            "cat /data/seed.txt /data/sub/deep.txt; echo mine > /data/seed.txt",
        );
        assert_eq!(out, "from the image\ndeep\n");
        // Seeded once: a volume with content is never overwritten.
        assert_eq!(
            sh(&b, &["-v", "seeded:/data"], "cat /data/seed.txt"),
            "mine\n"
        );
        let host = b.dir.path().join("empty");
        let bind = format!("{}:/data", host.display());
        assert_eq!(sh(&b, &["-v", &bind], "ls -A /data"), "");
        assert_eq!(std::fs::read_dir(&host).unwrap().count(), 0);
        // nocopy leaves a new volume empty.
        assert_eq!(sh(&b, &["-v", "bare:/data:nocopy"], "ls -A /data"), "");
        // A path the image does not have gives an empty volume.
        assert_eq!(sh(&b, &["-v", "fresh:/nowhere"], "ls -A /nowhere"), "");
        b.ok(&["volume", "rm", "seeded", "bare", "fresh"]);
        assert!(volumes(&b).is_empty());
    }
}

#[test]
fn image_volumes_are_anonymous_and_rm_v_removes_only_those() {
    for Setup { b, .. } in roots() {
        let id = b.ok(&[
            "create",
            "--name",
            "c1",
            "-v",
            "named:/named",
            "-v",
            "/anon",
            "withvol",
            "sh",
            "-c",
            "cat /data/seed.txt; ls /anon",
        ]);
        let id = id.trim();
        let vols = volumes(&b);
        assert_eq!(vols.len(), 3, "{vols:?}");
        let anonymous: Vec<&String> = vols.iter().filter(|v| *v != "named").collect();
        for v in &anonymous {
            assert!(
                v.len() == 64 && v.bytes().all(|c| c.is_ascii_hexdigit()),
                "{v}"
            );
        }
        // The image's VOLUME is seeded like any new volume.
        let out = b.run(&["start", "-a", "c1"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "from the image\n");

        let doc = b.ok(&["container", "inspect", "c1"]);
        let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
        let mounts = doc[0]["Mounts"].as_array().unwrap();
        assert_eq!(mounts.len(), 3, "{mounts:?}");
        let data = mounts.iter().find(|m| m["Destination"] == "/data").unwrap();
        assert_eq!(data["Type"], "volume");
        assert_eq!(data["Driver"], "local");
        assert_eq!(data["RW"], true);
        let name = data["Name"].as_str().unwrap();
        let root = b.root.canonicalize().unwrap_or(b.root.clone());
        let source = data["Source"].as_str().unwrap();
        assert!(
            source == format!("{}/volumes/{name}/_data", b.root.display())
                || source == format!("{}/volumes/{name}/_data", root.display()),
            "{source}"
        );
        let named = mounts
            .iter()
            .find(|m| m["Destination"] == "/named")
            .unwrap();
        assert_eq!(named["Mode"], "z");
        assert_eq!(
            doc[0]["HostConfig"]["Binds"],
            serde_json::json!(["named:/named"])
        );
        assert_eq!(
            doc[0]["Config"]["Volumes"],
            serde_json::json!({"/anon": {}, "/data": {}})
        );
        // config.v2.json keeps them in Docker's shape.
        let record =
            std::fs::read_to_string(b.root.join(format!("containers/{id}/config.v2.json")))
                .unwrap();
        let record: serde_json::Value = serde_json::from_str(&record).unwrap();
        assert_eq!(record["MountPoints"]["/named"]["Name"], "named");
        assert_eq!(record["MountPoints"]["/named"]["Spec"]["Source"], "named");

        assert_eq!(b.ok(&["rm", "-v", "c1"]), "c1\n");
        assert_eq!(volumes(&b), ["named"], "rm -v keeps named volumes");
        // --rm removes a run's anonymous volumes too.
        sh(&b, &["-v", "/tmpvol"], "true");
        assert_eq!(volumes(&b), ["named"]);
        b.ok(&["volume", "rm", "named"]);
        assert_no_mounts(&b);
    }
}

#[test]
fn volumes_from_shares_another_containers_mounts() {
    for Setup { b, .. } in roots() {
        let host = b.dir.path().join("shared-host");
        let bind = format!("{}:/hostdir", host.display());
        // A data container, never started: its volumes are seeded at create.
        b.ok(&["create", "--name", "data", "-v", &bind, "withvol", "true"]);
        let out = sh(
            &b,
            &["--volumes-from", "data"],
            "cat /data/seed.txt; echo shared > /data/new; echo h > /hostdir/h",
        );
        assert_eq!(out, "from the image\n");
        assert_eq!(std::fs::read_to_string(host.join("h")).unwrap(), "h\n");
        assert_eq!(
            sh(
                &b,
                &["--volumes-from", "data:ro"],
                "cat /data/new; touch /data/x || echo ro"
            ),
            "shared\nro\n"
        );
        // A container borrowing the volume does not take it with it.
        b.ok(&[
            "create",
            "--name",
            "borrower",
            "--volumes-from",
            "data",
            "busybox",
        ]);
        b.ok(&["rm", "-v", "borrower"]);
        assert_eq!(volumes(&b).len(), 1);
        let err = b.fails(
            &["run", "--rm", "--volumes-from", "nope", "busybox", "true"],
            125,
        );
        assert!(err.contains("No such container: nope"), "{err}");
        b.fails(
            &[
                "run",
                "--rm",
                "--volumes-from",
                "data:rslave",
                "busybox",
                "true",
            ],
            125,
        );
        b.ok(&["rm", "-v", "data"]);
        assert!(volumes(&b).is_empty());
    }
}

#[test]
fn volume_commands_print_like_docker() {
    for Setup { b, .. } in roots() {
        assert_eq!(b.ok(&["volume", "create", "alpha"]), "alpha\n");
        assert_eq!(
            b.ok(&["volume", "create", "--label", "env=prod", "--label", "x", "beta"]),
            "beta\n"
        );
        // Creating an existing volume hands it back.
        assert_eq!(b.ok(&["volume", "create", "alpha"]), "alpha\n");
        let generated = b.ok(&["volume", "create"]);
        let generated = generated.trim();
        assert_eq!(generated.len(), 64, "{generated}");
        b.ok(&["volume", "rm", generated]);

        assert_eq!(
            b.ok(&["volume", "ls"]),
            "DRIVER    VOLUME NAME\nlocal     alpha\nlocal     beta\n"
        );
        assert_eq!(
            b.ok(&[
                "volume",
                "ls",
                "--format",
                "{{.Name}}:{{.Driver}}:{{.Labels}}"
            ]),
            "alpha:local:\nbeta:local:env=prod,x=\n"
        );
        assert_eq!(
            b.ok(&["volume", "ls", "-q", "-f", "label=env=prod"]),
            "beta\n"
        );

        let doc = b.ok(&["volume", "inspect", "beta"]);
        assert!(
            doc.starts_with("[\n    {\n        \"CreatedAt\": "),
            "{doc}"
        );
        let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
        let v = &doc[0];
        assert_eq!(v["Driver"], "local");
        assert_eq!(v["Scope"], "local");
        assert_eq!(v["Name"], "beta");
        assert_eq!(v["Labels"], serde_json::json!({"env": "prod", "x": ""}));
        assert_eq!(v["Options"], serde_json::json!({}));
        assert_eq!(
            v["Mountpoint"],
            format!("{}/volumes/beta/_data", b.root.display())
        );
        assert!(v["CreatedAt"].as_str().unwrap().ends_with('Z'));
        assert_eq!(
            b.ok(&[
                "volume",
                "inspect",
                "-f",
                "{{.Name}} {{.Driver}}",
                "alpha",
                "beta"
            ]),
            "alpha local\nbeta local\n"
        );
        let err = b.fails(&["volume", "inspect", "nope"], 1);
        assert_eq!(err, "Error: No such volume: nope\n");

        // In use (by any container, even a stopped one): refused.
        let id = b.ok(&["create", "-v", "alpha:/a", "busybox"]);
        let id = id.trim();
        assert_eq!(
            b.ok(&["volume", "ls", "-q", "-f", "dangling=true"]),
            "beta\n"
        );
        assert_eq!(
            b.ok(&["volume", "ls", "-q", "-f", "dangling=false"]),
            "alpha\n"
        );
        let err = b.fails(&["volume", "rm", "alpha"], 1);
        assert_eq!(
            err,
            format!("Error response from daemon: remove alpha: volume is in use - [{id}]\n")
        );
        let err = b.fails(&["volume", "rm", "-f", "alpha"], 1);
        assert!(err.contains("volume is in use"), "{err}");
        let err = b.fails(&["volume", "rm", "nope"], 1);
        assert_eq!(err, "Error: No such volume: nope\n");
        b.ok(&["volume", "rm", "-f", "nope"]);

        // Prune asks first, and takes only what no container uses.
        std::fs::write(b.root.join("volumes/beta/_data/f"), vec![7u8; 1500]).unwrap();
        let df = b.ok(&["system", "df"]);
        let row = df.lines().find(|l| l.starts_with("Local Volumes")).unwrap();
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            ["Local", "Volumes", "2", "1", "1.5kB", "1.5kB", "(100%)"],
            "{df}"
        );
        let out = b.run_stdin(&["volume", "prune"], b"n\n");
        assert!(out.status.success());
        assert_eq!(volumes(&b), ["alpha", "beta"]);
        assert_eq!(
            b.ok(&["volume", "prune", "-f"]),
            "Deleted Volumes:\nbeta\n\nTotal reclaimed space: 1.5kB\n"
        );
        assert_eq!(
            b.ok(&["volume", "prune", "-f"]),
            "Total reclaimed space: 0B\n"
        );
        b.ok(&["rm", id]);
        assert_eq!(b.ok(&["volume", "rm", "alpha"]), "alpha\n");
        assert!(volumes(&b).is_empty());
        b.fails(&["volume", "create", "a"], 1);
        let err = b.fails(&["volume", "create", "bad/name"], 1);
        assert!(err.contains("includes invalid characters"), "{err}");
        b.fails(&["volume", "create", "-d", "nfs", "vv"], 1);
        b.fails(&["volume", "ls", "-f", "colour=red"], 1);
    }
}

#[test]
fn concurrent_runs_share_one_new_volume() {
    for Setup { b, .. } in roots() {
        let children: Vec<_> = (0..4)
            .map(|i| {
                b.cmd(&[
                    "run",
                    "--rm",
                    "-v",
                    "together:/data",
                    "busybox",
                    "sh",
                    "-c",
                    &format!("echo {i} > /data/{i}"),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
            })
            .collect();
        for mut c in children {
            assert!(c.wait().unwrap().success());
        }
        assert_eq!(volumes(&b), ["together"]);
        let out = sh(&b, &["-v", "together:/data"], "ls /data");
        // Seeded once, before or beside the writes; all four writes kept.
        for i in 0..4 {
            assert!(out.lines().any(|l| l == i.to_string()), "{out}");
        }
        assert!(out.lines().any(|l| l == "seed.txt"), "{out}");
        b.ok(&["volume", "rm", "together"]);
    }
}

#[test]
fn tmpfs_mounts_are_tmpfs_inside() {
    for Setup { b, .. } in roots() {
        let line = |out: String, dest: &str| {
            out.lines()
                .find(|l| l.split(' ').nth(1) == Some(dest))
                .unwrap_or_else(|| panic!("no {dest} in {out}"))
                .to_string()
        };
        let out = sh(
            &b,
            &["--tmpfs", "/run"],
            "cat /proc/mounts; echo x > /run/f",
        );
        let run = line(out, "/run");
        assert!(run.starts_with("tmpfs /run tmpfs rw,"), "{run}");
        for opt in ["nosuid", "nodev", "noexec"] {
            assert!(run.contains(opt), "{run}");
        }
        let out = sh(
            &b,
            &["--read-only", "--tmpfs", "/run"],
            "echo x > /run/f && cat /run/f; touch /f 2>/dev/null || echo ro",
        );
        assert_eq!(out, "x\nro\n");
        let out = sh(
            &b,
            &["--tmpfs", "/cache:size=1m,mode=1770"],
            "cat /proc/mounts",
        );
        let cache = line(out, "/cache");
        assert!(
            cache.contains("size=1024k") && cache.contains("mode=1770"),
            "{cache}"
        );
        let out = sh(
            &b,
            &["--mount", "type=tmpfs,dst=/t,tmpfs-size=2m"],
            "cat /proc/mounts",
        );
        assert!(line(out, "/t").contains("size=2048k"));
        // Nothing written to a tmpfs reaches the container's layer.
        b.ok(&[
            "run",
            "--name",
            "tm",
            "--tmpfs",
            "/data",
            "busybox",
            "sh",
            "-c",
            "echo x > /data/x",
        ]);
        let diff = b.ok(&["diff", "tm"]);
        assert!(!diff.contains("/data/x"), "{diff}");
        let doc = b.ok(&[
            "container",
            "inspect",
            "-f",
            "{{json .HostConfig.Tmpfs}}",
            "tm",
        ]);
        assert_eq!(doc, "{\"/data\":\"\"}\n");
        b.ok(&["rm", "tm"]);
        b.fails(
            &["run", "--rm", "--tmpfs", "/x:bogus", "busybox", "true"],
            125,
        );
        b.fails(
            &["run", "--rm", "--tmpfs", "relative", "busybox", "true"],
            125,
        );
        assert_no_mounts(&b);
    }
}

#[test]
fn symlinked_destinations_stay_inside_the_container() {
    for Setup { b, outside } in roots() {
        let untouched = |outside: &Path| {
            let names: Vec<String> = std::fs::read_dir(outside)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(names, ["secret"], "the host dir was touched");
        };
        // The image's /escape points at a host path: the volume goes on
        // that path inside the container, and is not seeded from the host.
        let out = sh(
            &b,
            &["-v", "esc:/escape"],
            "ls -A /escape; echo in > /escape/written",
        );
        assert_eq!(out, "");
        untouched(&outside);
        assert_eq!(
            std::fs::read_to_string(b.root.join("volumes/esc/_data/written")).unwrap(),
            "in\n"
        );
        let host = b.dir.path().join("bindsrc");
        std::fs::create_dir(&host).unwrap();
        std::fs::write(host.join("b"), "bound\n").unwrap();
        let bind = format!("{}:/escape-up/deeper/mnt", host.display());
        assert_eq!(
            sh(&b, &["-v", &bind], "cat /escape-up/deeper/mnt/b"),
            "bound\n"
        );
        untouched(&outside);
        assert_eq!(sh(&b, &["--tmpfs", "/escape/t"], "ls /escape"), "t\n");
        untouched(&outside);

        // A container plants links in a volume; a later container mounts
        // on and below them. The mount points are made inside the
        // container, where the links lead when resolved in it.
        let plant = format!(
            "ln -s {} /vol/link; ln -s {} /vol/file-link",
            outside.display(),
            outside.join("f").display()
        );
        sh(&b, &["-v", "trap:/vol"], &plant);
        let bind = format!("{}:/vol/link/sub", host.display());
        let file_bind = format!("{}:/vol/file-link", host.join("b").display());
        let inside = outside.display().to_string();
        let out = sh(
            &b,
            &["-v", "trap:/vol", "-v", &bind, "-v", &file_bind],
            &format!("cat /vol/link/sub/b /vol/file-link; ls {inside}"),
        );
        assert_eq!(out, "bound\nbound\nf\nsub\n");
        untouched(&outside);
        b.ok(&["volume", "rm", "esc", "trap"]);
        assert_no_mounts(&b);
    }
}

#[test]
fn bad_mount_flags_fail_with_125() {
    for Setup { b, .. } in roots() {
        let cases: &[(&[&str], &str)] = &[
            (&["-v", ":/x"], "invalid volume specification: ':/x'"),
            (
                &["-v", "/data:rw"],
                "invalid volume specification: '/data:rw'",
            ),
            (&["-v", "/h:/d:bogus"], "invalid mode: bogus"),
            (
                &["-v", "a:b:c:d"],
                "invalid volume specification: 'a:b:c:d'",
            ),
            (
                &["-v", "rel/path:/d"],
                "includes invalid characters for a local volume name",
            ),
            (&["-v", "relative"], "mount path must be absolute"),
            (&["-v", "/h:/"], "destination can't be '/'"),
            (&["-v", "v1:/d", "-v", "v2:/d"], "Duplicate mount point: /d"),
            (
                &["--mount", "type=bind,dst=/d"],
                "field Source must not be empty",
            ),
            (
                &["--mount", "type=bind,src=/surely/not/here,dst=/d"],
                "bind source path does not exist: /surely/not/here",
            ),
            (&["--mount", "type=floppy,dst=/d"], "invalid mount type"),
        ];
        for (flags, msg) in cases {
            let mut args = vec!["run", "--rm"];
            args.extend_from_slice(flags);
            args.extend_from_slice(&["busybox", "true"]);
            let err = b.fails(&args, 125);
            assert!(
                err.starts_with("berth: Error response from daemon: ") && err.contains(msg),
                "{flags:?}: {err}"
            );
        }
        assert_eq!(b.ok(&["ps", "-aq"]), "", "nothing was created");
        assert!(volumes(&b).is_empty(), "no volume was made");
    }
}

/// Volumes, binds and image VOLUMEs work for the unprivileged test user
/// too, on every driver.
#[test]
fn rootless_volumes_as_the_test_user() {
    for driver in ["overlay", "fuse", "vfs"] {
        rootless_volumes_as_the_test_user_on(driver);
    }
}

fn rootless_volumes_as_the_test_user_on(driver: &str) {
    let Some(b) = Berth::new().with_driver(driver).as_test_user() else {
        eprintln!("skipped: no unprivileged test user (cargo xtask test creates one)");
        return;
    };
    let (uid, gid) = berth_e2e::test_user().unwrap();
    let dir = b.dir.path();
    let outside = dir.join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), "host only\n").unwrap();
    let tar = tarball_with_extras(dir, &outside);
    let host = dir.join("host");
    std::fs::create_dir(&host).unwrap();
    for p in [&host, &tar] {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    }
    let run = |args: &[&str]| b.run(args);
    let ok = |args: &[&str]| b.ok(args);
    let tar = tar.to_str().unwrap();
    ok(&[
        "import",
        "-c",
        "CMD [\"/bin/sh\"]",
        "-c",
        "VOLUME /data",
        tar,
        "withvol",
    ]);
    let bind = format!("{}:/mnt", host.display());
    let out = ok(&[
        "run",
        "--rm",
        "-v",
        "keep:/keep",
        "-v",
        &bind,
        "withvol",
        "sh",
        "-c",
        "cat /data/seed.txt; echo v > /keep/v; echo b > /mnt/b",
    ]);
    assert_eq!(out, "from the image\n");
    assert_eq!(std::fs::read_to_string(host.join("b")).unwrap(), "b\n");
    let out = ok(&[
        "run",
        "--rm",
        "-v",
        "keep:/keep:ro",
        "withvol",
        "sh",
        "-c",
        "cat /keep/v; touch /keep/x || echo ro",
    ]);
    assert_eq!(out, "v\nro\n");
    let out = ok(&[
        "run",
        "--rm",
        "-v",
        "esc:/escape",
        "--tmpfs",
        "/run",
        "withvol",
        "sh",
        "-c",
        "echo in > /escape/w; mkdir -p /escape/ro/sub; chmod 555 /escape/ro; \
         grep -c ' /run tmpfs ' /proc/mounts",
    ]);
    assert_eq!(out, "1\n");
    let names: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
    assert_eq!(names.len(), 1, "the host dir was touched");
    // --rm took the anonymous volumes; named ones stay, and go even with
    // a read-only directory in them.
    assert_eq!(ok(&["volume", "ls", "-q"]), "esc\nkeep\n");
    let out = run(&["volume", "rm", "esc", "keep"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ok(&["volume", "ls", "-q"]), "");
}
