//! `commit`: a container's changes become one new layer on its image, and
//! its config (with `-c` changes) the new image's config, built the way
//! Docker 20.10 builds them (`image.NewChildImage`).

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use berth_digest::{DiffId, ImageId};
use berth_store::PendingLayer;
use serde_json::{json, Map, Value};

use super::error::{CResult, ContainerError};
use super::state::Record;
use super::{hide_mount_points, strings, ContainerChange};
use crate::changes::Change;
use crate::error::EngineError;
use crate::images::{go_arch, now_rfc3339, parse_tag_reference};
use crate::inspect::full_container_config;
use crate::Engine;

/// The diffID of an empty tar (two zero blocks): Docker's empty layer. A
/// commit without changes adds none, only a history entry.
const EMPTY_LAYER: &str = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

/// `commit` flags.
#[derive(Debug, Clone)]
pub struct CommitOptions {
    /// `REPO[:TAG]` to tag the new image with.
    pub reference: Option<String>,
    /// `-a`.
    pub author: Option<String>,
    /// `-m`.
    pub message: Option<String>,
    /// `-c`, in order.
    pub changes: Vec<Change>,
    /// `-p` (default true): freeze a running container while its layer is
    /// read (where it has a cgroup; rootless containers here have none and
    /// are committed as they are at that moment).
    pub pause: bool,
}

/// Thaws a container frozen for a commit.
struct Thaw(Box<dyn berth_launch::cgroups::Cgroup>);

impl Drop for Thaw {
    fn drop(&mut self) {
        if let Err(e) = self.0.thaw() {
            log::warn!("commit: could not unpause: {e}");
        }
    }
}

impl Default for CommitOptions {
    fn default() -> Self {
        CommitOptions {
            reference: None,
            author: None,
            message: None,
            changes: Vec::new(),
            pause: true,
        }
    }
}

impl Engine {
    /// `commit`: returns the new image's ID.
    pub fn commit_container(&self, query: &str, opts: &CommitOptions) -> CResult<ImageId> {
        let reference = opts
            .reference
            .as_deref()
            .map(parse_tag_reference)
            .transpose()?;
        let record = self.container(query)?;
        if super::rootless::needs_userns(self) {
            // Read the writable layer as root of the container's user
            // namespace: the layer keeps the owners the container sees.
            let id = super::rootless::in_container_userns(self, &record, || {
                Ok(self.commit_container(query, opts)?.to_string().into_bytes())
            })?;
            return String::from_utf8_lossy(&id).parse().map_err(|_| {
                ContainerError::InvalidArgument(format!("bad image ID from commit: {id:?}"))
            });
        }
        let image = record_image(&record)?;
        let base = self.config(&image)?;
        let lowers = self.image_lowers(&image)?;
        let mount = self.store.mount(&record.id)?.ok_or_else(|| {
            ContainerError::InvalidArgument(format!("container {} has no layer", record.id))
        })?;
        let _frozen = if opts.pause {
            self.freeze_for_commit(&record)
        } else {
            None
        };
        let snapshotter = self.snapshotter()?;
        let raw = snapshotter.changes(&mount.mount_id, &lowers)?;
        let skip = mount_point_paths(&raw);
        let upper = snapshotter.upper_dir(&mount.mount_id)?;
        let pending = self.layer_of_dir(&upper, &skip)?;

        drop(_frozen);
        let empty = pending.diff_id.to_string() == EMPTY_LAYER;
        let diff_id = (!empty).then(|| pending.diff_id.clone());
        if empty {
            drop(pending);
        } else {
            self.store
                .commit_layer(pending, base.chain().last())
                .map_err(EngineError::from)?;
        }
        let config = image_config(&base.value, &record, opts, diff_id.as_ref(), &now_rfc3339());
        let bytes = serde_json::to_vec(&config)?;
        let id = self.store.put_image(&bytes, Some(&image))?;
        if let Some(r) = reference {
            self.store.set_reference(&r.to_string(), &id)?;
        }
        Ok(id)
    }

    /// Freezes a running, unpaused container for `commit -p`; thawed when
    /// the guard drops.
    fn freeze_for_commit(&self, record: &Record) -> Option<Thaw> {
        if !super::run::is_running(record) || record.state.paused || record.cgroup_path.is_empty() {
            return None;
        }
        let group = berth_launch::cgroups::open(Path::new(&record.cgroup_path)).ok()?;
        match group.freeze() {
            Ok(()) => Some(Thaw(group)),
            Err(e) => {
                log::warn!("commit: could not pause {}: {e}", &record.id[..12]);
                None
            }
        }
    }

