//! End-to-end: `commit`, `export`, `cp` and `container prune` through the
//! built `berth` binary, under the overlay and fuse drivers as root (vfs
//! otherwise), on stopped containers made by foreground `run` and `create`.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::{busybox_tarball, sha256, Berth, RawTar};
use serde_json::Value;

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// The drivers to test under: the union drivers as root, vfs (the one
/// rootless containers use) otherwise.
fn drivers() -> &'static [&'static str] {
    if is_root() {
        &["overlay", "fuse"]
    } else {
        &["vfs"]
    }
}

/// A fresh root per driver with `busybox` imported.
fn roots() -> Vec<Berth> {
    drivers()
        .iter()
        .map(|driver| {
            let b = Berth::new().with_driver(driver);
            let tar = busybox_tarball(b.dir.path());
            b.ok(&[
                "import",
                "-c",
                "CMD [\"/bin/sh\"]",
                tar.to_str().unwrap(),
                "busybox",
            ]);
            b
        })
        .collect()
}

fn driver(b: &Berth) -> String {
    b.ok(&["info", "--format", "{{.Driver}}"])
        .trim()
        .to_string()
}

/// Runs berth, asserts success, returns raw stdout (tars are not UTF-8).
fn ok_bytes(b: &Berth, args: &[&str]) -> Vec<u8> {
    let out = b.run(args);
    assert!(
        out.status.success(),
        "berth {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn inspect(b: &Berth, name: &str) -> Value {
    let doc: Value = serde_json::from_str(&b.ok(&["inspect", name])).unwrap();
    doc[0].clone()
}

/// One tar entry, as far as a filesystem cares.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: char,
    mode: u32,
    uid: u64,
    gid: u64,
    data: Vec<u8>,
    link: String,
}

/// A tar's entries by name (trailing `/` kept for directories).
fn entries(tar: &[u8]) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(tar);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let h = e.header();
        let kind = match h.entry_type() {
            tar::EntryType::Regular => 'f',
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            tar::EntryType::Fifo => 'p',
            tar::EntryType::Char => 'c',
            other => panic!("unexpected entry type {other:?} for {name}"),
        };
        let (mode, uid, gid) = (h.mode().unwrap(), h.uid().unwrap(), h.gid().unwrap());
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(
            name,
            Entry {
                kind,
                mode,
                uid,
                gid,
                data,
                link,
            },
        );
    }
    out
}

/// The files of a docker-archive, by name.
fn archive_files(tar: &[u8]) -> BTreeMap<String, Vec<u8>> {
    entries(tar)
        .into_iter()
        .map(|(name, e)| (name, e.data))
        .collect()
}

/// `save IMAGE` as bytes.
fn save(b: &Berth, image: &str) -> Vec<u8> {
    let path = b.dir.path().join("saved.tar");
    b.ok(&["save", "-o", path.to_str().unwrap(), image]);
    std::fs::read(path).unwrap()
}

/// The top layer's tar of `image`, from `save`, with the config's diffIDs.
fn top_layer(b: &Berth, image: &str) -> (Vec<u8>, Vec<String>) {
    let files = archive_files(&save(b, image));
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let layers = manifest[0]["Layers"].as_array().unwrap();
    let top = layers.last().unwrap().as_str().unwrap();
    let config: Value =
        serde_json::from_slice(&files[manifest[0]["Config"].as_str().unwrap()]).unwrap();
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    (files[top].clone(), diff_ids)
}

/// Every path under the image's layer dirs with its type, mode, owner and
/// content: equal listings mean byte-identical layers.
fn layer_listing(b: &Berth, image: &str) -> Vec<String> {
    let doc = inspect(b, image);
    let data = &doc["GraphDriver"]["Data"];
    let mut dirs: Vec<String> = vec![data["UpperDir"].as_str().unwrap().to_string()];
    if let Some(lower) = data["LowerDir"].as_str() {
        dirs.extend(lower.split(':').map(str::to_string));
    }
    let mut out = Vec::new();
    for d in dirs {
        list(Path::new(&d), Path::new(&d), &mut out);
    }
    out
}

