//! A container's record on disk, `containers/<id>/config.v2.json` in
//! Docker's shape, plus `hostconfig.json`: written to a temp name, synced
//! and renamed, so readers see the old record or the new, never half.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{CResult, ContainerError};

/// Go's zero time, which Docker prints for times that never happened.
pub(crate) const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `State` of config.v2.json.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    /// `created`, `running` or `exited`.
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    pub pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
}

impl Default for State {
    fn default() -> Self {
        State {
            status: "created".into(),
            running: false,
            paused: false,
            restarting: false,
            oom_killed: false,
            dead: false,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
        }
    }
}

/// `hostconfig.json`: the flags that shape how the container runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[serde(default)]
pub struct HostConfig {
    pub auto_remove: bool,
    pub readonly_rootfs: bool,
    /// `default`, `none` or `host`.
    pub network_mode: String,
    // Resource and security flags (see resources.rs), Docker's names.
    /// `-m`, bytes (0: unlimited).
    pub memory: i64,
    /// `--memory-swap`: memory plus swap in bytes, -1 unlimited.
    pub memory_swap: i64,
    /// `--cpus` in billionths of a CPU.
    pub nano_cpus: i64,
    /// `-c`.
    pub cpu_shares: i64,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: String,
    /// `--pids-limit`; null when unlimited.
    pub pids_limit: Option<i64>,
    /// `--blkio-weight` (0: unset).
    pub blkio_weight: u16,
    /// `--ulimit`s; null when none.
    pub ulimits: Option<Vec<super::flags::Ulimit>>,
    /// `--cap-add`, normalized (`CAP_...`, `ALL`).
    pub cap_add: Option<Vec<String>>,
    /// `--cap-drop`, normalized.
    pub cap_drop: Option<Vec<String>>,
    /// `--privileged`.
    pub privileged: bool,
    /// `--init` (Docker's `*bool`: null unless given).
    #[serde(default)]
    pub init: Option<bool>,
    /// `-v` flags with a source (binds and named volumes).
    #[serde(default)]
    pub binds: Option<Vec<String>>,
    /// `--tmpfs`: destination → options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    pub volumes_from: Option<Vec<String>>,
    /// `--mount` flags, as Docker's `Mount` objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<super::mounts::MountSpec>,
}

/// config.v2.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Created")]
    pub created: String,
    #[serde(rename = "Path")]
    pub path: String,
    #[serde(rename = "Args")]
    pub args: Vec<String>,
    /// Docker's container `Config` (Env, Cmd, Entrypoint, Image as given...).
    #[serde(rename = "Config")]
    pub config: Value,
    /// The image ID, `sha256:...`.
    #[serde(rename = "Image")]
    pub image: String,
    /// `/name`, as Docker stores it.
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Driver")]
    pub driver: String,
    #[serde(rename = "State")]
    pub state: State,
    #[serde(rename = "HostnamePath")]
    pub hostname_path: String,
    #[serde(rename = "HostsPath")]
    pub hosts_path: String,
    #[serde(rename = "ResolvConfPath")]
    pub resolv_conf_path: String,
    /// The json-file log, once the container has run.
    #[serde(rename = "LogPath", default)]
    pub log_path: String,
    /// The container's cgroup below each hierarchy's root (`berth/<id>`),
    /// once the launcher made one; `pause`, `stats`, `top` and `rm` open it.
    #[serde(
        rename = "CgroupPath",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub cgroup_path: String,
    /// Kept in hostconfig.json, not in this file.
    #[serde(skip)]
    pub host_config: HostConfig,
    /// Destination → mount (see [`super::mounts`]).
    #[serde(rename = "MountPoints", default)]
    pub mount_points: std::collections::BTreeMap<String, super::mounts::MountPoint>,
}

impl Record {
    /// The name without Docker's leading `/`.
    pub fn short_name(&self) -> &str {
        self.name.strip_prefix('/').unwrap_or(&self.name)
    }

    /// The command line as `ps` shows it: path and arguments.
    pub fn command(&self) -> String {
        std::iter::once(self.path.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        parse(&self.created)
    }

    /// The image as the user named it.
    pub fn image_name(&self) -> String {
        self.config
            .get("Image")
            .and_then(Value::as_str)
            .unwrap_or(&self.image)
            .to_string()
    }
}

pub(crate) fn parse(t: &str) -> Option<DateTime<Utc>> {
    if t == ZERO_TIME {
        return None;
    }
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `<root>/containers`.
pub(crate) fn containers_dir(root: &Path) -> PathBuf {
    root.join("containers")
}

/// Holds `containers/.lock` (an exclusive `flock`) while a container is
/// created, so two `create --name web` at once cannot both take the name.
pub(crate) fn lock(root: &Path) -> CResult<fs::File> {
    crate::lockfile::lock_dir(&containers_dir(root))
        .map_err(|(what, e)| ContainerError::io(what, e))
}

/// Writes `bytes` to `path` through a temp file and a rename, so readers
/// see the old file or the new, never half of one. Not synced: a container's
/// state is re-derived after a crash anyway (a record that says running
/// whose init is gone shows exited), and a run writes it a dozen times, each
/// fsync costing milliseconds on a busy disk. Images, which are not
/// re-derivable, are synced by the store.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> CResult<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        ContainerError::io(format!("writing {}", path.display()), e)
    })
}