    /// Tars the overlay-format layer dir `dir` (minus `skip`) straight into
    /// the store: the tar is the kept blob, its sha256 the diffID.
    fn layer_of_dir(&self, dir: &Path, skip: &HashSet<PathBuf>) -> CResult<PendingLayer> {
        let (read, write) =
            rustix::pipe::pipe().map_err(|e| ContainerError::io("making a pipe", e.into()))?;
        std::thread::scope(|s| {
            let writer = s.spawn(move || {
                berth_archive::write_layer_filtered(dir, File::from(write), &|p| skip.contains(p))
            });
            let unpacked = self
                .store
                .unpack_layer(File::from(read), &self.apply_options(None));
            let written = writer
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            // A writer that failed cut the stream short: its error is the cause.
            written.map_err(EngineError::from)?;
            Ok(unpacked.map_err(EngineError::from)?)
        })
    }
}

/// The image ID a container record names.
pub(super) fn record_image(record: &Record) -> CResult<ImageId> {
    record.image.parse().map_err(|_| {
        ContainerError::InvalidArgument(format!("bad image ID {} in record", record.image))
    })
}

/// Paths (relative to the layer dir) `diff` hides: the mount points berth
/// left in the layer, which stay out of the committed layer too.
fn mount_point_paths(raw: &[ContainerChange]) -> HashSet<PathBuf> {
    let kept: HashSet<ContainerChange> = hide_mount_points(raw.to_vec()).into_iter().collect();
    raw.iter()
        .filter(|c| !kept.contains(c))
        .map(|c| c.path.strip_prefix("/").unwrap_or(&c.path).to_path_buf())
        .collect()
}

/// Applies `-c` changes as a Dockerfile would: an ENTRYPOINT clears the
/// Cmd unless a CMD came before it.
fn apply_changes(config: &mut Map<String, Value>, changes: &[Change]) {
    let mut cmd_set = false;
    for change in changes {
        change.apply(config);
        match change {
            Change::Cmd(_) => cmd_set = true,
            Change::Entrypoint(_) if !cmd_set => {
                config.insert("Cmd".into(), Value::Null);
            }
            _ => {}
        }
    }
}

