//! End-to-end: an image's owners and set-id bits inside a container, as
//! root and rootless. Rootless, the store cannot chown what it unpacks: it
//! records the owners in `user.containers.override_stat`, and the fuse
//! driver (berth-unionfs with `xattr_permissions=2`) shows them; a commit
//! keeps them.

use std::path::Path;
use std::process::Command;

use berth_e2e::{busybox_tarball, is_root, Berth};

/// busybox plus a set-uid file of user 1000, a directory of www-data (33)
/// and a root:shadow (0:42) file, imported as `owned`.
fn with_owned_image(b: Berth) -> Berth {
    let dir = b.dir.path();
    let tar = busybox_tarball(dir);
    let extra = dir.join("extra");
    std::fs::create_dir_all(extra.join("www/html")).unwrap();
    std::fs::create_dir_all(extra.join("etc")).unwrap();
    std::fs::write(extra.join("f"), "#!/bin/sh\n").unwrap();
    std::fs::write(extra.join("www/html/index"), "hi\n").unwrap();
    std::fs::write(extra.join("etc/shadow"), "root:*:1::::::\n").unwrap();
    let append = |owner: &str, mode: &str, paths: &[&str]| {
        let status = Command::new("tar")
            .arg("-C")
            .arg(&extra)
            .args(["--numeric-owner", "--no-recursion", "--mtime=2024-01-01"])
            .arg(format!("--owner={}", owner.split(':').next().unwrap()))
            .arg(format!("--group={}", owner.split(':').nth(1).unwrap()))
            .arg(format!("--mode={mode}"))
            .arg("-rf")
            .arg(&tar)
            .args(paths)
            .status()
            .unwrap();
        assert!(status.success(), "tar -r failed");
    };
    append("1000:1000", "4755", &["./f"]);
    append("33:33", "755", &["./www", "./www/html", "./www/html/index"]);
    append("0:42", "640", &["./etc/shadow"]);
    chown_to_user(&b, &tar);
    b.ok(&[
        "import",
        "-c",
        "CMD [\"/bin/sh\"]",
        tar.to_str().unwrap(),
        "owned",
    ]);
    b
}

fn chown_to_user(b: &Berth, path: &Path) {
    if b.rootless() {
        let uid = berth_e2e::test_user().unwrap();
        std::os::unix::fs::chown(path, Some(uid.0), Some(uid.1)).unwrap();
    }
}

/// The fuse driver as root and, when there is a test user, rootless.
fn fuse_roots() -> Vec<Berth> {
    let mut out = vec![Berth::new().with_driver("fuse")];
    if is_root() {
        match Berth::new().with_driver("fuse").as_test_user() {
            Some(b) => out.push(b),
            None => eprintln!("rootless run skipped: BERTH_TEST_UID/BERTH_TEST_GID not set"),
        }
    }
    out
}

const STAT: &str = "stat -c '%n %u:%g %a' /f /www /www/html/index /etc/shadow";
const IMAGE_OWNERS: &str =
    "/f 1000:1000 4755\n/www 33:33 755\n/www/html/index 33:33 755\n/etc/shadow 0:42 640\n";

#[test]
fn image_owners_and_set_id_bits_show_inside_containers() {
    for b in fuse_roots() {
        let b = with_owned_image(b);
        let who = if b.rootless() { "rootless" } else { "root" };
        assert_eq!(
            b.ok(&["run", "--rm", "owned", "sh", "-c", STAT]),
            IMAGE_OWNERS,
            "{who}"
        );
        // A user of the image can use what is theirs.
        assert_eq!(
            b.ok(&[
                "run",
                "--rm",
                "-u",
                "33",
                "owned",
                "sh",
                "-c",
                "echo x > /www/new && cat /www/new"
            ]),
            "x\n",
            "{who}"
        );
    }
}