fn list(base: &Path, dir: &Path, out: &mut Vec<String>) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let content = if m.file_type().is_file() {
            sha256(&std::fs::read(&p).unwrap())
        } else if m.file_type().is_symlink() {
            std::fs::read_link(&p).unwrap().display().to_string()
        } else {
            String::new()
        };
        out.push(format!(
            "{} {:o} {}:{} {} {} {content}",
            p.strip_prefix(base).unwrap().display(),
            m.mode(),
            m.uid(),
            m.gid(),
            m.len() * u64::from(!m.is_dir()),
            m.mtime(),
        ));
        if m.is_dir() {
            list(base, &p, out);
        }
    }
}

/// Nothing of berth is left mounted under the root, and no temporary mount
/// point is left in any container directory.
fn assert_nothing_mounted(b: &Berth) {
    let root = b.root.canonicalize().unwrap();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo
            .lines()
            .any(|l| l.contains(root.to_str().unwrap())),
        "mounts left under {}:\n{mountinfo}",
        root.display()
    );
    if let Ok(dirs) = std::fs::read_dir(root.join("containers")) {
        for d in dirs.flatten().filter(|d| d.path().is_dir()) {
            for e in std::fs::read_dir(d.path()).unwrap().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                assert!(!name.starts_with("mnt-"), "left {}", e.path().display());
            }
        }
    }
}

#[test]
fn commit_layer_holds_exactly_the_changes() {
    for b in roots() {
        // A base whose /data has files, so the next layer can hide them.
        b.ok(&[
            "run",
            "--name",
            "base",
            "busybox",
            "sh",
            "-c",
            "mkdir /data && echo a > /data/a && echo b > /data/b",
        ]);
        let base = b.ok(&["commit", "base", "base:1"]);
        let base = base.trim();
        assert!(base.starts_with("sha256:") && base.len() == 71, "{base}");
        let saved_before = save(&b, "base:1");
        let layers_before = layer_listing(&b, "base:1");

        b.ok(&[
            "run",
            "--name",
            "box",
            "base:1",
            "sh",
            "-c",
            "echo hi > /new; rm /etc/group; echo changed > /etc/passwd; \
             rm -rf /data; mkdir /data; echo c > /data/c",
        ]);
        let id = b.ok(&[
            "container",
            "commit",
            "-m",
            "msg",
            "-a",
            "Ann",
            "-c",
            "CMD [\"cat\", \"/new\"]",
            "box",
            "img:1",
        ]);
        let id = id.trim();
        assert_eq!(
            b.ok(&["inspect", "-f", "{{.Id}}", "img:1"]).trim(),
            id,
            "commit prints the new image's ID"
        );

        let (layer, diff_ids) = top_layer(&b, "img:1");
        assert_eq!(diff_ids.len(), 3, "busybox, base, and one new layer");
        assert_eq!(
            &sha256(&layer),
            diff_ids.last().unwrap(),
            "diffID is the tar's sha256"
        );
        let got = entries(&layer);
        let names: Vec<&str> = got.keys().map(String::as_str).collect();
        // The union drivers record the re-made /data as an opaque directory;
        // vfs, which has no upper layer, whites out what was in it.
        let want: &[&str] = if driver(&b) == "vfs" {
            &[
                "data/",
                "data/.wh.a",
                "data/.wh.b",
                "data/c",
                "etc/",
                "etc/.wh.group",
                "etc/passwd",
                "new",
            ]
        } else {
            &[
                "data/",
                "data/.wh..wh..opq",
                "data/c",
                "etc/",
                "etc/.wh.group",
                "etc/passwd",
                "new",
            ]
        };
        assert_eq!(
            names, want,
            "no mount points (hostname, hosts, resolv.conf)"
        );
        assert_eq!(got["new"].data, b"hi\n");
        assert_eq!(got["etc/passwd"].data, b"changed\n");
        assert_eq!(got["data/c"].data, b"c\n");
        assert_eq!(got["etc/.wh.group"].kind, 'f');

        // The new image runs and sees the changes; its CMD is the -c one.
        assert_eq!(b.ok(&["run", "--rm", "img:1"]), "hi\n");
        assert_eq!(
            b.ok(&[
                "run",
                "--rm",
                "img:1",
                "sh",
                "-c",
                "ls /data; cat /etc/passwd; test -e /etc/group || echo no group",
            ]),
            "c\nchanged\nno group\n"
        );

        // The image's own layers did not change.
        assert_eq!(layer_listing(&b, "base:1"), layers_before);
        assert!(save(&b, "base:1") == saved_before, "base:1 saves the same");

        let doc = inspect(&b, "img:1");
        assert_eq!(doc["Config"]["Cmd"], serde_json::json!(["cat", "/new"]));
        assert_eq!(doc["Author"], "Ann");
        assert_eq!(doc["Parent"], base);
        let container = b.ok(&["container", "inspect", "-f", "{{.Id}}", "box"]);
        assert_eq!(doc["Container"], container.trim());
        assert_eq!(doc["ContainerConfig"]["Cmd"][0], "sh");
        let history = b.ok(&[
            "history",
            "--no-trunc",
            "--format",
            "{{.CreatedBy}}|{{.Comment}}",
            "img:1",
        ]);
        assert_eq!(
            history.lines().next().unwrap(),
            "sh -c echo hi > /new; rm /etc/group; echo changed > /etc/passwd; \
             rm -rf /data; mkdir /data; echo c > /data/c|msg"
        );
        assert_eq!(history.lines().count(), 3);
        // An image with children is not deleted from under them.
        let err = b.fails(&["rmi", "base:1"], 1);
        assert!(err.contains("being used by container"), "{err}");
        for c in ["base", "box"] {
            b.ok(&["rm", c]);
        }
        assert_nothing_mounted(&b);
    }
}

