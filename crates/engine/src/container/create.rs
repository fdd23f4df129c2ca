//! `create`: a container's record, files and writable layer, from an
//! image and the flags.

use std::fs;
use std::path::{Path, PathBuf};

use berth_store::MountInfo;
use serde_json::{json, Value};

use super::error::{CResult, ContainerError};
use super::resources::{self, ResourceOptions};
use super::state::{self, HostConfig, Record};
use super::{mounts, names, random_hex, rootless, set_env, strings};
use crate::images::now_rfc3339;
use crate::Engine;

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
        let prepare = || -> CResult<()> {
            self.snapshotter()?.prepare(&mount_id, lowers)?;
            Ok(())
        };
        // Rootless, vfs copies the image as root of a user namespace, so
        // the copies get the owners the unpack could only record.
        if self.driver() == "vfs" && rootless::needs_userns(self) {
            rootless::in_userns(|| prepare().map(|()| Vec::new()))?;
        } else {
            prepare()?;
        }
        self.seed_volumes(record, &mount_id)?;
        state::save(&self.container_dir(&record.id), record)
    }
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
}
