//! Writing a directory as a tarball: a layer dir (overlay whiteouts become
//! `.wh.` entries) or a plain tree. Order is sorted by name bytes so the same
//! tree always gives the same tarball, hence the same diffID.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, BufWriter, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use berth_digest::{DiffId, HashingWriter};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use tar::{EntryType, Header};

use crate::fsops;
use crate::whiteout::{OPAQUE_MARKER, WHITEOUT_PREFIX};
use crate::ArchiveError;
use berth_overridestat::{OverrideKind, OverrideStat, OVERRIDE_XATTR};

const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// Tars a layer dir: a 0/0 char device becomes an empty `.wh.NAME` file, an
/// opaque directory (`trusted.`/`user.overlay.opaque` = "y") is followed by
/// its `.wh..wh..opq` entry. Returns the diffID and the tar's size, computed
/// while writing.
pub fn write_layer<W: Write>(dir: &Path, w: W) -> Result<(DiffId, u64), ArchiveError> {
    let (diff_id, size) = write(dir, w, true, &|_| false)?;
    Ok((diff_id, size))
}

/// [`write_layer`] leaving out every entry for which `skip` (given the path
/// relative to `dir`) is true, and everything below it: a container's
/// layer minus the mount points berth itself put there.
pub fn write_layer_filtered<W: Write>(
    dir: &Path,
    w: W,
    skip: &dyn Fn(&Path) -> bool,
) -> Result<(DiffId, u64), ArchiveError> {
    write(dir, w, true, skip)
}

/// Tars a plain directory tree (rootfs export/import): no whiteout translation.
/// Returns the tar's size.
pub fn write_tree<W: Write>(dir: &Path, w: W) -> Result<u64, ArchiveError> {
    Ok(write(dir, w, false, &|_| false)?.1)
}

fn write<W: Write>(
    dir: &Path,
    w: W,
    layer: bool,
    skip: &dyn Fn(&Path) -> bool,
) -> Result<(DiffId, u64), ArchiveError> {
    let root = fsops::open_dir(rustix::fs::CWD, dir).or_else(|_| {
        // Absolute paths and paths through symlinks are fine for the root we were given.
        rustix::fs::open(
            dir,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)
    });
    let root = root.map_err(|e| ArchiveError::io(dir, e))?;
    let out = HashingWriter::new(BufWriter::with_capacity(1 << 20, w));
    let mut walker = Walker {
        builder: tar::Builder::new(out),
        layer,
        skip,
        links: HashMap::new(),
    };
    walker.dir(root.as_fd(), Path::new(""))?;
    let out = walker
        .builder
        .into_inner()
        .map_err(|e| ArchiveError::io(dir, e))?;
    let (digest, size, mut out) = out.finish();
    out.flush().map_err(|e| ArchiveError::io(dir, e))?;
    Ok((DiffId::new(digest), size))
}

