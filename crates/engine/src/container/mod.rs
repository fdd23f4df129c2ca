//! Containers: records on disk under `containers/<id>/`, their writable
//! layers (a snapshot recorded in `layerdb/mounts/<id>/`), names and ID
//! prefixes, and the lifecycle commands. A foreground `run` or `start -a`
//! makes the calling process the container's monitor (see [`run`]).

mod access;
mod commit;
mod cp;
mod create;
mod error;
mod export;
pub mod flags;
mod inspect;
mod lifecycle;
mod logs;
mod monitor;
mod mount_parse;
mod mounts;
mod names;
mod prune;
mod resources;
mod rootless;
mod run;
mod spec;
mod state;
mod terminal;

use std::fs;
use std::path::{Path, PathBuf};

use berth_digest::ImageId;
use berth_snapshot::Snapshotter;
use serde_json::Value;

use crate::Engine;

pub use berth_snapshot::{Change as ContainerChange, ChangeKind};
pub use commit::CommitOptions;
pub use cp::{CopyIn, CopyOptions, CopyOut};
pub use create::CreateOptions;
pub use error::{CResult, ContainerError};
pub use flags::parse_signal;
pub use lifecycle::{ContainerStats, ExecOptions as ContainerExecOptions};
pub use logs::{LogEntry, LogOptions, Stream as LogStream};
pub use monitor::MONITOR_COMMAND;
pub use prune::ContainerPruneReport;
pub use resources::ResourceOptions;
pub use state::{HostConfig, Record as ContainerRecord, State as ContainerState};

