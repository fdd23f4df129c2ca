//! The command line, in fuse-overlayfs's shape.
//!
//! `berth-unionfs [-f] [-d] -o lowerdir=..,upperdir=..,workdir=..[,opts] MNT`
//! and the mount-helper form `berth-unionfs SOURCE MNT -o OPTS` that
//! `mount -t fuse.berth-unionfs` runs through `mount.fuse`.

use std::path::PathBuf;
use std::time::Duration;

use crate::idmap::IdMap;

/// See [`Options::timeout`].
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1_000_000_000);

/// A command line or option string that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionError {
    /// An option's value does not parse.
    #[error("invalid value for {0}: {1:?}")]
    BadValue(&'static str, String),
    /// No `lowerdir` was given.
    #[error("no lowerdir given")]
    NoLowerdir,
    /// `upperdir` without `workdir` (or the reverse).
    #[error("upperdir and workdir must be given together")]
    UpperWithoutWork,
    /// Wrong number of positional arguments.
    #[error("usage: berth-unionfs [-f] [-d] -o lowerdir=L1:L2,upperdir=U,workdir=W MOUNTPOINT")]
    Usage,
    /// A file named by `lowerdir_file=` cannot be read.
    #[error("reading lowerdir file {0}: {1}")]
    LowerFile(PathBuf, String),
}

/// Everything the filesystem needs to know, parsed from `-o`.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Lower layers, highest first.
    pub lowerdirs: Vec<PathBuf>,
    /// The writable layer; None means a read-only mount.
    pub upperdir: Option<PathBuf>,
    /// Scratch dir on the upper's filesystem for atomic copy-up.
    pub workdir: Option<PathBuf>,
    /// Report every file as owned by root.
    pub squash_to_root: bool,
    /// Report every file as owned by this uid.
    pub squash_to_uid: Option<u32>,
    /// Report every file as owned by this gid.
    pub squash_to_gid: Option<u32>,
    /// uid translation between the mount and the layers.
    pub uid_map: IdMap,
    /// gid translation between the mount and the layers.
    pub gid_map: IdMap,
    /// Serve extended attributes (off with `noxattrs`).
    pub xattrs: bool,
    /// Kernel entry/attr cache timeout. The default is fuse-overlayfs's
    /// (10^9 s, "forever"): the layers change only through the mount, and
    /// the kernel updates its own cache for every change made through it,
    /// so nothing ever needs revalidating.
    pub timeout: Duration,
    /// Worker threads for the requests that may block (`threaded=`); the
    /// quick ones are answered by the one session thread (see `lane`).
    pub threads: usize,
    /// fsync copied-up files before renaming them into place and honour fsync.
    pub fsync: bool,
    /// Refuse every change.
    pub read_only: bool,
    /// Use FUSE passthrough for file I/O when the kernel allows it.
    pub passthrough: bool,
    /// How long the session thread keeps polling /dev/fuse after a
    /// request (`spin=` in microseconds, 0 never polls; see `spin.rs`).
    pub spin: Duration,
    /// The mount's source name (mtab's first column).
    pub fsname: String,
    /// Let users other than the mounter in (`allow_other`).
    pub allow_other: bool,
    /// Show and keep owners recorded in `user.containers.override_stat`
    /// (fuse-overlayfs's `xattr_permissions=1|2`; both use that name, the
    /// one containers/storage writes).
    pub override_stat: bool,
    /// Options that were not understood; the binary warns about them.
    pub unknown: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lowerdirs: Vec::new(),
            upperdir: None,
            workdir: None,
            squash_to_root: false,
            squash_to_uid: None,
            squash_to_gid: None,
            uid_map: IdMap::default(),
            gid_map: IdMap::default(),
            xattrs: true,
            timeout: DEFAULT_TIMEOUT,
            threads: 4,
            fsync: true,
            read_only: false,
            passthrough: true,
            spin: crate::spin::DEFAULT_WINDOW,
            fsname: "berth-unionfs".to_string(),
            allow_other: false,
            override_stat: false,
            unknown: Vec::new(),
        }
    }
}

/// The whole command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Cli {
    /// Stay in the foreground (`-f`).
    pub foreground: bool,
    /// Debug logging (`-d`), implies foreground.
    pub debug: bool,
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// Parsed `-o` options.
    pub options: Options,
}

