//! [`Syscall`] on the real kernel: thin, allocation-free libc calls.

use std::ffi::CStr;
use std::ptr;

use super::{Create, Errno, FileKind, Syscall};

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

    fn open_in_root(
        &self,
        root: &CStr,
        rel: &CStr,
        create: Option<Create>,
    ) -> Result<libc::c_int, Errno> {
        // SAFETY: valid C string; the fd is owned by the guard.
        let root_fd = Fd(fd_or_errno(unsafe {
            libc::open(
                root.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?);
        match create {
            None => openat2_in_root(root_fd.0, rel, libc::O_PATH, false),
            Some(kind) => create_in_root(root_fd.0, rel.to_bytes(), kind),
        }
    }

    fn close(&self, fd: libc::c_int) {
        // SAFETY: closing a descriptor this process owns.
        unsafe { libc::close(fd) };
    }
}

/// Closes the descriptor when dropped.
struct Fd(libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the guard owns the descriptor.
        unsafe { libc::close(self.0) };
    }
}

fn fd_or_errno(ret: libc::c_int) -> Result<libc::c_int, Errno> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// `openat2(root_fd, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`,
/// plus `RESOLVE_NO_SYMLINKS` when `no_symlinks`; an empty path opens the
/// root itself.
fn openat2_in_root(
    root_fd: libc::c_int,
    path: &CStr,
    flags: libc::c_int,
    no_symlinks: bool,
) -> Result<libc::c_int, Errno> {
    let path = if path.is_empty() { c"." } else { path };
    // SAFETY: open_how is plain data; zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    if no_symlinks {
        how.resolve |= libc::RESOLVE_NO_SYMLINKS;
    }
    // The kernel may ask to retry when a rename raced a `..` lookup.
    for _ in 0..16 {
        // SAFETY: valid fd, C string and open_how of the size passed.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root_fd,
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        match fd_or_errno(ret as libc::c_int) {
            Err(Errno::EAGAIN) => continue,
            r => return r,
        }
    }
    Err(Errno::EAGAIN)
}

const PATH_MAX: usize = libc::PATH_MAX as usize;
const MAX_SYMLINKS: usize = 40;

/// A path of at most `PATH_MAX` bytes on the stack, kept NUL-terminated.
struct StackPath {
    buf: [u8; PATH_MAX + 1],
    len: usize,
}