struct Walker<'s, W: Write> {
    builder: tar::Builder<W>,
    layer: bool,
    skip: &'s dyn Fn(&Path) -> bool,
    /// First path of each multiply-linked file, to emit the others as links.
    links: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> Walker<'_, W> {
    fn dir(&mut self, fd: BorrowedFd<'_>, rel: &Path) -> Result<(), ArchiveError> {
        let names = fsops::list_dir(fd).map_err(|e| ArchiveError::io(rel, e))?;
        for name in names {
            self.entry(fd, rel, &name)?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        pfd: BorrowedFd<'_>,
        parent: &Path,
        name: &OsStr,
    ) -> Result<(), ArchiveError> {
        let rel = parent.join(name);
        if (self.skip)(&rel) {
            return Ok(());
        }
        let at = |e: io::Error| ArchiveError::io(&rel, e);
        let st =
            rustix::fs::statat(pfd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| at(e.into()))?;
        let mut header = Header::new_gnu();
        header.set_mode(st.st_mode & 0o7777);
        header.set_uid(st.st_uid.into());
        header.set_gid(st.st_gid.into());
        header.set_mtime(st.st_mtime.max(0) as u64);
        header.set_size(0);
        let file_type = FileType::from_raw_mode(st.st_mode);
        match file_type {
            FileType::Directory => {
                let dir = fsops::open_dir(pfd, Path::new(name)).map_err(at)?;
                let mut xattrs = self.xattrs(dir.as_fd());
                if let Some(o) = take_override(&mut xattrs, &st) {
                    apply_override(&mut header, &o);
                }
                let opaque = self.layer && is_opaque(dir.as_fd());
                header.set_entry_type(EntryType::Directory);
                let mut path = rel.as_os_str().to_owned();
                path.push("/");
                self.append(&mut header, Path::new(&path), &xattrs, io::empty())?;
                if opaque {
                    let mut marker = Header::new_gnu();
                    marker.set_entry_type(EntryType::Regular);
                    marker.set_mode(0o644);
                    marker.set_uid(st.st_uid.into());
                    marker.set_gid(st.st_gid.into());
                    marker.set_mtime(st.st_mtime.max(0) as u64);
                    marker.set_size(0);
                    self.append(&mut marker, &rel.join(OPAQUE_MARKER), &[], io::empty())?;
                }
                self.dir(dir.as_fd(), &rel)?;
            }
            FileType::RegularFile => {
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1 {
                    if let Some(first) = self.links.get(&key) {
                        header.set_entry_type(EntryType::Link);
                        let first = first.clone();
                        return self
                            .builder
                            .append_link(&mut header, &rel, &first)
                            .map_err(at);
                    }
                    self.links.insert(key, rel.clone());
                }
                let file: OwnedFd = rustix::fs::openat(
                    pfd,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| at(e.into()))?;
                let mut xattrs = self.xattrs(file.as_fd());
                if let Some(o) = take_override(&mut xattrs, &st) {
                    apply_override(&mut header, &o);
                    if let Some(
                        OverrideKind::Char { major, minor } | OverrideKind::Block { major, minor },
                    ) = o.kind
                    {
                        // A device node stored as an empty file (see `owners`).
                        header.set_entry_type(match o.kind {
                            Some(OverrideKind::Block { .. }) => EntryType::Block,
                            _ => EntryType::Char,
                        });
                        header.set_device_major(major).map_err(at)?;
                        header.set_device_minor(minor).map_err(at)?;
                        return self.append(&mut header, &rel, &xattrs, io::empty());
                    }
                }
                header.set_entry_type(EntryType::Regular);
                header.set_size(st.st_size as u64);
                let file = std::fs::File::from(file);
                self.append(
                    &mut header,
                    &rel,
                    &xattrs,
                    io::Read::take(file, st.st_size as u64),
                )?;
            }
            FileType::Symlink => {
                let target =
                    rustix::fs::readlinkat(pfd, name, Vec::new()).map_err(|e| at(e.into()))?;
                header.set_entry_type(EntryType::Symlink);
                let target = OsStr::from_bytes(target.as_bytes());
                self.builder
                    .append_link(&mut header, &rel, target)
                    .map_err(at)?;
            }
            FileType::CharacterDevice if self.layer && st.st_rdev == 0 => {
                let mut wh_name = OsString::from(WHITEOUT_PREFIX);
                wh_name.push(name);
                header.set_entry_type(EntryType::Regular);
                self.append(&mut header, &parent.join(wh_name), &[], io::empty())?;
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                header.set_entry_type(match file_type {
                    FileType::CharacterDevice => EntryType::Char,
                    FileType::BlockDevice => EntryType::Block,
                    _ => EntryType::Fifo,
                });
                if file_type != FileType::Fifo {
                    header
                        .set_device_major(rustix::fs::major(st.st_rdev))
                        .map_err(at)?;
                    header
                        .set_device_minor(rustix::fs::minor(st.st_rdev))
                        .map_err(at)?;
                }
                self.append(&mut header, &rel, &[], io::empty())?;
            }
            // Sockets and unknown types are not archivable (Docker skips them too).
            _ => log::debug!("skipping {}: not archivable", rel.display()),
        }
        Ok(())
    }

    /// Appends one entry, preceded by a PAX header carrying its xattrs.
    fn append(
        &mut self,
        header: &mut Header,
        path: &Path,
        xattrs: &[(String, Vec<u8>)],
        data: impl io::Read,
    ) -> Result<(), ArchiveError> {
        let at = |e: io::Error| ArchiveError::io(path, e);
        if !xattrs.is_empty() {
            let records = pax_records(xattrs);
            let mut pax = Header::new_ustar();
            pax.set_entry_type(EntryType::XHeader);
            pax.set_path("././@PaxHeader").map_err(at)?;
            pax.set_mode(0o644);
            pax.set_size(records.len() as u64);
            pax.set_cksum();
            self.builder.append(&pax, &records[..]).map_err(at)?;
        }
        self.builder.append_data(header, path, data).map_err(at)
    }

    /// xattrs worth archiving: everything but overlay's own bookkeeping.
    fn xattrs(&self, fd: BorrowedFd<'_>) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let Some(names) = sized(
            || rustix::fs::flistxattr_query(fd),
            |buf| rustix::fs::flistxattr(fd, buf),
        ) else {
            return out;
        };
        for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
            let Ok(name) = std::str::from_utf8(name) else {
                continue;
            };
            if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
                continue;
            }
            let value = sized(
                || rustix::fs::fgetxattr_query(fd, name),
                |buf| rustix::fs::fgetxattr(fd, name, buf),
            );
            if let Some(value) = value {
                out.push((name.to_string(), value));
            }
        }
        out.sort();
        out
    }
}

