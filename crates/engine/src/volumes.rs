//! Volumes as Docker's `local` driver keeps them: the data in
//! `<root>/volumes/<name>/_data`, and berth's metadata beside it in
//! `<root>/volumes/<name>/volume.json`. A volume appears whole or not at
//! all: it is built under a temporary name and renamed into place, and
//! removed by renaming it away first. `volumes/.lock` serialises changes.
//!
//! Which containers use a volume is read from their records (their
//! `MountPoints`), so a volume's users can never drift from the truth.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::container::ContainerError;
use crate::Engine;

/// The only volume driver berth has.
pub const LOCAL_DRIVER: &str = "local";

const META_FILE: &str = "volume.json";
const DATA_DIR: &str = "_data";

/// What went wrong with a volume command.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("No such volume: {0}")]
    NoSuchVolume(String),
    #[error("remove {name}: volume is in use - [{}]", users.join(", "))]
    InUse { name: String, users: Vec<String> },
    #[error("create {0}: \"{0}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path")]
    InvalidName(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl VolumeError {
    fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        VolumeError::Io {
            context: context.into(),
            source,
        }
    }

    /// Errors the daemon would have answered (the CLI prefixes those with
    /// "Error response from daemon:"), as opposed to a missing volume.
    pub fn from_daemon(&self) -> bool {
        !matches!(self, VolumeError::NoSuchVolume(_))
    }
}

impl From<serde_json::Error> for VolumeError {
    fn from(e: serde_json::Error) -> Self {
        VolumeError::Container(e.into())
    }
}

pub type VResult<T> = std::result::Result<T, VolumeError>;

/// `volume.json`: what `volume inspect` shows beyond the path.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Meta {
    name: String,
    created_at: String,
    /// `null` for volumes made on the fly by `run -v`, `{}` or the labels
    /// for `volume create`, as Docker shows them.
    labels: Option<BTreeMap<String, String>>,
    options: Option<BTreeMap<String, String>>,
    /// Made for a container's anonymous mount (`-v /path`, image VOLUME).
    #[serde(default)]
    anonymous: bool,
}

/// One volume, as `volume ls` and `volume inspect` see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    pub created_at: String,
    pub labels: Option<BTreeMap<String, String>>,
    pub options: Option<BTreeMap<String, String>>,
    pub anonymous: bool,
    /// `<root>/volumes/<name>/_data`.
    pub mountpoint: PathBuf,
}

impl Volume {
    /// Docker's `volume inspect` document.
    pub fn inspect(&self) -> serde_json::Value {
        serde_json::json!({
            "CreatedAt": self.created_at,
            "Driver": LOCAL_DRIVER,
            "Labels": self.labels,
            "Mountpoint": self.mountpoint.display().to_string(),
            "Name": self.name,
            "Options": self.options,
            "Scope": "local",
        })
    }
}

/// `volume create` flags.
#[derive(Debug, Default, Clone)]
pub struct VolumeCreateOptions {
    /// Generated (64 hex digits) when absent.
    pub name: Option<String>,
    /// `-d`: only `local`.
    pub driver: Option<String>,
    /// `--label KEY[=VALUE]`.
    pub labels: Vec<String>,
    /// `-o KEY=VALUE`: the local driver's mount options, not supported.
    pub options: Vec<String>,
}

/// `volume ls -f` filters.
#[derive(Debug, Default, Clone)]
pub struct VolumeFilter {
    /// `dangling=true|false`: used by no container, or by some.
    pub dangling: Option<bool>,
    /// `name=PART`: names containing PART.
    pub names: Vec<String>,
    /// `label=KEY` or `label=KEY=VALUE`.
    pub labels: Vec<String>,
    /// `driver=NAME`.
    pub drivers: Vec<String>,
}

impl VolumeFilter {
    /// Parses `-f KEY=VALUE` flags as Docker names them.
    pub fn parse(flags: &[String]) -> VResult<VolumeFilter> {
        let mut f = VolumeFilter::default();
        for flag in flags {
            let (key, value) = flag.split_once('=').ok_or_else(|| {
                VolumeError::InvalidArgument("bad format of filter (expected name=value)".into())
            })?;
            match key {
                "dangling" => {
                    f.dangling = Some(match value.to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => {
                            return Err(VolumeError::InvalidArgument(format!(
                                "Invalid filter 'dangling={value}'"
                            )))
                        }
                    })
                }
                "name" => f.names.push(value.to_string()),
                "label" => f.labels.push(value.to_string()),
                "driver" => f.drivers.push(value.to_string()),
                _ => {
                    return Err(VolumeError::InvalidArgument(format!(
                        "Invalid filter '{key}'"
                    )))
                }
            }
        }
        Ok(f)
    }

    fn keeps(&self, v: &Volume, used: bool) -> bool {
        let labels = v.labels.clone().unwrap_or_default();
        self.dangling.is_none_or(|d| d != used)
            && (self.names.is_empty() || self.names.iter().any(|n| v.name.contains(n.as_str())))
            && (self.drivers.is_empty() || self.drivers.iter().any(|d| d == LOCAL_DRIVER))
            && self.labels.iter().all(|l| match l.split_once('=') {
                Some((k, val)) => labels.get(k).is_some_and(|x| x == val),
                None => labels.contains_key(l),
            })
    }
}

