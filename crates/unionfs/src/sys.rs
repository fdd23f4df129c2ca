//! Thin, safe wrappers over the `*at` system calls the overlay is built on.
//!
//! Every call takes a layer's directory fd plus a path relative to it, so a
//! request never re-walks the path from `/` and never follows a symlink that a
//! layer's content could plant. Errors are raw errno values ([`Errno`]) because
//! they travel straight back to the kernel.

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// A raw errno value, as returned to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    pub(crate) fn last() -> Errno {
        Errno(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    }
}

impl From<std::io::Error> for Errno {
    fn from(e: std::io::Error) -> Self {
        Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
}

pub(crate) type SysResult<T> = Result<T, Errno>;

fn check(ret: libc::c_int) -> SysResult<libc::c_int> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// Converts a relative path to a C string; interior NULs cannot come from the
/// kernel, so they are reported as EINVAL rather than panicking.
pub(crate) fn cpath(p: &[u8]) -> SysResult<CString> {
    CString::new(p).map_err(|_| Errno(libc::EINVAL))
}

/// Joins a relative directory path and a name ("." is the layer root).
pub(crate) fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir == b"." {
        name.to_vec()
    } else {
        let mut v = Vec::with_capacity(dir.len() + 1 + name.len());
        v.extend_from_slice(dir);
        v.push(b'/');
        v.extend_from_slice(name);
        v
    }
}

/// Splits a relative path into (parent, name); the parent of a top-level
/// entry is ".".
pub(crate) fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b".", path),
    }
}

pub(crate) fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

pub(crate) fn fstatat(dirfd: RawFd, path: &[u8]) -> SysResult<libc::stat> {
    let c = cpath(path)?;
    fstatat_c(dirfd, &c)
}

pub(crate) fn fstatat_c(dirfd: RawFd, path: &CStr) -> SysResult<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid C string and out-pointer.
    check(unsafe {
        libc::fstatat(
            dirfd,
            path.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH,
        )
    })?;
    // SAFETY: fstatat succeeded, so the struct is initialised.
    Ok(unsafe { st.assume_init() })
}

pub(crate) fn fstat(fd: RawFd) -> SysResult<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: out-pointer is valid.
    check(unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded.
    Ok(unsafe { st.assume_init() })
}

pub(crate) fn exists(dirfd: RawFd, path: &[u8]) -> bool {
    fstatat(dirfd, path).is_ok()
}

pub(crate) fn openat(dirfd: RawFd, path: &[u8], flags: i32, mode: u32) -> SysResult<OwnedFd> {
    let c = cpath(path)?;
    // SAFETY: valid C string; the returned fd is owned by us.
    let fd = check(unsafe {
        libc::openat(
            dirfd,
            c.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            mode,
        )
    })?;
    // SAFETY: fd was just returned by openat.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn mkdirat(dirfd: RawFd, path: &[u8], mode: u32) -> SysResult<()> {
    let c = cpath(path)?;
    // SAFETY: valid C string.
    check(unsafe { libc::mkdirat(dirfd, c.as_ptr(), mode) }).map(drop)
}

pub(crate) fn mknodat(dirfd: RawFd, path: &[u8], mode: u32, dev: u64) -> SysResult<()> {
    let c = cpath(path)?;
    // SAFETY: valid C string.
    check(unsafe { libc::mknodat(dirfd, c.as_ptr(), mode, dev) }).map(drop)
}

pub(crate) fn symlinkat(target: &[u8], dirfd: RawFd, path: &[u8]) -> SysResult<()> {
    let t = cpath(target)?;
    let c = cpath(path)?;
    // SAFETY: valid C strings.
    check(unsafe { libc::symlinkat(t.as_ptr(), dirfd, c.as_ptr()) }).map(drop)
}

