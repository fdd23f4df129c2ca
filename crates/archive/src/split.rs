//! Tar-split: everything of a layer's tar stream that is not a regular
//! file's content (headers, PAX and long-name records, padding, end blocks,
//! trailing bytes), recorded while the layer is applied, so the exact stream
//! can be rebuilt later from this record and the unpacked files instead of
//! keeping a second, uncompressed copy of the layer. Docker keeps
//! `tar-split.json.gz` for the same reason; the format here is berth's own.
//!
//! The record is a zstd stream: [`MAGIC`], then records, each a tag byte
//! and LEB128 numbers: `1 len bytes` (raw stream bytes), `2 len path-len
//! path` (`len` bytes of the unpacked file at `path`), `3 len id` (`len`
//! bytes of stashed file `id`), `0 total` (end; `total` bytes in all).
//!
//! A file body whose path is replaced or removed later in the same layer
//! (the same name twice, a whiteout of a file the layer itself added) is
//! moved aside into a stash directory before it goes, so it can still be
//! read back.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use berth_digest::{Algorithm, DiffId, Hasher};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::fsops;

/// First bytes of a (decompressed) split record.
pub const MAGIC: &[u8] = b"berth-tar-split\x01";

const TAG_END: u8 = 0;
const TAG_RAW: u8 = 1;
const TAG_FILE: u8 = 2;
const TAG_STASHED: u8 = 3;

/// Where [`crate::apply_layer_split`] puts what it records.
#[derive(Debug, Clone, Copy)]
pub struct SplitOptions<'a> {
    /// The split record (created; must not exist).
    pub file: &'a Path,
    /// A directory (created when first needed) for the bodies of files the
    /// layer replaces or removes again; read back by [`reassemble`].
    pub stash: &'a Path,
}

enum Rec {
    Raw(u64),
    Body(usize),
}

struct Body {
    path: PathBuf,
    len: u64,
    stashed: bool,
}

/// What the recorder has seen so far; shared between the reader under the
/// tar parser and the unpacker, which says where file bodies are.
pub(crate) struct SplitState {
    pos: u64,
    raw: Vec<u8>,
    records: Vec<Rec>,
    bodies: Vec<Body>,
    /// The file body being skipped: stream offsets [start, end).
    skipping: Option<(u64, u64)>,
    /// Bodies still at their path, by path.
    live: HashMap<PathBuf, usize>,
    /// Every ancestor of a body recorded (maybe stale): removing a
    /// directory not in here cannot take a live body with it.
    body_dirs: HashSet<PathBuf>,
    stash_path: PathBuf,
    stash: Option<OwnedFd>,
}

pub(crate) type SharedSplit = Rc<RefCell<SplitState>>;

impl SplitState {
    pub(crate) fn new(stash_path: &Path) -> SharedSplit {
        Rc::new(RefCell::new(SplitState {
            pos: 0,
            raw: Vec::new(),
            records: Vec::new(),
            bodies: Vec::new(),
            skipping: None,
            live: HashMap::new(),
            body_dirs: HashSet::new(),
            stash_path: stash_path.to_owned(),
            stash: None,
        }))
    }

    /// Bytes the tar parser just consumed.
    fn observe(&mut self, data: &[u8]) {
        let mut off = 0usize;
        while off < data.len() {
            let at = self.pos + off as u64;
            let left = (data.len() - off) as u64;
            match self.skipping {
                Some((start, end)) if at >= start && at < end => {
                    let n = (end - at).min(left);
                    off += n as usize;
                    if at + n == end {
                        self.skipping = None;
                    }
                }
                Some((start, _)) if at < start => {
                    let n = (start - at).min(left) as usize;
                    self.push_raw(&data[off..off + n]);
                    off += n;
                }
                Some(_) => self.skipping = None,
                None => {
                    self.push_raw(&data[off..]);
                    off = data.len();
                }
            }
        }
        self.pos += data.len() as u64;
    }