/// What `volume prune` removed.
#[derive(Debug, Default, Clone)]
pub struct VolumePruneReport {
    pub deleted: Vec<String>,
    pub reclaimed: u64,
}

/// Docker's rule for local volume names (at least two characters).
pub(crate) fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

pub(crate) fn volumes_dir(root: &Path) -> PathBuf {
    root.join("volumes")
}

/// The directory a volume's data lives in.
pub(crate) fn data_dir(root: &Path, name: &str) -> PathBuf {
    volumes_dir(root).join(name).join(DATA_DIR)
}

/// Holds `volumes/.lock` (an exclusive `flock`) until dropped. Taken after
/// the containers lock when both are needed, never before it.
pub(crate) fn lock(root: &Path) -> VResult<fs::File> {
    crate::lockfile::lock_dir(&volumes_dir(root)).map_err(|(what, e)| VolumeError::io(what, e))
}

fn random_name() -> String {
    rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Loads one volume; `None` when there is none by that name.
fn load(root: &Path, name: &str) -> VResult<Option<Volume>> {
    if !valid_name(name) {
        return Ok(None);
    }
    let path = volumes_dir(root).join(name).join(META_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(VolumeError::io(format!("reading {}", path.display()), e)),
    };
    let meta: Meta = serde_json::from_slice(&bytes)?;
    Ok(Some(Volume {
        name: name.to_string(),
        created_at: meta.created_at,
        labels: meta.labels,
        options: meta.options,
        anonymous: meta.anonymous,
        mountpoint: data_dir(root, name),
    }))
}

/// Every volume, sorted by name.
fn list(root: &Path) -> VResult<Vec<Volume>> {
    let dir = volumes_dir(root);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(VolumeError::io(format!("listing {}", dir.display()), e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| VolumeError::io("listing volumes", e))?;
        // Temporary and half-removed entries start with a dot.
        if let Some(v) = entry
            .file_name()
            .to_str()
            .map(|n| load(root, n))
            .transpose()?
        {
            out.extend(v);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Creates volume `meta.name` whole: built under a temporary name, then
/// renamed into place. The caller holds the volumes lock.
fn create(root: &Path, meta: &Meta) -> VResult<Volume> {
    let dir = volumes_dir(root);
    let tmp = dir.join(format!(".tmp-{}", random_name()));
    let build = || -> std::io::Result<()> {
        fs::create_dir_all(tmp.join(DATA_DIR))?;
        let mut f = fs::File::create(tmp.join(META_FILE))?;
        f.write_all(&serde_json::to_vec(meta)?)?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join(&meta.name))?;
        fs::File::open(&dir)?.sync_all()
    };
    build().map_err(|e| {
        let _ = fs::remove_dir_all(&tmp);
        VolumeError::io(format!("creating volume {}", meta.name), e)
    })?;
    load(root, &meta.name)?.ok_or_else(|| VolumeError::NoSuchVolume(meta.name.clone()))
}

/// Removes a volume: renamed away first, so it is never seen half gone.
fn destroy(root: &Path, name: &str) -> VResult<()> {
    let dir = volumes_dir(root);
    let gone = dir.join(format!(".rm-{}", random_name()));
    fs::rename(dir.join(name), &gone)
        .map_err(|e| VolumeError::io(format!("removing volume {name}"), e))?;
    let removed = match fs::remove_dir_all(&gone) {
        // A container may leave read-only directories (0555) that their
        // owner, rootless, cannot empty: open them up and retry.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            make_writable(&gone);
            fs::remove_dir_all(&gone)
        }
        r => r,
    };
    removed.map_err(|e| VolumeError::io(format!("removing volume {name}"), e))
}

/// Gives every directory under `dir` (not following links) owner rwx.
fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = dir.symlink_metadata() else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(meta.mode() | 0o700));
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        make_writable(&e.path());
    }
}

