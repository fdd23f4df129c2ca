//! `cargo xtask bench unionfs`: the same workloads on kernel overlayfs,
//! fuse-overlayfs 1.x (C, `apt-get install fuse-overlayfs`), fuse-overlayfs
//! 2.x (Rust, `cargo install --root /opt/fuse-overlayfs2 fuse-overlayfs`, or
//! FUSE_OVERLAYFS2_BIN) and berth-unionfs, side by side. A fuse-overlayfs
//! that is not installed is an n/a column with the reason below the table.
//!
//! Lower layers are generated once per workload and shared (they are never
//! written); every run gets a fresh upper/work dir and a fresh mount. "Cold"
//! means a fresh mount after dropping the page, dentry and inode caches.
//! Prints a markdown table of median times with each FUSE implementation's
//! ratio to the kernel. Needs root (mounts, drop_caches).
//!
//! With `--rootless`, the FUSE daemons and every workload run as an
//! unprivileged user (nobody, 65534) and mount through fusermount3, the way
//! a rootless container engine runs them: no FUSE passthrough, `.wh.`
//! whiteouts, user.* xattrs. The kernel column is then root's mount used by
//! that user, the layers are owned by it, and caches are dropped before
//! every sample (the user cannot).
//!
//! Everything runs on a fresh ext4 made for the run (see [`Scratch`]): on
//! a long-used disk, ext4's inode allocator skips inodes freed in the last
//! minutes, and after the mass deletions of earlier runs that made a
//! create of 10k files take anything from 0.5 to 7 s on the same kernel
//! overlayfs.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::measure::{fmt_time, median, timed, Table};
use crate::scratch::Scratch;

mod impls;
use impls::{Impl, Kind};

const ROOT: &str = "/var/tmp/berth-bench-unionfs";

/// Sizes; quick mode scales everything down so a run takes about a minute.
struct Scale {
    stat_files: usize,
    readdir_entries: usize,
    read_bytes: u64,
    write_bytes: u64,
    copyup_bytes: u64,
    create_files: usize,
    untar_files: usize,
    rm_files: usize,
    chmod_files: usize,
    mix_files: usize,
    reps: usize,
    /// Samples of the read, write and copy-up rows, which move most with
    /// the disk.
    io_reps: usize,
}

/// A mounted overlay; unmounts on drop.
struct Mounted {
    mnt: PathBuf,
    daemon: Option<Child>,
}

impl Mounted {
    fn pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(|c| c.id())
    }

    fn peak_rss_kib(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
        if is_mounted(&self.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
        if let Some(mut c) = self.daemon.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// /dev/fuse opened to everyone for the run (distributions ship it 0666;
/// these machines have 0600), as it was afterwards.
struct FuseDevOpen {
    mode: Option<u32>,
}

impl FuseDevOpen {
    fn new() -> Result<FuseDevOpen> {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata("/dev/fuse")?.permissions().mode() & 0o7777;
        if mode & 0o006 == 0o006 {
            return Ok(FuseDevOpen { mode: None });
        }
        fs::set_permissions("/dev/fuse", fs::Permissions::from_mode(0o666))?;
        Ok(FuseDevOpen { mode: Some(mode) })
    }
}

impl Drop for FuseDevOpen {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if let Some(m) = self.mode {
            let _ = fs::set_permissions("/dev/fuse", fs::Permissions::from_mode(m));
        }
    }
}

/// Removes the big files a sample left in its upper dir (the write and
/// copy-up outputs), so the run's disk use stays near one sample's.
fn remove_big_outputs(run_dir: &Path) {
    let Ok(entries) = fs::read_dir(run_dir.join("u")) else {
        return;
    };
    for e in entries.flatten() {
        if e.metadata()
            .is_ok_and(|m| m.is_file() && m.len() >= 64 << 20)
        {
            let _ = fs::remove_file(e.path());
        }
    }
}

fn is_mounted(p: &Path) -> bool {
    let s = p.display().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .map(|i| i.lines().any(|l| l.split(' ').nth(4) == Some(s.as_str())))
        .unwrap_or(false)
}

fn berth_bin() -> PathBuf {
    std::env::var_os("BERTH_UNIONFS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/berth-unionfs"))
}

