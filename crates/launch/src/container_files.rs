//! Reading files as a running container sees them. Its root filesystem may
//! be mounted only in its own mount namespace (a rootless monitor's), and a
//! FUSE mount there answers only processes of its user namespace, so
//! `/proc/PID/root` does not do: a forked child joins the init's user and
//! mount namespaces (the mount namespace's root is the container's root)
//! and streams the files back. Absolute symlinks resolve inside the
//! container, as they would for the container itself.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;

use crate::error::{Error, Result};
use crate::fork;

/// Frames on the pipe: per file a status byte (1 found, 0 not readable),
/// then for a found file chunks of `u32` length + bytes, ended by length 0.
const CHUNK: usize = 4096;

/// The contents of `paths` (absolute, in the container) as the container
/// whose init is `pid` sees them; `None` for a file it cannot read. Only
/// async-signal-safe work happens after the fork, so any caller may use it.
pub fn read_container_files(pid: i32, paths: &[&str]) -> Result<Vec<Option<Vec<u8>>>> {
    let namespaces: Vec<_> = crate::exec::namespace_fds(pid)?
        .into_iter()
        .filter(|(_, flag, _)| *flag == libc::CLONE_NEWUSER || *flag == libc::CLONE_NEWNS)
        .collect();
    let ns_raw: Vec<(i32, libc::c_int)> = namespaces
        .iter()
        .map(|(fd, flag, _)| (fd.as_raw_fd(), *flag))
        .collect();
    let paths_c: Vec<CString> = paths
        .iter()
        .map(crate::rootfs::cstr)
        .collect::<Result<_>>()?;
    let (r, w) = fork::pipe()?;
    // SAFETY: the child only makes raw syscalls on data prepared here.
    let child = unsafe { fork::raw_clone(0)? };
    if child == 0 {
        let _unwind = crate::child::ExitOnUnwind;
        // SAFETY: raw syscalls on valid fds and C strings, stack buffers.
        unsafe {
            libc::close(r.as_raw_fd());
            let out = w.as_raw_fd();
            for (fd, flag) in &ns_raw {
                if libc::setns(*fd, *flag) == -1 {
                    libc::_exit(1);
                }
            }
            for p in &paths_c {
                let fd = libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if fd == -1 {
                    write_all(out, &[0]);
                    continue;
                }
                write_all(out, &[1]);
                let mut buf = [0u8; 4 + CHUNK];
                loop {
                    let n = libc::read(fd, buf[4..].as_mut_ptr().cast(), CHUNK);
                    let n = if n < 0 { 0 } else { n as usize };
                    buf[..4].copy_from_slice(&(n as u32).to_le_bytes());
                    write_all(out, &buf[..4 + n]);
                    if n == 0 {
                        break;
                    }
                }
                libc::close(fd);
            }
            libc::_exit(0);
        }
    }
    drop(w);
    let mut bytes = Vec::new();
    let read = File::from(r).read_to_end(&mut bytes);
    let status = fork::wait_pid(child)?;
    read.map_err(|e| Error::io("reading the container's files", e))?;
    if status != fork::ExitStatus::Exited(0) {
        return Err(Error::io(
            format!("joining the namespaces of {pid}"),
            std::io::Error::other(format!("the reader ended with {status:?}")),
        ));
    }
    decode(&bytes, paths.len())
}

/// # Safety
/// `fd` must be a valid file descriptor.
unsafe fn write_all(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid buffer.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

fn decode(mut bytes: &[u8], count: usize) -> Result<Vec<Option<Vec<u8>>>> {
    let truncated = || {
        Error::io(
            "reading the container's files",
            std::io::Error::other("truncated reply"),
        )
    };
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let (&status, rest) = bytes.split_first().ok_or_else(truncated)?;
        bytes = rest;
        if status == 0 {
            out.push(None);
            continue;
        }
        let mut file = Vec::new();
        loop {
            let len = bytes.get(..4).ok_or_else(truncated)?;
            let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
            let chunk = bytes.get(4..4 + len).ok_or_else(truncated)?;
            file.extend_from_slice(chunk);
            bytes = &bytes[4 + len..];
            if len == 0 {
                break;
            }
        }
        out.push(Some(file));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_decode_found_and_missing_files() {
        let mut b = vec![1];
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(b"abc");
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(b"de");
        b.extend_from_slice(&0u32.to_le_bytes());
        b.push(0);
        let got = decode(&b, 2).unwrap();
        assert_eq!(got, vec![Some(b"abcde".to_vec()), None]);
        assert!(decode(&b[..5], 2).is_err(), "truncated");
    }

    #[test]
    fn own_files_read_like_the_host_sees_them() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, vec![7u8; 10_000]).unwrap();
        let missing = dir.path().join("missing");
        let me = std::process::id() as i32;
        let got =
            read_container_files(me, &[f.to_str().unwrap(), missing.to_str().unwrap()]).unwrap();
        assert_eq!(got, vec![Some(vec![7u8; 10_000]), None]);
    }
}