/// Removes the owner override from a file's xattrs (it is storage
/// metadata, never archived) and returns it decoded, if it still holds.
/// It holds while the disk is as its writers leave it (the store, and
/// berth-unionfs, which keeps it): owned by us, with its permission bits
/// minus set-id. A kernel overlay or vfs container that chowns or chmods a
/// copy changes the disk and not the xattr; then the disk is right.
fn take_override(
    xattrs: &mut Vec<(String, Vec<u8>)>,
    st: &rustix::fs::Stat,
) -> Option<OverrideStat> {
    let at = xattrs.iter().position(|(name, _)| name == OVERRIDE_XATTR)?;
    let (_, value) = xattrs.remove(at);
    let o = OverrideStat::parse(&value)?;
    let ours = st.st_uid == rustix::process::geteuid().as_raw()
        && st.st_gid == rustix::process::getegid().as_raw();
    let same_mode = st.st_mode & 0o1777 == o.mode & 0o1777;
    (ours && same_mode).then_some(o)
}

/// The owner and mode the override records, in place of the disk's.
fn apply_override(header: &mut Header, o: &OverrideStat) {
    header.set_uid(o.uid.into());
    header.set_gid(o.gid.into());
    header.set_mode(o.mode & 0o7777);
}

fn is_opaque(dir: BorrowedFd<'_>) -> bool {
    OPAQUE_XATTRS.iter().any(|name| {
        let mut value = [0u8; 2];
        matches!(rustix::fs::fgetxattr(dir, *name, &mut value[..]), Ok(1) if value[0] == b'y')
    })
}

/// Runs a size query then the real call into a buffer that large; a value
/// that grew in between (rare) just counts as unreadable.
fn sized(
    query: impl Fn() -> rustix::io::Result<usize>,
    fill: impl Fn(&mut Vec<u8>) -> rustix::io::Result<usize>,
) -> Option<Vec<u8>> {
    let mut buf = vec![0; query().ok()?];
    let n = if buf.is_empty() {
        0
    } else {
        fill(&mut buf).ok()?
    };
    buf.truncate(n);
    Some(buf)
}

/// PAX records `"<len> SCHILY.xattr.<name>=<value>\n"`, where len counts the
/// whole record including its own digits.
fn pax_records(xattrs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in xattrs {
        let body_len = " SCHILY.xattr.".len() + name.len() + 1 + value.len() + 1;
        let mut len = body_len + 1;
        while len != body_len + len.to_string().len() {
            len = body_len + len.to_string().len();
        }
        out.extend_from_slice(len.to_string().as_bytes());
        out.extend_from_slice(b" SCHILY.xattr.");
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        for n in [1usize, 80, 85, 86, 990, 995] {
            let value = vec![b'v'; n];
            let rec = pax_records(&[("user.k".into(), value)]);
            let (len, _) =
                std::str::from_utf8(&rec[..rec.iter().position(|b| *b == b' ').unwrap()])
                    .map(|s| (s.parse::<usize>().unwrap(), ()))
                    .unwrap();
            assert_eq!(len, rec.len(), "value length {n}");
        }
    }

    #[test]
    fn filtered_layer_leaves_out_skipped_paths_and_their_children() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("etc/sub")).unwrap();
        std::fs::write(d.join("etc/hostname"), b"").unwrap();
        std::fs::write(d.join("etc/sub/x"), b"x").unwrap();
        std::fs::write(d.join("keep"), b"k").unwrap();
        let skip = |p: &Path| p == Path::new("etc/hostname") || p == Path::new("etc/sub");
        let mut out = Vec::new();
        let (diff_id, size) = write_layer_filtered(d, &mut out, &skip).unwrap();
        assert_eq!(size, out.len() as u64);
        assert_eq!(diff_id, DiffId::new(berth_digest::Digest::sha256(&out)));
        let mut names: Vec<String> = tar::Archive::new(&out[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["etc/", "keep"]);
    }
}
