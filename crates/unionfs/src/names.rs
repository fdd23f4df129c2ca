//! Operations on names: create (files, directories, symlinks, special files),
//! unlink, rename and hard links.
//!
//! New objects go straight into the upper layer when no whiteout is in the
//! way; over a whiteout they are built in the work dir and renamed into place
//! so the name never flips back to the lower object.

use std::os::fd::{AsRawFd, OwnedFd};

use fuser::FileAttr;

use crate::fs::UnionFs;
use crate::layers::WhiteoutStyle;
use crate::sys::{self, Errno, SysResult};

/// What to create.
pub(crate) enum New<'a> {
    Dir,
    /// A regular file, opened with these flags.
    File(i32),
    /// mknod with this S_IFMT type and rdev.
    Special(u32, u64),
    Symlink(&'a [u8]),
}

impl UnionFs {
    /// Creates `name` in `parent` owned by (`uid`, `gid`) as seen through the
    /// mount. Returns its attributes and, for a file, the open fd.
    pub(crate) fn create_node(
        &self,
        parent: u64,
        name: &[u8],
        what: New<'_>,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> SysResult<(FileAttr, Option<OwnedFd>)> {
        self.writable()?;
        let p = self.node(parent)?;
        if !p.is_dir() {
            return Err(Errno(libc::ENOTDIR));
        }
        let (found, had_wh) = self.find_for_create(&p, name)?;
        if found.is_some() {
            return Err(Errno(libc::EEXIST));
        }
        if crate::whiteout::is_meta_name(name) {
            // `.wh.*` names are overlay metadata in the layer format.
            return Err(Errno(libc::EINVAL));
        }
        // A parent copied up just now has no whiteouts yet; one already in
        // the upper layer was searched for whiteouts by the lookup above.
        let pst = self.upper_dir(&p.path)?;
        let up = self.layers.upper_fd()?;
        let pst = self.recorded_stat(up, &p.path, pst);
        let path = sys::join(&p.path, name);
        let (du, mut dg) = self.disk_ids(uid, gid)?;
        let mut mode = mode & 0o7777;
        if pst.st_mode & libc::S_ISGID != 0 {
            dg = pst.st_gid;
            if matches!(what, New::Dir) {
                mode |= libc::S_ISGID;
            }
        }
        let (dirfd, target) = if had_wh {
            let work = self.layers.work_fd().ok_or(Errno(libc::EROFS))?;
            (work, self.layers.tmp_name())
        } else {
            (up, path.clone())
        };
        let fd = self.make(dirfd, &target, &what, mode, du, dg)?;
        if had_wh {
            if let Err(e) = self.place_over_whiteout(dirfd, &target, &path, &what) {
                let _ = crate::layers::remove_tree(dirfd, &target);
                return Err(e);
            }
        }
        let st = match &fd {
            Some(f) => sys::fstat(f.as_raw_fd())?,
            None => sys::fstatat(up, &path)?,
        };
        let ino = self.ino_for(0, &st);
        let attr = self.attr(ino, &st);
        let dir_layers = if matches!(what, New::Dir) {
            vec![0]
        } else {
            Vec::new()
        };
        let mut nodes = self.nodes.lock();
        nodes.remember(ino, path, 0, st.st_mode & libc::S_IFMT, dir_layers);
        nodes.set_no_caps(ino, true);
        if matches!(what, New::Dir) && self.writes_clean_dirs() {
            nodes.set_upper_clean(ino);
        }
        drop(nodes);
        Ok((attr, fd))
    }

    fn make(
        &self,
        dirfd: i32,
        path: &[u8],
        what: &New<'_>,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> SysResult<Option<OwnedFd>> {
        let fd = match what {
            New::Dir => {
                sys::mkdirat(dirfd, path, mode)?;
                None
            }
            New::File(flags) => {
                let f = sys::openat(
                    dirfd,
                    path,
                    (flags & !libc::O_TRUNC) | libc::O_CREAT | libc::O_EXCL,
                    mode,
                )?;
                Some(f)
            }
            New::Special(kind, rdev) => {
                sys::mknodat(dirfd, path, kind | mode, *rdev)?;
                None
            }
            New::Symlink(target) => {
                sys::symlinkat(target, dirfd, path)?;
                None
            }
        };
        let owned = match &fd {
            Some(f) => self.own(f.as_raw_fd(), b"", uid, gid),
            None => self.own(dirfd, path, uid, gid),
        };
        if let Err(e) = owned {
            let _ = crate::layers::remove_tree(dirfd, path);
            return Err(e);
        }
        // chown clears setgid on some filesystems; put the mode back.
        if mode & (libc::S_ISGID | libc::S_ISUID) != 0 && !matches!(what, New::Symlink(_)) {
            sys::chmodat(dirfd, path, mode)?;
        }
        if matches!(what, New::Dir) && dirfd != self.layers.upper_fd()? {
            // Built in the work dir over a whiteout: hide what lies below.
            self.layers.set_opaque_at(dirfd, path)?;
        }
        Ok(fd)
    }

