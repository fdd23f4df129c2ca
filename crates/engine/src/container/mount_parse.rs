//! The mount flags of `create` and `run`, parsed and checked the way
//! Docker's daemon does (moby's `linux_parser.go`), with its messages:
//! `-v SRC:DST[:MODE]`, `--mount KEY=VALUE,...`, `--tmpfs DST[:OPTS]` and
//! `--volumes-from CONTAINER[:MODE]`. Pure: nothing here touches the disk.

/// What a mount is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Bind,
    Volume,
    Tmpfs,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bind => "bind",
            Kind::Volume => "volume",
            Kind::Tmpfs => "tmpfs",
        }
    }
}

/// One requested mount, checked but not yet resolved against the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountRequest {
    pub kind: Kind,
    /// Host path (bind), volume name (empty: a new anonymous volume), or
    /// nothing (tmpfs).
    pub source: String,
    /// Cleaned absolute path in the container.
    pub target: String,
    pub read_only: bool,
    /// `-v`'s mode as given (Docker keeps it for `inspect`'s `Mode`).
    pub mode: String,
    /// Bind propagation (`rprivate` unless given).
    pub propagation: String,
    /// Do not seed a new volume from the image (`nocopy`).
    pub no_copy: bool,
    /// `-v` creates a missing host directory; `--mount` refuses it.
    pub create_source: bool,
    /// `--mount type=tmpfs`'s `tmpfs-size` (bytes) and `tmpfs-mode`.
    pub tmpfs_size: Option<u64>,
    pub tmpfs_mode: Option<u32>,
}

const PROPAGATIONS: &[&str] = &[
    "shared", "rshared", "slave", "rslave", "private", "rprivate",
];
const CONSISTENCIES: &[&str] = &["consistent", "cached", "delegated"];

fn invalid_spec(raw: &str) -> String {
    format!("invalid volume specification: '{raw}'")
}

fn mount_config(kind: Kind, msg: &str) -> String {
    format!("invalid mount config for type \"{}\": {msg}", kind.as_str())
}

/// Go's `path.Clean` for absolute paths: no `.`, `..` or repeated `/`.
pub(crate) fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Docker's `ValidMountMode`: comma-separated words, at most one of each
/// family (rw/ro, z/Z, propagation, nocopy, consistency).
fn valid_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let mut counts = [0u8; 5];
    for word in mode.split(',') {
        let family = match word {
            "rw" | "ro" => 0,
            "z" | "Z" => 1,
            w if PROPAGATIONS.contains(&w) => 2,
            "nocopy" => 3,
            w if CONSISTENCIES.contains(&w) => 4,
            _ => return false,
        };
        counts[family] += 1;
    }
    counts.iter().all(|c| *c <= 1)
}

fn mode_words(mode: &str) -> impl Iterator<Item = &str> {
    mode.split(',').filter(|w| !w.is_empty())
}

fn check_target(kind: Kind, target: &str) -> Result<String, String> {
    if target.is_empty() {
        return Err(mount_config(kind, "field Target must not be empty"));
    }
    if !target.starts_with('/') {
        return Err(mount_config(
            kind,
            &format!("invalid mount path: '{target}' mount path must be absolute"),
        ));
    }
    let cleaned = clean(target);
    if cleaned == "/" {
        return Err(mount_config(
            kind,
            "invalid specification: destination can't be '/'",
        ));
    }
    Ok(cleaned)
}

fn check_volume_name(name: &str) -> Result<(), String> {
    if name.is_empty() || crate::volumes::valid_name(name) {
        Ok(())
    } else {
        Err(crate::volumes::VolumeError::InvalidName(name.to_string()).to_string())
    }
}