/// Where samples run, and as whom.
struct Ctx {
    runs: PathBuf,
    /// uid and gid of the unprivileged user in `--rootless` mode.
    user: Option<(u32, u32)>,
}

impl Ctx {
    /// Hands `path` (recursively) to the unprivileged user, if any.
    fn own(&self, path: &Path) -> Result<()> {
        if let Some((uid, gid)) = self.user {
            sh(&format!("chown -R {uid}:{gid} {}", path.display()))?;
        }
        Ok(())
    }

    /// Times `f` as the unprivileged user (in a forked child), or here.
    fn run_as(&self, f: &dyn Fn() -> Result<Duration>) -> Result<Duration> {
        let Some((uid, gid)) = self.user else {
            return f();
        };
        // The user cannot drop caches: every sample starts cold, and the
        // warm workloads warm up themselves.
        drop_caches();
        let mut fds = [0; 2];
        // SAFETY: pipe fills two new descriptors.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            bail!("pipe: {}", std::io::Error::last_os_error());
        }
        // SAFETY: xtask is single-threaded here; the child only runs the
        // workload and leaves with _exit.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            bail!("fork: {}", std::io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: dropping privileges in the child, then reporting.
            unsafe {
                libc::close(fds[0]);
                let ok = libc::setgroups(0, std::ptr::null()) == 0
                    && libc::setgid(gid) == 0
                    && libc::setuid(uid) == 0;
                let msg = if !ok {
                    format!("E dropping privileges: {}", std::io::Error::last_os_error())
                } else {
                    match f() {
                        Ok(d) => format!("{}", d.as_secs_f64()),
                        Err(e) => format!("E {e:#}"),
                    }
                };
                libc::write(fds[1], msg.as_ptr().cast(), msg.len());
                libc::_exit(0);
            }
        }
        // SAFETY: our end of the pipe, read to EOF, then reaping the child.
        let msg = unsafe {
            libc::close(fds[1]);
            let mut f = <fs::File as std::os::fd::FromRawFd>::from_raw_fd(fds[0]);
            let mut msg = String::new();
            let _ = f.read_to_string(&mut msg);
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            msg
        };
        match msg.strip_prefix("E ") {
            Some(e) => bail!("{e}"),
            None => Ok(Duration::from_secs_f64(
                msg.trim().parse().context("the workload's report")?,
            )),
        }
    }
}

fn mount(ctx: &Ctx, imp: &Impl, lowers: &[PathBuf], run_dir: &Path) -> Result<Mounted> {
    let (upper, work, mnt) = (run_dir.join("u"), run_dir.join("w"), run_dir.join("m"));
    for d in [&upper, &work, &mnt] {
        fs::create_dir_all(d)?;
    }
    ctx.own(run_dir)?;
    let lower = lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let opts = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    let daemon = match &imp.bin {
        None => {
            let st = Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o"])
                .arg(format!("{opts},redirect_dir=off,index=off,metacopy=off"))
                .arg(&mnt)
                .status()?;
            if !st.success() {
                bail!("kernel overlay mount failed");
            }
            None
        }
        Some(prog) => {
            let mut cmd = Command::new(prog);
            if let Some((uid, gid)) = ctx.user {
                use std::os::unix::process::CommandExt;
                // std also drops the supplementary groups.
                cmd.uid(uid).gid(gid);
            }
            let child = cmd
                .args(["-f", "-o", &opts])
                .arg(&mnt)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("starting {}", prog.display()))?;
            let start = Instant::now();
            while !is_mounted(&mnt) {
                if start.elapsed() > Duration::from_secs(20) {
                    bail!("{} did not mount", prog.display());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Some(child)
        }
    };
    Ok(Mounted { mnt, daemon })
}

fn drop_caches() {
    let _ = Command::new("sync").status();
    let _ = fs::write("/proc/sys/vm/drop_caches", "3");
}

fn make_files(dir: &Path, n: usize, size: usize, per_dir: usize) -> Result<Vec<PathBuf>> {
    let data = vec![7u8; size];
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let d = dir.join(format!("d{}", i / per_dir));
        if i % per_dir == 0 {
            fs::create_dir_all(&d)?;
        }
        let p = d.join(format!("f{i}"));
        fs::write(&p, &data)?;
        out.push(p);
    }
    Ok(out)
}

