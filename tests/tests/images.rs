//! End-to-end: the image commands through the built `berth` binary.

use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::Command;

use berth_e2e::{busybox_tarball, sha256, Berth, RawTar};
use serde_json::Value;

fn import_busybox(b: &Berth, tag: &str) -> String {
    let tar = busybox_tarball(b.dir.path());
    let out = b.ok(&[
        "import",
        "-c",
        "CMD [\"/bin/sh\"]",
        tar.to_str().unwrap(),
        tag,
    ]);
    out.trim().to_string()
}

fn inspect(b: &Berth, name: &str) -> Value {
    let out = b.ok(&["inspect", name]);
    let v: Value = serde_json::from_str(&out).expect("inspect prints JSON");
    v[0].clone()
}

#[test]
fn import_images_tag_inspect_history() {
    let b = Berth::new();
    let id = import_busybox(&b, "busybox:e2e");
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "import prints the ID: {id}"
    );

    let images = b.ok(&["images"]);
    let mut lines = images.lines();
    let header = lines.next().unwrap();
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "{header}");
    }
    let row = lines.next().expect("one image row");
    assert!(row.starts_with("busybox "), "{row}");
    assert!(row.contains(" e2e ") && row.contains(&id[7..19]), "{row}");
    assert!(row.contains("ago") || row.contains("Less than"), "{row}");

    b.ok(&["tag", "busybox:e2e", "localhost:5000/team/bb:v1"]);
    let tags = b.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let mut tags: Vec<&str> = tags.lines().collect();
    tags.sort();
    assert_eq!(
        tags,
        [
            format!("busybox:e2e {}", &id[7..19]),
            format!("localhost:5000/team/bb:v1 {}", &id[7..19])
        ]
    );
    assert_eq!(b.ok(&["images", "-q"]).lines().count(), 2);
    assert_eq!(
        b.ok(&["images", "-q", "--no-trunc", "busybox"]).trim(),
        id,
        "positional repository filter"
    );

    // Go templates, the real thing.
    assert_eq!(
        b.ok(&["inspect", "-f", "{{.Id}}", "busybox:e2e"]).trim(),
        id
    );
    let layers = b.ok(&["inspect", "-f", "{{.RootFS.Layers}}", "busybox:e2e"]);
    let diff_id = sha256(&std::fs::read(b.dir.path().join("busybox.tar")).unwrap());
    assert_eq!(
        layers.trim(),
        format!("[{diff_id}]"),
        "diffID = sha256 of the tarball"
    );
    let err = b.fails(&["inspect", "-f", "{{.Id}}", "busybox"], 1);
    assert!(err.contains("No such object: busybox"), "{err}");
    assert_eq!(
        b.ok(&["inspect", "-f", "{{json .Config.Cmd}}", "busybox:e2e"])
            .trim(),
        r#"["/bin/sh"]"#
    );
    assert_eq!(
        b.ok(&[
            "image",
            "inspect",
            "-f",
            "{{range .RepoTags}}{{.}} {{end}}|{{index .RepoTags 0}}|{{.Os}}",
            &id
        ])
        .trim(),
        "busybox:e2e localhost:5000/team/bb:v1 |busybox:e2e|linux"
    );
    let doc = inspect(&b, &id[7..15]);
    assert_eq!(
        doc["Id"],
        Value::String(id.clone()),
        "unique ID prefix resolves"
    );
    assert_eq!(doc["Architecture"], "amd64");
    assert_eq!(doc["RootFS"]["Type"], "layers");
    assert!(doc["Size"].as_u64().unwrap() > 500_000);

    let history = b.ok(&["history", "busybox:e2e"]);
    let mut h = history.lines();
    let header = h.next().unwrap();
    for col in ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"] {
        assert!(header.contains(col), "{header}");
    }
    let row = h.next().unwrap();
    assert!(row.starts_with(&id[7..19]), "{row}");
    assert!(row.contains("Imported from -"), "{row}");
    assert_eq!(b.ok(&["history", "-q", "busybox:e2e"]).trim(), &id[7..19]);
}

