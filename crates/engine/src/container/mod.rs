//! Containers: records on disk under `containers/<id>/`, their writable
//! layers (a snapshot recorded in `layerdb/mounts/<id>/`), names and ID
//! prefixes, and the lifecycle commands. A foreground `run` or `start -a`
//! makes the calling process the container's monitor (see [`run`]).

mod access;
mod commit;
mod cp;
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

use std::fs;
use std::path::{Path, PathBuf};

use berth_digest::ImageId;
use berth_snapshot::Snapshotter;
use berth_store::MountInfo;
use serde_json::{json, Value};

use crate::images::now_rfc3339;
use crate::Engine;

pub use berth_snapshot::{Change as ContainerChange, ChangeKind};
pub use commit::CommitOptions;
pub use cp::{CopyIn, CopyOptions, CopyOut};
pub use error::{CResult, ContainerError};
pub use flags::parse_signal;
pub use lifecycle::{ContainerStats, ExecOptions as ContainerExecOptions};
pub use logs::{LogEntry, LogOptions, Stream as LogStream};
pub use monitor::MONITOR_COMMAND;
pub use prune::ContainerPruneReport;
pub use resources::ResourceOptions;
pub use state::{HostConfig, Record as ContainerRecord, State as ContainerState};

use state::Record;

/// Docker's `PATH` for images that set none.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `create` / `run` flags.
#[derive(Debug, Default, Clone)]
pub struct CreateOptions {
    /// The image as the user named it.
    pub image: String,
    /// The command after the image; empty for the image's `Cmd`.
    pub cmd: Vec<String>,
    /// `--entrypoint` (an empty string clears the image's).
    pub entrypoint: Option<String>,
    /// `-e KEY=VALUE`, or `-e KEY` to pass the caller's value on.
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u user[:group]`.
    pub user: Option<String>,
    /// `-h`; the short ID when absent.
    pub hostname: Option<String>,
    /// `--name`; generated when absent.
    pub name: Option<String>,
    /// `--network`: `none`, `host` or absent.
    pub network: Option<String>,
    /// `--read-only`.
    pub read_only: bool,
    /// `--rm`.
    pub auto_remove: bool,
    /// `-t`: a pty for the init.
    pub tty: bool,
    /// `-i`: keep the container's stdin open.
    pub interactive: bool,
    /// `-d` (run only): nobody attaches when it starts.
    pub detach: bool,
    /// Limits, capabilities, labels, stop settings, env files.
    pub resources: ResourceOptions,
    /// `-v`: `[SRC:]DST[:MODE]`, a bind, named or anonymous volume.
    pub volumes: Vec<String>,
    /// `--mount type=bind|volume|tmpfs,...`.
    pub mounts: Vec<String>,
    /// `--tmpfs DST[:OPTS]`.
    pub tmpfs: Vec<String>,
    /// `--volumes-from CONTAINER[:ro|rw]`.
    pub volumes_from: Vec<String>,
}

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

/// The container `Config` from the image's config and the flags; returns it
/// with the command line (path first).
fn container_config(
    image: &Value,
    opts: &CreateOptions,
    hostname: &str,
) -> CResult<(Value, Vec<String>)> {
    let mut config = image.as_object().cloned().unwrap_or_default();
    let mut env = strings(config.get("Env"));
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    for e in &opts.env {
        if e.contains('=') {
            set_env(&mut env, e.clone());
        } else if let Ok(v) = std::env::var(e) {
            set_env(&mut env, format!("{e}={v}"));
        }
    }
    let (entrypoint, cmd) = match &opts.entrypoint {
        // An entrypoint given on the command line drops the image's Cmd.
        Some(ep) => (
            if ep.is_empty() {
                vec![]
            } else {
                vec![ep.clone()]
            },
            opts.cmd.clone(),
        ),
        None if opts.cmd.is_empty() => (
            strings(config.get("Entrypoint")),
            strings(config.get("Cmd")),
        ),
        None => (strings(config.get("Entrypoint")), opts.cmd.clone()),
    };
    let argv: Vec<String> = entrypoint.iter().chain(&cmd).cloned().collect();
    if argv.is_empty() {
        return Err(ContainerError::InvalidArgument(
            "No command specified".into(),
        ));
    }
    config.insert("Hostname".into(), json!(hostname));
    config.insert("Env".into(), json!(env));
    config.insert("Cmd".into(), json!(cmd));
    config.insert(
        "Entrypoint".into(),
        if entrypoint.is_empty() {
            Value::Null
        } else {
            json!(entrypoint)
        },
    );
    config.insert("Image".into(), json!(opts.image));
    // Docker's attach flags: a foreground `run -i` closes the container's
    // stdin when the client's ends (StdinOnce); `-d -i` keeps it open for
    // later `attach`es.
    config.insert("Tty".into(), json!(opts.tty));
    config.insert("OpenStdin".into(), json!(opts.interactive));
    config.insert("StdinOnce".into(), json!(opts.interactive && !opts.detach));
    config.insert(
        "AttachStdin".into(),
        json!(opts.interactive && !opts.detach),
    );
    config.insert("AttachStdout".into(), json!(!opts.detach));
    config.insert("AttachStderr".into(), json!(!opts.detach));
    if let Some(w) = &opts.workdir {
        if !w.starts_with('/') {
            return Err(ContainerError::InvalidArgument(format!(
                "the working directory '{w}' is invalid, it needs to be an absolute path"
            )));
        }
        config.insert("WorkingDir".into(), json!(w));
    }
    if let Some(u) = &opts.user {
        config.insert("User".into(), json!(u));
    }
    Ok((
        crate::inspect::full_container_config(Some(&Value::Object(config))),
        argv,
    ))
}

/// Docker's `/etc/hosts` for a container with its own network namespace.
fn hosts_file(hostname: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n127.0.1.1\t{hostname}\n"
    )
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

    /// `create`: the record, its files and its writable layer. Returns the
    /// new container's ID.
    pub fn create_container(&self, opts: &CreateOptions) -> CResult<String> {
        // resources: env files, then validated limits (before anything is made).
        let opts = &CreateOptions {
            env: resources::env_with_files(opts)?,
            ..opts.clone()
        };
        let limits = resources::host_config(&opts.resources)?;
        log::debug!("create: resolving {}", opts.image);
        let image = self.resolve_image(&opts.image)?;
        let image_config = self.config(&image)?;
        let lowers = self.image_lowers(&image)?;
        // Released when create returns: by then the record is in place.
        let _lock = state::lock(self.store.root())?;
        let existing = self.list_containers()?;
        let name = match &opts.name {
            Some(n) => {
                let n = n.strip_prefix('/').unwrap_or(n);
                if !names::valid(n) {
                    return Err(ContainerError::InvalidArgument(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                if existing.iter().any(|r| r.short_name() == n) {
                    return Err(ContainerError::NameInUse(n.to_string()));
                }
                n.to_string()
            }
            None => (0..)
                .map(names::generate)
                .find(|n| !existing.iter().any(|r| r.short_name() == n))
                .expect("an unbounded range ends in a free name"),
        };
        let network = opts.network.clone().unwrap_or_else(|| "default".into());
        if !matches!(network.as_str(), "default" | "none" | "host") {
            return Err(ContainerError::InvalidArgument(format!(
                "network {network} not found (only none and host are supported yet)"
            )));
        }
        let image_cfg = image_config.value.get("config").unwrap_or(&Value::Null);
        let mount_plan = mounts::plan(opts, image_cfg, &existing)?;
        let id = random_hex();
        let hostname = opts
            .hostname
            .clone()
            .unwrap_or_else(|| id[..12].to_string());
        let (mut config, argv) = container_config(
            image_config.value.get("config").unwrap_or(&Value::Null),
            opts,
            &hostname,
        )?;
        resources::apply_config(&mut config, &opts.resources)?;

        let dir = self.container_dir(&id);
        fs::create_dir_all(self.containers_root())
            .map_err(|e| ContainerError::io("creating containers dir", e))?;
        fs::create_dir(&dir)
            .map_err(|e| ContainerError::io(format!("creating {}", dir.display()), e))?;
        let mut record = Record {
            id: id.clone(),
            created: now_rfc3339(),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            config,
            image: image.to_string(),
            name: format!("/{name}"),
            driver: self.driver().to_string(),
            state: state::State::default(),
            hostname_path: dir.join("hostname").display().to_string(),
            hosts_path: dir.join("hosts").display().to_string(),
            resolv_conf_path: dir.join("resolv.conf").display().to_string(),
            log_path: String::new(),
            cgroup_path: String::new(),
            host_config: HostConfig {
                auto_remove: opts.auto_remove,
                readonly_rootfs: opts.read_only,
                network_mode: network,
                ..limits
            },
            mount_points: Default::default(),
        };
        let made = self
            .attach_mounts(&mut record, &mount_plan)
            .and_then(|()| self.populate(&record, &image_config.chain(), &lowers));
        if let Err(e) = made {
            if let Err(ce) = self.destroy(&id) {
                log::warn!("cleaning up half-created container {id}: {ce}");
            }
            self.discard_volumes(&record);
            return Err(e);
        }
        Ok(id)
    }

    /// The files and the writable layer of a new container; the record last,
    /// so a container is listed only once it is whole.
    fn populate(
        &self,
        record: &Record,
        chain: &[berth_digest::ChainId],
        lowers: &[PathBuf],
    ) -> CResult<()> {
        let write =
            |path: &str, text: String| state::write_atomic(Path::new(path), text.as_bytes());
        let hostname = record.config["Hostname"].as_str().unwrap_or_default();
        write(&record.hostname_path, format!("{hostname}\n"))?;
        let hosts = if record.host_config.network_mode == "host" {
            fs::read_to_string("/etc/hosts").unwrap_or_else(|_| hosts_file(hostname))
        } else {
            hosts_file(hostname)
        };
        write(&record.hosts_path, hosts)?;
        write(
            &record.resolv_conf_path,
            fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        )?;
        // Recorded before the snapshot's dirs exist: gc removes cache dirs
        // that no record names.
        log::debug!("create: container files written");
        let mount_id = random_hex();
        self.store.set_mount(&MountInfo {
            container_id: record.id.clone(),
            mount_id: mount_id.clone(),
            init_id: None,
            parent: chain.last().cloned(),
        })?;
        self.snapshotter()?.prepare(&mount_id, lowers)?;
        self.seed_volumes(record, &mount_id)?;
        state::save(&self.container_dir(&record.id), record)
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
        Ok(records
            .iter()
            .zip(rw)
            .map(|(record, rw)| {
                let image = match record.image.parse::<ImageId>() {
                    Ok(id) => self
                        .config(&id)
                        .map_or(0, |c| self.chain_size(&c.chain()).unwrap_or(0)),
                    Err(_) => 0,
                };
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

    fn opts(cmd: &[&str]) -> CreateOptions {
        CreateOptions {
            image: "busybox".into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn command_comes_from_flags_over_image() {
        let image = json!({"Entrypoint": ["/ep"], "Cmd": ["a"], "Env": ["A=1"]});
        let (_, argv) = container_config(&image, &opts(&[]), "h").unwrap();
        assert_eq!(argv, ["/ep", "a"]);
        let (_, argv) = container_config(&image, &opts(&["b"]), "h").unwrap();
        assert_eq!(argv, ["/ep", "b"]);
        let mut o = opts(&[]);
        o.entrypoint = Some("/x".into());
        let (_, argv) = container_config(&image, &o, "h").unwrap();
        assert_eq!(argv, ["/x"], "--entrypoint drops the image's Cmd");
        o.entrypoint = Some(String::new());
        assert!(matches!(
            container_config(&image, &o, "h"),
            Err(ContainerError::InvalidArgument(m)) if m == "No command specified"
        ));
    }

    #[test]
    fn env_gets_a_path_and_flags_override() {
        let image = json!({"Cmd": ["sh"], "Env": ["A=1", "B=2"]});
        let mut o = opts(&[]);
        o.env = vec!["A=3".into(), "BERTH_SURELY_UNSET_VAR".into()];
        o.workdir = Some("/w".into());
        let (config, _) = container_config(&image, &o, "host1").unwrap();
        assert_eq!(config["Env"], json!([DEFAULT_PATH, "B=2", "A=3"]));
        assert_eq!(config["Hostname"], json!("host1"));
        assert_eq!(config["WorkingDir"], json!("/w"));
        assert_eq!(config["Image"], json!("busybox"));
        o.workdir = Some("rel".into());
        assert!(container_config(&image, &o, "h").is_err());
    }

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