#[test]
fn commit_flags_and_errors() {
    for b in roots() {
        b.ok(&[
            "create", "--name", "fresh", "-e", "FOO=bar", "busybox", "true",
        ]);
        // No changes: Docker adds no layer, only a history entry.
        let id = b.ok(&[
            "commit",
            "--pause=false",
            "-c",
            "ENV A=1",
            "-c",
            "ENTRYPOINT [\"/bin/echo\"]",
            "-c",
            "LABEL x=y",
            "fresh",
        ]);
        let id = id.trim();
        let doc = inspect(&b, id);
        assert_eq!(doc["RootFS"]["Layers"].as_array().unwrap().len(), 1);
        assert_eq!(
            doc["Config"]["Entrypoint"],
            serde_json::json!(["/bin/echo"])
        );
        assert_eq!(doc["Config"]["Cmd"], Value::Null, "ENTRYPOINT clears CMD");
        assert_eq!(doc["Config"]["Labels"]["x"], "y");
        let env: Vec<&str> = doc["Config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(env.contains(&"FOO=bar") && env.contains(&"A=1"), "{env:?}");
        assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
        assert_eq!(
            b.ok(&["images", "-q", "--filter", "dangling=true"]).trim(),
            &id[7..19],
            "untagged"
        );
        assert_eq!(b.ok(&["run", "--rm", id, "hello"]), "hello\n");

        let err = b.fails(&["commit", "nope"], 1);
        assert_eq!(err, "Error response from daemon: No such container: nope\n");
        let err = b.fails(&["commit", "-c", "RUN true", "fresh"], 1);
        assert!(err.contains("RUN is not a valid change command"), "{err}");
        let err = b.fails(&["commit", "fresh", "Bad Ref"], 1);
        assert!(err.starts_with("Error response from daemon: "), "{err}");
        b.ok(&["rm", "fresh"]);
        assert_nothing_mounted(&b);
    }
}

#[test]
fn export_then_import_gives_the_same_filesystem() {
    for b in roots() {
        b.ok(&[
            "run",
            "--name",
            "box",
            "busybox",
            "sh",
            "-c",
            "echo hi > /new; chmod 4750 /new; mkdir -p /d/e; ln -s /new /d/link; \
             ln /new /z-hard; mkfifo /d/fifo; rm /etc/group",
        ]);
        let tar = ok_bytes(&b, &["export", "box"]);
        let file = b.dir.path().join("c.tar");
        b.ok(&["container", "export", "-o", file.to_str().unwrap(), "box"]);
        assert!(
            std::fs::read(&file).unwrap() == tar,
            "-o writes the same tar"
        );
        let first = entries(&tar);
        assert_eq!(first["new"].data, b"hi\n");
        assert_eq!(first["new"].mode, 0o4750);
        assert_eq!(first["d/link"].link, "/new");
        assert_eq!(
            first["z-hard"].kind, 'h',
            "the second name links to the first"
        );
        assert_eq!(first["d/fifo"].kind, 'p');
        assert!(first.contains_key("bin/busybox") && first.contains_key("d/e/"));
        assert!(!first.contains_key("etc/group"));

        b.ok(&["import", file.to_str().unwrap(), "exported:1"]);
        b.ok(&["create", "--name", "again", "exported:1", "true"]);
        let second = entries(&ok_bytes(&b, &["export", "again"]));
        assert_eq!(
            first.keys().collect::<Vec<_>>(),
            second.keys().collect::<Vec<_>>()
        );
        assert_eq!(first, second, "same files, contents, modes and owners");
        assert_eq!(b.ok(&["run", "--rm", "exported:1", "cat", "/new"]), "hi\n");

        let err = b.fails(&["export", "nope"], 1);
        assert_eq!(err, "Error response from daemon: No such container: nope\n");
        let missing = b.dir.path().join("no/such/dir/x.tar");
        b.fails(&["export", "-o", missing.to_str().unwrap(), "box"], 1);
        // A terminal on stdout is refused, as Docker does.
        let berth = berth_e2e::berth_bin();
        let out = Command::new("script")
            .args([
                "-qec",
                &format!("{} export box", berth.display()),
                "/dev/null",
            ])
            .env("BERTH_ROOT", &b.root)
            .env("BERTH_STORAGE_DRIVER", driver(&b))
            .stdin(Stdio::null())
            .output();
        if let Ok(out) = out {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                ),
                "{text}"
            );
        }
        for c in ["box", "again"] {
            b.ok(&["rm", c]);
        }
        assert_nothing_mounted(&b);
    }
}

