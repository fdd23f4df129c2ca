//! Polling /dev/fuse while requests keep coming.
//!
//! A FUSE request is a ping-pong: the caller queues it and sleeps, the
//! session thread wakes, answers and sleeps again, the caller wakes. Each
//! wake-up of a thread on an idle CPU costs an inter-processor interrupt,
//! and in a VM that is an exit to the hypervisor: on the 2-CPU VM these
//! numbers come from, about half of the session thread's time per request
//! went to waking the caller and to being woken (`perf`: `__wake_up` and
//! `finish_task_switch`), and a create of 10k files took 4.1 s where the
//! kernel's overlayfs took 0.7 s.
//!
//! So while requests keep coming, the session thread does not sleep: once
//! a request comes within a window of the one before, the device is
//! switched to non-blocking, and fuser's read loop, which
//! retries on `EAGAIN`, polls it. The caller's next request is then picked
//! up without waking anyone. A governor thread switches the device back
//! to blocking once a whole window passes with no request, so an idle
//! mount costs no CPU: the session thread spins for at most two windows
//! after the last request of a burst, and requests further apart than a
//! window (a server reading a file now and then) never make it spin.
//! Measured: create of 10k files 4.1 s
//! to 2.5 s, untar of 20k files 11.3 s to 5.3 s.
//!
//! The `O_NONBLOCK` flag belongs to the open file description, so the
//! governor sets it through its own duplicate of the session's descriptor,
//! which also keeps the number from being reused under it.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The default polling window (`spin=` in microseconds; 0 turns polling
/// off).
pub const DEFAULT_WINDOW: Duration = Duration::from_micros(200);

/// Switches the session's device between polling and sleeping.
#[derive(Debug)]
pub(crate) struct Spin {
    window: Duration,
    /// Requests seen; the governor compares it across a window.
    requests: AtomicU64,
    /// Whether the device is non-blocking now (a hint for the fast path;
    /// `State::spinning` decides).
    spinning: AtomicBool,
    /// Whether a governor runs (between `start` and `stop`).
    live: AtomicBool,
    /// When the last request came, in nanoseconds since `epoch`.
    last: AtomicU64,
    epoch: Instant,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// The governor's duplicate of the session's /dev/fuse descriptor;
    /// None before [`Spin::start`] and after [`Spin::stop`].
    dev: Option<OwnedFd>,
    spinning: bool,
    stopped: bool,
}

