//! The caller's terminal: raw mode, its stdin copied to a container, and
//! its size followed by a container's pty, directly (a pty master this
//! process holds) or through the container's attach socket.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, IntoRawFd};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use super::monitor;

/// Keeps a running container's pty at the size of our terminal: now and on
/// every SIGWINCH (`attach` to a `-t` container, as Docker resizes).
pub(crate) fn follow_terminal_remotely(dir: &Path) {
    send_size(dir);
    let Ok((mut notes, note_w)) = monitor::pipe() else {
        return;
    };
    WINCH_NOTES.store(note_w.into_raw_fd(), Ordering::SeqCst);
    set_handler(libc::SIGWINCH, note_winch as *const () as usize);
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while matches!(notes.read(&mut buf), Ok(n) if n > 0) {
            send_size(&dir);
        }
    });
}

fn terminal_size() -> Option<libc::winsize> {
    // SAFETY: TIOCGWINSZ with a valid winsize buffer.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0).then_some(ws)
    }
}

/// Keeps the pty `master` (a foreground `run -t`, `exec -t`) at the size of
/// our terminal: now and on every SIGWINCH, until [`stop_following`].
pub(crate) fn follow_terminal(master: i32) {
    copy_winsize(master);
    PTY_MASTER.store(master, Ordering::SeqCst);
    set_handler(libc::SIGWINCH, resize_pty as *const () as usize);
}

/// Before the pty master given to [`follow_terminal`] closes.
pub(crate) fn stop_following() {
    PTY_MASTER.store(-1, Ordering::SeqCst);
}

/// Sends our terminal's size to a running container's monitor.
fn send_size(dir: &Path) {
    if let Some(ws) = terminal_size() {
        monitor::send_resize(dir, &ws);
    }
}

/// The pty master, for SIGWINCH.
static PTY_MASTER: AtomicI32 = AtomicI32::new(-1);
/// Where SIGWINCH is noted for [`follow_terminal_remotely`]'s thread.
static WINCH_NOTES: AtomicI32 = AtomicI32::new(-1);

extern "C" fn note_winch(_: libc::c_int) {
    let fd = WINCH_NOTES.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write is async-signal-safe.
        unsafe { libc::write(fd, b"w".as_ptr().cast(), 1) };
    }
}

extern "C" fn resize_pty(_: libc::c_int) {
    let master = PTY_MASTER.load(Ordering::SeqCst);
    if master >= 0 {
        copy_winsize(master);
    }
}

/// Copies the size of our terminal (stdin) to the pty `master`; only
/// async-signal-safe calls.
fn copy_winsize(master: i32) {
    if let Some(ws) = terminal_size() {
        // SAFETY: TIOCSWINSZ with a valid winsize buffer.
        unsafe { libc::ioctl(master, libc::TIOCSWINSZ, &ws) };
    }
}

pub(crate) fn set_handler(sig: libc::c_int, handler: usize) {
    // SAFETY: installing a handler that only makes async-signal-safe calls
    // (or SIG_DFL / SIG_IGN).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
}

/// The caller's terminal in raw mode, restored on drop.
pub(crate) struct RawTerminal {
    saved: Option<rustix::termios::Termios>,
}

impl RawTerminal {
    /// Puts stdin's terminal into raw mode, if stdin is a terminal.
    pub(crate) fn enter() -> Self {
        let stdin = std::io::stdin();
        let Ok(saved) = rustix::termios::tcgetattr(stdin.as_fd()) else {
            return RawTerminal { saved: None };
        };
        let mut raw = saved.clone();
        raw.make_raw();
        let _ =
            rustix::termios::tcsetattr(stdin.as_fd(), rustix::termios::OptionalActions::Now, &raw);
        RawTerminal { saved: Some(saved) }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin().as_fd(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}

/// Copies this process's stdin to `dest` in a thread (which ends with the
/// process, or at the end of stdin).
pub(crate) fn forward_stdin(mut dest: File, close_at_eof: bool) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 8192];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if dest.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if !close_at_eof {
            // A pty would see a hangup: keep it open until the process ends.
            std::mem::forget(dest);
        }
    });
}