/// Saves both files of a record into `dir`.
pub(crate) fn save(dir: &Path, record: &Record) -> CResult<()> {
    write_atomic(
        &dir.join("hostconfig.json"),
        &serde_json::to_vec(&record.host_config)?,
    )?;
    write_atomic(&dir.join("config.v2.json"), &serde_json::to_vec(record)?)
}

/// Loads the record in `dir`; `None` if it has none (yet, or any more).
pub(crate) fn load(dir: &Path) -> CResult<Option<Record>> {
    let path = dir.join("config.v2.json");
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ContainerError::io(format!("reading {}", path.display()), e)),
    };
    let mut record: Record = serde_json::from_slice(&bytes)?;
    if let Ok(h) = fs::read(dir.join("hostconfig.json")) {
        record.host_config = serde_json::from_slice(&h)?;
    }
    Ok(Some(record))
}

/// Every container's record, newest first.
pub(crate) fn list(root: &Path) -> CResult<Vec<Record>> {
    let dir = containers_dir(root);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ContainerError::io(format!("listing {}", dir.display()), e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ContainerError::io("listing containers", e))?;
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_container_id) {
            continue;
        }
        if let Some(r) = load(&entry.path())? {
            out.push(r);
        }
    }
    out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    Ok(out)
}

pub(crate) fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Docker's lookup order: full ID, then name, then unique ID prefix.
pub(crate) fn resolve<'a>(records: &'a [Record], query: &str) -> CResult<&'a Record> {
    let missing = || ContainerError::NoSuchContainer(query.to_string());
    if query.is_empty() {
        return Err(missing());
    }
    if let Some(r) = records.iter().find(|r| r.id == query) {
        return Ok(r);
    }
    let name = query.strip_prefix('/').unwrap_or(query);
    if let Some(r) = records.iter().find(|r| r.short_name() == name) {
        return Ok(r);
    }
    let mut found = records.iter().filter(|r| r.id.starts_with(query));
    match (found.next(), found.next()) {
        (Some(r), None) => Ok(r),
        (Some(_), Some(_)) => Err(ContainerError::InvalidArgument(format!(
            "multiple IDs found with provided prefix: {query}"
        ))),
        _ => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, name: &str) -> Record {
        Record {
            id: id.repeat(64 / id.len()),
            created: "2024-01-01T00:00:00Z".into(),
            path: "sh".into(),
            args: vec!["-c".into(), "exit 3".into()],
            config: serde_json::json!({"Image": "busybox"}),
            image: "sha256:00".into(),
            name: format!("/{name}"),
            driver: "overlay".into(),
            state: State::default(),
            hostname_path: String::new(),
            hosts_path: String::new(),
            resolv_conf_path: String::new(),
            log_path: String::new(),
            cgroup_path: String::new(),
            host_config: HostConfig::default(),
            mount_points: Default::default(),
        }
    }

    #[test]
    fn resolves_id_then_name_then_unique_prefix() {
        let rs = vec![record("ab", "web"), record("ac", "db"), record("0", "abab")];
        assert_eq!(resolve(&rs, "web").unwrap().short_name(), "web");
        assert_eq!(resolve(&rs, "/db").unwrap().short_name(), "db");
        // A name wins over an ID prefix that spells the same.
        assert_eq!(resolve(&rs, "abab").unwrap().short_name(), "abab");
        assert_eq!(resolve(&rs, "aba").unwrap().short_name(), "web");
        assert!(matches!(
            resolve(&rs, "a"),
            Err(ContainerError::InvalidArgument(_))
        ));
        assert!(matches!(
            resolve(&rs, "zz"),
            Err(ContainerError::NoSuchContainer(_))
        ));
        assert!(resolve(&rs, "").is_err());
    }

    #[test]
    fn records_round_trip_with_docker_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = record("ab", "web");
        r.host_config.auto_remove = true;
        save(dir.path(), &r).unwrap();
        let text = fs::read_to_string(dir.path().join("config.v2.json")).unwrap();
        for key in ["\"ID\"", "\"OOMKilled\"", "\"FinishedAt\"", "\"ExitCode\""] {
            assert!(text.contains(key), "{key} in {text}");
        }
        let back = load(dir.path()).unwrap().unwrap();
        assert_eq!(back.id, r.id);
        assert!(back.host_config.auto_remove);
        assert_eq!(back.command(), "sh -c exit 3");
        assert!(load(&dir.path().join("none")).unwrap().is_none());
    }
}