    /// Moves an object built in the work dir onto an upper name that holds a
    /// whiteout, atomically for the character-device style.
    fn place_over_whiteout(
        &self,
        work: i32,
        tmp: &[u8],
        path: &[u8],
        what: &New<'_>,
    ) -> SysResult<()> {
        let up = self.layers.upper_fd()?;
        let char_wh = sys::fstatat(up, path).is_ok_and(|st| crate::whiteout::is_whiteout_stat(&st));
        if char_wh && matches!(what, New::Dir) {
            sys::renameat2(work, tmp, up, path, libc::RENAME_EXCHANGE)?;
            sys::unlinkat(work, tmp, 0)?;
        } else {
            sys::renameat2(work, tmp, up, path, 0)?;
        }
        self.layers.clear_whiteout(path).map(drop)
    }

    pub(crate) fn do_unlink(&self, parent: u64, name: &[u8]) -> SysResult<()> {
        self.writable()?;
        let p = self.node(parent)?;
        if !p.is_dir() {
            return Err(Errno(libc::ENOTDIR));
        }
        // The LOOKUP or READDIRPLUS that gave the kernel this name just
        // found it; a node still living in a lower layer needs no second
        // search, only a whiteout (every change to what a name shows goes
        // through the node table).
        let path = sys::join(&p.path, name);
        let lower_file = self
            .nodes
            .lock()
            .at_path(&path)
            .filter(|(_, n)| !n.is_dir() && !self.layers.is_upper(n.layer))
            .map(|(ino, _)| ino);
        if let Some(ino) = lower_file {
            if !p
                .dir_layers
                .first()
                .is_some_and(|&l| self.layers.is_upper(l))
            {
                self.ensure_upper_dir(&p.path)?;
            }
            self.layers.whiteout(&path)?;
            self.nodes.lock().unlinked(ino, &path, None);
            return Ok(());
        }
        let f = self.find(&p, name)?.ok_or(Errno(libc::ENOENT))?;
        if f.is_dir() {
            return Err(Errno(libc::EISDIR));
        }
        let ino = self.ino_of(&f);
        let mut upper_key = None;
        if self.layers.is_upper(f.layer) {
            if self.lower_has(&p, name) {
                self.layers.whiteout(&f.path)?;
            } else {
                sys::unlinkat(self.layers.upper_fd()?, &f.path, 0)?;
            }
            if f.st.st_nlink <= 1 {
                upper_key = Some((self.layers.all[0].dev, f.st.st_ino));
            }
        } else {
            if !p
                .dir_layers
                .first()
                .is_some_and(|&l| self.layers.is_upper(l))
            {
                self.ensure_upper_dir(&p.path)?;
            }
            self.layers.whiteout(&f.path)?;
        }
        self.nodes.lock().unlinked(ino, &f.path, upper_key);
        Ok(())
    }

    pub(crate) fn do_link(&self, ino: u64, newparent: u64, newname: &[u8]) -> SysResult<FileAttr> {
        self.writable()?;
        let n = self.copy_up(ino, false)?;
        if n.is_dir() {
            return Err(Errno(libc::EPERM));
        }
        let p = self.node(newparent)?;
        if self.find(&p, newname)?.is_some() {
            return Err(Errno(libc::EEXIST));
        }
        self.ensure_upper_dir(&p.path)?;
        let up = self.layers.upper_fd()?;
        let path = sys::join(&p.path, newname);
        self.layers.clear_whiteout(&path)?;
        sys::linkat(up, &n.path, up, &path)?;
        let st = sys::fstatat(up, &path)?;
        let attr = self.attr_at(ino, &st, 0, &path);
        self.nodes
            .lock()
            .remember(ino, path, 0, st.st_mode & libc::S_IFMT, Vec::new());
        Ok(attr)
    }

