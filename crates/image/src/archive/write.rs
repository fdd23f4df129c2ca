//! Writes a docker-archive in Docker 20.10's layout:
//!
//! ```text
//! <config-hex>.json            the config, verbatim
//! manifest.json                [{"Config":..,"RepoTags":[..],"Layers":["<v1id>/layer.tar",..]}]
//! repositories                 {"busybox":{"latest":"<top v1id>"}}
//! <v1id>/VERSION, json, layer.tar
//! ```
//!
//! v1 IDs are derived like Docker's `v1.CreateID`: the sha256 of the layer's
//! v1 JSON together with its chainID and parent v1 ID. Lower layers carry no
//! image-specific fields, so images sharing a base share its directory; a
//! layer met again under another v1 ID (an image's top layer that is a
//! middle layer of another) becomes a symlink to the first `layer.tar`, as
//! Docker does. manifest.json names the real file rather than the symlink:
//! skopeo (containers/image 5.2x) takes a layer's size from the tar header
//! of the path manifest.json names, and a symlink's is 0.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read, Write};

use berth_digest::{chain_ids, DiffId, Digest, ImageId};
use serde_json::{json, Map, Value};

use super::{ArchiveImage, ArchiveLayer, ImageArchiveError, TagProblem};
use crate::config::parse_time;
use crate::manifest::ArchiveManifestEntry;
use crate::reference::Reference;

/// What Docker writes as `container_config` of a layer with no image of
/// its own.
fn empty_container_config() -> Value {
    json!({
        "Hostname": "", "Domainname": "", "User": "",
        "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
        "Tty": false, "OpenStdin": false, "StdinOnce": false,
        "Env": null, "Cmd": null, "Image": "", "Volumes": null,
        "WorkingDir": "", "Entrypoint": null, "OnBuild": null, "Labels": null
    })
}

/// Writes `images` as one docker-archive to `w`, each config and each layer
/// (by diffID) once, and returns `w`.
pub fn write_docker_archive<W: Write>(
    w: W,
    images: &mut [ArchiveImage],
) -> Result<W, ImageArchiveError> {
    let plans = images.iter().map(plan).collect::<Result<Vec<_>, _>>()?;
    // Where each diffID's bytes go: the first directory that holds it.
    let mut tar_of_diff: HashMap<DiffId, String> = HashMap::new();
    for (image, plan) in images.iter().zip(&plans) {
        for (layer, v1) in image.layers.iter().zip(&plan.v1_ids) {
            tar_of_diff
                .entry(layer.diff_id.clone())
                .or_insert_with(|| format!("{v1}/layer.tar"));
        }
    }

    let mut out = tar::Builder::new(w);
    let mut manifest: Vec<ArchiveManifestEntry> = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut entry_of_image: HashMap<&ImageId, usize> = HashMap::new();
    for (image, plan) in images.iter().zip(&plans) {
        let tags = match entry_of_image.get(&image.id) {
            Some(&i) => manifest[i].repo_tags.get_or_insert_with(Vec::new),
            None => {
                append_file(
                    &mut out,
                    &config_file_name(&image.id),
                    &image.config,
                    plan.mtime,
                )?;
                entry_of_image.insert(&image.id, manifest.len());
                manifest.push(ArchiveManifestEntry {
                    config: config_file_name(&image.id),
                    repo_tags: None,
                    layers: image
                        .layers
                        .iter()
                        .map(|l| tar_of_diff[&l.diff_id].clone())
                        .collect(),
                    extra: Map::new(),
                });
                manifest
                    .last_mut()
                    .unwrap()
                    .repo_tags
                    .get_or_insert_with(Vec::new)
            }
        };
        for (repo, tag) in &plan.tags {
            let familiar = format!("{repo}:{tag}");
            if !tags.contains(&familiar) {
                tags.push(familiar);
            }
            if let Some(top) = plan.v1_ids.last() {
                repositories
                    .entry(repo.clone())
                    .or_default()
                    .insert(tag.clone(), top.clone());
            }
        }
    }
    for entry in &mut manifest {
        // Docker writes null, not [], for an image saved by ID.
        if entry.repo_tags.as_ref().is_some_and(Vec::is_empty) {
            entry.repo_tags = None;
        }
    }
    let manifest_json = serde_json::to_vec(&manifest).unwrap_or_default();
    append_file(&mut out, "manifest.json", &manifest_json, 0)?;
    let repositories_json = serde_json::to_vec(&repositories).unwrap_or_default();
    append_file(&mut out, "repositories", &repositories_json, 0)?;

    // Layer directories: each v1 ID once, each diffID's bytes once.
    let mut written_dirs: HashSet<String> = HashSet::new();
    for (image, plan) in images.iter_mut().zip(&plans) {
        for ((layer, v1), v1_json) in image
            .layers
            .iter_mut()
            .zip(&plan.v1_ids)
            .zip(&plan.v1_jsons)
        {
            if !written_dirs.insert(v1.clone()) {
                continue;
            }
            append_dir(&mut out, v1, plan.mtime)?;
            append_file(&mut out, &format!("{v1}/VERSION"), b"1.0", plan.mtime)?;
            append_file(&mut out, &format!("{v1}/json"), v1_json, plan.mtime)?;
            let path = format!("{v1}/layer.tar");
            let real = &tar_of_diff[&layer.diff_id];
            if *real == path {
                append_layer(&mut out, &path, layer, plan.mtime)?;
            } else {
                append_symlink(&mut out, &path, &format!("../{real}"), plan.mtime)?;
            }
        }
    }
    out.into_inner()
        .map_err(ImageArchiveError::io("finishing the archive"))
}