pub(crate) fn readlinkat(dirfd: RawFd, path: &[u8]) -> SysResult<Vec<u8>> {
    let c = cpath(path)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: buffer is valid for its length.
    let n = unsafe { libc::readlinkat(dirfd, c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(Errno::last());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

pub(crate) fn unlinkat(dirfd: RawFd, path: &[u8], flags: i32) -> SysResult<()> {
    let c = cpath(path)?;
    // SAFETY: valid C string.
    check(unsafe { libc::unlinkat(dirfd, c.as_ptr(), flags) }).map(drop)
}

pub(crate) fn renameat2(
    olddir: RawFd,
    old: &[u8],
    newdir: RawFd,
    new: &[u8],
    flags: u32,
) -> SysResult<()> {
    let o = cpath(old)?;
    let n = cpath(new)?;
    // SAFETY: valid C strings.
    check(unsafe { libc::renameat2(olddir, o.as_ptr(), newdir, n.as_ptr(), flags) }).map(drop)
}

pub(crate) fn linkat(olddir: RawFd, old: &[u8], newdir: RawFd, new: &[u8]) -> SysResult<()> {
    let o = cpath(old)?;
    let n = cpath(new)?;
    // SAFETY: valid C strings.
    check(unsafe { libc::linkat(olddir, o.as_ptr(), newdir, n.as_ptr(), 0) }).map(drop)
}

pub(crate) fn lchown(dirfd: RawFd, path: &[u8], uid: u32, gid: u32) -> SysResult<()> {
    let c = cpath(path)?;
    // SAFETY: valid C string.
    check(unsafe {
        libc::fchownat(
            dirfd,
            c.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH,
        )
    })
    .map(drop)
}

pub(crate) fn chmodat(dirfd: RawFd, path: &[u8], mode: u32) -> SysResult<()> {
    let c = cpath(path)?;
    // SAFETY: valid C string. Symlinks are never chmod-ed (their mode is fixed).
    check(unsafe { libc::fchmodat(dirfd, c.as_ptr(), mode, 0) }).map(drop)
}

pub(crate) fn utimensat(dirfd: RawFd, path: &[u8], times: &[libc::timespec; 2]) -> SysResult<()> {
    let c = cpath(path)?;
    // SAFETY: valid C string and two timespecs.
    check(unsafe { libc::utimensat(dirfd, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
        .map(drop)
}

pub(crate) fn fsync(fd: RawFd) -> SysResult<()> {
    // SAFETY: plain syscall on an fd.
    check(unsafe { libc::fsync(fd) }).map(drop)
}

pub(crate) fn fstatvfs(fd: RawFd) -> SysResult<libc::statvfs> {
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: out-pointer is valid.
    check(unsafe { libc::fstatvfs(fd, st.as_mut_ptr()) })?;
    // SAFETY: call succeeded.
    Ok(unsafe { st.assume_init() })
}

/// The `/proc/self/fd/N/path` spelling of a layer-relative path, for
/// kernels without the `*xattrat` calls (before 6.13).
pub(crate) fn proc_path(dirfd: RawFd, path: &[u8]) -> SysResult<CString> {
    let mut v = format!("/proc/self/fd/{dirfd}").into_bytes();
    if path != b"." {
        v.push(b'/');
        v.extend_from_slice(path);
    }
    cpath(&v)
}

/// Linux 6.13's fd-relative xattr calls (the same numbers on every
/// architecture, like all calls added since 5.1). They spare each xattr
/// question a walk through /proc/self/fd, which costs more than the call.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod xattrat {
    pub(super) const SETXATTRAT: libc::c_long = 463;
    pub(super) const GETXATTRAT: libc::c_long = 464;
    pub(super) const LISTXATTRAT: libc::c_long = 465;
    pub(super) const REMOVEXATTRAT: libc::c_long = 466;
}
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod xattrat {
    // Unknown here: -1 fails with ENOSYS and the /proc path is used.
    pub(super) const SETXATTRAT: libc::c_long = -1;
    pub(super) const GETXATTRAT: libc::c_long = -1;
    pub(super) const LISTXATTRAT: libc::c_long = -1;
    pub(super) const REMOVEXATTRAT: libc::c_long = -1;
}

/// `struct xattr_args` of the `*xattrat` calls.
#[repr(C)]
struct XattrArgs {
    value: u64,
    size: u32,
    flags: u32,
}

/// Cleared at the first ENOSYS: the kernel predates the `*xattrat` calls.
static XATTRAT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Runs an `*xattrat` call, or `fallback` where the kernel lacks them.
fn with_xattrat(
    at: impl FnOnce() -> libc::c_long,
    fallback: impl FnOnce() -> SysResult<isize>,
) -> SysResult<isize> {
    use std::sync::atomic::Ordering;
    if XATTRAT.load(Ordering::Relaxed) {
        let r = at();
        if r >= 0 {
            return Ok(r as isize);
        }
        let e = Errno::last();
        if e.0 != libc::ENOSYS {
            return Err(e);
        }
        XATTRAT.store(false, Ordering::Relaxed);
    }
    fallback()
}

fn isize_result(r: isize) -> SysResult<isize> {
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

const XATTR_AT_FLAGS: libc::c_long = libc::AT_SYMLINK_NOFOLLOW as libc::c_long;

/// getxattrat/setxattrat: `name` of `path` under `dirfd`, its value in the
/// `len` bytes at `value`.
///
/// # Safety
/// `value` must be valid for `len` bytes: writable for getxattrat.
unsafe fn xattrat_value(
    nr: libc::c_long,
    dirfd: RawFd,
    path: &std::ffi::CStr,
    name: &std::ffi::CStr,
    value: *mut u8,
    len: usize,
    flags: u32,
) -> libc::c_long {
    let mut args = XattrArgs {
        value: value as u64,
        size: len as u32,
        flags,
    };
    // SAFETY: valid C strings and an xattr_args naming the caller's buffer.
    unsafe {
        libc::syscall(
            nr,
            dirfd,
            path.as_ptr(),
            XATTR_AT_FLAGS,
            name.as_ptr(),
            std::ptr::addr_of_mut!(args),
            std::mem::size_of::<XattrArgs>(),
        )
    }
}

pub(crate) fn lgetxattr(dirfd: RawFd, path: &[u8], name: &[u8]) -> SysResult<Vec<u8>> {
    let c = cpath(path)?;
    let n = cpath(name)?;
    read_growing(256, |buf| {
        let len = buf.len();
        let ptr = buf.as_mut_ptr();
        with_xattrat(
            // SAFETY: the value buffer is `len` writable bytes.
            || unsafe { xattrat_value(xattrat::GETXATTRAT, dirfd, &c, &n, ptr, len, 0) },
            || {
                let p = proc_path(dirfd, path)?;
                // SAFETY: valid C strings, and a buffer of the length given.
                isize_result(unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), ptr.cast(), len) })
            },
        )
    })
}

/// Calls `f` with a buffer that grows while the kernel answers ERANGE (a
/// value larger than the buffer), up to 1 MiB.
fn read_growing(
    start: usize,
    mut f: impl FnMut(&mut [u8]) -> SysResult<isize>,
) -> SysResult<Vec<u8>> {
    let mut buf = vec![0u8; start];
    loop {
        match f(&mut buf) {
            Ok(r) => {
                buf.truncate(r as usize);
                return Ok(buf);
            }
            Err(e) if e.0 != libc::ERANGE || buf.len() >= 1 << 20 => return Err(e),
            Err(_) => {
                let len = buf.len() * 4;
                buf.resize(len, 0);
            }
        }
    }
}

pub(crate) fn lsetxattr(
    dirfd: RawFd,
    path: &[u8],
    name: &[u8],
    value: &[u8],
    flags: i32,
) -> SysResult<()> {
    let c = cpath(path)?;
    let n = cpath(name)?;
    with_xattrat(
        // SAFETY: the kernel only reads the `value.len()` bytes of `value`.
        || unsafe {
            xattrat_value(
                xattrat::SETXATTRAT,
                dirfd,
                &c,
                &n,
                value.as_ptr().cast_mut(),
                value.len(),
                flags as u32,
            )
        },
        || {
            let p = proc_path(dirfd, path)?;
            // SAFETY: valid C strings and buffer.
            isize_result(unsafe {
                libc::lsetxattr(
                    p.as_ptr(),
                    n.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    flags,
                )
            } as isize)
        },
    )
    .map(drop)
}

pub(crate) fn lremovexattr(dirfd: RawFd, path: &[u8], name: &[u8]) -> SysResult<()> {
    let c = cpath(path)?;
    let n = cpath(name)?;
    with_xattrat(
        // SAFETY: valid C strings.
        || unsafe {
            libc::syscall(
                xattrat::REMOVEXATTRAT,
                dirfd,
                c.as_ptr(),
                XATTR_AT_FLAGS,
                n.as_ptr(),
            )
        },
        || {
            let p = proc_path(dirfd, path)?;
            // SAFETY: valid C strings.
            isize_result(unsafe { libc::lremovexattr(p.as_ptr(), n.as_ptr()) } as isize)
        },
    )
    .map(drop)
}

/// Lists xattr names (NUL-separated, as the kernel returns them).
pub(crate) fn llistxattr(dirfd: RawFd, path: &[u8]) -> SysResult<Vec<u8>> {
    let c = cpath(path)?;
    read_growing(1024, |buf| {
        let len = buf.len();
        let ptr = buf.as_mut_ptr();
        with_xattrat(
            // SAFETY: a valid C string, and a buffer of the length given.
            || unsafe {
                libc::syscall(
                    xattrat::LISTXATTRAT,
                    dirfd,
                    c.as_ptr(),
                    XATTR_AT_FLAGS,
                    ptr,
                    len,
                )
            },
            || {
                let p = proc_path(dirfd, path)?;
                // SAFETY: a valid C string, and a buffer of the length given.
                isize_result(unsafe { libc::llistxattr(p.as_ptr(), ptr.cast(), len) })
            },
        )
    })
}

/// Reads every entry (name, d_type, d_ino) of a directory fd (consumes the fd).
pub(crate) fn read_dir(fd: OwnedFd) -> SysResult<Vec<(Vec<u8>, u8, u64)>> {
    let raw = fd.as_raw_fd();
    // SAFETY: fdopendir takes ownership of the fd on success.
    let dir = unsafe { libc::fdopendir(raw) };
    if dir.is_null() {
        return Err(Errno::last());
    }
    std::mem::forget(fd);
    let mut out = Vec::new();
    loop {
        // SAFETY: dir is a valid DIR*; readdir's result is valid until the next call.
        let ent = unsafe { libc::readdir64(dir) };
        if ent.is_null() {
            break;
        }
        // SAFETY: d_name is NUL-terminated.
        let (name, ty, ino) = unsafe {
            (
                CStr::from_ptr((*ent).d_name.as_ptr()).to_bytes().to_vec(),
                (*ent).d_type,
                (*ent).d_ino,
            )
        };
        if name != b"." && name != b".." {
            out.push((name, ty, ino));
        }
    }
    // SAFETY: closes the DIR and its fd exactly once.
    unsafe { libc::closedir(dir) };
    Ok(out)
}

pub(crate) fn pread(fd: RawFd, buf: &mut [u8], off: u64) -> SysResult<usize> {
    // SAFETY: buffer valid for its length.
    let n = unsafe { libc::pread64(fd, buf.as_mut_ptr().cast(), buf.len(), off as i64) };
    if n < 0 {
        Err(Errno::last())
    } else {
        Ok(n as usize)
    }
}

pub(crate) fn pwrite(fd: RawFd, buf: &[u8], off: u64) -> SysResult<usize> {
    // SAFETY: buffer valid for its length.
    let n = unsafe { libc::pwrite64(fd, buf.as_ptr().cast(), buf.len(), off as i64) };
    if n < 0 {
        Err(Errno::last())
    } else {
        Ok(n as usize)
    }
}
