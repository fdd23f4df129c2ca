//! Garbage collection (layers no image or container uses) and the store
//! check (`berth system check`): is every file where it should be, does
//! every piece of content still hash to its name.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::PathBuf;

use berth_digest::{chain_ids, ChainId, Digest, HashingReader, ImageId};

use crate::error::{IoContext, Result, StoreError};
use crate::fsutil;
use crate::image::config_diff_ids;
use crate::layer::LayerInfo;
use crate::Store;

/// What a gc (or an image deletion) removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub images_removed: Vec<ImageId>,
    pub layers_removed: Vec<ChainId>,
    pub blobs_removed: Vec<Digest>,
    /// Unpacked layer dirs removed, with their layers or as orphans.
    pub cache_dirs_removed: Vec<PathBuf>,
    /// Temp entries abandoned by crashed processes.
    pub temps_removed: Vec<PathBuf>,
}

/// Something `check` found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("missing file {}", .0.display())]
    MissingFile(PathBuf),
    #[error("bad file {}: {reason}", path.display())]
    BadFile { path: PathBuf, reason: String },
    #[error("layer {chain}: unpacked dir {} is missing", path.display())]
    MissingCacheDir { chain: ChainId, path: PathBuf },
    #[error("layer {chain}: parent layer {parent} is missing")]
    MissingParent { chain: ChainId, parent: ChainId },
    #[error("layer {chain}: its parent and diffID give chainID {computed}")]
    WrongChainId { chain: ChainId, computed: ChainId },
    #[error("layer {chain}: blob {blob} is missing")]
    MissingBlob { chain: ChainId, blob: Digest },
    #[error("blob {}: content hashes to {actual}", path.display())]
    CorruptBlob { path: PathBuf, actual: Digest },
    #[error("image {id}: config hashes to {actual}")]
    CorruptImage { id: ImageId, actual: Digest },
    #[error("image {id}: bad config: {reason}")]
    BadImageConfig { id: ImageId, reason: String },
    #[error("image {image}: layer {chain} is missing")]
    MissingLayer { image: ImageId, chain: ChainId },
    #[error("container {container}: parent layer {parent} is missing")]
    MissingMountParent { container: String, parent: ChainId },
    #[error("unpacked dir {} belongs to no layer or container", .0.display())]
    OrphanCacheDir(PathBuf),
    #[error("temp entry {} was left behind by a crashed process", .0.display())]
    StrayTemp(PathBuf),
}

impl Store {
    /// Removes layers (with their unpacked dirs and, when no other layer
    /// uses them, their blobs) that no image's rootfs, no container and no
    /// other live store handle needs, plus leftovers of crashed processes.
    pub fn gc(&self) -> Result<GcReport> {
        let _lock = self.lock()?;
        self.gc_locked()
    }

    /// gc with the store lock already held.
    pub(crate) fn gc_locked(&self) -> Result<GcReport> {
        let mut report = GcReport::default();
        let live = self.live_layers()?;

        let mut doomed = Vec::new();
        for chain in self.layer_ids()? {
            if live.contains(&chain) {
                continue;
            }
            // A corrupt entry is removed all the same; its unpacked dir, if
            // any, is then an orphan and goes below.
            let info = self.layer(&chain).unwrap_or_else(|e| {
                log::warn!("removing unreadable layer {chain}: {e}");
                None
            });
            // Renamed out first: a crash mid-removal never leaves half a layer.
            let from = self.layer_dir(&chain);
            let to = self
                .tmp_dir()
                .join(format!("removed-{}", fsutil::random_hex()));
            fs::rename(&from, &to).ctx("removing layer", &from)?;
            doomed.push(to);
            report.layers_removed.push(chain);
            report.blobs_removed.extend(info.and_then(|i| i.blob));
        }
        if !doomed.is_empty() {
            fsutil::fsync_dir(&self.layerdb_dir())?;
        }
        for dir in doomed {
            fsutil::remove_any(&dir).ctx("removing layer", &dir)?;
        }

        let kept = self.layers()?;
        let kept_blobs: BTreeSet<&Digest> = kept.iter().filter_map(|l| l.blob.as_ref()).collect();
        report.blobs_removed.retain(|b| !kept_blobs.contains(b));
        report.blobs_removed.sort();
        report.blobs_removed.dedup();
        for blob in &report.blobs_removed {
            let path = self.blob_path(blob);
            fsutil::remove_any(&path).ctx("removing blob", &path)?;
        }

        for dir in self.orphan_cache_dirs(&kept)? {
            fsutil::remove_any(&dir).ctx("removing unpacked layer", &dir)?;
            report.cache_dirs_removed.push(dir);
        }
        // Metadata of an image whose deletion was interrupted.
        let meta_dir = self.imagedb_metadata_dir();
        for entry in fs::read_dir(&meta_dir).ctx("listing", &meta_dir)? {
            let entry = entry.ctx("listing", &meta_dir)?;
            let name = entry.file_name();
            let has_content = name
                .to_str()
                .is_some_and(|n| self.imagedb_content_dir().join(n).is_file());
            if !has_content {
                fsutil::remove_any(&entry.path()).ctx("removing", entry.path())?;
            }
        }
        report.temps_removed = fsutil::clean_temps(&self.tmp_dir())?;
        Ok(report)
    }

