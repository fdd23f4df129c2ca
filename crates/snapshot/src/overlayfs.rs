//! Mounting kernel overlayfs, for any number of layers.
//!
//! mount(2) takes its options in one page (4 KiB), which 200 layers under
//! `/var/lib/berth/overlay/<64 hex>/diff` overflow many times over. So the
//! new mount API comes first: one `fsconfig("lowerdir+")` per layer (Linux
//! 6.8+), each with its own limit. Older kernels get mount(2), with the paths
//! made relative to their common parent from a thread that has its own
//! working directory (`unshare(CLONE_FS)`), as containerd does.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags};

use crate::error::{Context, Result, SnapshotError};
use crate::mount::Mount;
use crate::sys;

/// fsconfig(2) copies at most this many bytes of a string value.
const FSCONFIG_STRING_MAX: usize = 255;

/// An overlay mount's options, parsed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct OverlayOptions {
    /// Highest first.
    pub lowers: Vec<PathBuf>,
    pub upper: Option<PathBuf>,
    pub work: Option<PathBuf>,
    /// Every other option, `key` or `key=value`.
    pub other: Vec<String>,
}

impl OverlayOptions {
    pub(crate) fn parse(fstype: &str, options: &[String]) -> Result<OverlayOptions> {
        let mut o = OverlayOptions::default();
        for opt in options {
            match opt.split_once('=') {
                Some(("lowerdir", v)) => o.lowers.extend(split_lowerdir(v)),
                Some(("upperdir", v)) => o.upper = Some(v.into()),
                Some(("workdir", v)) => o.work = Some(v.into()),
                _ => o.other.push(opt.clone()),
            }
        }
        if o.lowers.is_empty() {
            return Err(SnapshotError::BadMount {
                fstype: fstype.into(),
                reason: "no lowerdir".into(),
            });
        }
        if o.upper.is_some() != o.work.is_some() {
            return Err(SnapshotError::BadMount {
                fstype: fstype.into(),
                reason: "upperdir and workdir go together".into(),
            });
        }
        Ok(o)
    }
}

/// Joins layer paths into a `lowerdir=` value, escaping `:` and `\`.
pub(crate) fn join_lowerdir(lowers: &[PathBuf]) -> String {
    let mut out = String::new();
    for (i, l) in lowers.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        for c in l.to_string_lossy().chars() {
            if c == ':' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

fn split_lowerdir(v: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.extend(chars.next()),
            ':' => out.push(PathBuf::from(std::mem::take(&mut cur))),
            c => cur.push(c),
        }
    }
    out.push(PathBuf::from(cur));
    out.retain(|p| !p.as_os_str().is_empty());
    out
}

/// Mounts overlay `m` on `target` (absolute).
pub(crate) fn mount(m: &Mount, target: &Path) -> Result<()> {
    let mut opts = OverlayOptions::parse(&m.fstype, &m.options)?;
    if sys::in_user_namespace() && !opts.other.iter().any(|o| o == "userxattr") {
        opts.other.push("userxattr".into());
    }
    match mount_new_api(&m.source, &opts, target) {
        Err(NewApiError::Unsupported) => mount_legacy(&m.source, &opts, target),
        Err(NewApiError::Failed(e)) => Err(e),
        Ok(()) => Ok(()),
    }
}

enum NewApiError {
    /// The kernel lacks fsopen or `lowerdir+`: use mount(2).
    Unsupported,
    Failed(SnapshotError),
}