    fn push_raw(&mut self, bytes: &[u8]) {
        self.raw.extend_from_slice(bytes);
        match self.records.last_mut() {
            Some(Rec::Raw(n)) => *n += bytes.len() as u64,
            _ => self.records.push(Rec::Raw(bytes.len() as u64)),
        }
    }

    /// The next `len` bytes of the stream, starting at `start`, are the body
    /// of the regular file unpacked at `path`: record the path instead.
    pub(crate) fn begin_body(&mut self, start: u64, len: u64, path: &Path) {
        // Anything unexpected (a body not where the parser stands) is simply
        // recorded raw: bigger, never wrong.
        if len == 0 || start != self.pos || self.skipping.is_some() {
            return;
        }
        let idx = self.bodies.len();
        self.bodies.push(Body {
            path: path.to_owned(),
            len,
            stashed: false,
        });
        self.records.push(Rec::Body(idx));
        self.skipping = Some((start, start + len));
        self.live.insert(path.to_owned(), idx);
        for dir in path.ancestors().skip(1) {
            if !self.body_dirs.insert(dir.to_owned()) {
                break;
            }
        }
    }

    /// Moves the live bodies at `rel` or below it (except those `keep`
    /// accepts) into the stash, because `rel` is about to be removed.
    pub(crate) fn stash_under(
        &mut self,
        root: BorrowedFd<'_>,
        rel: &Path,
        keep: impl Fn(&Path) -> bool,
    ) -> io::Result<()> {
        let mut doomed: Vec<usize> = Vec::new();
        if let Some(&i) = self.live.get(rel) {
            if !keep(rel) {
                doomed.push(i);
            }
        }
        if self.body_dirs.contains(rel) {
            doomed.extend(
                self.live
                    .iter()
                    .filter(|(p, _)| p.as_path() != rel && p.starts_with(rel) && !keep(p))
                    .map(|(_, &i)| i),
            );
        }
        for i in doomed {
            self.stash_body(root, i)?;
        }
        Ok(())
    }

    fn stash_body(&mut self, root: BorrowedFd<'_>, i: usize) -> io::Result<()> {
        if self.stash.is_none() {
            match rustix::fs::mkdir(&self.stash_path, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            let fd = rustix::fs::open(
                &self.stash_path,
                OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            self.stash = Some(fd);
        }
        let body = &mut self.bodies[i];
        let (Some(parent), Some(name)) = (body.path.parent(), body.path.file_name()) else {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        };
        let pdir = fsops::open_dir(root, parent)?;
        let stash = self.stash.as_ref().expect("stash opened above");
        rustix::fs::renameat(&pdir, name, stash, i.to_string())?;
        body.stashed = true;
        self.live.remove(&body.path.clone());
        Ok(())
    }

    /// Writes the record of a `total`-byte stream to `file`.
    pub(crate) fn write(&self, file: &Path, total: u64) -> io::Result<()> {
        let out = File::options().write(true).create_new(true).open(file)?;
        let mut z = zstd::stream::write::Encoder::new(BufWriter::with_capacity(64 << 10, out), 3)?;
        z.write_all(MAGIC)?;
        let mut raw = &self.raw[..];
        for rec in &self.records {
            match rec {
                Rec::Raw(n) => {
                    let (now, rest) = raw.split_at(*n as usize);
                    z.write_all(&[TAG_RAW])?;
                    write_num(&mut z, *n)?;
                    z.write_all(now)?;
                    raw = rest;
                }
                Rec::Body(i) => {
                    let body = &self.bodies[*i];
                    if body.stashed {
                        z.write_all(&[TAG_STASHED])?;
                        write_num(&mut z, body.len)?;
                        write_num(&mut z, *i as u64)?;
                    } else {
                        let path = body.path.as_os_str().as_bytes();
                        z.write_all(&[TAG_FILE])?;
                        write_num(&mut z, body.len)?;
                        write_num(&mut z, path.len() as u64)?;
                        z.write_all(path)?;
                    }
                }
            }
        }
        z.write_all(&[TAG_END])?;
        write_num(&mut z, total)?;
        let mut out = z.finish()?;
        out.flush()
    }
}

/// The reader under the tar parser: passes bytes through and records them.
pub(crate) struct Recorder<R> {
    pub(crate) inner: R,
    pub(crate) state: Option<SharedSplit>,
}

impl<R: Read> Read for Recorder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(state) = &self.state {
            state.borrow_mut().observe(&buf[..n]);
        }
        Ok(n)
    }
}