impl StackPath {
    fn new() -> StackPath {
        StackPath {
            buf: [0; PATH_MAX + 1],
            len: 0,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn extend(&mut self, bytes: &[u8]) -> Result<(), Errno> {
        if self.len + bytes.len() > PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        self.buf[self.len] = 0;
        Ok(())
    }

    fn push_component(&mut self, name: &[u8]) -> Result<(), Errno> {
        if self.len > 0 {
            self.extend(b"/")?;
        }
        self.extend(name)
    }

    /// Drops the last component (nothing to drop: stays at the root).
    fn pop_component(&mut self) {
        self.len = self.bytes().iter().rposition(|b| *b == b'/').unwrap_or(0);
        self.buf[self.len] = 0;
    }

    fn clear(&mut self) {
        self.len = 0;
        self.buf[0] = 0;
    }

    fn as_cstr(&self) -> Result<&CStr, Errno> {
        CStr::from_bytes_until_nul(&self.buf[..=self.len]).map_err(|_| Errno::EINVAL)
    }
}

/// Resolves `rel` inside the root one component at a time, as
/// `RESOLVE_IN_ROOT` would, but making what is missing: a missing
/// directory (or last file) is created in its resolved parent, and a
/// symlink, even a dangling one, is followed inside the root, its target
/// created there. `resolved` only ever holds symlink-free components, and
/// every parent is opened with `RESOLVE_NO_SYMLINKS`, so a link swapped in
/// meanwhile makes this fail instead of leading anywhere.
fn create_in_root(root_fd: libc::c_int, rel: &[u8], kind: Create) -> Result<libc::c_int, Errno> {
    let mut rest = StackPath::new();
    rest.extend(rel)?;
    let mut pos = 0;
    let mut resolved = StackPath::new();
    let mut name = [0u8; 256];
    let mut link = [0u8; PATH_MAX];
    let mut hops = 0;
    loop {
        let bytes = rest.bytes();
        while pos < bytes.len() && bytes[pos] == b'/' {
            pos += 1;
        }
        if pos == bytes.len() {
            break;
        }
        let start = pos;
        while pos < bytes.len() && bytes[pos] != b'/' {
            pos += 1;
        }
        let component = &bytes[start..pos];
        let last = bytes[pos..].iter().all(|b| *b == b'/');
        match component {
            b"." => continue,
            b".." => {
                resolved.pop_component();
                continue;
            }
            _ => {}
        }
        if component.len() >= name.len() {
            return Err(Errno::ENAMETOOLONG);
        }
        name[..component.len()].copy_from_slice(component);
        name[component.len()] = 0;
        let name_c = CStr::from_bytes_until_nul(&name).map_err(|_| Errno::EINVAL)?;
        let parent = Fd(openat2_in_root(
            root_fd,
            resolved.as_cstr()?,
            libc::O_PATH | libc::O_DIRECTORY,
            true,
        )?);
        // SAFETY: zeroed stat is a valid out-buffer; valid fd and C string.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let found = check(unsafe {
            libc::fstatat(
                parent.0,
                name_c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        });
        match found {
            Err(Errno::ENOENT) => {
                let made = if !last || kind == Create::Dir {
                    // SAFETY: valid fd and C string.
                    check(unsafe { libc::mkdirat(parent.0, name_c.as_ptr(), 0o755) })
                } else {
                    // SAFETY: valid fd and C string; the new fd is closed.
                    fd_or_errno(unsafe {
                        libc::openat(
                            parent.0,
                            name_c.as_ptr(),
                            libc::O_CREAT
                                | libc::O_EXCL
                                | libc::O_NOFOLLOW
                                | libc::O_WRONLY
                                | libc::O_CLOEXEC,
                            0o644 as libc::c_uint,
                        )
                    })
                    .map(|fd| drop(Fd(fd)))
                };
                match made {
                    // Made meanwhile by someone else: the final open checks it.
                    Ok(()) | Err(Errno::EEXIST) => resolved.push_component(component)?,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
            Ok(()) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(Errno::ELOOP);
                }
                // SAFETY: valid fd, C string and buffer of the length given.
                let n = unsafe {
                    libc::readlinkat(
                        parent.0,
                        name_c.as_ptr(),
                        link.as_mut_ptr().cast(),
                        link.len(),
                    )
                };
                if n < 0 {
                    return Err(Errno::last());
                }
                let target = &link[..n as usize];
                if target.len() >= link.len() {
                    return Err(Errno::ENAMETOOLONG);
                }
                // The link's target takes its place in what is left to walk.
                let mut next = StackPath::new();
                next.extend(target)?;
                next.extend(b"/")?;
                next.extend(&rest.bytes()[pos..])?;
                rest = next;
                pos = 0;
                if target.first() == Some(&b'/') {
                    resolved.clear();
                }
            }
            Ok(()) => resolved.push_component(component)?,
        }
    }
    let flags = libc::O_PATH
        | if kind == Create::Dir {
            libc::O_DIRECTORY
        } else {
            0
        };
    openat2_in_root(root_fd, resolved.as_cstr()?, flags, true)
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

    fn c(p: impl AsRef<std::ffi::OsStr>) -> std::ffi::CString {
        std::ffi::CString::new(p.as_ref().as_encoded_bytes()).unwrap()
    }

    /// Where an `O_PATH` descriptor points, then closes it.
    fn target(fd: libc::c_int) -> std::path::PathBuf {
        let p = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        Linux.close(fd);
        p
    }

    #[test]
    fn open_in_root_makes_mount_points_inside_the_root_only() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let r = root.path();
        // Links a container could plant in a volume: absolute, relative
        // and `..`-heavy, all meant to lead to `outside`.
        std::os::unix::fs::symlink(outside.path(), r.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../../..", r.join("up")).unwrap();
        std::fs::create_dir_all(r.join(outside.path().strip_prefix("/").unwrap())).unwrap();
        let fd = Linux
            .open_in_root(&c(r), &c("abs/new/dir"), Some(Create::Dir))
            .unwrap();
        let inner = r.join(outside.path().strip_prefix("/").unwrap());
        assert_eq!(target(fd), inner.join("new/dir"));
        let fd = Linux
            .open_in_root(&c(r), &c("up/etc/f"), Some(Create::File))
            .unwrap();
        assert_eq!(target(fd), r.join("etc/f"));
        assert!(r.join("etc/f").is_file());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        // Without `create` nothing is made.
        assert_eq!(
            Linux.open_in_root(&c(r), &c("nope"), None).unwrap_err(),
            Errno::ENOENT
        );
        assert!(!r.join("nope").exists());
        let fd = Linux.open_in_root(&c(r), &c(""), None).unwrap();
        assert_eq!(target(fd), r);
    }

    #[test]
    fn open_in_root_follows_dangling_links_inside_and_stops_at_files() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let r = root.path();
        // Dangling inside the root, though the same path exists outside.
        std::os::unix::fs::symlink(outside.path().join("x"), r.join("dangling")).unwrap();
        std::fs::create_dir(outside.path().join("x")).unwrap();
        std::os::unix::fs::symlink("rel/../../../y", r.join("relative")).unwrap();
        std::fs::write(r.join("file"), b"").unwrap();
        let fd = Linux
            .open_in_root(&c(r), &c("dangling/sub"), Some(Create::Dir))
            .unwrap();
        let inner = r.join(outside.path().strip_prefix("/").unwrap());
        assert_eq!(target(fd), inner.join("x/sub"));
        assert!(!outside.path().join("x/sub").exists());
        let fd = Linux
            .open_in_root(&c(r), &c("relative/f"), Some(Create::File))
            .unwrap();
        assert_eq!(target(fd), r.join("y/f"));
        let err = Linux
            .open_in_root(&c(r), &c("file/x"), Some(Create::Dir))
            .unwrap_err();
        assert_eq!(err, Errno::ENOTDIR);
        std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
        let err = Linux
            .open_in_root(&c(r), &c("loop/x"), Some(Create::Dir))
            .unwrap_err();
        assert_eq!(err, Errno::ELOOP);
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
