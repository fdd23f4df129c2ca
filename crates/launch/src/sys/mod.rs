//! The filesystem syscalls the rootfs setup needs, behind a trait.
//!
//! The container child runs the setup plan against [`Linux`]; unit tests run
//! the same plan against [`recording::Recorder`] and assert on the calls, so
//! the mount logic is tested without root. Every method takes C strings that
//! were built before the fork: implementations must not allocate (see the
//! crate docs on why the child stays async-signal-safe).

mod linux;
#[cfg(test)]
pub(crate) mod recording;

use std::ffi::CStr;

pub(crate) use linux::Linux;
pub(crate) use nix::errno::Errno;

/// What a path points at, as far as mask/readonly decisions care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    Missing,
    Dir,
    Other,
}

/// What [`Syscall::open_in_root`] creates when the path is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Create {
    /// Directories all the way down (a directory mount point).
    Dir,
    /// Directories, then an empty file last (a file mount point).
    File,
}

/// The syscalls used to build a container's root filesystem.
pub(crate) trait Syscall {
    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: libc::c_ulong,
        data: Option<&CStr>,
    ) -> Result<(), Errno>;
    fn umount2(&self, target: &CStr, flags: libc::c_int) -> Result<(), Errno>;
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> Result<(), Errno>;
    fn chdir(&self, path: &CStr) -> Result<(), Errno>;
    fn mkdir(&self, path: &CStr, mode: libc::mode_t) -> Result<(), Errno>;
    fn symlink(&self, target: &CStr, link: &CStr) -> Result<(), Errno>;
    fn mknod(&self, path: &CStr, mode: libc::mode_t, dev: libc::dev_t) -> Result<(), Errno>;
    /// Creates an empty regular file (a bind-mount target) if missing.
    fn create_file(&self, path: &CStr) -> Result<(), Errno>;
    fn file_kind(&self, path: &CStr) -> FileKind;
    /// The `MS_*` flags a mount must keep on remount (nosuid, nodev, noexec,
    /// atime flags): inside a user namespace the kernel refuses a remount
    /// that would clear a flag locked by the parent namespace.
    fn locked_flags(&self, path: &CStr) -> Result<libc::c_ulong, Errno>;
    fn sethostname(&self, name: &CStr) -> Result<(), Errno>;
    /// Opens `rel` below the directory `root` as if `root` were `/`:
    /// every symlink is resolved inside it, none can lead out (openat2's
    /// `RESOLVE_IN_ROOT`). With `create`, missing components are made on
    /// the way, each in its already-resolved parent. Returns an `O_PATH`
    /// descriptor, to be used through `/proc/self/fd` and then closed.
    fn open_in_root(
        &self,
        root: &CStr,
        rel: &CStr,
        create: Option<Create>,
    ) -> Result<libc::c_int, Errno>;
    fn close(&self, fd: libc::c_int);
}