    /// Every layer some image, container or other live store handle needs,
    /// with all their ancestors.
    /// Fails rather than guess when an image config cannot be read.
    fn live_layers(&self) -> Result<BTreeSet<ChainId>> {
        let mut live = BTreeSet::new();
        for id in self.images()? {
            let config = self.image_config(&id)?;
            live.extend(chain_ids(&config_diff_ids(&id, &config)?));
        }
        let roots = self.mounts()?.into_iter().filter_map(|m| m.parent);
        for root in roots.chain(self.leased_by_others()?) {
            let mut next = Some(root);
            while let Some(chain) = next {
                if !live.insert(chain.clone()) {
                    break;
                }
                next = self.layer(&chain)?.and_then(|l| l.parent);
            }
        }
        Ok(live)
    }

    /// Dirs under `<root>/<driver>/` named like a cache ID that no layer or
    /// container uses. Other names (a driver's own files) are left alone.
    fn orphan_cache_dirs(&self, layers: &[LayerInfo]) -> Result<Vec<PathBuf>> {
        let mut used: BTreeSet<String> = layers.iter().map(|l| l.cache_id.clone()).collect();
        for mount in self.mounts()? {
            used.insert(mount.mount_id);
            used.extend(mount.init_id);
        }
        let dir = self.driver_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).ctx("listing", &dir)? {
            let name = entry.ctx("listing", &dir)?.file_name();
            let Some(name) = name.to_str() else { continue };
            let id_like = fsutil::is_hex_id(name.strip_suffix("-init").unwrap_or(name));
            if id_like && !used.contains(name) {
                out.push(dir.join(name));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Checks the whole store without changing it. Hashes every blob and
    /// config, so it reads everything once.
    pub fn check(&self) -> Result<Vec<Problem>> {
        let mut problems = Vec::new();
        let mut layers = Vec::new();
        for chain in self.layer_ids()? {
            match self.layer(&chain) {
                Ok(Some(info)) => layers.push(info),
                Ok(None) => {}
                Err(e) => problems.push(problem_of(e)?),
            }
        }
        let present: BTreeSet<&ChainId> = layers.iter().map(|l| &l.chain_id).collect();
        for layer in &layers {
            let diff = self.layer_diff_dir(layer);
            if !diff.is_dir() {
                problems.push(Problem::MissingCacheDir {
                    chain: layer.chain_id.clone(),
                    path: diff,
                });
            }
            if let Some(parent) = &layer.parent {
                if !present.contains(parent) {
                    problems.push(Problem::MissingParent {
                        chain: layer.chain_id.clone(),
                        parent: parent.clone(),
                    });
                }
            }
            let computed = ChainId::child(layer.parent.as_ref(), &layer.diff_id);
            if computed != layer.chain_id {
                problems.push(Problem::WrongChainId {
                    chain: layer.chain_id.clone(),
                    computed,
                });
            }
            if let Some(blob) = &layer.blob {
                if !self.has_blob(blob) {
                    problems.push(Problem::MissingBlob {
                        chain: layer.chain_id.clone(),
                        blob: blob.clone(),
                    });
                }
            }
        }

        for id in self.images()? {
            let config = self.image_config(&id)?;
            let actual = Digest::sha256(&config);
            if actual != *id.digest() {
                problems.push(Problem::CorruptImage { id, actual });
                continue;
            }
            match config_diff_ids(&id, &config) {
                Ok(diff_ids) => {
                    for chain in chain_ids(&diff_ids) {
                        if !present.contains(&chain) {
                            problems.push(Problem::MissingLayer {
                                image: id.clone(),
                                chain,
                            });
                        }
                    }
                }
                Err(e) => problems.push(Problem::BadImageConfig {
                    id: id.clone(),
                    reason: e.to_string(),
                }),
            }
        }

        for mount in self.mounts()? {
            if let Some(parent) = mount.parent {
                if !present.contains(&parent) {
                    problems.push(Problem::MissingMountParent {
                        container: mount.container_id,
                        parent,
                    });
                }
            }
        }

        let blobs = self.blobs_dir().join("sha256");
        for entry in fs::read_dir(&blobs).ctx("listing", &blobs)? {
            let path = entry.ctx("listing", &blobs)?.path();
            let file = fs::File::open(&path).ctx("opening blob", &path)?;
            let mut hashing = HashingReader::new(file);
            io::copy(&mut hashing, &mut io::sink()).ctx("reading blob", &path)?;
            let (actual, _, _) = hashing.finish();
            let named = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if actual.hex() != named {
                problems.push(Problem::CorruptBlob { path, actual });
            }
        }

        problems.extend(
            self.orphan_cache_dirs(&layers)?
                .into_iter()
                .map(Problem::OrphanCacheDir),
        );
        problems.extend(
            fsutil::abandoned_temps(&self.tmp_dir())?
                .into_iter()
                .map(Problem::StrayTemp),
        );
        Ok(problems)
    }
}

/// A broken store file is a finding of `check`, not a failure of it.
fn problem_of(e: StoreError) -> Result<Problem> {
    match e {
        StoreError::Corrupt { path, reason } if reason == "missing" => {
            Ok(Problem::MissingFile(path))
        }
        StoreError::Corrupt { path, reason } => Ok(Problem::BadFile { path, reason }),
        other => Err(other),
    }
}