/// Kernel/FUSE generic options that mount(8) and mount.fuse pass along and that
/// need no action here (the mount is always nodev-free and suid-free by FUSE).
const IGNORED: &[&str] = &[
    "rw",
    "dev",
    "nodev",
    "suid",
    "nosuid",
    "exec",
    "noexec",
    "atime",
    "noatime",
    "relatime",
    "diratime",
    "nodiratime",
    "async",
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "_netdev",
    "default_permissions",
    "defaults",
    "nofail",
    "strictatime",
    "lazytime",
    "redirect_dir=off",
    "index=off",
    "metacopy=off",
    "xino=off",
    "userxattr",
];

impl Cli {
    /// Parses argv (without the program name).
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Cli, OptionError> {
        let mut foreground = false;
        let mut debug = false;
        let mut positional = Vec::new();
        let mut opts = Vec::new();
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "-f" => foreground = true,
                "-d" | "--debug" => {
                    debug = true;
                    foreground = true;
                }
                "-o" => opts.push(it.next().ok_or(OptionError::Usage)?),
                s if s.starts_with("-o") => opts.push(s[2..].to_string()),
                // mount.fuse may pass -s/-n style flags: single-threaded / no mtab.
                "-s" | "-n" | "-v" => {}
                s if s.starts_with('-') && s.len() > 1 => {
                    return Err(OptionError::Usage);
                }
                _ => positional.push(a),
            }
        }
        let (source, mountpoint) = match positional.len() {
            1 => (None, positional.remove(0)),
            2 => {
                let m = positional.remove(1);
                (Some(positional.remove(0)), m)
            }
            _ => return Err(OptionError::Usage),
        };
        let mut options = Options::parse(&opts.join(","))?;
        if let Some(src) = source {
            options.fsname = src;
        }
        Ok(Cli {
            foreground,
            debug,
            mountpoint: PathBuf::from(mountpoint),
            options,
        })
    }
}

fn num<T: std::str::FromStr>(key: &'static str, v: &str) -> Result<T, OptionError> {
    v.parse()
        .map_err(|_| OptionError::BadValue(key, v.to_string()))
}

fn split_dirs(v: &str) -> impl Iterator<Item = PathBuf> + '_ {
    v.split(':').filter(|s| !s.is_empty()).map(PathBuf::from)
}

impl Options {
    /// Parses a comma-separated option string.
    pub fn parse(s: &str) -> Result<Options, OptionError> {
        let mut o = Options::default();
        for opt in s.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = match opt.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (opt, None),
            };
            match (k, v) {
                ("lowerdir", Some(v)) => o.lowerdirs.extend(split_dirs(v)),
                ("lowerdir_file", Some(v)) => {
                    let text = std::fs::read_to_string(v)
                        .map_err(|e| OptionError::LowerFile(v.into(), e.to_string()))?;
                    for line in text.lines() {
                        o.lowerdirs.extend(split_dirs(line.trim()));
                    }
                }
                ("upperdir", Some(v)) => o.upperdir = Some(v.into()),
                ("workdir", Some(v)) => o.workdir = Some(v.into()),
                ("squash_to_root", None) => o.squash_to_root = true,
                ("squash_to_uid", Some(v)) => o.squash_to_uid = Some(num(k_static(k), v)?),
                ("squash_to_gid", Some(v)) => o.squash_to_gid = Some(num(k_static(k), v)?),
                ("uidmapping", Some(v)) => o.uid_map = IdMap::parse(v)?,
                ("gidmapping", Some(v)) => o.gid_map = IdMap::parse(v)?,
                ("noxattrs", None) => o.xattrs = false,
                ("noxattrs", Some(v)) => o.xattrs = v == "0",
                ("timeout", Some(v)) => {
                    let secs: f64 = num("timeout", v)?;
                    if !(0.0..=1e9).contains(&secs) {
                        return Err(OptionError::BadValue("timeout", v.to_string()));
                    }
                    o.timeout = Duration::from_secs_f64(secs);
                }
                ("threaded", Some(v)) => {
                    let n: usize = num("threaded", v)?;
                    o.threads = n.clamp(1, 64);
                }
                ("fsync", Some(v)) => o.fsync = num::<u8>("fsync", v)? != 0,
                ("ro", None) => o.read_only = true,
                ("passthrough", Some(v)) => o.passthrough = num::<u8>("passthrough", v)? != 0,
                ("nopassthrough", None) => o.passthrough = false,
                ("spin", Some(v)) => {
                    let us: u64 = num("spin", v)?;
                    o.spin = Duration::from_micros(us.min(1_000_000));
                }
                ("allow_other", None) | ("allow_root", None) => o.allow_other = true,
                ("fsname", Some(v)) => o.fsname = v.to_string(),
                ("xattr_permissions", Some(v)) => {
                    o.override_stat = match v {
                        "0" => false,
                        "1" | "2" => true,
                        _ => return Err(OptionError::BadValue("xattr_permissions", v.into())),
                    }
                }
                ("subtype", Some(_)) => {}
                _ if IGNORED.contains(&opt) => {}
                _ => o.unknown.push(opt.to_string()),
            }
        }
        if o.lowerdirs.is_empty() {
            return Err(OptionError::NoLowerdir);
        }
        if o.upperdir.is_some() != o.workdir.is_some() {
            return Err(OptionError::UpperWithoutWork);
        }
        Ok(o)
    }

    /// True when nothing can be written: `ro` or no upper layer.
    pub fn is_read_only(&self) -> bool {
        self.read_only || self.upperdir.is_none()
    }
}