/// The new image's config: the container's `Config` with the changes, the
/// container's config as it was, the base image's layers plus the new one
/// (`diff_id`, none for an empty layer) and its history plus one entry.
/// Keys sorted, as Docker writes them.
fn image_config(
    base: &Value,
    record: &Record,
    opts: &CommitOptions,
    diff_id: Option<&DiffId>,
    created: &str,
) -> Value {
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let author = nonempty(&opts.author);
    let comment = nonempty(&opts.message);

    let mut config = record.config.as_object().cloned().unwrap_or_default();
    apply_changes(&mut config, &opts.changes);

    let mut diff_ids = base
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    diff_ids.extend(diff_id.map(|d| json!(d.to_string())));

    let mut entry = Map::new();
    entry.insert("created".into(), json!(created));
    if let Some(a) = &author {
        entry.insert("author".into(), json!(a));
    }
    let created_by = strings(record.config.get("Cmd")).join(" ");
    if !created_by.is_empty() {
        entry.insert("created_by".into(), json!(created_by));
    }
    if let Some(c) = &comment {
        entry.insert("comment".into(), json!(c));
    }
    if diff_id.is_none() {
        entry.insert("empty_layer".into(), json!(true));
    }
    let mut history = base
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    history.push(Value::Object(entry));

    let text = |k: &str| {
        base.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let mut doc: BTreeMap<String, Value> = BTreeMap::new();
    doc.insert(
        "architecture".into(),
        json!(text("architecture").unwrap_or(go_arch())),
    );
    if let Some(a) = author {
        doc.insert("author".into(), json!(a));
    }
    doc.insert(
        "config".into(),
        full_container_config(Some(&Value::Object(config))),
    );
    doc.insert("container".into(), json!(record.id));
    doc.insert(
        "container_config".into(),
        full_container_config(Some(&record.config)),
    );
    doc.insert("created".into(), json!(created));
    doc.insert("history".into(), Value::Array(history));
    doc.insert("os".into(), json!(text("os").unwrap_or("linux")));
    for key in ["os.version", "os.features", "variant"] {
        if let Some(v) = base.get(key) {
            doc.insert(key.into(), v.clone());
        }
    }
    doc.insert(
        "rootfs".into(),
        json!({"type": "layers", "diff_ids": diff_ids}),
    );
    Value::Object(doc.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::parse_change;
    use crate::container::state::{HostConfig, State};
    use crate::container::ChangeKind;

    fn record() -> Record {
        Record {
            id: "c".repeat(64),
            created: "2024-01-01T00:00:00Z".into(),
            path: "sh".into(),
            args: vec!["-c".into(), "echo hi > /x".into()],
            config: full_container_config(Some(&json!({
                "Hostname": "cccccccccccc",
                "Env": ["PATH=/bin", "A=1"],
                "Cmd": ["sh", "-c", "echo hi > /x"],
                "Image": "busybox",
            }))),
            image: format!("sha256:{}", "b".repeat(64)),
            name: "/web".into(),
            driver: "overlay".into(),
            state: State::default(),
            hostname_path: String::new(),
            hosts_path: String::new(),
            resolv_conf_path: String::new(),
            log_path: String::new(),
            cgroup_path: String::new(),
            mount_points: Default::default(),
            host_config: HostConfig::default(),
        }
    }

    fn base() -> Value {
        json!({
            "architecture": "arm64",
            "variant": "v8",
            "config": {"Cmd": ["/bin/sh"]},
            "created": "2024-01-01T00:00:00Z",
            "history": [{"created": "2024-01-01T00:00:00Z", "comment": "Imported from -"}],
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", "1".repeat(64))]},
        })
    }

    fn opts(changes: &[&str]) -> CommitOptions {
        CommitOptions {
            changes: changes.iter().map(|c| parse_change(c).unwrap()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn config_is_the_containers_with_changes_and_one_more_layer() {
        let diff: DiffId = format!("sha256:{}", "2".repeat(64)).parse().unwrap();
        let mut o = opts(&["CMD [\"cat\", \"/x\"]", "ENV B=2"]);
        o.author = Some("Ann <ann@example.com>".into());
        o.message = Some("added x".into());
        let c = image_config(&base(), &record(), &o, Some(&diff), "2025-02-03T04:05:06Z");
        let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "architecture",
                "author",
                "config",
                "container",
                "container_config",
                "created",
                "history",
                "os",
                "rootfs",
                "variant"
            ]
        );
        assert_eq!(c["architecture"], "arm64");
        assert_eq!(c["variant"], "v8");
        assert_eq!(c["config"]["Cmd"], json!(["cat", "/x"]));
        assert_eq!(c["config"]["Env"], json!(["PATH=/bin", "A=1", "B=2"]));
        assert_eq!(c["config"]["Image"], "busybox");
        assert_eq!(c["config"]["Hostname"], "cccccccccccc");
        assert_eq!(
            c["container_config"]["Cmd"],
            json!(["sh", "-c", "echo hi > /x"])
        );
        assert_eq!(c["container"], "c".repeat(64));
        assert_eq!(c["created"], "2025-02-03T04:05:06Z");
        assert_eq!(c["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        assert_eq!(c["rootfs"]["diff_ids"][1], diff.to_string());
        let h = c["history"].as_array().unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(
            serde_json::to_string(&h[1]).unwrap(),
            r#"{"created":"2025-02-03T04:05:06Z","author":"Ann <ann@example.com>","created_by":"sh -c echo hi > /x","comment":"added x"}"#
        );
        assert!(c.get("comment").is_none(), "the message is history only");
    }

    #[test]
    fn empty_layer_is_history_only() {
        let c = image_config(&base(), &record(), &opts(&[]), None, "t");
        assert_eq!(c["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
        assert_eq!(c["history"][1]["empty_layer"], json!(true));
        assert!(c.get("author").is_none());
        assert!(c["history"][1].get("comment").is_none());
    }

    #[test]
    fn entrypoint_clears_cmd_unless_cmd_came_first() {
        let c = image_config(
            &base(),
            &record(),
            &opts(&["ENTRYPOINT [\"/e\"]"]),
            None,
            "t",
        );
        assert_eq!(c["config"]["Entrypoint"], json!(["/e"]));
        assert_eq!(c["config"]["Cmd"], Value::Null);
        let c = image_config(
            &base(),
            &record(),
            &opts(&["CMD [\"a\"]", "ENTRYPOINT [\"/e\"]"]),
            None,
            "t",
        );
        assert_eq!(c["config"]["Cmd"], json!(["a"]));
        let c = image_config(
            &base(),
            &record(),
            &opts(&["ENTRYPOINT [\"/e\"]", "CMD [\"b\"]"]),
            None,
            "t",
        );
        assert_eq!(c["config"]["Cmd"], json!(["b"]));
    }

    #[test]
    fn only_what_diff_hides_is_left_out_of_the_layer() {
        let c = |kind, p: &str| ContainerChange {
            kind,
            path: PathBuf::from(p),
        };
        let raw = vec![
            c(ChangeKind::Changed, "/etc"),
            c(ChangeKind::Added, "/etc/hostname"),
            c(ChangeKind::Added, "/etc/hosts"),
            c(ChangeKind::Added, "/new"),
        ];
        let skip = mount_point_paths(&raw);
        let want: HashSet<PathBuf> = ["etc", "etc/hostname", "etc/hosts"]
            .into_iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(skip, want);
        let raw = vec![
            c(ChangeKind::Changed, "/etc"),
            c(ChangeKind::Added, "/etc/resolv.conf"),
            c(ChangeKind::Deleted, "/etc/passwd"),
        ];
        assert_eq!(
            mount_point_paths(&raw),
            [PathBuf::from("etc/resolv.conf")].into_iter().collect()
        );
    }
}