fn make_big(path: &Path, bytes: u64) -> Result<()> {
    if fs::metadata(path)
        .map(|m| m.len() == bytes)
        .unwrap_or(false)
    {
        return Ok(());
    }
    fs::create_dir_all(path.parent().unwrap())?;
    let mut f = fs::File::create(path)?;
    let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 253) as u8).collect();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    Ok(())
}

fn read_all(path: &Path) -> Result<u64> {
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

fn rel(paths: &[PathBuf], base: &Path, mnt: &Path) -> Vec<PathBuf> {
    paths
        .iter()
        .map(|p| mnt.join(p.strip_prefix(base).unwrap()))
        .collect()
}

fn sh(cmd: &str) -> Result<()> {
    let st = Command::new("sh").arg("-c").arg(cmd).status()?;
    if !st.success() {
        bail!("{cmd} failed");
    }
    Ok(())
}

type Row = (String, Vec<Option<f64>>);

/// Runs one workload on every implementation `reps` times; returns median
/// seconds per implementation (None when it failed or is missing).
fn measure(
    ctx: &Ctx,
    impls: &[Impl],
    reps: usize,
    name: &str,
    lowers: &[PathBuf],
    run: &dyn Fn(&Mounted) -> Result<Duration>,
    rss: &mut [Option<u64>],
) -> Row {
    let n = impls.len();
    for l in lowers {
        if let Err(e) = ctx.own(l) {
            eprintln!("{name}: {e:#}");
        }
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); n];
    for r in 0..reps {
        // A rotating order: no implementation always runs first on a
        // filesystem the others have not yet filled.
        for k in 0..n {
            let i = (k + r) % n;
            let imp = &impls[i];
            if !imp.present() {
                continue;
            }
            // Run dirs are only removed at the very end: ext4 makes inode
            // allocation slow right after mass deletion, which would tax
            // whichever implementation runs after a cleanup.
            let slug: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
            let dir = ctx.runs.join(format!("{slug}-{}-{r}", imp.slug));
            // The previous sample's writeback must not land in this one.
            let _ = Command::new("sync").status();
            let result = mount(ctx, imp, lowers, &dir).and_then(|m| {
                let d = ctx.run_as(&|| run(&m))?;
                if let Some(kib) = m.peak_rss_kib() {
                    rss[i] = Some(rss[i].unwrap_or(0).max(kib));
                }
                Ok(d)
            });
            remove_big_outputs(&dir);
            match result {
                Ok(d) => samples[i].push(d.as_secs_f64()),
                Err(e) => eprintln!("{name} on {}: {e:#}", imp.label),
            }
        }
    }
    let cells: Vec<Option<f64>> = impls
        .iter()
        .zip(samples)
        .map(|(imp, s)| if imp.present() { median(s) } else { None })
        .collect();
    for (imp, c) in impls.iter().zip(&cells) {
        eprintln!("{name:>28} {:>26}: {c:?}", imp.label);
    }
    (name.to_string(), cells)
}

