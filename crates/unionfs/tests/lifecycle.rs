//! Process-level behaviour: killing the daemon mid-copy-up, and the
//! `mount -t fuse.berth-unionfs` helper form.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{is_mounted, is_root, Fixture, Mode, UnmountGuard, BIN};

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Starts the daemon in the foreground on `mnt` and waits for the mount.
fn start_daemon(opts: &str, mnt: &std::path::Path) -> std::process::Child {
    let daemon = Command::new(BIN)
        .args(["-f", "-o", opts])
        .arg(mnt)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("mount", || is_mounted(mnt));
    daemon
}

#[test]
fn kill_9_mid_copy_up_leaves_no_half_file_and_remount_is_consistent() {
    if !is_root() {
        eprintln!("skipped: needs root to mount without fusermount");
        return;
    }
    let f = Fixture::new(1);
    let size = 192 << 20;
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    fs::write(f.lower(0).join("big"), &data).unwrap();
    let _guard = UnmountGuard(f.mnt.clone());
    let mut daemon = start_daemon(&f.options(), &f.mnt);
    // Appending forces a copy-up of the whole file.
    let mut writer = Command::new("sh")
        .arg("-c")
        .arg(format!("echo tail >> {}/big", f.mnt.display()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let work = f.work.join("berth-unionfs");
    wait_for("copy-up to start", || {
        fs::read_dir(&work).map(|d| d.count() > 0).unwrap_or(false)
    });
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let _ = writer.wait();
    let _ = Command::new("umount").arg("-l").arg(&f.mnt).status();

    // The upper layer holds the whole copy or none of it.
    if let Ok(m) = fs::metadata(f.upper.join("big")) {
        assert!(
            m.size() >= size as u64,
            "half-copied file in upper: {} bytes",
            m.size()
        );
    }
    let out = f.run(
        Mode::Root,
        &format!("cmp -n {size} $M/big $L0/big && echo same\nls -A $U/../w/berth-unionfs | wc -l"),
    );
    assert_eq!(out, "same\n0\n");
}

#[test]
fn mount_helper_form_through_mount_t() {
    if !is_root() {
        eprintln!("skipped: installing the helper into /usr/local/bin needs root");
        return;
    }
    let installed = std::path::Path::new("/usr/local/bin/berth-unionfs");
    // Leave a binary someone else installed alone.
    let ours = !installed.exists();
    if ours && fs::copy(BIN, installed).is_err() {
        eprintln!("skipped: cannot install the helper into /usr/local/bin");
        return;
    }
    let f = Fixture::new(1);
    fs::write(f.lower(0).join("x"), "via helper").unwrap();
    let _guard = UnmountGuard(f.mnt.clone());
    let st = Command::new("mount")
        .args(["-t", "fuse.berth-unionfs", "helpersrc"])
        .arg(&f.mnt)
        .args(["-o", &f.options()])
        .status()
        .unwrap();
    let read = fs::read_to_string(f.mnt.join("x"));
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let _ = Command::new("umount").arg(&f.mnt).status();
    if ours {
        let _ = fs::remove_file(installed);
    }
    assert!(st.success());
    assert_eq!(read.unwrap(), "via helper");
    assert!(mounts.contains("helpersrc"));
}

#[test]
fn a_detached_daemon_told_to_stop_leaves_a_newer_mount_at_its_path_alone() {
    if !is_root() {
        eprintln!("skipped: needs root to mount without fusermount");
        return;
    }
    let f = Fixture::new(1);
    fs::write(f.lower(0).join("f"), "lower").unwrap();
    let _guard = UnmountGuard(f.mnt.clone());
    let start = |upper: &std::path::Path, work: &std::path::Path| {
        fs::create_dir_all(upper).unwrap();
        fs::create_dir_all(work).unwrap();
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            f.lower(0).display(),
            upper.display(),
            work.display()
        );
        start_daemon(&opts, &f.mnt)
    };
    let mut first = start(&f.upper, &f.work);
    // An open file keeps the first mount, and its daemon, alive once detached.
    let open = fs::File::open(f.mnt.join("f")).unwrap();
    assert!(Command::new("umount")
        .arg("-l")
        .arg(&f.mnt)
        .status()
        .unwrap()
        .success());
    let mut second = start(&f.dir.path().join("u2"), &f.dir.path().join("w2"));
    // SAFETY: signalling the child we started.
    unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
    drop(open);
    first.wait().unwrap();
    assert!(
        is_mounted(&f.mnt),
        "the first daemon unmounted the second mount"
    );
    assert_eq!(fs::read_to_string(f.mnt.join("f")).unwrap(), "lower");
    // SAFETY: as above.
    unsafe { libc::kill(second.id() as i32, libc::SIGTERM) };
    second.wait().unwrap();
    assert!(!is_mounted(&f.mnt));
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn the_daemon_polls_during_a_burst_and_sleeps_once_it_is_over() {
    if !is_root() {
        eprintln!("skipped: needs root to mount without fusermount");
        return;
    }
    let f = Fixture::new(1);
    let _guard = UnmountGuard(f.mnt.clone());
    // A window long enough that a burst of requests keeps it polling
    // however slow this machine is.
    let mut daemon = start_daemon(&format!("{},spin=300000", f.options()), &f.mnt);
    let pid = daemon.id();
    let before = cpu_ticks(pid);
    for i in 0..50 {
        fs::write(f.mnt.join(format!("f{i}")), b"x").unwrap();
    }
    // Polling: the daemon keeps a CPU busy for up to two windows after the
    // last request. With the window at 0.3 s, it must have burnt CPU by the
    // time the window has passed once (a blocking daemon uses next to none
    // for 50 small files).
    std::thread::sleep(Duration::from_millis(250));
    let polled = cpu_ticks(pid) - before;
    // Then it must go back to sleeping: a second of idleness costs nothing.
    std::thread::sleep(Duration::from_millis(800));
    let idle_from = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let idle = cpu_ticks(pid) - idle_from;
    let _ = Command::new("umount").arg(&f.mnt).status();
    let _ = daemon.wait();
    assert!(polled >= 5, "no polling after a burst: {polled} ticks");
    assert!(idle <= 5, "an idle daemon burnt {idle} ticks in a second");
}