fn write_num(w: &mut impl Write, mut n: u64) -> io::Result<()> {
    let mut buf = [0u8; 10];
    let mut i = 0;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            buf[i] = byte;
            i += 1;
            break;
        }
        buf[i] = byte | 0x80;
        i += 1;
    }
    w.write_all(&buf[..i])
}

fn read_num(r: &mut impl Read) -> io::Result<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let mut b = [0u8];
        r.read_exact(&mut b)?;
        n |= u64::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err(invalid("number too long in the split record".into()))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

enum Current {
    Next,
    Raw(u64),
    Body {
        file: File,
        left: u64,
        path: PathBuf,
    },
    Done,
}

/// The layer's original tar stream, rebuilt by [`reassemble`] and checked
/// against its diffID as it streams: a mismatch (a file in the layer was
/// changed) is an error on the last read, never a quiet wrong stream.
pub struct Reassembled {
    split: zstd::stream::read::Decoder<'static, BufReader<File>>,
    root: OwnedFd,
    root_path: PathBuf,
    stash: PathBuf,
    /// The directory of the previous file body, which the next one usually shares.
    parent: Option<(PathBuf, OwnedFd)>,
    cur: Current,
    hasher: Option<Hasher>,
    total: u64,
    diff_id: DiffId,
}

/// Rebuilds the tar stream recorded in `split` from the unpacked layer in
/// `diff_dir` (and the `stash` dir given to [`crate::apply_layer_split`]),
/// verifying it against `diff_id`.
pub fn reassemble(
    split: File,
    diff_dir: &Path,
    stash: &Path,
    diff_id: &DiffId,
) -> io::Result<Reassembled> {
    let mut split = zstd::stream::read::Decoder::new(split)?;
    let mut magic = [0u8; MAGIC.len()];
    split
        .read_exact(&mut magic)
        .map_err(|_| invalid("not a berth tar-split record".into()))?;
    if magic != MAGIC {
        return Err(invalid("not a berth tar-split record".into()));
    }
    let root = rustix::fs::open(
        diff_dir,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(Reassembled {
        split,
        root,
        root_path: diff_dir.to_owned(),
        stash: stash.to_owned(),
        parent: None,
        cur: Current::Next,
        hasher: Some(Hasher::new(Algorithm::Sha256)),
        total: 0,
        diff_id: diff_id.clone(),
    })
}

impl Reassembled {
    fn next_record(&mut self) -> io::Result<Current> {
        let mut tag = [0u8];
        self.split
            .read_exact(&mut tag)
            .map_err(|e| self.broken_record(e))?;
        Ok(match tag[0] {
            TAG_RAW => Current::Raw(read_num(&mut self.split)?),
            TAG_FILE => {
                let len = read_num(&mut self.split)?;
                let n = read_num(&mut self.split)?;
                let mut path = vec![0u8; usize::try_from(n).unwrap_or(usize::MAX).min(1 << 20)];
                self.split.read_exact(&mut path)?;
                let path = PathBuf::from(OsStr::from_bytes(&path));
                let file = self.open_body(&path)?;
                Current::Body {
                    file,
                    left: len,
                    path,
                }
            }
            TAG_STASHED => {
                let len = read_num(&mut self.split)?;
                let id = read_num(&mut self.split)?;
                let path = self.stash.join(id.to_string());
                let file = File::open(&path)?;
                Current::Body {
                    file,
                    left: len,
                    path,
                }
            }
            TAG_END => {
                let total = read_num(&mut self.split)?;
                self.verify(total)?;
                Current::Done
            }
            other => return Err(invalid(format!("bad tag {other} in the split record"))),
        })
    }

    fn broken_record(&self, e: io::Error) -> io::Error {
        invalid(format!(
            "the tar-split record of layer {} is damaged: {e}",
            self.diff_id
        ))
    }

    fn verify(&mut self, total: u64) -> io::Result<()> {
        let digest = self.hasher.take().map(Hasher::finish);
        if total != self.total || digest.as_ref() != Some(self.diff_id.digest()) {
            return Err(invalid(format!(
                "layer {} rebuilt from {} does not match its diffID \
                 (a file in the layer was changed after it was stored)",
                self.diff_id,
                self.root_path.display()
            )));
        }
        Ok(())
    }

    /// Opens an unpacked file beneath the layer root, never through a symlink.
    fn open_body(&mut self, path: &Path) -> io::Result<File> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(invalid(format!(
                "bad path {} in the split record",
                path.display()
            )));
        };
        if self.parent.as_ref().map(|(p, _)| p.as_path()) != Some(parent) {
            let fd =
                fsops::open_dir(self.root.as_fd(), parent).map_err(|e| self.missing(path, e))?;
            self.parent = Some((parent.to_owned(), fd));
        }
        let (_, dir) = self.parent.as_ref().expect("set above");
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(dir, name, flags, Mode::empty()) {
            Ok(fd) => Ok(File::from(fd)),
            // Rootless, the files are ours but may be unreadable (mode 0000):
            // lend ourselves read permission for the open.
            Err(Errno::ACCESS) => {
                let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
                let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
                rustix::fs::chmodat(dir, name, mode | Mode::RUSR, AtFlags::empty())?;
                let opened = rustix::fs::openat(dir, name, flags, Mode::empty());
                let _ = rustix::fs::chmodat(dir, name, mode, AtFlags::empty());
                Ok(File::from(
                    opened.map_err(|e| self.missing(path, e.into()))?,
                ))
            }
            Err(e) => Err(self.missing(path, e.into())),
        }
    }

    fn missing(&self, path: &Path, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            format!(
                "layer {}: cannot read {} in {}: {e}",
                self.diff_id,
                path.display(),
                self.root_path.display()
            ),
        )
    }

    fn changed(&self, path: &Path, how: &str) -> io::Error {
        invalid(format!(
            "layer {}: {} in {} is {how} than when it was stored \
             (a file in the layer was changed)",
            self.diff_id,
            path.display(),
            self.root_path.display()
        ))
    }
}

