//! Scenario tests for each overlay semantic, run against the binary as root
//! and (with BERTH_TEST_UID/GID) as an unprivileged user, through fusermount3
//! and inside `unshare -Urm`.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::{is_whiteout, sh, Fixture, Mode};

const PY: &str = "/usr/bin/python3";

fn each_mode(
    nlower: usize,
    setup: impl Fn(&Fixture),
    script: &str,
    check: impl Fn(&Fixture, Mode),
) {
    for mode in Mode::all() {
        let f = Fixture::new(nlower);
        setup(&f);
        f.run(mode, &format!("PY={PY}\n{script}"));
        check(&f, mode);
    }
}

fn w(p: impl AsRef<std::path::Path>, s: &str) {
    let p = p.as_ref();
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, s).unwrap();
}

#[test]
fn merged_lookup_readdir_whiteouts_and_opaque_dirs() {
    each_mode(
        2,
        |f| {
            let (l0, l1) = (f.lower(0), f.lower(1));
            w(l0.join("a"), "top");
            w(l1.join("a"), "bottom");
            w(l1.join("b"), "hidden by .wh.b");
            w(l0.join(".wh.b"), "");
            w(l1.join("c"), "hidden by char 0/0");
            sh(&format!("mknod {}/c c 0 0", l0.display()));
            w(l0.join("d/x"), "x");
            w(l1.join("d/y"), "y");
            w(l1.join("o/hidden"), "");
            w(l0.join("o/.wh..wh..opq"), "");
            w(l0.join("o/seen"), "");
            w(l1.join("ox/hidden"), "");
            fs::create_dir(l0.join("ox")).unwrap();
            sh(&format!(
                "setfattr -n user.overlay.opaque -v y {}/ox",
                l0.display()
            ));
            w(l1.join("t/hidden"), "");
            fs::create_dir(l0.join("t")).unwrap();
            sh(&format!(
                "setfattr -n trusted.overlay.opaque -v y {}/t",
                l0.display()
            ));
        },
        r#"
        expect "cat $M/a" top
        expect "ls $M | tr '\n' ' '" "a d o ox t "
        expect "ls -A $M/d | tr '\n' ' '" "x y "
        [ ! -e $M/b ] || fail b visible
        [ ! -e $M/c ] || fail c visible
        [ ! -e $M/.wh.b ] || fail whiteout file visible
        expect "$PY -c 'import os; e=[x for x in os.scandir(\"$M/d\") if x.name==\"x\"][0]; print(e.inode()==os.lstat(\"$M/d/x\").st_ino)'" True
        expect "ls -A $M/o" seen
        expect "ls -A $M/ox" ""
        "#,
        |_, _| {},
    );
}

#[test]
fn trusted_opaque_xattr_is_honoured_and_hidden() {
    // Setting trusted.* needs root, so this runs in the root mode only.
    let f = Fixture::new(2);
    if !common::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    w(f.lower(1).join("t/hidden"), "");
    fs::create_dir(f.lower(0).join("t")).unwrap();
    sh(&format!(
        "setfattr -n trusted.overlay.opaque -v y {}/t",
        f.lower(0).display()
    ));
    f.run(
        Mode::Root,
        r#"
        expect "ls -A $M/t" ""
        expect "getfattr -d -m - $M/t 2>&1 | grep -c overlay" 0
        "#,
    );
}

#[test]
fn copy_up_keeps_data_holes_mode_owner_times_xattrs_and_inode() {
    each_mode(
        1,
        |f| {
            let l = f.lower(0);
            w(l.join("dir/f"), "hello");
            fs::set_permissions(l.join("dir/f"), fs::Permissions::from_mode(0o640)).unwrap();
            sh(&format!(
                "setfattr -n user.k -v v {l}/dir/f && touch -d @1000000000 {l}/dir/f \
                 && truncate -s 1G {l}/sparse && printf end | dd of={l}/sparse bs=1 seek=536870912 conv=notrunc status=none",
                l = l.display()
            ));
        },
        r#"
        before=$(stat -c %i $M/dir/f)
        echo more >> $M/dir/f
        expect "stat -c %i $M/dir/f" "$before"
        expect "cat $M/dir/f" "hellomore"
        sbefore=$(stat -c %i $M/sparse)
        touch -a $M/sparse
        expect "stat -c %i $M/sparse" "$sbefore"
        expect "getfattr --only-values -n user.k $M/dir/f" v
        "#,
        |f, _| {
            let m = fs::metadata(f.upper.join("dir/f")).unwrap();
            assert_eq!(m.mode() & 0o7777, 0o640);
            assert_eq!(
                fs::read_to_string(f.upper.join("dir/f")).unwrap(),
                "hellomore\n"
            );
            let lower = fs::metadata(f.lower(0).join("dir/f")).unwrap();
            assert_eq!((m.uid(), m.gid()), (lower.uid(), lower.gid()));
            let s = fs::metadata(f.upper.join("sparse")).unwrap();
            assert_eq!(s.len(), 1 << 30);
            assert!(
                s.blocks() < 1024,
                "copy-up filled holes: {} blocks",
                s.blocks()
            );
            assert_eq!(
                fs::metadata(f.upper.join("sparse")).unwrap().mtime(),
                fs::metadata(f.lower(0).join("sparse")).unwrap().mtime()
            );
            let out = std::process::Command::new("getfattr")
                .args(["--only-values", "-n", "user.k"])
                .arg(f.upper.join("dir/f"))
                .output()
                .unwrap();
            assert_eq!(out.stdout, b"v");
            // Nothing half-done is left in the work dir.
            let left = fs::read_dir(f.work.join("berth-unionfs")).unwrap().count();
            assert_eq!(left, 0);
        },
    );
}