/// Runs the benchmark and prints the table.
pub fn run(quick: bool, rootless: bool) -> Result<()> {
    let scale = if quick {
        Scale {
            stat_files: 20_000,
            readdir_entries: 10_000,
            read_bytes: 256 << 20,
            write_bytes: 256 << 20,
            copyup_bytes: 256 << 20,
            create_files: 10_000,
            untar_files: 5_000,
            rm_files: 10_000,
            chmod_files: 5_000,
            mix_files: 2_000,
            reps: 1,
            io_reps: 1,
        }
    } else {
        Scale {
            stat_files: 20_000,
            readdir_entries: 10_000,
            read_bytes: 1 << 30,
            write_bytes: 1 << 30,
            copyup_bytes: 256 << 20,
            create_files: 10_000,
            untar_files: 20_000,
            rm_files: 10_000,
            chmod_files: 5_000,
            mix_files: 5_000,
            reps: 3,
            // Each of the 4 columns gets the first turn at least once, and
            // two bad samples cannot move the median.
            io_reps: 5,
        }
    };
    if !berth_bin().exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p berth-unionfs` or set BERTH_UNIONFS_BIN",
            berth_bin().display()
        );
    }
    let impls = impls::detect(&berth_bin());
    for imp in impls.iter().filter(|i| !i.present()) {
        eprintln!(
            "{}: {}; column shown as n/a",
            imp.label,
            imp.missing.as_deref().unwrap_or("")
        );
    }
    let mut rss = vec![None; impls.len()];
    let scratch = Scratch::make(
        &Path::new(ROOT).join("scratch"),
        &Path::new(ROOT).join("scratch.img"),
    )
    .map_err(|e| eprintln!("no scratch ext4 ({e:#}); running on the host's disk"))
    .ok();
    let work = scratch
        .as_ref()
        .map_or_else(|| PathBuf::from(ROOT), |s| s.dir.clone());
    let runs = work.join("runs");
    let ctx = Ctx {
        runs: runs.clone(),
        user: rootless.then_some((65534, 65534)),
    };
    let _fuse_dev = if rootless {
        Some(FuseDevOpen::new()?)
    } else {
        None
    };
    let _ = fs::remove_dir_all(&runs);
    fs::create_dir_all(&runs)?;
    // ext4 then puts each run's dirs in a block group of their own, as the
    // store does for layers (see crates/store's `spread_subdirs`), instead
    // of beside the runs before them. Best effort.
    let _ = Command::new("chattr")
        .arg("+T")
        .arg(&runs)
        .stderr(std::process::Stdio::null())
        .status();
    let layers = work.join("layers");
    fs::create_dir_all(&layers)?;
    let mut rows = Vec::new();

    // stat
    let l = layers.join("stat");
    let _ = fs::remove_dir_all(&l);
    let files = make_files(&l, scale.stat_files, 0, 1000)?;
    let lw = vec![l.clone()];
    let stat = |m: &Mounted, cold: bool| {
        let paths = rel(&files, &l, &m.mnt);
        if cold {
            drop_caches();
        } else {
            for p in &paths {
                fs::symlink_metadata(p)?;
            }
        }
        timed(|| {
            for p in &paths {
                fs::symlink_metadata(p)?;
            }
            Ok(())
        })
    };
    rows.push(measure(
        &ctx,
        &impls,
        scale.reps,
        &format!("stat {}k files, cold", scale.stat_files / 1000),
        &lw,
        &|m| stat(m, true),
        &mut rss,
    ));
    rows.push(measure(
        &ctx,
        &impls,
        scale.reps,
        &format!("stat {}k files, warm", scale.stat_files / 1000),
        &lw,
        &|m| stat(m, false),
        &mut rss,
    ));

    // readdir of a merged dir: half the names in each of two lowers.
    let (ra, rb) = (layers.join("readdir-a"), layers.join("readdir-b"));
    for (d, range) in [
        (&ra, 0..scale.readdir_entries / 2),
        (&rb, scale.readdir_entries / 2..scale.readdir_entries),
    ] {
        let _ = fs::remove_dir_all(d);
        fs::create_dir_all(d.join("dir"))?;
        for i in range {
            fs::write(d.join("dir").join(format!("e{i}")), b"")?;
        }
    }
    let rl = vec![ra, rb];
    let readdir = |m: &Mounted, cold: bool| {
        let dir = m.mnt.join("dir");
        if cold {
            drop_caches();
        } else {
            fs::read_dir(&dir)?.count();
        }
        timed(|| {
            let n = fs::read_dir(&dir)?.count();
            if n != scale.readdir_entries {
                bail!("readdir saw {n} entries");
            }
            Ok(())
        })
    };
    rows.push(measure(
        &ctx,
        &impls,
        scale.reps,
        &format!("readdir {}k merged, cold", scale.readdir_entries / 1000),
        &rl,
        &|m| readdir(m, true),
        &mut rss,
    ));
    rows.push(measure(
        &ctx,
        &impls,
        scale.reps,
        &format!("readdir {}k merged, warm", scale.readdir_entries / 1000),
        &rl,
        &|m| readdir(m, false),
        &mut rss,
    ));

    // sequential read
    let big = layers.join("read").join("big");
    make_big(&big, scale.read_bytes)?;
    let bl = vec![layers.join("read")];
    let read = |m: &Mounted, cold: bool| {
        let p = m.mnt.join("big");
        if cold {
            drop_caches();
        } else {
            read_all(&p)?;
        }
        timed(|| read_all(&p))
    };
    let mib = scale.read_bytes >> 20;
    rows.push(measure(
        &ctx,
        &impls,
        scale.io_reps,
        &format!("read {mib} MiB, cold"),
        &bl,
        &|m| read(m, true),
        &mut rss,
    ));
    rows.push(measure(
        &ctx,
        &impls,
        scale.io_reps,
        &format!("read {mib} MiB, warm"),
        &bl,
        &|m| read(m, false),
        &mut rss,
    ));

    // sequential write + fsync
    let empty = layers.join("empty");
    fs::create_dir_all(&empty)?;
    let el = vec![empty.clone()];
    let wbytes = scale.write_bytes;
    rows.push(measure(
        &ctx,
        &impls,
        scale.io_reps,
        &format!("write {} MiB + fsync", wbytes >> 20),
        &el,
        &|m| {
            let chunk = vec![1u8; 1 << 20];
            timed(|| {
                let mut f = fs::File::create(m.mnt.join("out"))?;
                for _ in 0..(wbytes >> 20) {
                    f.write_all(&chunk)?;
                }
                f.sync_all()?;
                Ok(())
            })
        },
        &mut rss,
    ));

    // copy-up
    let cu = layers.join("copyup").join("big");
    make_big(&cu, scale.copyup_bytes)?;
    let cl = vec![layers.join("copyup")];
    rows.push(measure(
        &ctx,
        &impls,
        scale.io_reps,
        &format!("copy-up {} MiB", scale.copyup_bytes >> 20),
        &cl,
        &|m| {
            timed(|| {
                let mut f = fs::OpenOptions::new()
                    .append(true)
                    .open(m.mnt.join("big"))?;
                f.write_all(b"x")?;
                Ok(())
            })
        },
        &mut rss,
    ));

    // create small files
    let nc = scale.create_files;
    rows.push(measure(
        &ctx,
        &impls,
        scale.reps,
        &format!("create {}k x 4 KiB", nc / 1000),
        &el,
        &|m| timed(|| make_files(&m.mnt, nc, 4096, 1000).map(drop)),
        &mut rss,
    ));

    // untar
    let tar = Path::new(ROOT).join(format!("tree-{}.tar", scale.untar_files));
    if !tar.exists() {
        let src = Path::new(ROOT).join("tree-src");
        let _ = fs::remove_dir_all(&src);
        make_files(&src, scale.untar_files, 10_000, 200)?;
        sh(&format!("tar -C {} -cf {} .", src.display(), tar.display()))?;
        fs::remove_dir_all(&src)?;
    }
    rows.push(measure(
        &ctx,
        &impls,
        scale.reps,
        &format!("untar {}k files", scale.untar_files / 1000),
        &el,
        &|m| timed(|| sh(&format!("tar -C {} -xf {}", m.mnt.display(), tar.display()))),
        &mut rss,
    ));

    // rm -rf a lower tree
    let rml = layers.join("rm");
    let _ = fs::remove_dir_all(&rml);
    make_files(&rml.join("tree"), scale.rm_files, 0, 500)?;
    rows.push(measure(
        &ctx,
        &impls,
        scale.reps,
        &format!("rm -rf {}k lower files", scale.rm_files / 1000),
        std::slice::from_ref(&rml),
        &|m| timed(|| sh(&format!("rm -rf {}/tree", m.mnt.display()))),
        &mut rss,
    ));

    // chmod
    let chl = layers.join("chmod");
    let _ = fs::remove_dir_all(&chl);
    let chfiles = make_files(&chl, scale.chmod_files, 0, 1000)?;
    rows.push(measure(
        &ctx,
        &impls,
        scale.reps,
        &format!("chmod {}k files", scale.chmod_files / 1000),
        std::slice::from_ref(&chl),
        &|m| {
            use std::os::unix::fs::PermissionsExt;
            let paths = rel(&chfiles, &chl, &m.mnt);
            timed(|| {
                for p in &paths {
                    fs::set_permissions(p, fs::Permissions::from_mode(0o600))?;
                }
                Ok(())
            })
        },
        &mut rss,
    ));

    // metadata mix: per lower file a chmod (a copy-up), a rename, a hard
    // link and the link's removal.
    let mxl = layers.join("mix");
    let _ = fs::remove_dir_all(&mxl);
    let mxfiles = make_files(&mxl, scale.mix_files, 0, 1000)?;
    rows.push(measure(
        &ctx,
        &impls,
        scale.reps,
        &format!("metadata mix {}k files", scale.mix_files / 1000),
        std::slice::from_ref(&mxl),
        &|m| {
            use std::os::unix::fs::PermissionsExt;
            let paths = rel(&mxfiles, &mxl, &m.mnt);
            timed(|| {
                for p in &paths {
                    fs::set_permissions(p, fs::Permissions::from_mode(0o640))?;
                    let moved = p.with_extension("moved");
                    fs::rename(p, &moved)?;
                    let link = p.with_extension("link");
                    fs::hard_link(&moved, &link)?;
                    fs::remove_file(&link)?;
                }
                Ok(())
            })
        },
        &mut rss,
    ));

    if rootless {
        println!("FUSE daemons and workloads as an unprivileged user (uid 65534), through fusermount3, no passthrough:\n");
    }
    print_table(&impls, &rows, &rss);
    let _ = fs::remove_dir_all(&runs);
    drop(scratch);
    Ok(())
}

fn print_table(impls: &[Impl], rows: &[Row], rss: &[Option<u64>]) {
    let berth = impls.iter().position(|i| i.kind == Kind::Berth);
    let fuse_overlayfs: Vec<usize> = (0..impls.len())
        .filter(|&i| matches!(impls[i].kind, Kind::FuseOverlayfs1 | Kind::FuseOverlayfs2))
        .collect();
    let speedup_header = format!(
        "berth-unionfs speedup over {}",
        fuse_overlayfs
            .iter()
            .map(|&i| impls[i]
                .label
                .split(" (")
                .next()
                .unwrap_or_default()
                .to_string())
            .collect::<Vec<_>>()
            .join(" / ")
    );
    let mut table = Table::new(
        std::iter::once("workload".to_string())
            .chain(impls.iter().map(|i| i.label.clone()))
            .chain(std::iter::once(speedup_header)),
    );
    for (name, cells) in rows {
        let kernel = cells[0];
        let cols = cells.iter().enumerate().map(|(i, c)| match (c, kernel) {
            _ if !impls[i].present() => "n/a".to_string(),
            (None, _) => "failed".to_string(),
            (Some(t), _) if i == 0 => fmt_time(*t),
            (Some(t), Some(k)) if k > 0.0 => format!("{} ({:.2}x)", fmt_time(*t), t / k),
            (Some(t), _) => fmt_time(*t),
        });
        let speedup = fuse_overlayfs
            .iter()
            .map(|&f| match (cells[f], berth.and_then(|b| cells[b])) {
                (Some(t), Some(b)) if b > 0.0 => format!("{:.1}x", t / b),
                _ => "n/a".into(),
            })
            .collect::<Vec<_>>()
            .join(" / ");
        table.row(
            std::iter::once(name.clone())
                .chain(cols)
                .chain(std::iter::once(speedup)),
        );
    }
    let rss_cols = rss.iter().enumerate().map(|(i, r)| match r {
        _ if i == 0 => String::new(),
        _ if !impls[i].present() => "n/a".into(),
        Some(k) => format!("{:.1} MiB", *k as f64 / 1024.0),
        None => "?".into(),
    });
    table.row(std::iter::once("daemon peak RSS".to_string()).chain(rss_cols));
    print!("{}", table.render());
    for imp in impls.iter().filter(|i| !i.present()) {
        println!(
            "\n{}: n/a, {}",
            imp.label,
            imp.missing.as_deref().unwrap_or_default()
        );
    }
}