#[test]
fn save_rmi_load_round_trip_keeps_the_id_and_the_bytes() {
    let b = Berth::new();
    let id = import_busybox(&b, "busybox:rt");
    let archive = b.dir.path().join("saved.tar");
    b.ok(&["save", "-o", archive.to_str().unwrap(), "busybox:rt"]);

    // The layer inside is the imported tarball, byte for byte.
    let unpacked = b.dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let st = Command::new("tar")
        .arg("-C")
        .arg(&unpacked)
        .arg("-xf")
        .arg(&archive)
        .status()
        .unwrap();
    assert!(st.success());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(unpacked.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!(["busybox:rt"]));
    let layer = manifest[0]["Layers"][0].as_str().unwrap();
    assert_eq!(
        std::fs::read(unpacked.join(layer)).unwrap(),
        std::fs::read(b.dir.path().join("busybox.tar")).unwrap()
    );

    let out = b.ok(&["rmi", "busybox:rt"]);
    assert!(out.contains("Untagged: busybox:rt"), "{out}");
    assert!(out.contains(&format!("Deleted: {id}")), "{out}");
    assert_eq!(b.ok(&["images", "-q"]), "");
    assert!(
        b.layerdb().is_empty(),
        "the last image took its layer along"
    );

    let out = b.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: busybox:rt");
    assert_eq!(b.ok(&["inspect", "-f", "{{.Id}}", "busybox:rt"]).trim(), id);

    // And from stdin, into a second root.
    let b2 = Berth::new();
    let out = b2.run_stdin(&["load"], &std::fs::read(&archive).unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        b2.ok(&["inspect", "-f", "{{.Id}}", "busybox:rt"]).trim(),
        id
    );
}

#[test]
fn skopeo_accepts_saved_archives() {
    if Command::new("skopeo").arg("--version").output().is_err() {
        eprintln!("skipped: skopeo is not installed (cargo xtask test installs it)");
        return;
    }
    let b = Berth::new();
    let id = import_busybox(&b, "busybox:sk");
    b.ok(&["tag", "busybox:sk", "other/name:v2"]);
    let archive = b.dir.path().join("two.tar");
    b.ok(&[
        "save",
        "-o",
        archive.to_str().unwrap(),
        "busybox:sk",
        "other/name:v2",
    ]);
    let out = Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("docker-archive:{}:busybox:sk", archive.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["os"], "linux");
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--config"])
        .arg(format!(
            "docker-archive:{}:other/name:v2",
            archive.display()
        ))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(sha256(&raw.stdout), id, "config bytes kept verbatim");
}

/// A docker-archive made from scratch: two layers, the upper one deleting a
/// file of the lower with a whiteout.
fn two_layer_archive(tag: &str) -> (Vec<u8>, [String; 2]) {
    let l1 = RawTar::new()
        .dir("etc/")
        .file("etc/a", b"one")
        .file("etc/b", b"two")
        .finish();
    let l2 = RawTar::new()
        .dir("etc/")
        .file("etc/.wh.b", b"")
        .file("etc/c", b"three")
        .finish();
    let d1 = sha256(&l1);
    let d2 = sha256(&l2);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/bin/sh"]}},"created":"2024-01-01T00:00:00Z","history":[{{"created":"2024-01-01T00:00:00Z","created_by":"layer one"}},{{"created":"2024-01-01T00:00:00Z","created_by":"layer two"}}],"rootfs":{{"type":"layers","diff_ids":["{d1}","{d2}"]}}}}"#
    );
    let config_hex = sha256(config.as_bytes())[7..].to_string();
    let manifest = format!(
        r#"[{{"Config":"{config_hex}.json","RepoTags":["{tag}"],"Layers":["l1/layer.tar","l2/layer.tar"]}}]"#
    );
    let archive = RawTar::new()
        .dir("l1/")
        .file("l1/layer.tar", &l1)
        .dir("l2/")
        .file("l2/layer.tar", &l2)
        .file(&format!("{config_hex}.json"), config.as_bytes())
        .file("manifest.json", manifest.as_bytes())
        .finish();
    (archive, [d1, d2])
}