    pub(crate) fn do_rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: u32,
    ) -> SysResult<()> {
        self.writable()?;
        if flags == libc::RENAME_EXCHANGE {
            return self.do_exchange(parent, name, newparent, newname);
        }
        if flags & !libc::RENAME_NOREPLACE != 0 {
            // RENAME_WHITEOUT is the overlay's own business, as on overlayfs.
            return Err(Errno(libc::EINVAL));
        }
        let p = self.node(parent)?;
        let np = self.node(newparent)?;
        let src = self.find(&p, name)?.ok_or(Errno(libc::ENOENT))?;
        if src.is_dir() && src.has_lower(self) {
            // Like overlayfs with redirect_dir=off: let `mv` copy instead.
            return Err(Errno(libc::EXDEV));
        }
        let src_ino = self.ino_of(&src);
        let dst = self.find(&np, newname)?;
        let mut dst_opaque = false;
        if let Some(d) = &dst {
            if flags & libc::RENAME_NOREPLACE != 0 {
                return Err(Errno(libc::EEXIST));
            }
            let dst_ino = self.ino_of(d);
            if dst_ino == src_ino {
                return Ok(());
            }
            match (src.is_dir(), d.is_dir()) {
                (false, true) => return Err(Errno(libc::EISDIR)),
                (true, false) => return Err(Errno(libc::ENOTDIR)),
                (true, true) => {
                    if !self.is_empty_dir(&crate::inode::Node::probe(d))? {
                        return Err(Errno(libc::ENOTEMPTY));
                    }
                    dst_opaque = d.has_lower(self);
                }
                (false, false) => {}
            }
        }
        let old_path = self.upper_copy(&src)?;
        self.ensure_upper_dir(&np.path)?;
        let up = self.layers.upper_fd()?;
        let new_path = sys::join(&np.path, newname);
        // Clear what occupies the target name in the upper layer.
        if let Some(d) = &dst {
            if d.is_dir() && self.layers.is_upper(d.layer) {
                self.remove_upper_dir(&new_path, false)?;
            }
        }
        if src.is_dir() {
            // A directory cannot replace a character-device whiteout.
            self.layers.clear_whiteout(&new_path)?;
        }
        let src_wh = self.lower_has(&p, name);
        let mut done = false;
        if src_wh && self.layers.style == WhiteoutStyle::CharDev {
            done = sys::renameat2(up, &old_path, up, &new_path, libc::RENAME_WHITEOUT).is_ok();
        }
        if !done {
            sys::renameat2(up, &old_path, up, &new_path, 0)?;
            if src_wh {
                self.layers.whiteout(&old_path)?;
            }
        }
        if !src.is_dir() {
            let (dir, n) = sys::split(&new_path);
            let _ = sys::unlinkat(up, &sys::join(dir, &crate::whiteout::wh_name(n)), 0);
        }
        // Like overlayfs: a pure upper directory moved into a merged parent
        // (or over a merged directory) must not start showing lower entries.
        let np_merged = np.dir_layers.iter().any(|&l| !self.layers.is_upper(l));
        if dst_opaque || (src.is_dir() && np_merged) {
            self.layers.set_opaque(&new_path)?;
        }
        let dst_ino = dst.as_ref().map(|d| self.ino_of(d));
        let mut nodes = self.nodes.lock();
        if let Some(dst_ino) = dst_ino {
            nodes.unlinked(dst_ino, &new_path, None);
        }
        nodes.renamed(src_ino, &old_path, &new_path);
        Ok(())
    }

    /// Gives a found object an upper copy (pure-upper directories already
    /// have one); returns its upper path.
    fn upper_copy(&self, f: &crate::lookup::Found) -> SysResult<Vec<u8>> {
        if self.layers.is_upper(f.layer) {
            return Ok(f.path.clone());
        }
        let ino = self.ino_of(f);
        self.nodes.lock().remember(
            ino,
            f.path.clone(),
            f.layer,
            f.st.st_mode & libc::S_IFMT,
            f.dir_layers.clone(),
        );
        let r = self.copy_up(ino, false);
        self.nodes.lock().forget(ino, 1);
        Ok(r?.path)
    }

    /// `renameat2(RENAME_EXCHANGE)`, as overlayfs does it without
    /// redirect_dir: both names must exist; lower files are copied up and
    /// the two upper entries swapped, so both names stay occupied in the
    /// upper layer and no whiteout is needed; a directory with lower layers
    /// cannot move (EXDEV, `mv` copies instead); a directory that lands in
    /// a merged parent becomes opaque so lower entries never show through.
    fn do_exchange(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
    ) -> SysResult<()> {
        let p = self.node(parent)?;
        let np = self.node(newparent)?;
        let a = self.find(&p, name)?.ok_or(Errno(libc::ENOENT))?;
        let b = self.find(&np, newname)?.ok_or(Errno(libc::ENOENT))?;
        if [&a, &b].iter().any(|f| f.is_dir() && f.has_lower(self)) {
            return Err(Errno(libc::EXDEV));
        }
        let (a_ino, b_ino) = (self.ino_of(&a), self.ino_of(&b));
        if a_ino == b_ino {
            return Ok(());
        }
        let a_path = self.upper_copy(&a)?;
        let b_path = self.upper_copy(&b)?;
        let up = self.layers.upper_fd()?;
        sys::renameat2(up, &a_path, up, &b_path, libc::RENAME_EXCHANGE)?;
        let merged =
            |n: &crate::inode::Node| n.dir_layers.iter().any(|&l| !self.layers.is_upper(l));
        if a.is_dir() && merged(&np) {
            self.layers.set_opaque(&b_path)?;
        }
        if b.is_dir() && merged(&p) {
            self.layers.set_opaque(&a_path)?;
        }
        // Paths never hold a NUL: a safe parking name for the swap.
        const PARKED: &[u8] = b"\0exchange";
        let mut nodes = self.nodes.lock();
        nodes.renamed(a_ino, &a_path, PARKED);
        nodes.renamed(b_ino, &b_path, &a_path);
        nodes.renamed(a_ino, PARKED, &b_path);
        Ok(())
    }
}