#[test]
fn cp_both_ways_stays_inside_the_container() {
    for b in roots() {
        let host = b.dir.path().join("host");
        std::fs::create_dir(&host).unwrap();
        let h = |p: &str| host.join(p).to_str().unwrap().to_string();
        // Outside every container: what a symlink inside one must not reach.
        let secret = b.dir.path().join("secret");
        std::fs::write(&secret, "host secret").unwrap();
        let hostdir = b.dir.path().join("hostdir");
        std::fs::create_dir(&hostdir).unwrap();
        let script = format!(
            "mkdir -p /src/sub && echo one > /src/sub/one && echo top > /src/top && \
             ln -s /etc/passwd /pw && ln -s ../../../../../../../.. /up && \
             mkdir -p {hd} && ln -s {hd} /hostdir && ln -s {secret} /secretlink",
            hd = hostdir.display(),
            secret = secret.display()
        );
        b.ok(&["run", "--name", "box", "busybox", "sh", "-c", &script]);
        let read = |p: &str| std::fs::read_to_string(host.join(p)).unwrap();

        // Out of the container, Docker's placement rules.
        b.ok(&["cp", "box:/src/top", &format!("{}/", h(""))]);
        assert_eq!(read("top"), "top\n");
        b.ok(&["cp", "box:src/top", &h("renamed")]);
        assert_eq!(read("renamed"), "top\n", "container paths are from /");
        b.ok(&["cp", "box:/src", &h("copy")]);
        assert_eq!(read("copy/sub/one"), "one\n", "a new path becomes the dir");
        b.ok(&["container", "cp", "box:/src", &h("copy")]);
        assert_eq!(
            read("copy/src/sub/one"),
            "one\n",
            "an existing dir gets it inside"
        );
        std::fs::create_dir(host.join("contents")).unwrap();
        b.ok(&["cp", "box:/src/.", &h("contents")]);
        assert_eq!(read("contents/top"), "top\n", "dir/. copies the contents");
        assert!(!host.join("contents/src").exists());

        // Symlinks are copied as links, or followed with -L.
        b.ok(&["cp", "box:/pw", &h("pw")]);
        assert_eq!(
            std::fs::read_link(host.join("pw")).unwrap(),
            Path::new("/etc/passwd")
        );
        b.ok(&["cp", "-L", "box:/pw", &h("pwL")]);
        assert!(read("pwL").starts_with("root:x:0:0:"));
        // Links that lead out of the container resolve inside it.
        let err = b.fails(&["cp", "-L", "box:/secretlink", &h("s1")], 1);
        assert_eq!(err, "Error: No such container:path: box:/secretlink\n");
        let through_up = format!("box:/up{}", secret.display());
        let err = b.fails(&["cp", &through_up, &h("s2")], 1);
        assert_eq!(
            err,
            format!("Error: No such container:path: {through_up}\n")
        );
        assert!(!host.join("s1").exists() && !host.join("s2").exists());
        std::fs::write(host.join("in.txt"), "in").unwrap();
        b.ok(&["cp", &h("in.txt"), "box:/hostdir/"]);
        assert!(
            std::fs::read_dir(&hostdir).unwrap().next().is_none(),
            "nothing written on the host through the container's link"
        );
        let inside = format!("box:{}/in.txt", hostdir.display());
        b.ok(&["cp", &inside, &h("back")]);
        assert_eq!(read("back"), "in");

        // Into the container: a file and a directory tree.
        b.ok(&["cp", &h("copy"), "box:/newdir"]);
        b.ok(&["cp", &h("in.txt"), "box:/src/top"]);
        let diff = b.ok(&["diff", "box"]);
        for line in ["A /newdir/sub/one", "A /newdir/src/top", "A /src/top"] {
            assert!(diff.lines().any(|l| l == line), "{line} in {diff}");
        }
        b.ok(&["cp", "box:/src/top", &h("top2")]);
        assert_eq!(read("top2"), "in", "a file over a file replaces it");

        // Tar streams both ways.
        let tar = ok_bytes(&b, &["cp", "box:/src", "-"]);
        let names: Vec<String> = entries(&tar).into_keys().collect();
        assert_eq!(names, ["src/", "src/sub/", "src/sub/one", "src/top"]);
        let stream = RawTar::new().file("streamed", b"via stdin").finish();
        let out = b.run_stdin(&["cp", "-", "box:/tmp"], &stream);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        b.ok(&["cp", "box:/tmp/streamed", &h("streamed")]);
        assert_eq!(read("streamed"), "via stdin");
        let out = b.run_stdin(&["cp", "-", "box:/etc/passwd"], &stream);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("destination \"box:/etc/passwd\" must be a directory"),
            "{out:?}"
        );

        // Owners: the container's root, or the source's with -a.
        if is_root() {
            std::os::unix::fs::chown(host.join("in.txt"), Some(1234), Some(4321)).unwrap();
            b.ok(&["cp", &h("in.txt"), "box:/tmp/plain"]);
            b.ok(&["cp", "-a", &h("in.txt"), "box:/tmp/kept"]);
            let tar = entries(&ok_bytes(&b, &["cp", "box:/tmp", "-"]));
            assert_eq!((tar["tmp/plain"].uid, tar["tmp/plain"].gid), (0, 0));
            assert_eq!((tar["tmp/kept"].uid, tar["tmp/kept"].gid), (1234, 4321));
            assert_eq!(tar["tmp/kept"].mode, 0o644);
            b.ok(&["cp", "-a", "box:/tmp/kept", &h("kept")]);
            let m = std::fs::metadata(host.join("kept")).unwrap();
            assert_eq!((m.uid(), m.gid()), (1234, 4321));
            assert_eq!(m.permissions().mode() & 0o777, 0o644);
        }

        // Errors, with Docker's words and exit code 1.
        let fails = |args: &[&str], want: &str| {
            let err = b.fails(args, 1);
            assert!(err.contains(want), "{args:?}: {err}");
        };
        fails(
            &["cp", "box:/nope", &h("x")],
            "Error: No such container:path: box:/nope",
        );
        fails(
            &["cp", "nosuch:/etc", &h("x")],
            "No such container:path: nosuch:/etc",
        );
        fails(
            &["cp", &h("missing"), "box:/tmp"],
            "no such file or directory",
        );
        fails(
            &["cp", &h("in.txt"), "box:/nope/x"],
            "No such container:path: box:/nope",
        );
        fails(&["cp", "box:/src", &h("top")], "cannot copy directory");
        fails(
            &["cp", "box:/src/top", &format!("{}/", h("nodir"))],
            "no such directory",
        );
        fails(&["cp", "box:/src", &h("a/b/c")], "invalid output path");
        fails(
            &["cp", &h("in.txt"), &h("x")],
            "must specify at least one container source",
        );
        fails(
            &["cp", "box:/a", "box:/b"],
            "copying between containers is not supported",
        );
        fails(&["cp", "box:/src/top/", &h("x")], "not a directory");
        b.ok(&["create", "--read-only", "--name", "ro", "busybox"]);
        fails(
            &["cp", &h("in.txt"), "ro:/tmp/"],
            "container rootfs is marked read-only",
        );

        for c in ["box", "ro"] {
            b.ok(&["rm", c]);
        }
        assert_nothing_mounted(&b);
    }
}