#[test]
fn multi_layer_archive_loads_with_chain_ids_and_whiteouts() {
    let b = Berth::new();
    let (archive, [d1, d2]) = two_layer_archive("multi:latest");
    let out = b.run_stdin(&["load"], &archive);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Loaded image: multi:latest"
    );

    let chain2 = sha256(format!("{d1} {d2}").as_bytes());
    let mut want = vec![d1[7..].to_string(), chain2[7..].to_string()];
    want.sort();
    assert_eq!(b.layerdb(), want, "layerdb directories are the chainIDs");

    let upper = b.ok(&["inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", "multi"]);
    let wh = std::fs::symlink_metadata(Path::new(upper.trim()).join("etc/b")).unwrap();
    assert!(
        wh.file_type().is_char_device(),
        "whiteout stored overlay-style"
    );
    assert!(!Path::new(upper.trim()).join("etc/.wh.b").exists());

    let history = b.ok(&["history", "--format", "{{.ID}}|{{.CreatedBy}}", "multi"]);
    let rows: Vec<&str> = history.lines().collect();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].ends_with("|layer two") && !rows[0].starts_with("<missing>"));
    assert_eq!(rows[1], "<missing>|layer one");
}

/// Every malformed input fails with a message, exit 1, and no change at all
/// to the store.
#[test]
fn bad_input_fails_cleanly_and_changes_nothing() {
    let b = Berth::new();
    import_busybox(&b, "keep:me");
    // Not the CREATED column: "Less than a second ago" ages while we work.
    let listing = [
        "images",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}",
    ];
    let before_images = b.ok(&listing);
    let before = b.snapshot();

    let gz_bomb = {
        let mut gz = Command::new("gzip")
            .arg("-c")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = gz.stdin.take().unwrap();
        let big = RawTar::new().file("zeros", &vec![0u8; 8 << 20]).finish();
        let writer = std::thread::spawn(move || stdin.write_all(&big).unwrap());
        let out = gz.wait_with_output().unwrap();
        writer.join().unwrap();
        out.stdout[..out.stdout.len() / 2].to_vec()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated tarball",
            RawTar::new()
                .file_with_size("big", 4096, b"short")
                .unfinished(),
            "",
        ),
        ("gzip bomb cut short", gz_bomb, ""),
        (
            "dot-dot",
            RawTar::new().file("../escape", b"x").finish(),
            "escape",
        ),
        (
            "dot-dot inside",
            RawTar::new()
                .dir("a/")
                .file("a/../../escape", b"x")
                .finish(),
            "escape",
        ),
        (
            "absolute",
            RawTar::new().file("/etc/evil", b"x").finish(),
            "evil",
        ),
        (
            "symlink then write through it",
            RawTar::new()
                .symlink("link", "/tmp")
                .file("link/evil", b"x")
                .finish(),
            "evil",
        ),
        (
            "relative symlink out then write",
            RawTar::new()
                .symlink("up", "../../..")
                .file("up/evil", b"x")
                .finish(),
            "evil",
        ),
        (
            "hard link outside",
            RawTar::new().hardlink("hl", "../../etc/passwd").finish(),
            "etc/passwd",
        ),
        (
            "hard link to absolute",
            RawTar::new().hardlink("hl", "/etc/passwd").finish(),
            "etc/passwd",
        ),
        (
            "bare whiteout",
            RawTar::new().file(".wh.", b"").finish(),
            ".wh.",
        ),
        (
            "whiteout of ..",
            RawTar::new().dir("d/").file("d/.wh..", b"").finish(),
            ".wh..",
        ),
        (
            "whiteout of ...",
            RawTar::new().dir("d/").file("d/.wh...", b"").finish(),
            "",
        ),
    ];
    for (what, data, mention) in cases {
        let out = b.run_stdin(&["import", "-", "bad:input"], &data);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(err.starts_with("Error: "), "{what}: {err}");
        assert!(
            err.contains(mention),
            "{what}: error should name the entry: {err}"
        );
        assert_eq!(b.snapshot(), before, "{what}: the store changed");
    }
    // A layer whose content does not match its diffID.
    let (mut archive, _) = two_layer_archive("bad:diffid");
    let pos = archive.windows(3).position(|w| w == b"two").unwrap();
    archive[pos..pos + 3].copy_from_slice(b"TWO");
    let out = b.run_stdin(&["load"], &archive);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("diffID"));
    assert_eq!(b.snapshot(), before, "diffID mismatch: the store changed");

    let err = b.fails(&["rmi", "nope"], 1);
    assert!(err.contains("No such image: nope:latest"), "{err}");
    let err = b.fails(&["inspect", "nope"], 1);
    assert!(err.contains("No such object: nope"), "{err}");
    let err = b.fails(&["tag", "nope", "x"], 1);
    assert!(err.contains("No such image: nope:latest"), "{err}");
    let err = b.fails(&["tag", "keep:me", "Upper/Case"], 1);
    assert!(err.contains("invalid reference format"), "{err}");
    let err = b.fails(&["load", "-i", "/nonexistent/file.tar"], 1);
    assert!(err.contains("/nonexistent/file.tar"), "{err}");
    assert_eq!(b.ok(&listing), before_images);
    assert_eq!(b.snapshot(), before);
}