#[test]
fn unlink_and_rmdir_of_lower_entries_write_whiteouts() {
    each_mode(
        1,
        |f| {
            let l = f.lower(0);
            w(l.join("file"), "x");
            w(l.join("tree/a/b"), "x");
            fs::create_dir(l.join("empty")).unwrap();
            w(l.join("re/inner"), "x");
        },
        r#"
        rm $M/file
        [ ! -e $M/file ] || fail file still there
        rmdir $M/empty
        rm -rf $M/tree
        [ ! -e $M/tree ] || fail tree still there
        rm -rf $M/re && mkdir $M/re
        expect "ls -A $M/re" ""
        touch $M/file && expect "cat $M/file" ""
        rm $M/file
        expect "ls $M | tr '\n' ' '" "re "
        "#,
        |f, _| {
            for p in ["file", "empty", "tree"] {
                assert!(f.upper_whiteout(p), "no whiteout for {p}");
            }
            assert!(fs::metadata(f.upper.join("re")).unwrap().is_dir());
        },
    );
}

#[test]
fn rename_files_anywhere_and_lower_dirs_get_exdev() {
    each_mode(
        1,
        |f| {
            let l = f.lower(0);
            w(l.join("f"), "data");
            w(l.join("ld/x"), "x");
            w(l.join("target"), "old");
        },
        r#"
        mv $M/f $M/g
        expect "cat $M/g" data
        [ ! -e $M/f ] || fail f still visible
        expect "$PY -c 'import os
try:
    os.rename(\"$M/ld\", \"$M/ld2\")
except OSError as e:
    print(e.errno)'" 18
        mkdir $M/ud && touch $M/ud/y
        $PY -c "import os; os.rename('$M/ud', '$M/ud2')"
        expect "ls $M/ud2" y
        mv $M/g $M/target
        expect "cat $M/target" data
        mv $M/ld $M/moved
        expect "cat $M/moved/x" x
        "#,
        |f, _| {
            assert!(f.upper_whiteout("f"));
            assert!(f.upper_whiteout("ld"));
            assert!(!f.upper.join("ud").exists());
        },
    );
}

#[test]
fn rename_exchange_swaps_with_copy_up_and_lower_dirs_get_exdev() {
    each_mode(
        1,
        |f| {
            let l = f.lower(0);
            w(l.join("lf"), "lower f");
            w(l.join("ld/x"), "x");
            w(l.join("ld2/hidden"), "h");
        },
        r#"
        X() { $PY -c "import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
r = libc.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 2)
print(0 if r == 0 else ctypes.get_errno())" "$1" "$2"; }
        echo upper > $M/uf
        expect "X $M/lf $M/uf" 0
        expect "cat $M/lf" upper
        expect "cat $M/uf" "lower f"
        expect "X $M/ld $M/uf" 18
        expect "X $M/uf $M/ld" 18
        expect "X $M/lf $M/nope" 2
        mkdir $M/ud && touch $M/ud/y
        rm -rf $M/ld2 && mkdir $M/ld2 && touch $M/ld2/z
        expect "X $M/ud $M/ld2" 0
        expect "ls $M/ld2" y
        expect "ls $M/ud" z
        mkdir $M/ud3 && echo q > $M/ud3/q
        expect "X $M/ud3 $M/lf" 0
        expect "cat $M/ud3" upper
        expect "cat $M/lf/q" q
        "#,
        |f, _| {
            assert_eq!(fs::read_to_string(f.upper.join("uf")).unwrap(), "lower f");
            assert_eq!(fs::read_to_string(f.upper.join("ud3")).unwrap(), "upper\n");
            assert!(f.upper.join("lf/q").exists());
            assert!(f.upper.join("ld2/y").exists());
        },
    );
}

#[test]
fn mount_type_carries_the_subtype() {
    each_mode(
        1,
        |_| {},
        r#"
        expect "grep \" $M \" /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1" fuse.berth-unionfs
        "#,
        |_, _| {},
    );
}

#[test]
fn hard_links_symlinks_and_special_files() {
    each_mode(
        1,
        |f| {
            w(f.lower(0).join("f"), "data");
        },
        r#"
        ln $M/f $M/g
        expect "stat -c %h $M/g" 2
        [ "$(stat -c %i $M/f)" = "$(stat -c %i $M/g)" ] || fail inode differs
        echo x >> $M/g
        expect "cat $M/f" "datax"
        ln -s f $M/s
        expect "readlink $M/s" f
        expect "cat $M/s" datax
        mkfifo $M/fifo
        expect "stat -c %F $M/fifo" fifo
        $PY -c "import socket; s=socket.socket(socket.AF_UNIX); s.bind('$M/sock')"
        expect "stat -c %F $M/sock" socket
        if [ "$(id -u)" = 0 ] && mknod $M/null c 1 3 2>/dev/null; then expect "stat -c %t:%T $M/null" 1:3; fi
        rm $M/f
        expect "stat -c %h $M/g" 1
        "#,
        |f, _| {
            assert!(f.upper_whiteout("f"));
            assert_eq!(fs::read_to_string(f.upper.join("g")).unwrap(), "datax\n");
        },
    );
}

#[test]
fn xattrs_visible_but_overlay_private_ones_hidden() {
    each_mode(
        1,
        |f| {
            w(f.lower(0).join("f"), "");
            fs::create_dir(f.lower(0).join("d")).unwrap();
            sh(&format!(
                "setfattr -n user.overlay.opaque -v y {}/d",
                f.lower(0).display()
            ));
        },
        r#"
        setfattr -n user.a -v 1 $M/f
        expect "getfattr --only-values -n user.a $M/f" 1
        expect "getfattr -d -m - $M/d 2>&1 | grep -c overlay" 0
        setfattr -x user.a $M/f
        expect "getfattr -d -m user. $M/f" ""
        setfattr -n user.overlay.opaque -v y $M/f 2>/dev/null && fail private xattr settable
        true
        "#,
        |_, _| {},
    );
}

#[test]
fn statfs_is_the_upper_layers() {
    each_mode(
        1,
        |_| {},
        r#"expect "stat -f -c %b:%S $M" "$(stat -f -c %b:%S $U)""#,
        |_, _| {},
    );
}

#[test]
fn read_only_without_upperdir() {
    for mode in Mode::all() {
        let f = Fixture::new(1);
        w(f.lower(0).join("f"), "ro");
        let opts = format!("lowerdir={}", f.lower(0).display());
        f.run_opts(
            mode,
            &opts,
            r#"
            expect "cat $M/f" ro
            touch $M/f 2>/dev/null && fail writable
            expect "touch $M/new 2>&1 | grep -c Read-only" 1
            "#,
        );
    }
}

#[test]
fn file_io_append_fallocate_large_mmap_locks() {
    each_mode(
        1,
        |f| w(f.lower(0).join("f"), "abc"),
        r#"
        printf d >> $M/f && expect "cat $M/f" abcd
        fallocate -l 1M $M/alloc && expect "stat -c %s $M/alloc" 1048576
        dd if=/dev/zero of=$M/big bs=1 count=1 seek=5368709120 status=none
        expect "stat -c %s $M/big" 5368709121
        printf zzzz > $M/m
        $PY -c "
import mmap, os
fd = os.open('$M/m', os.O_RDWR)
m = mmap.mmap(fd, 4, mmap.MAP_SHARED)
m[0:2] = b'ab'
m.flush(); m.close(); os.close(fd)"
        expect "cat $M/m" abzz
        flock $M/f true
        $PY -c "
import fcntl
f = open('$M/f', 'r+')
fcntl.lockf(f, fcntl.LOCK_EX)
fcntl.lockf(f, fcntl.LOCK_UN)"
        sync $M/f
        "#,
        |_, _| {},
    );
}

#[test]
fn concurrent_writers() {
    each_mode(
        1,
        |f| fs::create_dir(f.lower(0).join("d")).unwrap(),
        r#"
        for p in 1 2 3 4; do
          ( i=0; while [ $i -lt 100 ]; do echo $p > $M/d/f$p-$i; i=$((i+1)); done ) &
        done
        wait
        expect "ls $M/d | wc -l" 400
        "#,
        |f, _| assert_eq!(fs::read_dir(f.upper.join("d")).unwrap().count(), 400),
    );
}

#[test]
fn squash_and_id_mapping_options() {
    if !common::is_root() {
        eprintln!("skipped: needs root to create files with foreign owners");
        return;
    }
    let f = Fixture::new(1);
    w(f.lower(0).join("a"), "");
    w(f.lower(0).join("b"), "");
    sh(&format!(
        "chown 1234:1234 {0}/a && chown 777:777 {0}/b",
        f.lower(0).display()
    ));
    let base = f.options();
    f.run_opts(
        Mode::Root,
        &format!("{base},squash_to_root"),
        r#"expect "stat -c %u:%g $M/a" 0:0"#,
    );
    f.run_opts(
        Mode::Root,
        &format!("{base},squash_to_uid=5,squash_to_gid=6"),
        r#"expect "stat -c %u:%g $M/b" 5:6"#,
    );
    f.run_opts(
        Mode::Root,
        &format!("{base},uidmapping=0:1234:1,gidmapping=0:1234:1:1:777:1"),
        r#"
        expect "stat -c %u:%g $M/a" 0:0
        expect "stat -c %u:%g $M/b" 65534:1
        touch $M/new && chown 0:1 $M/new
        chgrp 0 $M/a
        chown 5 $M/a 2>/dev/null && fail unmapped uid accepted
        true
        "#,
    );
    let m = fs::metadata(f.upper.join("new")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 777));
}

