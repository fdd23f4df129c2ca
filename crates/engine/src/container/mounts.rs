//! A container's mounts. At create, the mount flags, `--volumes-from` and
//! the image's VOLUMEs become the record's `MountPoints` (Docker's
//! config.v2.json shape), the volumes they name are made, and an empty
//! volume is seeded from the image's content at its path (Docker's
//! copy-up; binds never are). At every start they become OCI mounts, which
//! the launcher makes inside the root filesystem without following
//! symlinks out of it.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::Path;

use oci_spec::runtime::{Mount, MountBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::error::{CResult, ContainerError};
use super::mount_parse::{self, Kind, MountRequest};
use super::state::{self, Record};
use super::CreateOptions;
use crate::volumes::{self, Volume, VolumeError, LOCAL_DRIVER};
use crate::Engine;

/// Docker's `mount.Mount`: a mount as the user asked for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountSpec {
    #[serde(rename = "Type")]
    pub kind: String,
    /// Empty for an anonymous volume.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    pub target: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<BindOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BindOptions {
    pub propagation: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeOptions {
    pub no_copy: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TmpfsOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// One entry of config.v2.json's `MountPoints`, keyed by destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountPoint {
    /// Host path: the bind's source or the volume's `_data`; empty for tmpfs.
    pub source: String,
    pub destination: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    /// The volume's name.
    pub name: String,
    pub driver: String,
    /// `bind`, `volume` or `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The mode as given (`ro`, `z`...); Docker stores it as `Relabel`.
    #[serde(rename = "Relabel")]
    pub mode: String,
    pub propagation: String,
    pub spec: MountSpec,
    #[serde(default)]
    pub skip_mountpoint_creation: bool,
    /// Seed the volume from the image, if it is empty, while the container
    /// is created; never saved (Docker's `json:"-"`).
    #[serde(skip)]
    pub copy_data: bool,
}

impl MountPoint {
    /// A volume made for this mount only (`-v /path`, image VOLUME,
    /// `--mount` without a source): `rm -v` removes it.
    pub fn is_anonymous_volume(&self) -> bool {
        self.kind == "volume" && self.spec.source.is_empty()
    }
}

impl Record {
    /// The volumes this container mounts, by name.
    pub fn volume_names(&self) -> Vec<String> {
        self.mount_points
            .values()
            .filter(|m| m.kind == "volume")
            .map(|m| m.name.clone())
            .collect()
    }

    fn anonymous_volumes(&self) -> Vec<String> {
        self.mount_points
            .values()
            .filter(|m| m.is_anonymous_volume())
            .map(|m| m.name.clone())
            .collect()
    }
}

/// The mounts a `create` asked for, checked before anything is made.
#[derive(Debug, Default)]
pub(crate) struct MountPlan {
    /// Copies of the mounts of the `--volumes-from` containers.
    inherited: Vec<MountPoint>,
    /// `-v SRC:DST` and `--mount`, checked for duplicates.
    requested: Vec<MountRequest>,
    /// Where a new anonymous volume goes unless something else is mounted
    /// there: the image's VOLUMEs and `-v PATH`.
    anonymous: Vec<String>,
    /// `--tmpfs`: destination → options.
    tmpfs: BTreeMap<String, String>,
    /// HostConfig's record of the flags.
    binds: Vec<String>,
    volumes_from: Vec<String>,
    mount_specs: Vec<MountSpec>,
}

fn invalid(msg: String) -> ContainerError {
    ContainerError::InvalidArgument(msg)
}

fn volume_error(e: VolumeError) -> ContainerError {
    match e {
        VolumeError::Container(c) => c,
        other => invalid(other.to_string()),
    }
}

fn spec_of(req: &MountRequest) -> MountSpec {
    MountSpec {
        kind: req.kind.as_str().to_string(),
        source: req.source.clone(),
        target: req.target.clone(),
        read_only: req.read_only,
        bind_options: (req.kind == Kind::Bind && req.propagation != "rprivate").then(|| {
            BindOptions {
                propagation: req.propagation.clone(),
            }
        }),
        volume_options: (req.kind == Kind::Volume && req.no_copy)
            .then_some(VolumeOptions { no_copy: true }),
        tmpfs_options: (req.tmpfs_size.is_some() || req.tmpfs_mode.is_some()).then_some(
            TmpfsOptions {
                size_bytes: req.tmpfs_size,
                mode: req.tmpfs_mode,
            },
        ),
    }
}

/// Checks the mount flags of `opts` against the image's config and the
/// existing containers; makes nothing.
pub(crate) fn plan(
    opts: &CreateOptions,
    image_config: &Value,
    containers: &[Record],
) -> CResult<MountPlan> {
    let mut p = MountPlan::default();
    for raw in &opts.volumes_from {
        let (name, read_only) = mount_parse::parse_volumes_from(raw).map_err(invalid)?;
        let source = state::resolve(containers, &name)?;
        for mp in source.mount_points.values() {
            let mut copy = mp.clone();
            copy.rw = mp.rw && !read_only;
            copy.copy_data = false;
            p.inherited.push(copy);
        }
        p.volumes_from.push(raw.clone());
    }
    let mut taken = HashSet::new();
    let mut claim = |target: &str| {
        if taken.insert(target.to_string()) {
            Ok(())
        } else {
            Err(invalid(format!("Duplicate mount point: {target}")))
        }
    };
    for raw in &opts.volumes {
        let req = mount_parse::parse_volume(raw).map_err(invalid)?;
        if req.kind == Kind::Volume && req.source.is_empty() {
            // Docker's CLI turns `-v PATH` into a config VOLUME.
            p.anonymous.push(req.target);
            continue;
        }
        claim(&req.target)?;
        p.binds.push(raw.clone());
        p.requested.push(req);
    }
    for raw in &opts.mounts {
        let req = mount_parse::parse_mount(raw).map_err(invalid)?;
        claim(&req.target)?;
        if req.kind == Kind::Bind && !Path::new(&req.source).exists() {
            return Err(invalid(format!(
                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                req.source
            )));
        }
        p.mount_specs.push(spec_of(&req));
        p.requested.push(req);
    }
    for raw in &opts.tmpfs {
        let (target, options) = mount_parse::parse_tmpfs(raw).map_err(invalid)?;
        claim(&target)?;
        p.tmpfs.insert(target, options);
    }
    if let Some(image_volumes) = image_config.get("Volumes").and_then(Value::as_object) {
        p.anonymous
            .extend(image_volumes.keys().map(|d| mount_parse::clean(d)));
    }
    Ok(p)
}

fn bind_point(req: &MountRequest) -> MountPoint {
    MountPoint {
        source: req.source.clone(),
        destination: req.target.clone(),
        rw: !req.read_only,
        name: String::new(),
        driver: String::new(),
        kind: "bind".into(),
        mode: req.mode.clone(),
        propagation: req.propagation.clone(),
        spec: spec_of(req),
        skip_mountpoint_creation: false,
        copy_data: false,
    }
}

fn volume_point(dest: &str, v: &Volume, mode: &str, rw: bool, spec: MountSpec) -> MountPoint {
    let copy = !spec.volume_options.as_ref().is_some_and(|o| o.no_copy);
    MountPoint {
        source: v.mountpoint.display().to_string(),
        destination: dest.to_string(),
        rw,
        name: v.name.clone(),
        driver: LOCAL_DRIVER.into(),
        kind: "volume".into(),
        mode: mode.to_string(),
        propagation: String::new(),
        spec,
        skip_mountpoint_creation: false,
        copy_data: copy,
    }
}

fn tmpfs_point(req: &MountRequest) -> MountPoint {
    MountPoint {
        source: String::new(),
        destination: req.target.clone(),
        rw: !req.read_only,
        name: String::new(),
        driver: String::new(),
        kind: "tmpfs".into(),
        mode: String::new(),
        propagation: String::new(),
        spec: spec_of(req),
        skip_mountpoint_creation: false,
        copy_data: false,
    }
}

/// The container config's `Volumes` with `extra` destinations added.
fn config_volumes(config: &mut Value, extra: &[String]) {
    if extra.is_empty() {
        return;
    }
    let mut all: BTreeMap<String, Value> = config
        .get("Volumes")
        .and_then(Value::as_object)
        .map(|m| m.clone().into_iter().collect())
        .unwrap_or_default();
    for d in extra {
        all.entry(d.clone()).or_insert_with(|| json!({}));
    }
    config["Volumes"] = Value::Object(all.into_iter().collect::<Map<_, _>>());
}

/// Docker's default options of a tmpfs mount.
const TMPFS_DEFAULTS: &[&str] = &["noexec", "nosuid", "nodev"];

fn tmpfs_mount(dest: &str, extra: Vec<String>) -> CResult<Mount> {
    let options: Vec<String> = TMPFS_DEFAULTS
        .iter()
        .map(|s| s.to_string())
        .chain(extra)
        .collect();
    MountBuilder::default()
        .destination(dest)
        .typ("tmpfs")
        .source("tmpfs")
        .options(options)
        .build()
        .map_err(|e| invalid(format!("mount {dest}: {e}")))
}

/// The OCI mount for one mount point.
fn oci_mount(mp: &MountPoint) -> CResult<Mount> {
    if mp.kind == "tmpfs" {
        let t = mp.spec.tmpfs_options.clone().unwrap_or_default();
        let extra = t
            .size_bytes
            .map(|s| format!("size={s}"))
            .into_iter()
            .chain(t.mode.map(|m| format!("mode={m:o}")))
            .chain((!mp.rw).then(|| "ro".to_string()))
            .collect();
        return tmpfs_mount(&mp.destination, extra);
    }
    let propagation = match mp.propagation.as_str() {
        "" => "rprivate",
        p => p,
    };
    let mut options = vec!["rbind".to_string(), propagation.to_string()];
    if !mp.rw {
        options.push("ro".into());
    }
    MountBuilder::default()
        .destination(&mp.destination)
        .typ("bind")
        .source(&mp.source)
        .options(options)
        .build()
        .map_err(|e| invalid(format!("mount {}: {e}", mp.destination)))
}

/// Adds the container's own mounts to `mounts` (the spec's, defaults and
/// the /etc binds): one of ours replaces a mount with the same destination;
/// the binds and ours follow the system mounts, parents before children,
/// so a bind into a volume lands in the volume.
pub(crate) fn add_spec_mounts(mounts: &mut Vec<Mount>, record: &Record) -> CResult<()> {
    let mut own = Vec::new();
    for mp in record.mount_points.values() {
        own.push(oci_mount(mp)?);
    }
    for (dest, opts) in record.host_config.tmpfs.iter().flatten() {
        let extra = opts
            .split(',')
            .filter(|o| !o.is_empty())
            .map(str::to_string)
            .collect();
        own.push(tmpfs_mount(dest, extra)?);
    }
    if own.is_empty() {
        return Ok(());
    }
    let ours: HashSet<_> = own.iter().map(|m| m.destination().clone()).collect();
    let (mut binds, system): (Vec<Mount>, Vec<Mount>) = std::mem::take(mounts)
        .into_iter()
        .filter(|m| !ours.contains(m.destination()))
        .partition(|m| m.typ().as_deref() == Some("bind"));
    binds.extend(own);
    binds.sort_by_key(|m| m.destination().components().count());
    *mounts = system;
    mounts.extend(binds);
    Ok(())
}

/// `inspect`'s `Mounts`, by destination.
pub(crate) fn inspect_mounts(record: &Record) -> Value {
    let list: Vec<Value> = record
        .mount_points
        .values()
        .map(|mp| {
            let mut m = Map::new();
            m.insert("Type".into(), json!(mp.kind));
            if mp.kind == "volume" {
                m.insert("Name".into(), json!(mp.name));
            }
            m.insert("Source".into(), json!(mp.source));
            m.insert("Destination".into(), json!(mp.destination));
            if !mp.driver.is_empty() {
                m.insert("Driver".into(), json!(mp.driver));
            }
            m.insert("Mode".into(), json!(mp.mode));
            m.insert("RW".into(), json!(mp.rw));
            m.insert("Propagation".into(), json!(mp.propagation));
            Value::Object(m)
        })
        .collect();
    Value::Array(list)
}

impl Engine {
    /// Holds the containers lock (see `state::lock`).
    pub(crate) fn lock_containers(&self) -> CResult<fs::File> {
        state::lock(self.store.root())
    }

    /// Makes what `plan` needs (the volumes, a `-v` bind's missing host
    /// directory) and writes the mounts into `record`. The caller holds
    /// the containers lock.
    pub(crate) fn attach_mounts(&self, record: &mut Record, plan: &MountPlan) -> CResult<()> {
        let _lock = volumes::lock(self.store.root()).map_err(volume_error)?;
        for mp in &plan.inherited {
            record
                .mount_points
                .insert(mp.destination.clone(), mp.clone());
        }
        for req in &plan.requested {
            let mp = match req.kind {
                Kind::Bind => {
                    if req.create_source && !Path::new(&req.source).exists() {
                        fs::create_dir_all(&req.source).map_err(|e| {
                            invalid(format!(
                                "error while creating mount source path '{}': {e}",
                                req.source
                            ))
                        })?;
                    }
                    bind_point(req)
                }
                Kind::Volume => {
                    let name = (!req.source.is_empty()).then_some(req.source.as_str());
                    let v = self.ensure_volume(name, None).map_err(volume_error)?;
                    // Docker shows local volumes' empty mode as `z`.
                    let mode = if req.mode.is_empty() { "z" } else { &req.mode };
                    volume_point(&req.target, &v, mode, !req.read_only, spec_of(req))
                }
                Kind::Tmpfs => tmpfs_point(req),
            };
            record.mount_points.insert(req.target.clone(), mp);
        }
        for dest in &plan.anonymous {
            if record.mount_points.contains_key(dest) || plan.tmpfs.contains_key(dest) {
                continue;
            }
            let v = self.ensure_volume(None, None).map_err(volume_error)?;
            let spec = MountSpec {
                kind: "volume".into(),
                target: dest.clone(),
                ..Default::default()
            };
            let mp = volume_point(dest, &v, "", true, spec);
            record.mount_points.insert(dest.clone(), mp);
        }
        // Docker's CLI records `-v PATH` as a config VOLUME.
        config_volumes(&mut record.config, &plan.anonymous);
        let hc = &mut record.host_config;
        hc.binds = (!plan.binds.is_empty()).then(|| plan.binds.clone());
        hc.volumes_from = (!plan.volumes_from.is_empty()).then(|| plan.volumes_from.clone());
        hc.tmpfs = (!plan.tmpfs.is_empty()).then(|| plan.tmpfs.clone());
        hc.mounts = plan.mount_specs.clone();
        Ok(())
    }

    /// After a failed create: removes the anonymous volumes made for
    /// `record` (no saved container uses them). The caller holds the
    /// containers lock.
    pub(crate) fn discard_volumes(&self, record: &Record) {
        let names = record.anonymous_volumes();
        if names.is_empty() {
            return;
        }
        if let Err(e) = self.remove_unused_anonymous(&names, true) {
            log::warn!("removing the volumes of half-created {}: {e}", record.id);
        }
    }

    /// `rm -v` (and `--rm`): removes the container, then those of its
    /// anonymous volumes no other container uses. Named volumes stay.
    pub fn remove_container_and_volumes(&self, query: &str, force: bool) -> CResult<String> {
        let record = self.container(query)?;
        let id = self.remove_container(&record.id, force)?;
        self.release_anonymous_volumes(&record);
        Ok(id)
    }

    /// After removed container `record` is gone: removes those of its
    /// anonymous volumes no other container uses (a failure is logged).
    /// Whatever removes an `--rm` container calls this; the caller must
    /// not hold the containers lock.
    pub(crate) fn release_anonymous_volumes(&self, record: &Record) {
        if let Err(e) = self.remove_unused_anonymous(&record.anonymous_volumes(), false) {
            log::warn!("removing the volumes of {}: {e}", &record.id[..12]);
        }
    }

    /// Seeds the volumes of new container `record` that ask for it (see
    /// [`MountPoint::copy_data`]) from its fresh snapshot `mount_id`,
    /// mounted for the while when it is not a plain directory.
    pub(crate) fn seed_volumes(&self, record: &Record, mount_id: &str) -> CResult<()> {
        if !record.mount_points.values().any(|m| m.copy_data) {
            return Ok(());
        }
        let seed = || -> CResult<()> {
            let mounts = self.snapshotter()?.mounts(mount_id)?;
            if let [m] = mounts.as_slice() {
                if m.fstype == "bind" {
                    return self.seed_from(record, Path::new(&m.source));
                }
            }
            let rootfs = self.container_dir(&record.id).join("rootfs");
            fs::create_dir(&rootfs)
                .map_err(|e| ContainerError::io(format!("creating {}", rootfs.display()), e))?;
            let seeded = berth_snapshot::mount_all(&mounts, &rootfs)
                .map_err(ContainerError::from)
                .and_then(|guard| {
                    let seeded = self.seed_from(record, &rootfs);
                    guard.unmount()?;
                    seeded
                });
            let _ = fs::remove_dir(&rootfs);
            seeded
        };
        // Rootless, the layer is mounted (and its files of subordinate ids
        // read) as root of a user namespace, as the monitor does.
        if super::rootless::needs_userns(self) {
            super::rootless::in_userns(|| seed().map(|()| Vec::new())).map(drop)
        } else {
            seed()
        }
    }

    /// Copies what the image has at each seeded volume's destination in
    /// `rootfs` (resolved inside it, symlinks and all) into the volume, if
    /// the volume is empty.
    fn seed_from(&self, record: &Record, rootfs: &Path) -> CResult<()> {
        // Two containers created on one new volume seed it once.
        let _lock = volumes::lock(self.store.root()).map_err(volume_error)?;
        for mp in record.mount_points.values() {
            if !mp.copy_data || mp.kind != "volume" {
                continue;
            }
            let from = berth_launch::secure_join(rootfs, Path::new(&mp.destination))
                .map_err(|e| ContainerError::io(format!("resolving {}", mp.destination), e))?;
            if !from.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let data = volumes::data_dir(self.store.root(), &mp.name);
            let empty = fs::read_dir(&data)
                .map_err(|e| ContainerError::io(format!("reading {}", data.display()), e))?
                .next()
                .is_none();
            if empty {
                berth_snapshot::copy_tree(&from, &data)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_with(points: Vec<MountPoint>) -> Record {
        let mut r: Record = serde_json::from_value(json!({
            "ID": "a".repeat(64), "Created": "", "Path": "sh", "Args": [],
            "Config": {}, "Image": "", "Name": "/x", "Driver": "vfs",
            "State": {"Status": "created", "Running": false, "Paused": false,
                "Restarting": false, "OOMKilled": false, "Dead": false, "Pid": 0,
                "ExitCode": 0, "Error": "", "StartedAt": "", "FinishedAt": ""},
            "HostnamePath": "", "HostsPath": "", "ResolvConfPath": ""
        }))
        .unwrap();
        for p in points {
            r.mount_points.insert(p.destination.clone(), p);
        }
        r
    }

    fn opts(volumes: &[&str], mounts: &[&str], tmpfs: &[&str]) -> CreateOptions {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        CreateOptions {
            volumes: s(volumes),
            mounts: s(mounts),
            tmpfs: s(tmpfs),
            ..Default::default()
        }
    }

    #[test]
    fn plan_sorts_flags_into_binds_volumes_and_anonymous() {
        let image = json!({"Volumes": {"/data": {}, "/logs/": {}}});
        let p = plan(
            &opts(
                &["/h:/a", "named:/b:ro", "/c"],
                &["type=tmpfs,dst=/t"],
                &["/run"],
            ),
            &image,
            &[],
        )
        .unwrap();
        assert_eq!(p.binds, ["/h:/a", "named:/b:ro"]);
        assert_eq!(p.anonymous, ["/c", "/data", "/logs"]);
        assert_eq!(p.requested.len(), 3);
        assert_eq!(p.tmpfs.keys().collect::<Vec<_>>(), ["/run"]);
        assert_eq!(p.mount_specs[0].kind, "tmpfs");
    }

    #[test]
    fn plan_refuses_duplicates_and_unknown_sources() {
        let dup = plan(&opts(&["/h:/a", "v1:/a/"], &[], &[]), &Value::Null, &[]);
        assert!(
            matches!(&dup, Err(ContainerError::InvalidArgument(m)) if m == "Duplicate mount point: /a"),
            "{dup:?}"
        );
        assert!(plan(&opts(&["/h:/a"], &[], &["/a"]), &Value::Null, &[]).is_err());
        let missing = plan(
            &opts(&[], &["type=bind,src=/surely/not/here,dst=/x"], &[]),
            &Value::Null,
            &[],
        );
        assert!(
            matches!(&missing, Err(ContainerError::InvalidArgument(m)) if m.contains("bind source path does not exist")),
            "{missing:?}"
        );
        let mut o = opts(&[], &[], &[]);
        o.volumes_from = vec!["nobody".into()];
        assert!(matches!(
            plan(&o, &Value::Null, &[]),
            Err(ContainerError::NoSuchContainer(_))
        ));
    }

    #[test]
    fn volumes_from_copies_mounts_and_can_force_read_only() {
        let req = mount_parse::parse_volume("/h:/a").unwrap();
        let source = record_with(vec![bind_point(&req)]);
        let mut o = opts(&[], &[], &[]);
        o.volumes_from = vec!["x:ro".into()];
        let p = plan(&o, &Value::Null, &[source]).unwrap();
        assert_eq!(p.inherited.len(), 1);
        assert!(!p.inherited[0].rw);
        assert_eq!(p.inherited[0].source, "/h");
    }

    #[test]
    fn spec_mounts_replace_defaults_and_nest_in_order() {
        let bind = |dest: &str| {
            MountBuilder::default()
                .destination(dest)
                .typ("bind")
                .source("/x")
                .build()
                .unwrap()
        };
        let mut mounts = berth_launch::default_mounts();
        let system = mounts.len();
        mounts.push(bind("/etc/hosts"));
        let req = mount_parse::parse_volume("/h:/etc:ro").unwrap();
        let mut r = record_with(vec![bind_point(&req)]);
        r.host_config.tmpfs = Some(BTreeMap::from([("/dev/shm".into(), "size=1m".into())]));
        add_spec_mounts(&mut mounts, &r).unwrap();
        let dests: Vec<String> = mounts
            .iter()
            .map(|m| m.destination().display().to_string())
            .collect();
        // /dev/shm is ours now, and follows the system mounts.
        assert_eq!(dests.len(), system + 2);
        assert_eq!(dests[system - 1..], ["/etc", "/etc/hosts", "/dev/shm"]);
        let etc = &mounts[system - 1];
        assert_eq!(etc.options().clone().unwrap(), ["rbind", "rprivate", "ro"]);
        let shm = mounts.last().unwrap();
        assert_eq!(
            shm.options().clone().unwrap(),
            ["noexec", "nosuid", "nodev", "size=1m"]
        );
    }

    #[test]
    fn records_keep_mount_points_in_dockers_shape() {
        let req = mount_parse::parse_volume("v1:/data:ro").unwrap();
        let v = Volume {
            name: "v1".into(),
            created_at: String::new(),
            labels: None,
            options: None,
            anonymous: false,
            mountpoint: "/r/volumes/v1/_data".into(),
        };
        let mp = volume_point("/data", &v, "ro", false, spec_of(&req));
        let r = record_with(vec![mp]);
        let saved = serde_json::to_value(&r).unwrap();
        let p = &saved["MountPoints"]["/data"];
        assert_eq!(p["Relabel"], "ro");
        assert_eq!(p["RW"], false);
        assert_eq!(
            p["Spec"],
            json!({"Type": "volume", "Source": "v1", "Target": "/data", "ReadOnly": true})
        );
        assert_eq!(r.volume_names(), ["v1"]);
        assert!(r.anonymous_volumes().is_empty());
        assert_eq!(
            inspect_mounts(&r),
            json!([{"Type": "volume", "Name": "v1", "Source": "/r/volumes/v1/_data",
                "Destination": "/data", "Driver": "local", "Mode": "ro", "RW": false,
                "Propagation": ""}])
        );
    }
}
