//! `berth-unionfs`: mount an overlay with fuse-overlayfs's command line.
//!
//! Without `-f` the program forks before any thread exists, the child mounts,
//! and the parent exits 0 only once the mount is ready (or 1 with the child's
//! error), so `mount -t fuse.berth-unionfs` and scripts can use the mount as
//! soon as the command returns.

use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::process::ExitCode;

use berth_unionfs::{Cli, OptionError};

fn main() -> ExitCode {
    let cli = match Cli::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e @ OptionError::Usage) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("berth-unionfs: {e}");
            return ExitCode::FAILURE;
        }
    };
    let level = if cli.debug { "debug" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    for o in &cli.options.unknown {
        eprintln!("berth-unionfs: warning: unknown option {o:?} ignored");
    }
    if cli.foreground {
        return serve(&cli, None);
    }
    let mut fds = [0; 2];
    // SAFETY: valid out array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        eprintln!("berth-unionfs: pipe: {}", std::io::Error::last_os_error());
        return ExitCode::FAILURE;
    }
    // SAFETY: fds were just created and are owned here.
    let (mut rd, wr) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    // SAFETY: single-threaded at this point (no FUSE threads yet).
    match unsafe { libc::fork() } {
        -1 => {
            eprintln!("berth-unionfs: fork: {}", std::io::Error::last_os_error());
            ExitCode::FAILURE
        }
        0 => {
            drop(rd);
            // SAFETY: detach from the caller's session and terminal.
            unsafe { libc::setsid() };
            serve(&cli, Some(wr))
        }
        child => {
            drop(wr);
            let mut b = [0u8; 1];
            if rd.read_exact(&mut b).is_ok() && b[0] == b'1' {
                return ExitCode::SUCCESS;
            }
            let mut status = 0;
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(child, &mut status, 0) };
            ExitCode::FAILURE
        }
    }
}

/// Mounts, tells the parent (if any) the mount is ready, and serves until
/// unmounted or signalled.
fn serve(cli: &Cli, ready: Option<std::fs::File>) -> ExitCode {
    // SIGTERM/SIGINT/SIGHUP unmount cleanly: block them in every thread and
    // wait for them in one.
    // SAFETY: sigset manipulation on a local set.
    let set = unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let mut session = match berth_unionfs::mount(&cli.options, &cli.mountpoint) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("berth-unionfs: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut unmounter = session.unmounter();
    std::thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: waits on the blocked set.
        unsafe { libc::sigwait(&set, &mut sig) };
        if let Err(e) = unmounter.unmount() {
            log::warn!("unmount on signal {sig}: {e}");
        }
    });
    if let Some(mut w) = ready {
        if w.write_all(b"1").is_err() {
            log::warn!("parent went away before the mount was ready");
        }
        drop(w);
        detach_stdio();
    }
    match session.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("session: {e}");
            ExitCode::FAILURE
        }
    }
}

fn detach_stdio() {
    // SAFETY: opening /dev/null and duplicating it over 0..2.
    unsafe {
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if fd >= 0 {
            for t in 0..3 {
                libc::dup2(fd, t);
            }
            if fd > 2 {
                libc::close(fd);
            }
        }
    }
}