#[test]
fn opaque_marker_after_entries_and_pax_sizes() {
    let b = Berth::new();
    // The opaque marker comes after an entry of the same directory in the
    // same layer: that entry stays, and the directory is marked opaque.
    let layer = RawTar::new()
        .dir("d/")
        .file("d/kept", b"k")
        .file("d/.wh..wh..opq", b"")
        .pax(&[("size", "5")])
        .file_with_size("p", 0, b"hello")
        .file("after", b"bbb")
        .finish();
    let out = b.run_stdin(&["import", "-", "edge:cases"], &layer);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let upper = b.ok(&[
        "inspect",
        "-f",
        "{{.GraphDriver.Data.UpperDir}}",
        "edge:cases",
    ]);
    let upper = Path::new(upper.trim());
    assert_eq!(std::fs::read(upper.join("d/kept")).unwrap(), b"k");
    let xattrs = Command::new("getfattr")
        .args(["-d", "-m", "-"])
        .arg(upper.join("d"))
        .output();
    if let Ok(x) = xattrs {
        assert!(String::from_utf8_lossy(&x.stdout).contains("overlay.opaque=\"y\""));
    }
    assert_eq!(
        std::fs::read(upper.join("p")).unwrap(),
        b"hello",
        "PAX size applied"
    );
    assert_eq!(
        std::fs::read(upper.join("after")).unwrap(),
        b"bbb",
        "no desync"
    );
}