fn mount_new_api(source: &str, o: &OverlayOptions, target: &Path) -> Result<(), NewApiError> {
    let fs = match rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fd) => fd,
        Err(Errno::NOSYS) => return Err(NewApiError::Unsupported),
        Err(e) => return Err(NewApiError::Failed(fail(e, None, target))),
    };
    let set = |key: &str, value: &str| {
        rustix::mount::fsconfig_set_string(&fs, key, value).map_err(|e| fail(e, Some(&fs), target))
    };
    set("source", source).map_err(NewApiError::Failed)?;
    for (i, lower) in o.lowers.iter().enumerate() {
        match set_path(&fs, "lowerdir+", lower) {
            Ok(()) => {}
            // Only the first layer tells us whether `lowerdir+` exists.
            Err(Errno::INVAL) if i == 0 => return Err(NewApiError::Unsupported),
            Err(e) => return Err(NewApiError::Failed(fail(e, Some(&fs), lower))),
        }
    }
    for (key, dir) in [("upperdir", &o.upper), ("workdir", &o.work)] {
        if let Some(dir) = dir {
            set_path(&fs, key, dir).map_err(|e| NewApiError::Failed(fail(e, Some(&fs), dir)))?;
        }
    }
    for opt in &o.other {
        let r = match opt.split_once('=') {
            Some((k, v)) => set(k, v),
            None => rustix::mount::fsconfig_set_flag(&fs, opt.as_str())
                .map_err(|e| fail(e, Some(&fs), target)),
        };
        r.map_err(NewApiError::Failed)?;
    }
    rustix::mount::fsconfig_create(&fs)
        .map_err(|e| NewApiError::Failed(fail(e, Some(&fs), target)))?;
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(|e| NewApiError::Failed(fail(e, Some(&fs), target)))?;
    rustix::mount::move_mount(
        mnt.as_fd(),
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| NewApiError::Failed(fail(e, None, target)))
}

/// Passes a directory by name, or by an `O_PATH` descriptor when the name is
/// longer than fsconfig copies.
fn set_path(fs: &OwnedFd, key: &str, dir: &Path) -> Result<(), Errno> {
    if dir.as_os_str().len() <= FSCONFIG_STRING_MAX {
        return rustix::mount::fsconfig_set_string(fs, key, dir);
    }
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    rustix::mount::fsconfig_set_fd(fs, key, fd)
}

/// An overlay error with the kernel's own explanation, which it queues on
/// the fs context ("overlay: failed to resolve 'x': -2") instead of dmesg.
fn fail(e: Errno, fs: Option<&OwnedFd>, path: &Path) -> SnapshotError {
    let mut detail = String::new();
    if let Some(fs) = fs {
        let mut buf = [0u8; 512];
        while let Ok(n) = rustix::io::read(fs, &mut buf) {
            if n == 0 {
                break;
            }
            let msg = String::from_utf8_lossy(&buf[..n]);
            detail.push_str(if detail.is_empty() { " (" } else { "; " });
            detail.push_str(msg.trim_start_matches("e ").trim());
        }
        if !detail.is_empty() {
            detail.push(')');
        }
    }
    let source = std::io::Error::new(
        std::io::Error::from(e).kind(),
        format!("{}{detail}", std::io::Error::from(e)),
    );
    SnapshotError::Io {
        op: "mounting overlay with",
        path: path.to_path_buf(),
        source,
    }
}

/// mount(2) with one option string; relative paths when absolute ones do
/// not fit in a page.
pub(crate) fn mount_legacy(source: &str, o: &OverlayOptions, target: &Path) -> Result<()> {
    let limit = page_size() - 1;
    let data = option_string(o, None);
    if data.len() <= limit {
        return mount2(source, target, &data);
    }
    let Some(parent) = common_parent(o) else {
        return Err(too_long(data.len(), limit, target));
    };
    let data = option_string(o, Some(&parent));
    if data.len() > limit {
        return Err(too_long(data.len(), limit, target));
    }
    let (source, target) = (source.to_string(), target.to_path_buf());
    std::thread::scope(|s| {
        s.spawn(move || {
            // SAFETY: CLONE_FS only gives this thread its own cwd/umask/root;
            // no memory or descriptor is shared differently afterwards.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }
                .ctx("unsharing the working directory for", &target)?;
            rustix::process::chdir(&parent).ctx("entering", &parent)?;
            mount2(&source, &target, &data)
        })
        .join()
        .unwrap_or_else(|_| {
            Err(SnapshotError::BadMount {
                fstype: "overlay".into(),
                reason: "mount thread panicked".into(),
            })
        })
    })
}