impl Spin {
    pub(crate) fn new(window: Duration) -> Spin {
        Spin {
            window,
            requests: AtomicU64::new(0),
            spinning: AtomicBool::new(false),
            live: AtomicBool::new(false),
            last: AtomicU64::new(0),
            epoch: Instant::now(),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts governing the session whose device is `dev`. Does nothing if
    /// the window is zero or the descriptor cannot be duplicated.
    pub(crate) fn start(self: &Arc<Self>, dev: BorrowedFd<'_>) {
        if self.window.is_zero() {
            return;
        }
        let dup = match dev.try_clone_to_owned() {
            Ok(d) => d,
            Err(e) => {
                log::info!("not polling /dev/fuse: {e}");
                return;
            }
        };
        self.lock().dev = Some(dup);
        let me = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("unionfs-spin".into())
            .spawn(move || governor(&me));
        match spawned {
            Ok(_) => self.live.store(true, Relaxed),
            Err(e) => {
                log::info!("not polling /dev/fuse: {e}");
                self.lock().dev = None;
            }
        }
    }

    /// Called by the session thread for each request it serves.
    pub(crate) fn saw_request(&self) {
        self.requests.fetch_add(1, Relaxed);
        if self.spinning.load(Relaxed) || !self.live.load(Relaxed) {
            return;
        }
        // Only a request close behind another starts a burst.
        let now = self.epoch.elapsed().as_nanos() as u64;
        let before = self.last.swap(now, Relaxed);
        if now.saturating_sub(before) > self.window.as_nanos() as u64 {
            return;
        }
        let mut st = self.lock();
        if st.spinning || st.stopped {
            return;
        }
        if let Some(dev) = &st.dev {
            if set_nonblocking(dev, true) {
                st.spinning = true;
                self.spinning.store(true, Relaxed);
                self.wake.notify_one();
            }
        }
    }

    /// Puts the device back to blocking for good and ends the governor.
    pub(crate) fn stop(&self) {
        let mut st = self.lock();
        if let Some(dev) = st.dev.take() {
            set_nonblocking(&dev, false);
        }
        st.spinning = false;
        st.stopped = true;
        self.spinning.store(false, Relaxed);
        self.live.store(false, Relaxed);
        self.wake.notify_one();
    }

    /// One window of the governor: waits for polling to start, lets a
    /// window pass, and ends polling if no request came in it. False once
    /// the session is over.
    fn govern_once(&self) -> bool {
        let mut st = self.lock();
        while !st.spinning && !st.stopped {
            st = self.wake.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        if st.stopped {
            return false;
        }
        drop(st);
        let before = self.requests.load(Relaxed);
        std::thread::sleep(self.window);
        self.end_window(before)
    }

    /// Ends polling unless a request came since the count was `before`.
    /// False once the session is over.
    fn end_window(&self, before: u64) -> bool {
        let mut st = self.lock();
        if self.requests.load(Relaxed) == before && st.spinning {
            if let Some(dev) = &st.dev {
                set_nonblocking(dev, false);
            }
            st.spinning = false;
            self.spinning.store(false, Relaxed);
        }
        !st.stopped
    }
}

fn governor(spin: &std::sync::Weak<Spin>) {
    while let Some(s) = spin.upgrade() {
        if !s.govern_once() {
            return;
        }
    }
}

/// Sets or clears `O_NONBLOCK`; false if `fcntl` failed.
fn set_nonblocking(fd: &OwnedFd, on: bool) -> bool {
    let fd = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 {
            return false;
        }
        let want = if on {
            fl | libc::O_NONBLOCK
        } else {
            fl & !libc::O_NONBLOCK
        };
        want == fl || libc::fcntl(fd, libc::F_SETFL, want) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn nonblocking(fd: BorrowedFd<'_>) -> bool {
        // SAFETY: F_GETFL on a live descriptor.
        let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
        fl & libc::O_NONBLOCK != 0
    }

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two new descriptors we then own.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: just created, owned by nobody else.
        unsafe {
            use std::os::fd::FromRawFd;
            (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
        }
    }

    fn wait_for(what: impl Fn() -> bool) -> bool {
        for _ in 0..2000 {
            if what() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[test]
    fn a_burst_starts_polling_and_an_idle_window_ends_it() {
        let (r, _w) = pipe();
        let spin = Arc::new(Spin::new(Duration::from_millis(100)));
        spin.start(r.as_fd());
        assert!(!nonblocking(r.as_fd()), "idle before any request");
        spin.saw_request();
        spin.saw_request();
        assert!(
            nonblocking(r.as_fd()),
            "a request close behind another polls"
        );
        assert!(
            wait_for(|| !nonblocking(r.as_fd())),
            "an idle window switches back to blocking"
        );
        spin.saw_request();
        spin.saw_request();
        assert!(nonblocking(r.as_fd()), "and the next burst polls again");
        spin.stop();
        assert!(!nonblocking(r.as_fd()), "stop leaves the device blocking");
        spin.saw_request();
        assert!(!nonblocking(r.as_fd()), "no polling after stop");
    }

    #[test]
    fn a_request_during_the_window_keeps_it_polling() {
        let (r, _w) = pipe();
        // No governor thread: the test plays it.
        let spin = Spin::new(Duration::from_secs(1));
        spin.lock().dev = Some(r.try_clone().unwrap());
        spin.live.store(true, Relaxed);
        spin.saw_request();
        let before = spin.requests.load(Relaxed);
        spin.saw_request();
        assert!(spin.end_window(before));
        assert!(nonblocking(r.as_fd()), "a request came: still polling");
        assert!(spin.end_window(spin.requests.load(Relaxed)));
        assert!(!nonblocking(r.as_fd()), "a window with none: blocking");
        spin.stop();
        assert!(!spin.end_window(0), "over once stopped");
    }

    #[test]
    fn requests_further_apart_than_a_window_never_poll() {
        let (r, _w) = pipe();
        let spin = Arc::new(Spin::new(Duration::from_micros(1)));
        spin.start(r.as_fd());
        for _ in 0..5 {
            spin.saw_request();
            assert!(!nonblocking(r.as_fd()));
            std::thread::sleep(Duration::from_millis(2));
        }
        spin.stop();
    }

    #[test]
    fn a_zero_window_never_polls() {
        let (r, _w) = pipe();
        let spin = Arc::new(Spin::new(Duration::ZERO));
        spin.start(r.as_fd());
        spin.saw_request();
        assert!(!nonblocking(r.as_fd()));
    }

    #[test]
    fn the_governor_ends_with_the_session() {
        let (r, _w) = pipe();
        let spin = Arc::new(Spin::new(Duration::from_millis(1)));
        spin.start(r.as_fd());
        spin.saw_request();
        spin.stop();
        let weak = Arc::downgrade(&spin);
        drop(spin);
        assert!(wait_for(|| weak.upgrade().is_none()));
    }
}