#[test]
fn five_hundred_layers_from_a_file() {
    let f = Fixture::new(0);
    let mut list = String::new();
    for i in 0..520 {
        let d = f.dir.path().join(format!("layer{i}"));
        w(d.join(format!("f{i}")), &i.to_string());
        list.push_str(&format!("{}\n", d.display()));
    }
    let file = f.dir.path().join("lowers");
    fs::write(&file, list).unwrap();
    let opts = format!(
        "lowerdir_file={},upperdir={},workdir={}",
        file.display(),
        f.upper.display(),
        f.work.display()
    );
    for mode in Mode::all() {
        f.run_opts(
            mode,
            &opts,
            r#"
            expect "ls $M | wc -l" 520
            expect "cat $M/f519" 519
            "#,
        );
    }
}

#[test]
fn unknown_options_warn_but_mount() {
    let f = Fixture::new(1);
    w(f.lower(0).join("x"), "");
    let out = std::process::Command::new(common::BIN)
        .args(["-o", "lowerdir=/nonexistent/berth", "/nonexistent/mnt"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lowerdir"));
    if let Some(&mode) = Mode::all().first() {
        let opts = format!("{},bogus_option=1", f.options());
        f.run_opts(mode, &opts, r#"[ -e $M/x ] || fail missing"#);
    }
    let _ = is_whiteout;
}

#[test]
fn unprivileged_writes_and_truncates_drop_setid_bits() {
    // The mount is served by root; the writer is not, and may not keep a
    // set-id bit on a file it changes (chown is the host's own business).
    if !common::is_root() {
        eprintln!("skipped: needs root to switch to an unprivileged writer");
        return;
    }
    // With passthrough the kernel writes the backing file itself; without
    // it the writes reach the daemon flagged FUSE_WRITE_KILL_SUIDGID.
    for extra in ["", ",nopassthrough"] {
        let f = Fixture::new(1);
        for name in ["a", "b", "c"] {
            let p = f.lower(0).join(name);
            w(&p, "x");
            fs::set_permissions(&p, fs::Permissions::from_mode(0o6777)).unwrap();
        }
        f.run_opts(
            Mode::Root,
            &format!("{}{extra}", f.options()),
            r#"
            setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "echo y >> $M/a; truncate -s 0 $M/b"
            expect "stat -c %a $M/a" 777
            expect "stat -c %a $M/b" 777
            expect "stat -c %a $U/a" 777
            echo y >> $M/c
            expect "stat -c %a $M/c" 6777
            setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "echo z >> $M/c"
            expect "stat -c %a $M/c" 777
            "#,
        );
    }
}

#[test]
fn file_capabilities_set_on_a_new_file_are_seen() {
    // A file created through the mount answers "no capabilities" without
    // asking the host, until an xattr is set on it.
    each_mode(
        1,
        |_| {},
        r#"
        command -v setcap >/dev/null || exit 0
        echo x > $M/new
        expect "getfattr -n security.capability $M/new 2>&1 | grep -c 'No such attribute'" 1
        setcap cap_net_raw+ep $M/new 2>/dev/null || exit 0
        expect "getcap $M/new | grep -c cap_net_raw" 1
        "#,
        |_, _| {},
    );
}