fn random_hex() -> String {
    rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The strings of a JSON array (a config's Cmd, Env, ...), or none.
pub(crate) fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Sets `KEY=VALUE` in `env`, replacing an earlier value of `KEY`.
fn set_env(env: &mut Vec<String>, entry: String) {
    let key = entry.split('=').next().unwrap_or("").to_string();
    env.retain(|e| e.split('=').next() != Some(key.as_str()));
    env.push(entry);
}

impl Engine {
    fn containers_root(&self) -> PathBuf {
        state::containers_dir(self.store.root())
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_root().join(id)
    }

    /// The storage driver's snapshots live beside its layers, in
    /// `<root>/<driver>/<mount-id>/`, as Docker's do. The engine already
    /// chose the driver, so it is opened without probing (a probe mounts).
    fn snapshotter(&self) -> CResult<Box<dyn Snapshotter>> {
        let base = self.store.root().join(self.driver());
        Ok(berth_snapshot::open(self.driver(), &base)?)
    }

    /// The image's layer directories, highest first.
    fn image_lowers(&self, image: &ImageId) -> CResult<Vec<PathBuf>> {
        let config = self.config(image)?;
        let mut lowers = Vec::new();
        for chain in config.chain().iter().rev() {
            let layer = self.store.layer(chain)?.ok_or_else(|| {
                ContainerError::InvalidArgument(format!(
                    "layer {chain} of image {image} is missing"
                ))
            })?;
            lowers.push(self.store.layer_diff_dir(&layer));
        }
        Ok(lowers)
    }

    /// Every container, newest first.
    pub fn list_containers(&self) -> CResult<Vec<ContainerRecord>> {
        let mut all = state::list(self.store.root())?;
        for r in &mut all {
            let dir = self.container_dir(&r.id);
            run::observe(r, &dir);
        }
        Ok(all)
    }

    /// The container that `query` (ID, name or unique ID prefix) names.
    pub fn container(&self, query: &str) -> CResult<ContainerRecord> {
        let all = self.list_containers()?;
        state::resolve(&all, query).cloned()
    }

    /// Containers created from `image`: `rmi` refuses to delete an image
    /// one of them uses unless forced.
    pub fn containers_using_image(&self, image: &ImageId) -> CResult<Vec<ContainerRecord>> {
        let id = image.to_string();
        Ok(self
            .list_containers()?
            .into_iter()
            .filter(|r| r.image == id)
            .collect())
    }

    /// Removes everything of container `id` that exists: its root
    /// filesystem mount, snapshot, layer record and directory.
    fn destroy(&self, id: &str) -> CResult<()> {
        // ROOTLESS (branch rootless): the writable layer may hold files of
        // subordinate ids, which only root of a user namespace can delete.
        if rootless::needs_userns(self) {
            return rootless::in_userns(|| self.destroy(id).map(|()| Vec::new())).map(drop);
        }
        let dir = self.container_dir(id);
        run::unmount_rootfs(&dir.join("rootfs"))?;
        access::remove_leftovers(&dir)?;
        log::debug!("destroy: unmounted");
        if let Some(m) = self.store.mount(id)? {
            self.snapshotter()?.remove(&m.mount_id)?;
            log::debug!("destroy: snapshot removed");
            self.store.remove_mount(id)?;
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ContainerError::io(format!("removing {}", dir.display()), e)),
        }
    }

    /// `rm [-f]`: a running container is refused unless forced (then
    /// killed). Returns the ID removed.
    pub fn remove_container(&self, query: &str, force: bool) -> CResult<String> {
        let record = self.container(query)?;
        if run::is_running(&record) {
            if !force {
                return Err(ContainerError::Running(record.id[..12].to_string()));
            }
            self.thaw_if_paused(&record);
            run::kill(&self.container_dir(&record.id), record.state.pid);
        }
        resources::remove_cgroup(&record);
        self.destroy(&record.id)?;
        Ok(record.id)
    }

    /// `diff`: what the container changed, against its image.
    pub fn container_changes(&self, query: &str) -> CResult<Vec<ContainerChange>> {
        let record = self.container(query)?;
        let image: ImageId = record.image.parse().map_err(|_| {
            ContainerError::InvalidArgument(format!("bad image ID {} in record", record.image))
        })?;
        let lowers = self.image_lowers(&image)?;
        let mount = self.store.mount(&record.id)?.ok_or_else(|| {
            ContainerError::InvalidArgument(format!("container {} has no layer", record.id))
        })?;
        // ROOTLESS (branch rootless): read the writable layer as root of a
        // user namespace, as the container wrote it.
        let snapshotter = self.snapshotter()?;
        let bytes = rootless::in_container_userns(self, &record, || {
            let changes = snapshotter.changes(&mount.mount_id, &lowers)?;
            Ok(rootless::encode_changes(&changes))
        })?;
        let changes = rootless::decode_changes(&bytes);
        Ok(hide_mount_points(changes))
    }

    /// `ps -s`: the bytes each container wrote (its writable layer) and
    /// those plus its image's ("virtual").
    pub fn container_sizes(&self, records: &[ContainerRecord]) -> CResult<Vec<(u64, u64)>> {
        let rw = self.writable_sizes(records)?;
        // Containers mostly share a few images: each is measured once.
        let mut image_sizes = std::collections::HashMap::new();
        Ok(records
            .iter()
            .zip(rw)
            .map(|(record, rw)| {
                let image = *image_sizes.entry(&record.image).or_insert_with(|| {
                    match record.image.parse::<ImageId>() {
                        Ok(id) => self
                            .config(&id)
                            .map_or(0, |c| self.chain_size(&c.chain()).unwrap_or(0)),
                        Err(_) => 0,
                    }
                });
                (rw, rw + image)
            })
            .collect())
    }

    /// For `rmi`: the short ID of a container created from `image`, if any
    /// (such an image is only untagged, never deleted, unless forced).
    pub fn container_using_image(&self, image: &ImageId) -> crate::Result<Option<String>> {
        let users = self.containers_using_image(image).map_err(|e| match e {
            ContainerError::Engine(e) => e,
            other => crate::EngineError::InvalidArgument(other.to_string()),
        })?;
        Ok(users.first().map(|r| r.id[..12].to_string()))
    }
}

/// The files berth binds over (`/etc/hostname`, `/etc/hosts`,
/// `/etc/resolv.conf`) leave empty mount points in the container's layer;
/// Docker keeps those in an init layer, so `diff` never shows them, nor
/// `/etc` when nothing else under it changed.
fn hide_mount_points(changes: Vec<ContainerChange>) -> Vec<ContainerChange> {
    const MOUNT_POINTS: &[&str] = &["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"];
    let mut kept: Vec<ContainerChange> = changes
        .into_iter()
        .filter(|c| {
            !(c.kind == ChangeKind::Added && MOUNT_POINTS.iter().any(|m| c.path == Path::new(m)))
        })
        .collect();
    let etc_touched = kept
        .iter()
        .any(|c| c.path.starts_with("/etc") && c.path != Path::new("/etc"));
    if !etc_touched {
        kept.retain(|c| !(c.kind == ChangeKind::Changed && c.path == Path::new("/etc")));
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_hides_bind_mount_points_only() {
        let c = |kind, p: &str| ContainerChange {
            kind,
            path: PathBuf::from(p),
        };
        let only_mounts = vec![
            c(ChangeKind::Changed, "/etc"),
            c(ChangeKind::Added, "/etc/hostname"),
            c(ChangeKind::Added, "/etc/hosts"),
            c(ChangeKind::Added, "/new"),
        ];
        assert_eq!(
            hide_mount_points(only_mounts),
            vec![c(ChangeKind::Added, "/new")]
        );
        let real = vec![
            c(ChangeKind::Changed, "/etc"),
            c(ChangeKind::Added, "/etc/resolv.conf"),
            c(ChangeKind::Deleted, "/etc/passwd"),
            c(ChangeKind::Changed, "/etc/hosts"),
        ];
        assert_eq!(
            hide_mount_points(real),
            vec![
                c(ChangeKind::Changed, "/etc"),
                c(ChangeKind::Deleted, "/etc/passwd"),
                c(ChangeKind::Changed, "/etc/hosts"),
            ]
        );
    }
}