/// The names and JSON an image needs, worked out before writing anything so
/// that bad input fails before the first byte.
struct Plan {
    tags: Vec<(String, String)>,
    v1_ids: Vec<String>,
    v1_jsons: Vec<Vec<u8>>,
    mtime: u64,
}

fn plan(image: &ArchiveImage) -> Result<Plan, ImageArchiveError> {
    let actual = Digest::sha256(&image.config);
    if &actual != image.id.digest() {
        return Err(ImageArchiveError::ConfigMismatch {
            id: image.id.clone(),
            actual,
        });
    }
    let config: Map<String, Value> =
        serde_json::from_slice(&image.config).map_err(|source| ImageArchiveError::Json {
            file: format!("config of image {}", image.id),
            source,
        })?;
    let mut tags = Vec::new();
    for tag in &image.repo_tags {
        let bad = |reason| ImageArchiveError::BadTag {
            id: image.id.clone(),
            tag: tag.clone(),
            reason,
        };
        let r = Reference::parse(tag).map_err(|e| bad(TagProblem::Reference(e)))?;
        let t = r.tag().ok_or_else(|| bad(TagProblem::NoTag))?;
        tags.push((r.familiar_name(), t.to_owned()));
    }
    let mtime = config
        .get("created")
        .and_then(Value::as_str)
        .and_then(parse_time)
        .map_or(0, |t| t.timestamp().max(0) as u64);
    let os = config.get("os").cloned().unwrap_or_else(|| json!("linux"));

    let diff_ids: Vec<DiffId> = image.layers.iter().map(|l| l.diff_id.clone()).collect();
    let chains = chain_ids(&diff_ids);
    let mut v1_ids: Vec<String> = Vec::new();
    let mut v1_jsons = Vec::new();
    for (i, chain) in chains.iter().enumerate() {
        let mut fields = if i + 1 == chains.len() {
            // The top layer stands for the image: its v1 JSON is the config
            // without the fields v1 never had.
            let mut top = config.clone();
            for key in ["id", "parent", "rootfs", "history"] {
                top.remove(key);
            }
            top
        } else {
            let mut m = Map::new();
            m.insert("container_config".into(), empty_container_config());
            m.insert("os".into(), os.clone());
            m
        };
        let parent = v1_ids.last().cloned();
        let mut hashed = fields.clone();
        hashed.insert("layer_id".into(), json!(chain.to_string()));
        if let Some(p) = &parent {
            hashed.insert("parent".into(), json!(format!("sha256:{p}")));
        }
        let id = Digest::sha256(&serde_json::to_vec(&hashed).unwrap_or_default())
            .hex()
            .to_owned();
        // "id" and "parent" lead, as in Docker's files.
        let mut ordered = Map::new();
        ordered.insert("id".into(), json!(id));
        if let Some(p) = parent {
            ordered.insert("parent".into(), json!(p));
        }
        ordered.append(&mut fields);
        v1_jsons.push(serde_json::to_vec(&ordered).unwrap_or_default());
        v1_ids.push(id);
    }
    Ok(Plan {
        tags,
        v1_ids,
        v1_jsons,
        mtime,
    })
}

fn config_file_name(id: &ImageId) -> String {
    format!("{}.json", id.hex())
}

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append_file<W: Write>(
    out: &mut tar::Builder<W>,
    path: &str,
    data: &[u8],
    mtime: u64,
) -> Result<(), ImageArchiveError> {
    let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64, mtime);
    out.append_data(&mut h, path, data)
        .map_err(ImageArchiveError::io(format!("writing {path}")))
}

fn append_dir<W: Write>(
    out: &mut tar::Builder<W>,
    path: &str,
    mtime: u64,
) -> Result<(), ImageArchiveError> {
    let mut h = header(tar::EntryType::Directory, 0o755, 0, mtime);
    out.append_data(&mut h, format!("{path}/"), io::empty())
        .map_err(ImageArchiveError::io(format!("writing {path}/")))
}

fn append_symlink<W: Write>(
    out: &mut tar::Builder<W>,
    path: &str,
    target: &str,
    mtime: u64,
) -> Result<(), ImageArchiveError> {
    let mut h = header(tar::EntryType::Symlink, 0o777, 0, mtime);
    out.append_link(&mut h, path, target)
        .map_err(ImageArchiveError::io(format!("writing {path}")))
}

fn append_layer<W: Write>(
    out: &mut tar::Builder<W>,
    path: &str,
    layer: &mut ArchiveLayer,
    mtime: u64,
) -> Result<(), ImageArchiveError> {
    let context = || format!("writing layer {} as {path}", layer.diff_id);
    let inner = (layer.open)().map_err(ImageArchiveError::io(context()))?;
    let reader = ExactSize {
        inner,
        remaining: layer.size,
        declared: layer.size,
    };
    let mut h = header(tar::EntryType::Regular, 0o644, layer.size, mtime);
    out.append_data(&mut h, path, reader)
        .map_err(ImageArchiveError::io(context()))
}

/// Yields exactly `declared` bytes of `inner`, and fails if `inner` has
/// fewer or more: the tar header already promised that size, so any other
/// count would corrupt the archive.
struct ExactSize<R> {
    inner: R,
    remaining: u64,
    declared: u64,
}

impl<R: Read> Read for ExactSize<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("layer is longer than its declared {} bytes", self.declared),
                )),
            };
        }
        let want = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "layer ended after {} of its declared {} bytes",
                    self.declared - self.remaining,
                    self.declared
                ),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}
