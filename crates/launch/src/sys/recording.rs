//! A [`Syscall`] that records calls instead of making them, for tests.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::ffi::CStr;

use super::{Create, Errno, FileKind, Syscall};

/// Records every call as one readable line, e.g. `mount proc /r/proc proc 0xe`.
#[derive(Default)]
pub(crate) struct Recorder {
    pub calls: RefCell<Vec<String>>,
    /// Paths `file_kind` reports as directories; all others are files...
    pub dirs: HashSet<String>,
    /// ...unless listed here.
    pub missing: HashSet<String>,
    /// Mount fstypes (or "bind") the fake refuses, with the errno to return.
    pub refuse: HashMap<String, Errno>,
    /// The last descriptor `open_in_root` handed out.
    pub last_fd: Cell<libc::c_int>,
}

fn s(c: &CStr) -> String {
    c.to_string_lossy().into_owned()
}

fn o(c: Option<&CStr>) -> String {
    c.map_or_else(|| "-".to_string(), s)
}

impl Recorder {
    fn log(&self, line: String) {
        self.calls.borrow_mut().push(line);
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }
}

impl Syscall for Recorder {
    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: libc::c_ulong,
        data: Option<&CStr>,
    ) -> Result<(), Errno> {
        let kind = if flags & libc::MS_BIND != 0 && flags & libc::MS_REMOUNT == 0 {
            "bind".to_string()
        } else {
            o(fstype)
        };
        if let Some(errno) = self.refuse.get(&kind) {
            self.log(format!("mount {} {} refused", o(source), s(target)));
            return Err(*errno);
        }
        self.log(format!(
            "mount {} {} {} {:#x} {}",
            o(source),
            s(target),
            o(fstype),
            flags,
            o(data)
        ));
        Ok(())
    }

    fn umount2(&self, target: &CStr, flags: libc::c_int) -> Result<(), Errno> {
        self.log(format!("umount2 {} {flags:#x}", s(target)));
        Ok(())
    }

    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> Result<(), Errno> {
        self.log(format!("pivot_root {} {}", s(new_root), s(put_old)));
        Ok(())
    }

    fn chdir(&self, path: &CStr) -> Result<(), Errno> {
        self.log(format!("chdir {}", s(path)));
        Ok(())
    }

    fn mkdir(&self, path: &CStr, mode: libc::mode_t) -> Result<(), Errno> {
        self.log(format!("mkdir {} {mode:o}", s(path)));
        Ok(())
    }

    fn symlink(&self, target: &CStr, link: &CStr) -> Result<(), Errno> {
        self.log(format!("symlink {} {}", s(target), s(link)));
        Ok(())
    }

    fn mknod(&self, path: &CStr, mode: libc::mode_t, dev: libc::dev_t) -> Result<(), Errno> {
        self.log(format!("mknod {} {mode:o} {dev:#x}", s(path)));
        Ok(())
    }

    fn create_file(&self, path: &CStr) -> Result<(), Errno> {
        self.log(format!("create {}", s(path)));
        Ok(())
    }

    fn file_kind(&self, path: &CStr) -> FileKind {
        let p = s(path);
        if self.missing.contains(&p) {
            FileKind::Missing
        } else if self.dirs.contains(&p) {
            FileKind::Dir
        } else {
            FileKind::Other
        }
    }

    fn locked_flags(&self, _path: &CStr) -> Result<libc::c_ulong, Errno> {
        Ok(libc::MS_NOSUID)
    }

    fn sethostname(&self, name: &CStr) -> Result<(), Errno> {
        self.log(format!("sethostname {}", s(name)));
        Ok(())
    }

    fn open_in_root(
        &self,
        root: &CStr,
        rel: &CStr,
        create: Option<Create>,
    ) -> Result<libc::c_int, Errno> {
        let fd = self.last_fd.get().max(9) + 1;
        self.last_fd.set(fd);
        let how = match create {
            None => "open",
            Some(Create::Dir) => "dir",
            Some(Create::File) => "file",
        };
        self.log(format!("open_in_root {} {} {how} = {fd}", s(root), s(rel)));
        Ok(fd)
    }

    fn close(&self, fd: libc::c_int) {
        self.log(format!("close {fd}"));
    }
}