#[test]
fn concurrent_imports_both_succeed() {
    let b = Berth::new();
    let tar = busybox_tarball(b.dir.path());
    let spawn = |tag: &str| {
        b.cmd(&["import", tar.to_str().unwrap(), tag])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (c1, c2) = (spawn("con:one"), spawn("con:two"));
    for c in [c1, c2] {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(b.ok(&["images", "-q"]).lines().count(), 2);
    assert_eq!(b.layerdb().len(), 1, "one layer, stored once");
    let tmp = b.root.join("tmp");
    let leftovers: Vec<_> = std::fs::read_dir(&tmp)
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[test]
fn rmi_prune_and_conflicts() {
    let b = Berth::new();
    let id = import_busybox(&b, "one:a");
    b.ok(&["tag", "one:a", "two:b"]);
    let err = b.fails(&["rmi", &id[7..19]], 1);
    assert!(err.contains("referenced in multiple repositories"), "{err}");
    let out = b.ok(&["rmi", "two:b"]);
    assert_eq!(out.trim(), "Untagged: two:b", "other tags left: untag only");
    // A dangling image is what prune removes.
    let tar = b.dir.path().join("busybox.tar");
    let dangling = b.ok(&["import", "-m", "no tag", tar.to_str().unwrap()]);
    assert_eq!(
        b.ok(&["images", "-q", "--no-trunc", "-f", "dangling=true"])
            .trim(),
        dangling.trim()
    );
    let out = b.ok(&["image", "prune", "-f"]);
    assert!(
        out.contains(&format!("deleted: {}", dangling.trim())),
        "{out}"
    );
    assert!(out.contains("Total reclaimed space"), "{out}");
    assert_eq!(b.ok(&["images", "-q", "--no-trunc"]).trim(), id);
    let out = b.ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains("untagged: one:a"), "{out}");
    assert_eq!(b.ok(&["images", "-q"]), "");
    assert!(b.layerdb().is_empty());
}

#[test]
fn info_and_df_report_the_store() {
    let b = Berth::new().with_driver("vfs");
    import_busybox(&b, "x:y");
    assert_eq!(
        b.ok(&["info", "-f", "{{.Driver}} {{.Images}} {{.Layers}}"])
            .trim(),
        "vfs 1 1"
    );
    let info = b.ok(&["info"]);
    assert!(
        info.contains(&format!("Berth Root Dir: {}", b.root.display())),
        "{info}"
    );
    let df = b.ok(&["system", "df"]);
    assert!(df.lines().nth(1).unwrap().starts_with("Images "), "{df}");
    let err = Berth::new().with_driver("zfs").fails(&["images"], 1);
    assert!(err.contains("unknown storage driver"), "{err}");
}

#[test]
fn rootless_import_save_load() {
    let Some(b) = Berth::new().as_test_user() else {
        eprintln!("skipped: no unprivileged test user (cargo xtask test creates one)");
        return;
    };
    let (uid, gid) = berth_e2e::test_user().unwrap();
    let tar = busybox_tarball(b.dir.path());
    let home = b.dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    for p in [&home, &tar] {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    }
    let run = |args: &[&str]| b.ok(args);
    let id = run(&["import", tar.to_str().unwrap(), "rl:1"]);
    let saved = home.join("s.tar");
    run(&["save", "-o", saved.to_str().unwrap(), "rl:1"]);
    run(&["rmi", "rl:1"]);
    run(&["load", "-i", saved.to_str().unwrap()]);
    assert_eq!(run(&["inspect", "-f", "{{.Id}}", "rl:1"]).trim(), id.trim());
    assert!(run(&["info"]).contains("Rootless: true"));
}

/// Serves one HTTP/1.0 response on 127.0.0.1 and returns the URL.
fn serve_once(status: &'static str, body: Vec<u8>) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/rootfs.tar", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 2 {
            line.clear();
        }
        let head = format!(
            "HTTP/1.0 {status}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(&body);
    });
    (url, server)
}

#[test]
fn import_from_a_url() {
    let b = Berth::new();
    let tar = busybox_tarball(b.dir.path());
    let bytes = std::fs::read(&tar).unwrap();
    let (url, server) = serve_once("200 OK", bytes.clone());
    let id = b.ok(&["import", &url, "fromurl:1"]);
    server.join().unwrap();
    assert_eq!(
        b.ok(&[
            "inspect",
            "-f",
            "{{.Id}} {{.Comment}} {{.RootFS.Layers}}",
            "fromurl:1"
        ])
        .trim(),
        format!("{} Imported from {url} [{}]", id.trim(), sha256(&bytes))
    );

    let before = b.snapshot();
    let (url, server) = serve_once("404 Not Found", b"nope".to_vec());
    let err = b.fails(&["import", &url, "fromurl:2"], 1);
    server.join().unwrap();
    assert!(err.contains("404"), "{err}");
    let err = b.fails(&["import", "https://example.invalid/x.tar"], 1);
    assert!(err.contains("only http://"), "{err}");
    assert_eq!(b.snapshot(), before);
}