#[test]
fn chown_and_chmod_inside_a_container_are_kept() {
    for b in fuse_roots() {
        let b = with_owned_image(b);
        let who = if b.rootless() { "rootless" } else { "root" };
        // chown clears the set-uid bit, as on any Linux filesystem; an
        // image file keeps its group when only the owner changes.
        let script = "chown 1234:1234 /f && chown 7 /etc/shadow && chmod 2775 /www && \
                      stat -c '%n %u:%g %a' /f /etc/shadow /www";
        assert_eq!(
            b.ok(&["run", "--name", "c1", "owned", "sh", "-c", script]),
            "/f 1234:1234 755\n/etc/shadow 7:42 640\n/www 33:33 2775\n",
            "{who}"
        );
        // An id the container's user namespace cannot hold (the test user
        // has 65536 subordinate ids) fails as the kernel fails it, never
        // silently.
        let out = b.run(&[
            "run",
            "--rm",
            "owned",
            "sh",
            "-c",
            "chown 70000 /f; echo rc=$?",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if b.rootless() {
            assert!(stdout.contains("rc=1"), "{who}: {stdout} {stderr}");
            assert!(stderr.contains("Invalid argument"), "{who}: {stderr}");
        } else {
            assert!(stdout.contains("rc=0"), "{who}: {stdout} {stderr}");
        }

        // Commit keeps what the container changed and what it did not.
        b.ok(&["commit", "c1", "owned2"]);
        b.ok(&["rm", "c1"]);
        assert_eq!(
            b.ok(&[
                "run",
                "--rm",
                "owned2",
                "sh",
                "-c",
                "stat -c '%n %u:%g %a' /f /etc/shadow /www /www/html/index"
            ]),
            "/f 1234:1234 755\n/etc/shadow 7:42 640\n/www 33:33 2775\n/www/html/index 33:33 755\n",
            "{who}: after commit"
        );
    }
}

/// Rootless kernel overlay and vfs cannot show recorded owners: files show
/// as root's. A set-uid file of another user must then not become a
/// set-uid file of root. `export` reads the recorded owners (overlay
/// passes `user.` xattrs through), and a commit keeps them for what the
/// container did not change, and takes the disk's for what it did.
#[test]
fn rootless_overlay_and_vfs_never_turn_a_foreign_set_id_file_into_roots_and_vfs_shows_owners() {
    if !is_root() {
        eprintln!("skipped: switching to the test user needs root");
        return;
    }
    for driver in ["overlay", "vfs"] {
        let Some(b) = Berth::new().with_driver(driver).as_test_user() else {
            eprintln!("skipped: BERTH_TEST_UID/BERTH_TEST_GID not set");
            return;
        };
        let b = with_owned_image(b);
        // vfs copies the image as root of the user namespace and gives the
        // copies their recorded owners; kernel overlayfs cannot show them.
        let shown = if driver == "vfs" {
            "/f 1000:1000 4755\n/www 33:33 755\n"
        } else {
            "/f 0:0 755\n/www 0:0 755\n"
        };
        assert_eq!(
            b.ok(&[
                "run",
                "--rm",
                "owned",
                "stat",
                "-c",
                "%n %u:%g %a",
                "/f",
                "/www"
            ]),
            shown,
            "{driver}"
        );
        // Owners given to the copies are not changes.
        b.ok(&["create", "--name", "c0", "owned"]);
        assert_eq!(b.ok(&["diff", "c0"]), "", "{driver}");
        b.ok(&["rm", "c0"]);
        b.ok(&[
            "run",
            "--name",
            "c1",
            "owned",
            "sh",
            "-c",
            "chmod 700 /f && touch /www/html/index",
        ]);
        let export = b.dir.path().join("export.tar");
        let out = b.cmd(&["export", "c1"]).output().unwrap();
        assert!(out.status.success(), "{driver}: export failed");
        std::fs::write(&export, &out.stdout).unwrap();
        let listing = Command::new("tar")
            .args(["--numeric-owner", "-tvf"])
            .arg(&export)
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&listing.stdout);
        let line = |name: &str| {
            listing
                .lines()
                .find(|l| l.ends_with(&format!(" {name}")) || l.ends_with(&format!(" ./{name}")))
                .unwrap_or_else(|| panic!("{driver}: {name} not exported:\n{listing}"))
                .to_string()
        };
        assert!(
            line("etc/shadow").contains(" 0/42 "),
            "{driver}: {}",
            line("etc/shadow")
        );
        assert!(
            line("www/").contains(" 33/33 "),
            "{driver}: {}",
            line("www/")
        );
        // Changed by the container: the disk's owner and mode.
        let f = if driver == "vfs" {
            "-rwx------ 1000/1000 "
        } else {
            "-rwx------ 0/0 "
        };
        assert!(line("f").starts_with(f), "{driver}: {}", line("f"));
        assert!(
            line("www/html/index").contains(" 33/33 "),
            "{driver}: {}",
            line("www/html/index")
        );
        b.ok(&["rm", "c1"]);
    }
}