/// `-v`: `DST` (anonymous volume), `SRC:DST` or `SRC:DST:MODE`, where an
/// absolute `SRC` is a host path and anything else a volume name.
pub(crate) fn parse_volume(raw: &str) -> Result<MountRequest, String> {
    let parts: Vec<&str> = raw.split(':').collect();
    if parts[0].is_empty() {
        return Err(invalid_spec(raw));
    }
    let (source, target, mode) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [_, m] if valid_mode(m) => return Err(invalid_spec(raw)),
        [s, t] => (*s, *t, ""),
        [s, t, m] => (*s, *t, *m),
        _ => return Err(invalid_spec(raw)),
    };
    if !valid_mode(mode) {
        return Err(format!("invalid mode: {mode}"));
    }
    let kind = if source.starts_with('/') {
        Kind::Bind
    } else {
        Kind::Volume
    };
    let with_spec = |e: String| format!("{}: {e}", invalid_spec(raw));
    let target = check_target(kind, target).map_err(with_spec)?;
    let no_copy = mode_words(mode).any(|w| w == "nocopy");
    let propagation = mode_words(mode).find(|w| PROPAGATIONS.contains(w));
    match kind {
        Kind::Bind if no_copy => {
            return Err(with_spec(mount_config(
                kind,
                "field VolumeOptions must not be specified",
            )))
        }
        Kind::Volume if propagation.is_some() => {
            return Err(with_spec(mount_config(
                kind,
                "field BindOptions must not be specified",
            )))
        }
        Kind::Volume => check_volume_name(source)?,
        _ => {}
    }
    Ok(MountRequest {
        kind,
        source: if kind == Kind::Bind {
            clean(source)
        } else {
            source.to_string()
        },
        target,
        read_only: mode_words(mode).any(|w| w == "ro"),
        mode: mode.to_string(),
        propagation: match kind {
            Kind::Bind => propagation.unwrap_or("rprivate").to_string(),
            _ => String::new(),
        },
        no_copy,
        create_source: true,
        tmpfs_size: None,
        tmpfs_mode: None,
    })
}

/// A `--mount` boolean: bare means true.
fn flag_value(key: &str, value: Option<&str>) -> Result<bool, String> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(v) => Err(format!("invalid value for {key}: {v}")),
    }
}

