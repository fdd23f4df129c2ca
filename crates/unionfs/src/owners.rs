//! Owners kept beside a file instead of on it: containers/storage's
//! `user.containers.override_stat` xattr, read and written with
//! fuse-overlayfs's `xattr_permissions=` option.
//!
//! A rootless store cannot chown what it unpacks, so it records the owner
//! and mode from the tar header in the xattr (`UID:GID:MODE[:TYPE]`, mode in
//! octal, type `file`, `dir`, ..., `char-MAJ-MIN`); with the option on,
//! lookup and getattr show those, copy-up carries them, and a chown or chmod
//! of an object that has them, or whose new owner cannot be stored on disk,
//! updates them. The ids are on-disk ids (the uid/gid mapping applies to
//! them as to the disk's). Only regular files and directories can carry
//! `user.` xattrs, so only they are looked at: the option costs one
//! getxattr per stat of those, and nothing when it is off.

use std::os::fd::RawFd;

use berth_overridestat::{OverrideKind, OverrideStat};
use fuser::FileAttr;

use crate::fs::UnionFs;
use crate::inode::Node;
use crate::sys::{self, Errno, SysResult};

/// The xattr's name.
pub(crate) const OVERRIDE_XATTR: &[u8] = berth_overridestat::OVERRIDE_XATTR.as_bytes();
const OVERRIDE_XATTR_C: &std::ffi::CStr = c"user.containers.override_stat";

/// A decoded override, in the one codec berth shares with its unpacker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Override(OverrideStat);

impl Override {
    pub(crate) fn parse(value: &[u8]) -> Option<Override> {
        OverrideStat::parse(value).map(Override)
    }

    /// A new override for an object of disk type `ifmt`.
    fn new(uid: u32, gid: u32, mode: u32, ifmt: u32) -> Override {
        let kind = if ifmt == libc::S_IFDIR {
            OverrideKind::Dir
        } else {
            OverrideKind::File
        };
        Override(OverrideStat {
            uid,
            gid,
            mode: mode & 0o7777,
            kind: Some(kind),
        })
    }

    /// The type to show (`S_IFMT` bits) and device number, when the value
    /// names another than the disk's (`file`, `dir` or none do not).
    pub(crate) fn shown_kind(&self) -> Option<(u32, u64)> {
        Some(match self.0.kind? {
            OverrideKind::File | OverrideKind::Dir => return None,
            OverrideKind::Symlink => (libc::S_IFLNK, 0),
            OverrideKind::Pipe => (libc::S_IFIFO, 0),
            OverrideKind::Socket => (libc::S_IFSOCK, 0),
            OverrideKind::Block { major, minor } => (libc::S_IFBLK, libc::makedev(major, minor)),
            OverrideKind::Char { major, minor } => (libc::S_IFCHR, libc::makedev(major, minor)),
        })
    }

    pub(crate) fn format(&self) -> Vec<u8> {
        self.0.format().into_bytes()
    }
}

impl std::ops::Deref for Override {
    type Target = OverrideStat;
    fn deref(&self) -> &OverrideStat {
        &self.0
    }
}

impl std::ops::DerefMut for Override {
    fn deref_mut(&mut self) -> &mut OverrideStat {
        &mut self.0
    }
}

/// Whether objects of disk type `ifmt` can carry the xattr.
fn carries(ifmt: u32) -> bool {
    ifmt == libc::S_IFREG || ifmt == libc::S_IFDIR
}