/// berth's save loads into Docker with the same ID, and Docker's save loads
/// into berth with Docker's ID. Needs a running Docker daemon (`cargo xtask
/// bench` documents how to start one); skipped without it.
#[test]
fn docker_interop_when_a_daemon_runs() {
    let docker = |args: &[&str]| Command::new("docker").args(args).output();
    match docker(&["info"]) {
        Ok(o) if o.status.success() => {}
        _ => {
            eprintln!("skipped: no Docker daemon answers `docker info`");
            return;
        }
    }
    let b = Berth::new();
    let id = import_busybox(&b, "berth-e2e-interop:b");
    let ours = b.dir.path().join("ours.tar");
    b.ok(&["save", "-o", ours.to_str().unwrap(), "berth-e2e-interop:b"]);
    let load = docker(&["load", "-i", ours.to_str().unwrap()]).unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let theirs_id = docker(&["inspect", "-f", "{{.Id}}", "berth-e2e-interop:b"]).unwrap();
    assert_eq!(String::from_utf8_lossy(&theirs_id.stdout).trim(), id);

    let tar = b.dir.path().join("busybox.tar");
    let imported = docker(&["import", tar.to_str().unwrap(), "berth-e2e-interop:d"]).unwrap();
    assert!(imported.status.success());
    let docker_id = String::from_utf8_lossy(&imported.stdout).trim().to_string();
    let theirs = b.dir.path().join("theirs.tar");
    let saved = docker(&[
        "save",
        "-o",
        theirs.to_str().unwrap(),
        "berth-e2e-interop:d",
    ])
    .unwrap();
    assert!(saved.status.success());
    let _ = docker(&["rmi", "berth-e2e-interop:b", "berth-e2e-interop:d"]);
    assert_eq!(
        b.ok(&["load", "-i", theirs.to_str().unwrap()]).trim(),
        "Loaded image: berth-e2e-interop:d"
    );
    assert_eq!(
        b.ok(&["inspect", "-f", "{{.Id}}", "berth-e2e-interop:d"])
            .trim(),
        docker_id
    );
}

/// A progress display on a terminal, nothing when stderr is a pipe.
#[test]
fn progress_only_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: script(1) is not installed");
        return;
    }
    let b = Berth::new();
    // Big enough that the bar draws at least once.
    let big = RawTar::new().file("blob", &vec![7u8; 64 << 20]).finish();
    let tar = b.dir.path().join("big.tar");
    std::fs::write(&tar, big).unwrap();
    let line = format!(
        "BERTH_ROOT={} {} import {} big:tty",
        b.root.display(),
        berth_e2e::berth_bin().display(),
        tar.display()
    );
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Importing"),
        "a terminal shows progress"
    );
    let out = b.run(&["import", tar.to_str().unwrap(), "big:pipe"]);
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "no progress on a pipe");
}

/// The layer's tar is rebuilt from the unpacked files and its tar-split
/// record: a file changed behind berth's back makes `save` fail loudly, and
/// no archive is left under the requested name.
#[test]
fn save_fails_when_a_stored_file_was_changed() {
    let b = Berth::new();
    let tar = RawTar::new()
        .dir("etc/")
        .file("etc/motd", b"hello from the layer\n")
        .pax(&[("path", "etc/a-name-given-by-a-pax-record")])
        .file("ignored", b"pax named\n")
        .hardlink("etc/motd-link", "etc/motd")
        .finish();
    let mut with_trailer = tar.clone();
    with_trailer.extend_from_slice(b"trailing bytes");
    let path = b.dir.path().join("layer.tar");
    std::fs::write(&path, &with_trailer).unwrap();
    b.ok(&["import", path.to_str().unwrap(), "tamper:1"]);

    // Untouched, the save holds the imported tarball, byte for byte.
    let ok = b.dir.path().join("ok.tar");
    b.ok(&["save", "-o", ok.to_str().unwrap(), "tamper:1"]);
    let unpacked = b.dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let st = Command::new("tar")
        .arg("-C")
        .arg(&unpacked)
        .arg("-xf")
        .arg(&ok)
        .status()
        .unwrap();
    assert!(st.success());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(unpacked.join("manifest.json")).unwrap()).unwrap();
    let layer = manifest[0]["Layers"][0].as_str().unwrap();
    assert!(std::fs::read(unpacked.join(layer)).unwrap() == with_trailer);

    // Same length, other bytes: only the diffID check can see it.
    let motd = std::fs::read_dir(&b.root)
        .unwrap()
        .flatten()
        .filter_map(|driver| std::fs::read_dir(driver.path()).ok())
        .flat_map(|layers| layers.flatten())
        .map(|e| e.path().join("diff/etc/motd"))
        .find(|p| p.exists())
        .expect("the unpacked layer");
    std::fs::write(&motd, b"HELLO from the layer\n").unwrap();
    let out = b.dir.path().join("bad.tar");
    let err = b.fails(&["save", "-o", out.to_str().unwrap(), "tamper:1"], 1);
    assert!(err.contains("does not match its diffID"), "{err}");
    assert!(!out.exists(), "a failed save left {}", out.display());
    let piped = b.run(&["save", "tamper:1"]);
    assert_eq!(piped.status.code(), Some(1));
}