#[test]
fn running_containers_copy_commit_and_survive_prune() {
    for b in roots() {
        let child = b.run_in_background(
            "live",
            &["busybox", "sh", "-c", "echo live > /live; exec sleep 60"],
        );
        // The script may not have written /live yet: wait for it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !b.run(&["cp", "live:/live", "-"]).status.success() {
            assert!(Instant::now() < deadline, "/live never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
        let f = b.dir.path().join("f");
        std::fs::write(&f, "from host").unwrap();
        b.ok(&["cp", f.to_str().unwrap(), "live:/tmp/"]);
        b.ok(&["commit", "live", "live:1"]);
        assert_eq!(
            b.ok(&["run", "--rm", "live:1", "cat", "/live", "/tmp/f"]),
            "live\nfrom host"
        );
        let out = b.ok(&["container", "prune", "-f"]);
        assert_eq!(
            out, "Total reclaimed space: 0B\n",
            "a running container stays"
        );
        assert!(b.ok(&["ps"]).contains(" live"));
        b.ok(&["rm", "-f", "live"]);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(137));
        assert_nothing_mounted(&b);
    }
}

#[test]
fn container_prune_asks_then_removes_stopped_containers() {
    const PROMPT: &str =
        "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ";
    for b in roots() {
        let made = b.ok(&["create", "--name", "made", "busybox", "true"]);
        b.ok(&["run", "--name", "ran", "busybox", "sh", "-c", "echo x > /f"]);
        let ran = b.ok(&["container", "inspect", "-f", "{{.Id}}", "ran"]);

        let out = b.run_stdin(&["container", "prune"], b"n\n");
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("{PROMPT}Total reclaimed space: 0B\n")
        );
        assert_eq!(b.ok(&["ps", "-aq"]).lines().count(), 2, "nothing removed");

        let out = b.run_stdin(&["container", "prune"], b"y\n");
        assert!(out.status.success());
        let out = String::from_utf8(out.stdout).unwrap();
        let rest = out.strip_prefix(PROMPT).expect("prompt first");
        let mut lines = rest.lines();
        assert_eq!(lines.next(), Some("Deleted Containers:"));
        let mut deleted = vec![lines.next().unwrap(), lines.next().unwrap()];
        deleted.sort();
        let mut want = vec![made.trim(), ran.trim()];
        want.sort();
        assert_eq!(deleted, want);
        assert_eq!(lines.next(), Some(""));
        // /f is the only file with content in their layers.
        assert_eq!(lines.next(), Some("Total reclaimed space: 2B"));
        assert_eq!(lines.next(), None);
        assert_eq!(b.ok(&["ps", "-aq"]), "");
        assert_eq!(
            b.ok(&["container", "prune", "-f"]),
            "Total reclaimed space: 0B\n"
        );
        assert_nothing_mounted(&b);
    }
}