/// Bytes in the regular files under `dir`, hard links counted once.
pub(crate) fn dir_size(dir: &Path) -> u64 {
    fn walk(dir: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
        let Ok(rd) = fs::read_dir(dir) else { return 0 };
        let mut total = 0;
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                total += walk(&e.path(), seen);
            } else if m.is_file() && seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
        total
    }
    walk(dir, &mut HashSet::new())
}

impl Engine {
    /// `volume create`: an existing volume of that name is returned as it
    /// is, as Docker does.
    pub fn create_volume(&self, opts: &VolumeCreateOptions) -> VResult<Volume> {
        if let Some(d) = opts.driver.as_deref().filter(|d| *d != LOCAL_DRIVER) {
            return Err(VolumeError::InvalidArgument(format!(
                "error looking up volume plugin {d}: plugin \"{d}\" not found"
            )));
        }
        if !opts.options.is_empty() {
            return Err(VolumeError::InvalidArgument(
                "volume options (-o) are not supported by berth's local driver".into(),
            ));
        }
        let labels = opts
            .labels
            .iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.clone(), String::new()),
            })
            .collect();
        let _lock = lock(self.store.root())?;
        self.ensure_volume(opts.name.as_deref(), Some(labels))
    }

    /// The volume `name`, created when missing (`labels` `None`: made on
    /// the fly for a container), or a new anonymous one when `name` is
    /// `None`. The caller holds the volumes lock.
    pub(crate) fn ensure_volume(
        &self,
        name: Option<&str>,
        labels: Option<BTreeMap<String, String>>,
    ) -> VResult<Volume> {
        let root = self.store.root();
        if let Some(n) = name {
            if !valid_name(n) {
                return Err(VolumeError::InvalidName(n.to_string()));
            }
            if let Some(v) = load(root, n)? {
                return Ok(v);
            }
        }
        let options = labels.is_some().then(BTreeMap::new);
        create(
            root,
            &Meta {
                name: name.map_or_else(random_name, str::to_string),
                created_at: now(),
                labels,
                options,
                anonymous: name.is_none(),
            },
        )
    }

    /// `volume inspect NAME`.
    pub fn volume(&self, name: &str) -> VResult<Volume> {
        load(self.store.root(), name)?.ok_or_else(|| VolumeError::NoSuchVolume(name.to_string()))
    }

    /// `volume ls`: the volumes the filter keeps, by name.
    pub fn list_volumes(&self, filter: &VolumeFilter) -> VResult<Vec<Volume>> {
        let used = self.volumes_in_use()?;
        Ok(list(self.store.root())?
            .into_iter()
            .filter(|v| filter.keeps(v, used.contains_key(&v.name)))
            .collect())
    }

    /// Volume name → IDs of the containers (any state) that mount it.
    pub(crate) fn volumes_in_use(&self) -> VResult<BTreeMap<String, Vec<String>>> {
        let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in self.list_containers()? {
            for name in r.volume_names() {
                used.entry(name).or_default().push(r.id.clone());
            }
        }
        Ok(used)
    }

    /// `volume rm [-f] NAME`: refused while a container uses it; with
    /// `force` a missing volume is not an error.
    pub fn remove_volume(&self, name: &str, force: bool) -> VResult<()> {
        // Creates hold the containers lock while they pick their volumes.
        let _containers = self.lock_containers()?;
        let _lock = lock(self.store.root())?;
        if load(self.store.root(), name)?.is_none() {
            return if force {
                Ok(())
            } else {
                Err(VolumeError::NoSuchVolume(name.to_string()))
            };
        }
        if let Some(users) = self.volumes_in_use()?.remove(name) {
            return Err(VolumeError::InUse {
                name: name.to_string(),
                users,
            });
        }
        destroy(self.store.root(), name)
    }

    /// `volume prune`: every volume no container uses (Docker 20.10 prunes
    /// named ones too).
    pub fn prune_volumes(&self) -> VResult<VolumePruneReport> {
        let _containers = self.lock_containers()?;
        let _lock = lock(self.store.root())?;
        let used = self.volumes_in_use()?;
        let mut report = VolumePruneReport::default();
        for v in list(self.store.root())? {
            if used.contains_key(&v.name) {
                continue;
            }
            let size = dir_size(&v.mountpoint);
            destroy(self.store.root(), &v.name)?;
            report.reclaimed += size;
            report.deleted.push(v.name);
        }
        Ok(report)
    }

    /// Removes the anonymous volumes in `names` that no container uses any
    /// more (`rm -v`, `run --rm`); named volumes always stay. Takes the
    /// containers lock unless the caller `holds_containers_lock`.
    pub(crate) fn remove_unused_anonymous(
        &self,
        names: &[String],
        holds_containers_lock: bool,
    ) -> VResult<()> {
        if names.is_empty() {
            return Ok(());
        }
        let _containers = (!holds_containers_lock)
            .then(|| self.lock_containers())
            .transpose()?;
        let _lock = lock(self.store.root())?;
        let used = self.volumes_in_use()?;
        for name in names {
            match load(self.store.root(), name)? {
                Some(v) if v.anonymous && !used.contains_key(name) => {
                    destroy(self.store.root(), name)?
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// `system df`'s volume line: (total, active, size, reclaimable).
    pub fn volume_usage(&self) -> VResult<(usize, usize, u64, u64)> {
        let used = self.volumes_in_use()?;
        let all = list(self.store.root())?;
        let (mut size, mut reclaimable, mut active) = (0, 0, 0);
        for v in &all {
            let s = dir_size(&v.mountpoint);
            size += s;
            if used.contains_key(&v.name) {
                active += 1;
            } else {
                reclaimable += s;
            }
        }
        Ok((all.len(), active, size, reclaimable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker_rules() {
        for ok in ["ab", "a1", "data_1.x-y", "0abc"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "a", "-ab", ".ab", "_ab", "a/b", "a b", "a:b", "ä1"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    fn meta(name: &str, anonymous: bool) -> Meta {
        Meta {
            name: name.into(),
            created_at: now(),
            labels: None,
            options: None,
            anonymous,
        }
    }

    #[test]
    fn volumes_are_created_listed_and_removed_whole() {
        let root = tempfile::tempdir().unwrap();
        let v = create(root.path(), &meta("data", false)).unwrap();
        assert_eq!(v.mountpoint, root.path().join("volumes/data/_data"));
        assert!(v.mountpoint.is_dir());
        create(root.path(), &meta("other", true)).unwrap();
        // Leftovers of interrupted creates and removes are not volumes.
        fs::create_dir_all(root.path().join("volumes/.tmp-x/_data")).unwrap();
        fs::create_dir_all(root.path().join("volumes/.rm-y/_data")).unwrap();
        let names: Vec<String> = list(root.path())
            .unwrap()
            .into_iter()
            .map(|v| v.name)
            .collect();
        assert_eq!(names, ["data", "other"]);
        assert!(create(root.path(), &meta("data", false)).is_err());
        fs::write(v.mountpoint.join("f"), b"12345").unwrap();
        assert_eq!(dir_size(&v.mountpoint), 5);
        destroy(root.path(), "data").unwrap();
        assert!(load(root.path(), "data").unwrap().is_none());
        assert!(load(root.path(), "../x").unwrap().is_none());
    }

    #[test]
    fn inspect_has_docker_keys() {
        let v = Volume {
            name: "v1".into(),
            created_at: "2024-01-01T00:00:00Z".into(),
            labels: Some(BTreeMap::from([("a".into(), "b".into())])),
            options: Some(BTreeMap::new()),
            anonymous: false,
            mountpoint: PathBuf::from("/r/volumes/v1/_data"),
        };
        assert_eq!(
            v.inspect(),
            serde_json::json!({
                "CreatedAt": "2024-01-01T00:00:00Z", "Driver": "local",
                "Labels": {"a": "b"}, "Mountpoint": "/r/volumes/v1/_data",
                "Name": "v1", "Options": {}, "Scope": "local"
            })
        );
    }

    #[test]
    fn filters_match_dangling_names_and_labels() {
        let f = VolumeFilter::parse(&[
            "dangling=true".into(),
            "label=env=prod".into(),
            "name=db".into(),
        ])
        .unwrap();
        let v = Volume {
            name: "mydb".into(),
            created_at: String::new(),
            labels: Some(BTreeMap::from([("env".into(), "prod".into())])),
            options: None,
            anonymous: false,
            mountpoint: PathBuf::new(),
        };
        assert!(f.keeps(&v, false));
        assert!(!f.keeps(&v, true));
        let f = VolumeFilter::parse(&["label=team".into()]).unwrap();
        assert!(!f.keeps(&v, false));
        assert!(VolumeFilter::parse(&["bogus=1".into()]).is_err());
        assert!(VolumeFilter::parse(&["dangling=maybe".into()]).is_err());
        assert!(VolumeFilter::parse(&["dangling".into()]).is_err());
    }
}