fn k_static(k: &str) -> &'static str {
    match k {
        "squash_to_uid" => "squash_to_uid",
        _ => "squash_to_gid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn classic_form() {
        let c = Cli::parse(args("-f -o lowerdir=/a:/b,upperdir=/u,workdir=/w /mnt")).unwrap();
        assert!(c.foreground);
        assert_eq!(c.mountpoint, PathBuf::from("/mnt"));
        assert_eq!(
            c.options.lowerdirs,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert_eq!(c.options.upperdir, Some("/u".into()));
        assert!(!c.options.is_read_only());
    }

    #[test]
    fn mount_helper_form() {
        let c = Cli::parse(args("mysrc /mnt -o rw,nosuid,lowerdir=/a,ro,foo=bar")).unwrap();
        assert!(!c.foreground);
        assert_eq!(c.options.fsname, "mysrc");
        assert!(c.options.is_read_only());
        assert_eq!(c.options.unknown, vec!["foo=bar".to_string()]);
    }

    #[test]
    fn all_options() {
        let o = Options::parse(
            "lowerdir=/l,squash_to_root,squash_to_uid=5,squash_to_gid=6,uidmapping=0:1:1,\
             gidmapping=0:2:1,noxattrs,timeout=2.5,threaded=8,fsync=0,nopassthrough,spin=50",
        )
        .unwrap();
        assert!(o.squash_to_root && !o.xattrs && !o.fsync && !o.passthrough);
        assert_eq!((o.squash_to_uid, o.squash_to_gid), (Some(5), Some(6)));
        assert_eq!(o.uid_map.to_inside(1), 0);
        assert_eq!(o.gid_map.to_inside(2), 0);
        assert_eq!(o.timeout, Duration::from_millis(2500));
        assert_eq!(o.threads, 8);
        assert_eq!(o.spin, Duration::from_micros(50));
        assert_eq!(
            Options::parse("lowerdir=/l").unwrap().spin,
            crate::spin::DEFAULT_WINDOW
        );
        assert!(Options::parse("lowerdir=/l,spin=x").is_err());
        assert!(!o.override_stat);
        let o = Options::parse("lowerdir=/l,xattr_permissions=2").unwrap();
        assert!(o.override_stat);
        assert!(
            !Options::parse("lowerdir=/l,xattr_permissions=0")
                .unwrap()
                .override_stat
        );
        assert!(matches!(
            Options::parse("lowerdir=/l,xattr_permissions=3"),
            Err(OptionError::BadValue("xattr_permissions", _))
        ));
    }

    #[test]
    fn errors() {
        assert_eq!(Options::parse("upperdir=/u"), Err(OptionError::NoLowerdir));
        assert_eq!(
            Options::parse("lowerdir=/l,upperdir=/u"),
            Err(OptionError::UpperWithoutWork)
        );
        assert!(matches!(
            Options::parse("lowerdir=/l,timeout=x"),
            Err(OptionError::BadValue("timeout", _))
        ));
        assert_eq!(Cli::parse(args("-o lowerdir=/l")), Err(OptionError::Usage));
        assert_eq!(Cli::parse(args("-x /mnt")), Err(OptionError::Usage));
    }

    #[test]
    fn lowerdir_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("lowers");
        let list: Vec<String> = (0..600).map(|i| format!("/layers/{i}")).collect();
        std::fs::write(&f, list.join("\n")).unwrap();
        let o = Options::parse(&format!("lowerdir_file={}", f.display())).unwrap();
        assert_eq!(o.lowerdirs.len(), 600);
        assert_eq!(o.lowerdirs[599], PathBuf::from("/layers/599"));
        assert!(matches!(
            Options::parse("lowerdir_file=/nonexistent/x"),
            Err(OptionError::LowerFile(..))
        ));
    }
}