impl Read for Reassembled {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = match &mut self.cur {
                Current::Done => return Ok(0),
                Current::Next => {
                    self.cur = self.next_record()?;
                    continue;
                }
                Current::Raw(0) => {
                    self.cur = Current::Next;
                    continue;
                }
                Current::Raw(left) => {
                    let want = (*left).min(buf.len() as u64) as usize;
                    let n = self.split.read(&mut buf[..want])?;
                    if n == 0 {
                        let e = io::Error::from(io::ErrorKind::UnexpectedEof);
                        return Err(self.broken_record(e));
                    }
                    *left -= n as u64;
                    n
                }
                Current::Body { file, left, path } => {
                    if *left == 0 {
                        let mut probe = [0u8];
                        if file.read(&mut probe)? != 0 {
                            let path = path.clone();
                            return Err(self.changed(&path, "longer"));
                        }
                        self.cur = Current::Next;
                        continue;
                    }
                    let want = (*left).min(buf.len() as u64) as usize;
                    let n = file.read(&mut buf[..want])?;
                    if n == 0 {
                        let path = path.clone();
                        return Err(self.changed(&path, "shorter"));
                    }
                    *left -= n as u64;
                    n
                }
            };
            if let Some(h) = &mut self.hasher {
                h.update(&buf[..n]);
            }
            self.total += n as u64;
            return Ok(n);
        }
    }
}