/// `64m`, `1g`, `1024`: bytes, as Docker's `RAMInBytes` reads them.
fn parse_bytes(s: &str) -> Option<u64> {
    let lower = s.trim().to_ascii_lowercase();
    let lower = lower
        .strip_suffix("ib")
        .or(lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (digits, mult) = match lower.chars().last()? {
        'k' => (&lower[..lower.len() - 1], 1u64 << 10),
        'm' => (&lower[..lower.len() - 1], 1 << 20),
        'g' => (&lower[..lower.len() - 1], 1 << 30),
        't' => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// `--mount type=bind|volume|tmpfs,source=...,target=...,readonly,...`.
pub(crate) fn parse_mount(raw: &str) -> Result<MountRequest, String> {
    let bad = |msg: String| format!("invalid argument \"{raw}\" for \"--mount\" flag: {msg}");
    let mut kind = Kind::Volume;
    let mut source = String::new();
    let mut target = String::new();
    let mut read_only = false;
    let mut propagation = None;
    let mut no_copy = false;
    let mut tmpfs_size = None;
    let mut tmpfs_mode = None;
    let mut volume_only = false;
    let mut bind_only = false;
    let mut tmpfs_only = false;
    for field in raw.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v)),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let need = |v: Option<&str>| -> Result<String, String> {
            v.map(str::to_string)
                .ok_or_else(|| bad(format!("invalid field '{field}' must be a key=value pair")))
        };
        match key.as_str() {
            "type" => {
                kind = match need(value)?.as_str() {
                    "bind" => Kind::Bind,
                    "volume" => Kind::Volume,
                    "tmpfs" => Kind::Tmpfs,
                    other => return Err(bad(format!("invalid mount type: {other}"))),
                }
            }
            "source" | "src" => source = need(value)?,
            "target" | "dst" | "destination" => target = need(value)?,
            "readonly" | "ro" => read_only = flag_value(&key, value).map_err(bad)?,
            "consistency" => {}
            "bind-propagation" => {
                let p = need(value)?;
                if !PROPAGATIONS.contains(&p.as_str()) {
                    return Err(bad(format!("invalid bind-propagation: {p}")));
                }
                propagation = Some(p);
                bind_only = true;
            }
            "bind-nonrecursive" => bind_only = true,
            "volume-nocopy" => {
                no_copy = flag_value(&key, value).map_err(bad)?;
                volume_only = true;
            }
            "volume-driver" => {
                let d = need(value)?;
                if d != crate::volumes::LOCAL_DRIVER {
                    return Err(format!(
                        "error looking up volume plugin {d}: plugin \"{d}\" not found"
                    ));
                }
                volume_only = true;
            }
            "volume-label" => volume_only = true,
            "volume-opt" => {
                return Err(bad("volume options are not supported by berth".into()));
            }
            "tmpfs-size" => {
                let v = need(value)?;
                tmpfs_size = Some(
                    parse_bytes(&v)
                        .ok_or_else(|| bad(format!("invalid value for tmpfs-size: {v}")))?,
                );
                tmpfs_only = true;
            }
            "tmpfs-mode" => {
                let v = need(value)?;
                tmpfs_mode = Some(
                    u32::from_str_radix(&v, 8)
                        .map_err(|_| bad(format!("invalid value for tmpfs-mode: {v}")))?,
                );
                tmpfs_only = true;
            }
            _ => return Err(bad(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    let target = check_target(kind, &target)?;
    let misplaced = match kind {
        Kind::Bind if volume_only => Some("VolumeOptions"),
        Kind::Bind if tmpfs_only => Some("TmpfsOptions"),
        Kind::Volume if bind_only => Some("BindOptions"),
        Kind::Volume if tmpfs_only => Some("TmpfsOptions"),
        Kind::Tmpfs if bind_only => Some("BindOptions"),
        Kind::Tmpfs if volume_only => Some("VolumeOptions"),
        _ => None,
    };
    if let Some(field) = misplaced {
        return Err(mount_config(
            kind,
            &format!("field {field} must not be specified"),
        ));
    }
    match kind {
        Kind::Bind if source.is_empty() => {
            return Err(mount_config(kind, "field Source must not be empty"))
        }
        Kind::Bind if !source.starts_with('/') => {
            return Err(mount_config(
                kind,
                &format!("invalid mount path: '{source}' mount path must be absolute"),
            ))
        }
        Kind::Tmpfs if !source.is_empty() => {
            return Err(mount_config(kind, "field Source must not be specified"))
        }
        Kind::Volume => check_volume_name(&source)?,
        _ => {}
    }
    Ok(MountRequest {
        kind,
        source: if kind == Kind::Bind {
            clean(&source)
        } else {
            source
        },
        target,
        read_only,
        mode: String::new(),
        propagation: match kind {
            Kind::Bind => propagation.unwrap_or_else(|| "rprivate".into()),
            _ => String::new(),
        },
        no_copy,
        create_source: false,
        tmpfs_size,
        tmpfs_mode,
    })
}

/// The tmpfs options Docker accepts: mount flags and tmpfs's own data.
fn valid_tmpfs_option(opt: &str) -> bool {
    const FLAGS: &[&str] = &[
        "ro",
        "rw",
        "exec",
        "noexec",
        "suid",
        "nosuid",
        "dev",
        "nodev",
        "sync",
        "async",
        "dirsync",
        "atime",
        "noatime",
        "diratime",
        "nodiratime",
        "relatime",
        "norelatime",
        "strictatime",
        "nostrictatime",
        "mand",
        "nomand",
    ];
    const DATA: &[&str] = &[
        "size",
        "mode",
        "uid",
        "gid",
        "nr_inodes",
        "nr_blocks",
        "mpol",
    ];
    FLAGS.contains(&opt)
        || opt
            .split_once('=')
            .is_some_and(|(k, v)| DATA.contains(&k) && !v.is_empty())
}

/// `--tmpfs DST[:OPTS]`: the cleaned destination and the options as given.
pub(crate) fn parse_tmpfs(raw: &str) -> Result<(String, String), String> {
    let (target, opts) = raw.split_once(':').unwrap_or((raw, ""));
    let target = check_target(Kind::Tmpfs, target).map_err(|e| {
        // Docker words tmpfs destination errors without the mount config part.
        e.split_once(": ").map_or(e.clone(), |(_, m)| m.to_string())
    })?;
    let bad: Vec<&str> = opts
        .split(',')
        .filter(|o| !o.is_empty() && !valid_tmpfs_option(o))
        .collect();
    if !bad.is_empty() {
        return Err(format!("Invalid tmpfs option {bad:?}"));
    }
    Ok((target, opts.to_string()))
}

/// `--volumes-from CONTAINER[:MODE]`: the container and whether its mounts
/// are forced read-only. Modes other than rw/ro (and z/Z) are refused.
pub(crate) fn parse_volumes_from(raw: &str) -> Result<(String, bool), String> {
    if raw.is_empty() {
        return Err("volumes-from specification cannot be an empty string".into());
    }
    let (id, mode) = raw.split_once(':').unwrap_or((raw, "rw"));
    let no_extras = mode_words(mode).all(|w| !PROPAGATIONS.contains(&w) && w != "nocopy");
    if !valid_mode(mode) || !no_extras {
        return Err(format!("invalid mode: {mode}"));
    }
    Ok((id.to_string(), mode_words(mode).any(|w| w == "ro")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_like_go() {
        assert_eq!(clean("/a//b/./c/.."), "/a/b");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean("/"), "/");
    }

    #[test]
    fn volume_flags_give_binds_named_and_anonymous_volumes() {
        let m = parse_volume("/host/dir/:/data:ro").unwrap();
        assert_eq!(
            (m.kind, m.source.as_str(), m.target.as_str()),
            (Kind::Bind, "/host/dir", "/data")
        );
        assert!(m.read_only && m.create_source);
        assert_eq!(
            (m.mode.as_str(), m.propagation.as_str()),
            ("ro", "rprivate")
        );
        let m = parse_volume("cache:/var/cache/").unwrap();
        assert_eq!(
            (m.kind, m.source.as_str(), m.target.as_str()),
            (Kind::Volume, "cache", "/var/cache")
        );
        assert!(!m.read_only && m.propagation.is_empty());
        let m = parse_volume("/data").unwrap();
        assert_eq!((m.kind, m.source.as_str()), (Kind::Volume, ""));
        let m = parse_volume("v1:/d:ro,nocopy").unwrap();
        assert!(m.read_only && m.no_copy);
        assert_eq!(parse_volume("/h:/d:rslave").unwrap().propagation, "rslave");
    }

    #[test]
    fn bad_volume_flags_are_refused_with_dockers_words() {
        let err = |s| parse_volume(s).unwrap_err();
        assert_eq!(err(":/x"), "invalid volume specification: ':/x'");
        assert_eq!(err("/d:rw"), "invalid volume specification: '/d:rw'");
        assert_eq!(err("a:b:c:d"), "invalid volume specification: 'a:b:c:d'");
        assert_eq!(err("/h:/d:rx"), "invalid mode: rx");
        assert_eq!(err("/h:/d:ro,rw"), "invalid mode: ro,rw");
        assert_eq!(
            err("relative"),
            "invalid volume specification: 'relative': invalid mount config for type \"volume\": invalid mount path: 'relative' mount path must be absolute"
        );
        assert!(err("/h:/").contains("destination can't be '/'"));
        assert!(err("./h:/d").contains("includes invalid characters for a local volume name"));
        assert!(err("/h:/d:nocopy").contains("field VolumeOptions must not be specified"));
        assert!(err("v1:/d:shared").contains("field BindOptions must not be specified"));
    }

    #[test]
    fn mount_flags_parse_each_type() {
        let m =
            parse_mount("type=bind,source=/h,target=/d,readonly,bind-propagation=rslave").unwrap();
        assert_eq!(
            (m.kind, m.read_only, m.create_source),
            (Kind::Bind, true, false)
        );
        assert_eq!(m.propagation, "rslave");
        let m = parse_mount("src=v1,dst=/d,volume-nocopy").unwrap();
        assert_eq!(
            (m.kind, m.source.as_str(), m.no_copy),
            (Kind::Volume, "v1", true)
        );
        let m = parse_mount("type=tmpfs,destination=/t,tmpfs-size=64m,tmpfs-mode=1770").unwrap();
        assert_eq!((m.tmpfs_size, m.tmpfs_mode), (Some(64 << 20), Some(0o1770)));
        let m = parse_mount("type=volume,target=/anon,ro=false").unwrap();
        assert_eq!((m.source.as_str(), m.read_only), ("", false));
    }

    #[test]
    fn bad_mount_flags_are_refused() {
        let err = |s| parse_mount(s).unwrap_err();
        assert!(err("type=bind,target=/d").contains("field Source must not be empty"));
        assert!(err("type=volume,source=v1").contains("field Target must not be empty"));
        assert!(err("type=tmpfs,source=x,target=/t").contains("Source must not be specified"));
        assert!(err("type=nfs,target=/t").contains("invalid mount type: nfs"));
        assert!(err("target=/t,color=red").contains("unexpected key 'color'"));
        assert!(err("target").contains("must be a key=value pair"));
        assert!(err("type=bind,src=/h,dst=/d,volume-nocopy").contains("VolumeOptions"));
        assert!(err("type=tmpfs,dst=/d,tmpfs-size=lots").contains("tmpfs-size"));
    }

    #[test]
    fn tmpfs_and_volumes_from_flags() {
        assert_eq!(parse_tmpfs("/run").unwrap(), ("/run".into(), String::new()));
        assert_eq!(
            parse_tmpfs("/run/:size=1m,exec").unwrap(),
            ("/run".into(), "size=1m,exec".into())
        );
        assert_eq!(
            parse_tmpfs("run").unwrap_err(),
            "invalid mount path: 'run' mount path must be absolute"
        );
        assert_eq!(
            parse_tmpfs("/run:bogus").unwrap_err(),
            "Invalid tmpfs option [\"bogus\"]"
        );
        assert_eq!(parse_volumes_from("c1").unwrap(), ("c1".into(), false));
        assert_eq!(parse_volumes_from("c1:ro").unwrap(), ("c1".into(), true));
        assert_eq!(
            parse_volumes_from("c1:rslave").unwrap_err(),
            "invalid mode: rslave"
        );
        assert!(parse_volumes_from("").is_err());
    }
}
