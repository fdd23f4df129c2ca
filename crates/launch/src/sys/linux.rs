//! [`Syscall`] on the real kernel: thin, allocation-free libc calls.

use std::ffi::CStr;
use std::ptr;

use super::{Errno, FileKind, Syscall};

/// The real kernel.
pub(crate) struct Linux;

fn check(ret: libc::c_int) -> Result<(), Errno> {
    if ret == -1 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

fn opt_ptr(s: Option<&CStr>) -> *const libc::c_char {
    s.map_or(ptr::null(), CStr::as_ptr)
}

impl Syscall for Linux {
    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: libc::c_ulong,
        data: Option<&CStr>,
    ) -> Result<(), Errno> {
        // SAFETY: every pointer is null or a valid NUL-terminated string.
        check(unsafe {
            libc::mount(
                opt_ptr(source),
                target.as_ptr(),
                opt_ptr(fstype),
                flags,
                opt_ptr(data).cast(),
            )
        })
    }

    fn umount2(&self, target: &CStr, flags: libc::c_int) -> Result<(), Errno> {
        // SAFETY: valid C string.
        check(unsafe { libc::umount2(target.as_ptr(), flags) })
    }

    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> Result<(), Errno> {
        // SAFETY: valid C strings; pivot_root has no libc wrapper.
        let ret =
            unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
        check(ret as libc::c_int)
    }

    fn chdir(&self, path: &CStr) -> Result<(), Errno> {
        // SAFETY: valid C string.
        check(unsafe { libc::chdir(path.as_ptr()) })
    }

    fn mkdir(&self, path: &CStr, mode: libc::mode_t) -> Result<(), Errno> {
        // SAFETY: valid C string.
        check(unsafe { libc::mkdir(path.as_ptr(), mode) })
    }

    fn symlink(&self, target: &CStr, link: &CStr) -> Result<(), Errno> {
        // SAFETY: valid C strings.
        check(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) })
    }

    fn mknod(&self, path: &CStr, mode: libc::mode_t, dev: libc::dev_t) -> Result<(), Errno> {
        // SAFETY: valid C string.
        check(unsafe { libc::mknod(path.as_ptr(), mode, dev) })
    }

    fn create_file(&self, path: &CStr) -> Result<(), Errno> {
        // SAFETY: valid C string; the fd is closed right away.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                0o644 as libc::c_uint,
            )
        };
        check(fd)?;
        // SAFETY: fd was just opened by us.
        unsafe { libc::close(fd) };
        Ok(())
    }

    fn file_kind(&self, path: &CStr) -> FileKind {
        // SAFETY: zeroed stat is a valid out-buffer; path is a valid C string.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::stat(path.as_ptr(), &mut st) } == -1 {
            return FileKind::Missing;
        }
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            FileKind::Dir
        } else {
            FileKind::Other
        }
    }

    fn locked_flags(&self, path: &CStr) -> Result<libc::c_ulong, Errno> {
        // SAFETY: zeroed statvfs is a valid out-buffer.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        check(unsafe { libc::statvfs(path.as_ptr(), &mut st) })?;
        Ok(st_to_ms_flags(st.f_flag))
    }

    fn sethostname(&self, name: &CStr) -> Result<(), Errno> {
        // SAFETY: pointer and length describe the string's bytes.
        check(unsafe { libc::sethostname(name.as_ptr(), name.to_bytes().len()) })
    }
}

/// Translates `statvfs` `ST_*` bits into the `MS_*` bits a remount keeps.
pub(crate) fn st_to_ms_flags(st: libc::c_ulong) -> libc::c_ulong {
    const PAIRS: [(libc::c_ulong, libc::c_ulong); 6] = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ];
    PAIRS
        .iter()
        .filter(|(s, _)| st & s != 0)
        .fold(0, |acc, (_, m)| acc | m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statvfs_bits_map_to_mount_flags() {
        let got = st_to_ms_flags(libc::ST_NOSUID | libc::ST_NOEXEC | libc::ST_RDONLY);
        assert_eq!(got, libc::MS_NOSUID | libc::MS_NOEXEC);
    }

    #[test]
    fn file_kind_distinguishes_dirs_files_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        let c =
            |p: &std::path::Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(Linux.file_kind(&c(dir.path())), FileKind::Dir);
        assert_eq!(Linux.file_kind(&c(&file)), FileKind::Other);
        assert_eq!(
            Linux.file_kind(&c(&dir.path().join("nope"))),
            FileKind::Missing
        );
    }
}