fn mount2(source: &str, target: &Path, data: &str) -> Result<()> {
    let data = CString::new(data).map_err(|_| SnapshotError::BadMount {
        fstype: "overlay".into(),
        reason: "option string contains NUL".into(),
    })?;
    rustix::mount::mount(
        source,
        target,
        "overlay",
        rustix::mount::MountFlags::empty(),
        Some(data.as_c_str()),
    )
    .ctx("mounting overlay on", target)
}

fn too_long(len: usize, limit: usize, target: &Path) -> SnapshotError {
    SnapshotError::Io {
        op: "mounting overlay on",
        path: target.to_path_buf(),
        source: std::io::Error::other(format!(
            "too many layers for this kernel: the option string needs {len} bytes, mount(2) takes {limit}"
        )),
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).unwrap_or(4096)
}

/// `lowerdir=..,upperdir=..,workdir=..,other`, paths relative to `base`.
fn option_string(o: &OverlayOptions, base: Option<&Path>) -> String {
    let rel = |p: &Path| -> PathBuf {
        match base {
            Some(b) => p.strip_prefix(b).map(Path::to_path_buf).unwrap_or(p.into()),
            None => p.to_path_buf(),
        }
    };
    let lowers: Vec<PathBuf> = o.lowers.iter().map(|l| rel(l)).collect();
    let mut parts = vec![format!("lowerdir={}", join_lowerdir(&lowers))];
    if let (Some(u), Some(w)) = (&o.upper, &o.work) {
        parts.push(format!("upperdir={}", rel(u).display()));
        parts.push(format!("workdir={}", rel(w).display()));
    }
    parts.extend(o.other.iter().cloned());
    parts.join(",")
}

/// The deepest directory holding every layer, upper and work dir.
fn common_parent(o: &OverlayOptions) -> Option<PathBuf> {
    let mut all = o.lowers.iter().chain(o.upper.iter()).chain(o.work.iter());
    let first = all.next()?;
    let mut common: PathBuf = first.parent()?.to_path_buf();
    for p in all {
        while !p.starts_with(&common) {
            common = common.parent()?.to_path_buf();
        }
    }
    // "/" gains nothing, and relative paths need an absolute anchor.
    (common.is_absolute() && common.as_os_str().as_bytes() != b"/").then_some(common)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowerdir_round_trips_with_escapes() {
        let lowers = vec![
            PathBuf::from("/a:b"),
            PathBuf::from("/c\\d"),
            PathBuf::from("/e"),
        ];
        let joined = join_lowerdir(&lowers);
        assert_eq!(joined, r"/a\:b:/c\\d:/e");
        assert_eq!(split_lowerdir(&joined), lowers);
    }

    #[test]
    fn parse_needs_lowers_and_paired_upper() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(OverlayOptions::parse("overlay", &s(&["upperdir=/u", "workdir=/w"])).is_err());
        assert!(OverlayOptions::parse("overlay", &s(&["lowerdir=/l", "upperdir=/u"])).is_err());
        let o = OverlayOptions::parse("overlay", &s(&["lowerdir=/a:/b", "index=off"])).unwrap();
        assert_eq!(o.lowers, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(o.other, vec!["index=off".to_string()]);
    }

    #[test]
    fn relative_option_string_uses_common_parent() {
        let o = OverlayOptions {
            lowers: vec!["/var/x/l/1".into(), "/var/x/l/2".into()],
            upper: Some("/var/x/s/upper".into()),
            work: Some("/var/x/s/work".into()),
            other: vec!["userxattr".into()],
        };
        let parent = common_parent(&o).unwrap();
        assert_eq!(parent, PathBuf::from("/var/x"));
        assert_eq!(
            option_string(&o, Some(&parent)),
            "lowerdir=l/1:l/2,upperdir=s/upper,workdir=s/work,userxattr"
        );
        let root_only = OverlayOptions {
            lowers: vec!["/a".into(), "/b".into()],
            ..Default::default()
        };
        assert_eq!(common_parent(&root_only), None);
    }
}