/// A docker-archive of one image over `layers` (bottom first).
fn archive_of(tag: &str, layers: &[Vec<u8>]) -> Vec<u8> {
    let diffs: Vec<String> = layers
        .iter()
        .map(|l| format!("\"{}\"", sha256(l)))
        .collect();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diffs.join(",")
    );
    let config_hex = sha256(config.as_bytes())[7..].to_string();
    let paths: Vec<String> = (0..layers.len())
        .map(|i| format!("\"l{i}/layer.tar\""))
        .collect();
    let manifest = format!(
        r#"[{{"Config":"{config_hex}.json","RepoTags":["{tag}"],"Layers":[{}]}}]"#,
        paths.join(",")
    );
    let mut archive = RawTar::new();
    for (i, layer) in layers.iter().enumerate() {
        archive = archive.file(&format!("l{i}/layer.tar"), layer);
    }
    archive
        .file(&format!("{config_hex}.json"), config.as_bytes())
        .file("manifest.json", manifest.as_bytes())
        .finish()
}

/// Layers are unpacked in parallel: several layers of several MiB each
/// (more than the read-ahead of one), saved back byte for byte; a bad layer
/// among them fails the load and leaves the store as it was.
#[test]
fn many_layers_load_in_parallel_and_a_bad_one_changes_nothing() {
    let b = Berth::new();
    let big = |seed: u8| -> Vec<u8> {
        (0..9usize << 20)
            .map(|i| (i as u8).wrapping_mul(seed) ^ (i >> 12) as u8)
            .collect()
    };
    let layers: Vec<Vec<u8>> = (1..=4u8)
        .map(|i| {
            RawTar::new()
                .dir("data/")
                .file(&format!("data/big{i}"), &big(i))
                .file(&format!("data/small{i}"), b"small")
                .finish()
        })
        .collect();
    b.ok(&["images"]);
    let before = b.snapshot();
    let mut bad = layers.clone();
    bad[2] = RawTar::new()
        .file("data/ok", &big(7))
        .file("../evil", b"x")
        .finish();
    let out = b.run_stdin(&["load"], &archive_of("many:bad", &bad));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("evil"), "{err}");
    assert_eq!(b.snapshot(), before, "a failed load changed the store");

    let out = b.run_stdin(&["load"], &archive_of("many:good", &layers));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(b.layerdb().len(), 4);
    let saved = b.dir.path().join("many.tar");
    b.ok(&["save", "-o", saved.to_str().unwrap(), "many:good"]);
    let unpacked = b.dir.path().join("many");
    std::fs::create_dir(&unpacked).unwrap();
    let st = Command::new("tar")
        .arg("-C")
        .arg(&unpacked)
        .arg("-xf")
        .arg(&saved)
        .status()
        .unwrap();
    assert!(st.success());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(unpacked.join("manifest.json")).unwrap()).unwrap();
    for (i, layer) in layers.iter().enumerate() {
        let path = manifest[0]["Layers"][i].as_str().unwrap();
        assert!(
            std::fs::read(unpacked.join(path)).unwrap() == *layer,
            "layer {i}"
        );
    }
}