/// As an unprivileged user, on every driver, commit, export and cp work
/// the same.
#[test]
fn rootless_commit_export_cp() {
    for driver in ["overlay", "fuse", "vfs"] {
        rootless_commit_export_cp_on(driver);
    }
}

fn rootless_commit_export_cp_on(driver: &str) {
    let Some(b) = Berth::new().with_driver(driver).as_test_user() else {
        eprintln!("skipped: no unprivileged test user (cargo xtask test creates one)");
        return;
    };
    let b = berth_e2e::with_busybox(b);
    let home = b.dir.path();
    let run = |args: &[&str]| {
        let out = b
            .cmd(args)
            .current_dir(home)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "rootless berth {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    run(&[
        "run",
        "--name",
        "box",
        "busybox",
        "sh",
        "-c",
        "echo hi > /new; rm /etc/group",
    ]);
    run(&["commit", "-c", "CMD [\"cat\", \"/new\"]", "box", "img"]);
    assert_eq!(run(&["run", "--rm", "img"]), b"hi\n");
    let exported = entries(&run(&["export", "box"]));
    assert_eq!(exported["new"].data, b"hi\n");
    assert!(!exported.contains_key("etc/group"));
    run(&["cp", "box:/new", "got"]);
    assert_eq!(std::fs::read(home.join("got")).unwrap(), b"hi\n");
    run(&["cp", "got", "box:/tmp/"]);
    assert_eq!(
        entries(&run(&["cp", "box:/tmp/got", "-"]))["got"].data,
        b"hi\n"
    );
    run(&["container", "prune", "-f"]);
}