/// Reads the override of `path` under `dirfd` (a small value: no growing
/// buffer, no allocation beyond the path).
fn read_at(dirfd: RawFd, path: &[u8]) -> Option<Override> {
    let p = sys::proc_path(dirfd, path).ok()?;
    let mut buf = [0u8; 96];
    // SAFETY: valid C strings, and a buffer of the length given.
    let n = unsafe {
        libc::lgetxattr(
            p.as_ptr(),
            OVERRIDE_XATTR_C.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| Override::parse(&buf[..n as usize]))?
}

fn read_fd(fd: RawFd) -> Option<Override> {
    let mut buf = [0u8; 96];
    // SAFETY: valid C string, and a buffer of the length given.
    let n = unsafe {
        libc::fgetxattr(
            fd,
            OVERRIDE_XATTR_C.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| Override::parse(&buf[..n as usize]))?
}

fn write_at(dirfd: RawFd, path: &[u8], o: &Override) -> SysResult<()> {
    sys::lsetxattr(dirfd, path, OVERRIDE_XATTR, &o.format(), 0)
}

/// What chown does to set-id bits of a non-directory: S_ISUID always goes,
/// S_ISGID when it means set-group-ID (group-executable).
fn chown_clears(mode: u32) -> u32 {
    let mut mode = mode & !libc::S_ISUID;
    if mode & libc::S_IXGRP != 0 {
        mode &= !libc::S_ISGID;
    }
    mode
}

impl UnionFs {
    /// [`attr`](Self::attr) of an object at `path` in `layer`, with its
    /// recorded owner when the option is on.
    pub(crate) fn attr_at(&self, ino: u64, st: &libc::stat, layer: usize, path: &[u8]) -> FileAttr {
        let mut a = self.attr(ino, st);
        if self.override_stat && carries(st.st_mode & libc::S_IFMT) {
            if let Some(o) = read_at(self.layers.fd(layer), path) {
                self.apply_override(&mut a, st, &o);
            }
        }
        a
    }

    /// [`attr_at`](Self::attr_at) for an object known by an open fd.
    pub(crate) fn attr_fd(&self, ino: u64, st: &libc::stat, fd: RawFd) -> FileAttr {
        let mut a = self.attr(ino, st);
        if self.override_stat && carries(st.st_mode & libc::S_IFMT) {
            if let Some(o) = read_fd(fd) {
                self.apply_override(&mut a, st, &o);
            }
        }
        a
    }

    fn apply_override(&self, a: &mut FileAttr, st: &libc::stat, o: &Override) {
        (a.uid, a.gid) = self.shown_ids(o.uid, o.gid);
        a.perm = (o.mode & 0o7777) as u16;
        // A device node kept as an empty file shows as the device.
        if let Some((ifmt, rdev)) = o.shown_kind() {
            if st.st_mode & libc::S_IFMT == libc::S_IFREG && ifmt != libc::S_IFLNK {
                a.kind = crate::fs::file_type(ifmt);
                a.rdev = rdev as u32;
                a.size = 0;
                a.blocks = 0;
            }
        }
    }

    /// `st` of an upper object with its recorded owner and mode, for the
    /// rules that depend on them (a set-group-ID parent directory).
    pub(crate) fn recorded_stat(&self, up: RawFd, path: &[u8], mut st: libc::stat) -> libc::stat {
        if self.override_stat && carries(st.st_mode & libc::S_IFMT) {
            if let Some(o) = read_at(up, path) {
                st.st_uid = o.uid;
                st.st_gid = o.gid;
                st.st_mode = (st.st_mode & libc::S_IFMT) | o.mode;
            }
        }
        st
    }

    /// The owner and mode part of SETATTR, on an object already in the
    /// upper layer (`up`). An object with a recorded owner keeps it
    /// authoritative: its changes go to the xattr. Otherwise the disk is
    /// changed, and an owner the disk refuses (we may not give files away)
    /// is recorded instead of failing, when the option is on.
    pub(crate) fn set_owner_and_mode(
        &self,
        up: RawFd,
        n: &Node,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> SysResult<()> {
        let recordable = self.override_stat && carries(n.kind);
        let mut over = if recordable {
            read_at(up, &n.path)
        } else {
            None
        };
        let had = over.is_some();
        if uid.is_some() || gid.is_some() {
            let u = uid.map(|u| self.disk_uid(u)).transpose()?;
            let g = gid.map(|g| self.disk_gid(g)).transpose()?;
            if over.is_none() {
                // u32::MAX (-1) leaves that id unchanged.
                match sys::lchown(up, &n.path, u.unwrap_or(u32::MAX), g.unwrap_or(u32::MAX)) {
                    Ok(()) => {}
                    Err(Errno(libc::EPERM | libc::EINVAL)) if recordable => {
                        let st = sys::fstatat(up, &n.path)?;
                        over = Some(Override::new(
                            st.st_uid,
                            st.st_gid,
                            st.st_mode,
                            st.st_mode & libc::S_IFMT,
                        ));
                    }
                    Err(e) => return Err(e),
                }
            }
            if let Some(o) = over.as_mut() {
                o.uid = u.unwrap_or(o.uid);
                o.gid = g.unwrap_or(o.gid);
                if n.kind != libc::S_IFDIR {
                    o.mode = chown_clears(o.mode);
                }
            }
        }
        if let Some(m) = mode {
            if n.kind != libc::S_IFLNK {
                let disk = match over.as_mut() {
                    Some(o) => {
                        o.mode = m & 0o7777;
                        // Set-id bits live in the xattr only (see the store).
                        m & 0o1777
                    }
                    None => m & 0o7777,
                };
                sys::chmodat(up, &n.path, disk)?;
            }
        }
        match over {
            Some(o) => write_at(up, &n.path, &o),
            None => {
                debug_assert!(!had);
                Ok(())
            }
        }
    }

    /// Drops set-id bits from a recorded mode, as a write by an
    /// unprivileged caller does to the disk's (see `kill_suid`).
    pub(crate) fn kill_suid_recorded(&self, up: RawFd, n: &Node) -> SysResult<()> {
        if !self.override_stat || n.kind != libc::S_IFREG {
            return Ok(());
        }
        if let Some(mut o) = read_at(up, &n.path) {
            let kept = chown_clears(o.mode);
            if kept != o.mode {
                o.mode = kept;
                write_at(up, &n.path, &o)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Options;
    use std::ffi::OsStr;

    #[test]
    fn values_round_trip_in_every_writer_format() {
        for v in [
            &b"1000:1000:4755:file"[..],
            b"33:33:0755:dir",
            b"0:5:0620:char-4-1",
        ] {
            assert_eq!(Override::parse(v).unwrap().format(), v);
        }
        let old = Override::parse(b"1:2:755").unwrap();
        assert_eq!(
            (old.uid, old.gid, old.mode, old.shown_kind()),
            (1, 2, 0o755, None)
        );
        assert_eq!(old.format(), b"1:2:0755");
        assert_eq!(
            Override::parse(b"0:0:0666:block-8-1").unwrap().shown_kind(),
            Some((libc::S_IFBLK, libc::makedev(8, 1)))
        );
        for bad in [&b""[..], b"1:2", b"x:1:755", b"1:2:9", b"1:2:755:door"] {
            assert!(Override::parse(bad).is_none(), "{bad:?}");
        }
    }

    struct Stack {
        _t: tempfile::TempDir,
        lower: std::path::PathBuf,
        upper: std::path::PathBuf,
        fs: UnionFs,
    }

    fn set(path: &std::path::Path, value: &str) {
        rustix::fs::lsetxattr(
            path,
            "user.containers.override_stat",
            value.as_bytes(),
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
    }

    fn get(path: &std::path::Path) -> Option<String> {
        let mut buf = vec![0; 128];
        let n = rustix::fs::lgetxattr(path, "user.containers.override_stat", &mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// A lower layer as a rootless store leaves it: files owned by us, the
    /// image's owners in the xattr.
    fn stack(option: &str) -> Stack {
        let t = tempfile::tempdir().unwrap();
        let (lower, upper, work) = (t.path().join("l"), t.path().join("u"), t.path().join("w"));
        for d in [&lower, &upper, &work] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::create_dir(lower.join("www")).unwrap();
        std::fs::write(lower.join("www/f"), "x").unwrap();
        std::fs::write(lower.join("tty1"), "").unwrap();
        std::fs::write(lower.join("plain"), "p").unwrap();
        set(&lower.join("www"), "33:33:2750:dir");
        set(&lower.join("www/f"), "1000:1000:4755:file");
        set(&lower.join("tty1"), "0:5:0620:char-4-1");
        let opts = Options::parse(&format!(
            "lowerdir={},upperdir={},workdir={}{option}",
            lower.display(),
            upper.display(),
            work.display()
        ))
        .unwrap();
        let fs = UnionFs::new(&opts).unwrap();
        Stack {
            _t: t,
            lower,
            upper,
            fs,
        }
    }

    fn look(fs: &UnionFs, parent: u64, name: &str) -> FileAttr {
        fs.do_lookup(parent, OsStr::new(name).as_encoded_bytes())
            .unwrap()
    }

    /// SETATTR of mode and owner only.
    fn set_owner_mode(
        fs: &UnionFs,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> SysResult<FileAttr> {
        fs.do_setattr(ino, mode, uid, gid, None, None, None, None, None)
    }

    #[test]
    fn recorded_owners_show_only_with_the_option() {
        let s = stack(",xattr_permissions=2");
        let www = look(&s.fs, crate::inode::ROOT, "www");
        assert_eq!((www.uid, www.gid, www.perm), (33, 33, 0o2750));
        let f = look(&s.fs, www.ino.0, "f");
        assert_eq!((f.uid, f.gid, f.perm), (1000, 1000, 0o4755));
        assert_eq!(s.fs.do_getattr(f.ino.0).unwrap().uid, 1000);
        let tty = look(&s.fs, crate::inode::ROOT, "tty1");
        assert_eq!(tty.kind, fuser::FileType::CharDevice);
        assert_eq!((tty.gid, tty.perm), (5, 0o620));
        assert_eq!(tty.rdev as u64, libc::makedev(4, 1));
        let plain = look(&s.fs, crate::inode::ROOT, "plain");
        assert_eq!(plain.uid, 0);
        // Never visible through the mount.
        assert_eq!(
            s.fs.do_getxattr(f.ino.0, OVERRIDE_XATTR, 0).err(),
            Some(Errno(libc::ENODATA))
        );

        let off = stack("");
        let f = look(&off.fs, crate::inode::ROOT, "www");
        assert_eq!(f.uid, 0);
    }

    #[test]
    fn copy_up_carries_the_record_and_changes_update_it() {
        let s = stack(",xattr_permissions=2");
        let www = look(&s.fs, crate::inode::ROOT, "www");
        let f = look(&s.fs, www.ino.0, "f");
        // chmod: copied up with its record, the record changes, set-id bits
        // stay off the disk.
        let a = set_owner_mode(&s.fs, f.ino.0, Some(0o4750), None, None).unwrap();
        assert_eq!((a.uid, a.gid, a.perm), (1000, 1000, 0o4750));
        assert_eq!(get(&s.upper.join("www/f")).unwrap(), "1000:1000:4750:file");
        assert_eq!(get(&s.upper.join("www")).unwrap(), "33:33:2750:dir");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            s.upper.join("www/f").metadata().unwrap().mode() & 0o7777,
            0o750
        );
        // chown: the record is authoritative, and loses the set-id bit.
        let a = set_owner_mode(&s.fs, f.ino.0, None, Some(1234), None).unwrap();
        assert_eq!((a.uid, a.gid, a.perm), (1234, 1000, 0o750));
        assert_eq!(get(&s.upper.join("www/f")).unwrap(), "1234:1000:0750:file");
        // The lower layer is untouched.
        assert_eq!(get(&s.lower.join("www/f")).unwrap(), "1000:1000:4755:file");
        // An object without a record is chowned on disk, as before.
        let plain = look(&s.fs, crate::inode::ROOT, "plain");
        let a = set_owner_mode(&s.fs, plain.ino.0, None, Some(7), Some(8)).unwrap();
        assert_eq!((a.uid, a.gid), (7, 8));
        assert_eq!(get(&s.upper.join("plain")), None);
        assert_eq!(s.upper.join("plain").metadata().unwrap().uid(), 7);
    }

    /// An unprivileged server cannot give a file away: with the option the
    /// new owner is recorded instead of the chown failing; without it the
    /// chown fails as before.
    #[test]
    fn an_owner_the_disk_refuses_is_recorded() {
        let Some(uid) = std::env::var("BERTH_TEST_UID")
            .ok()
            .and_then(|u| u.parse::<u32>().ok())
        else {
            eprintln!("skipped: set BERTH_TEST_UID to an unprivileged uid to run this as non-root");
            return;
        };
        // SAFETY: trivial getter.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: switching to the test user needs root");
            return;
        }
        for (option, want) in [(",xattr_permissions=2", 0), ("", 2)] {
            let s = stack(option);
            // Everything, the work dir the filesystem made included, is the
            // user's, as in a rootless mount.
            let status = std::process::Command::new("chown")
                .args(["-R", &format!("{uid}:{uid}")])
                .arg(s._t.path())
                .status()
                .unwrap();
            assert!(status.success());
            // SAFETY: fork in a threaded test binary: the child only calls
            // the filesystem's own code and leaves with _exit.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                let code = unsafe {
                    // Dumpable again after the id change, or /proc/self/fd
                    // (every path we take) stays root's.
                    if libc::setgid(uid) != 0
                        || libc::setuid(uid) != 0
                        || libc::prctl(libc::PR_SET_DUMPABLE, 1) != 0
                    {
                        3
                    } else {
                        let fs = &s.fs;
                        let p = look(fs, crate::inode::ROOT, "plain");
                        match set_owner_mode(fs, p.ino.0, None, Some(5), Some(6)) {
                            Ok(a) if (a.uid, a.gid) == (5, 6) => 0,
                            Ok(_) => 1,
                            Err(e) => {
                                if want == 0 {
                                    100 + e.0
                                } else {
                                    2
                                }
                            }
                        }
                    }
                };
                unsafe { libc::_exit(code) };
            }
            let mut status = 0;
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            assert_eq!(libc::WEXITSTATUS(status), want, "option {option:?}");
            if want == 0 {
                assert_eq!(get(&s.upper.join("plain")).unwrap(), "5:6:0644:file");
            }
        }
    }

    /// A directory whose recorded mode is set-group-ID gives new entries
    /// its recorded group, as on a filesystem that holds it.
    #[test]
    fn a_recorded_set_group_id_directory_passes_its_group_on() {
        let s = stack(",xattr_permissions=2");
        let www = look(&s.fs, crate::inode::ROOT, "www");
        let (a, _) =
            s.fs.create_node(www.ino.0, b"sub", crate::names::New::Dir, 0o755, 0, 0)
                .unwrap();
        assert_eq!((a.uid, a.gid, a.perm), (0, 33, 0o2755));
    }

    #[test]
    fn copy_up_carries_the_record_even_with_the_option_off() {
        let s = stack("");
        let www = look(&s.fs, crate::inode::ROOT, "www");
        let f = look(&s.fs, www.ino.0, "f");
        s.fs.copy_up(f.ino.0, false).unwrap();
        assert_eq!(get(&s.upper.join("www/f")).unwrap(), "1000:1000:4755:file");
    }
}
