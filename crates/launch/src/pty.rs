//! A pseudo-terminal for containers started with `terminal: true`. The
//! master stays with the caller; the slave becomes the container's stdio,
//! controlling terminal and `/dev/console`.

use std::ffi::CStr;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;

use crate::error::{Error, Result};

pub(crate) struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    pub slave_path: PathBuf,
}

pub(crate) fn open() -> Result<Pty> {
    let err = |what: &str| Error::io(what.to_string(), std::io::Error::last_os_error());
    // SAFETY: posix_openpt returns a new fd or -1.
    let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if fd == -1 {
        return Err(err("open pty master"));
    }
    // SAFETY: fd is fresh and ours.
    let master = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: fd is a pty master; name is a writable buffer of the given size.
    unsafe {
        if libc::grantpt(fd) != 0 || libc::unlockpt(fd) != 0 {
            return Err(err("unlock pty"));
        }
        if libc::ptsname_r(fd, name.as_mut_ptr(), name.len()) != 0 {
            return Err(err("pty name"));
        }
    }
    // SAFETY: ptsname_r wrote a NUL-terminated string.
    let path = unsafe { CStr::from_ptr(name.as_ptr()) };
    // SAFETY: path is a valid C string.
    let sfd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if sfd == -1 {
        return Err(err("open pty slave"));
    }
    Ok(Pty {
        master,
        // SAFETY: sfd is fresh and ours.
        slave: unsafe { OwnedFd::from_raw_fd(sfd) },
        slave_path: PathBuf::from(path.to_string_lossy().into_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn slave_is_a_terminal() {
        let pty = open().unwrap();
        // SAFETY: isatty on an fd we own.
        assert_eq!(unsafe { libc::isatty(pty.slave.as_raw_fd()) }, 1);
        assert!(pty.slave_path.starts_with("/dev/pts"));
    }
}
