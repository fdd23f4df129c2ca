//! `save` and `load`: images to and from docker-archive tarballs (and OCI
//! layout tarballs on the way in).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use berth_digest::{ChainId, ImageId};
use berth_image::{ArchiveImage, ArchiveLayer, LayerHandle, LayerSink, Reference};
use berth_store::PendingLayer;

use crate::error::{EngineError, Result};
use crate::images::{familiar, Config};
use crate::Engine;

/// What `load` did: one line each, as Docker prints them.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// `busybox:latest` for tagged images.
    pub tags: Vec<String>,
    /// IDs of images loaded without a tag.
    pub untagged: Vec<ImageId>,
}

impl Engine {
    /// `save NAME...`: a docker-archive of the named images.
    pub fn save<W: Write>(&self, names: &[String], out: W) -> Result<()> {
        // Several names may pick the same image: one entry with all its tags.
        let mut images: BTreeMap<ImageId, Vec<String>> = BTreeMap::new();
        let mut order: Vec<ImageId> = Vec::new();
        let refs = self.store.references()?;
        for name in names {
            let id = self.resolve_image(name)?;
            if !images.contains_key(&id) {
                order.push(id.clone());
            }
            let tags = images.entry(id.clone()).or_default();
            let Ok(r) = Reference::parse(name) else {
                continue;
            };
            let full = r.to_string();
            if refs.get(&full) == Some(&id) && r.digest().is_none() {
                let explicit_tag = name
                    .rsplit('/')
                    .next()
                    .is_some_and(|last| last.contains(':'));
                if explicit_tag {
                    tags.push(r.familiar());
                } else {
                    // `save busybox` saves every tag of the repository.
                    let repo = r.name();
                    for (n, _) in refs.iter().filter(|(_, v)| **v == id) {
                        if let Ok(other) = Reference::parse(n) {
                            if other.name() == repo && other.digest().is_none() {
                                tags.push(other.familiar());
                            }
                        }
                    }
                }
            }
        }
        let mut archive_images = Vec::with_capacity(order.len());
        for id in order {
            let mut repo_tags = images.remove(&id).unwrap_or_default();
            repo_tags.sort();
            repo_tags.dedup();
            let config_bytes = self.store.image_config(&id)?;
            let config = Config::parse(&config_bytes)?;
            let mut layers = Vec::with_capacity(config.diff_ids.len());
            for (diff_id, chain) in config.diff_ids.iter().zip(config.chain()) {
                let info = self.store.layer(&chain)?.ok_or_else(|| {
                    EngineError::InvalidArchive(format!("layer {chain} of image {id} is missing"))
                })?;
                let store = self.store.clone();
                layers.push(ArchiveLayer {
                    diff_id: diff_id.clone(),
                    size: info.size,
                    open: Box::new(move || {
                        store
                            .open_layer_tar(&info)
                            .map(|r| r as Box<dyn Read>)
                            .map_err(io::Error::other)
                    }),
                });
            }
            archive_images.push(ArchiveImage {
                config: config_bytes,
                id,
                repo_tags,
                layers,
            });
        }
        berth_image::write_docker_archive(out, &mut archive_images)?;
        Ok(())
    }

    /// `load`: every image of a docker-archive or OCI-layout tarball, each
    /// layer verified against its config's diffIDs before anything is kept.
    pub fn load<R: Read>(&self, input: R) -> Result<LoadReport> {
        let mut sink = StoreSink {
            engine: self,
            pending: Vec::new(),
        };
        let loaded = berth_image::read_image_archive(input, &mut sink)?;
        let mut pending: Vec<Option<PendingLayer>> = sink.pending.into_iter().map(Some).collect();
        let diff_of = |h: &LayerHandle, pending: &[Option<PendingLayer>]| {
            pending
                .get(h.0)
                .and_then(|p| p.as_ref().map(|p| p.diff_id.clone()))
        };

        // Verify everything first, so a bad archive leaves the store as it was.
        let mut configs = Vec::with_capacity(loaded.len());
        for img in &loaded {
            let config = Config::parse(&img.config)?;
            if config.diff_ids.len() != img.layers.len() {
                return Err(EngineError::InvalidArchive(format!(
                    "image config lists {} layers but the archive has {}",
                    config.diff_ids.len(),
                    img.layers.len()
                )));
            }
            for (i, (want, handle)) in config.diff_ids.iter().zip(&img.layers).enumerate() {
                if let Some(got) = diff_of(handle, &pending) {
                    if &got != want {
                        return Err(EngineError::InvalidArchive(format!(
                            "layer {} does not match its diffID: config says {want}, content is {got}",
                            i + 1
                        )));
                    }
                }
            }
            configs.push(config);
        }

        let mut report = LoadReport::default();
        for (img, config) in loaded.iter().zip(&configs) {
            let mut parent: Option<ChainId> = None;
            for (handle, chain) in img.layers.iter().zip(config.chain()) {
                if self.store.layer(&chain)?.is_none() {
                    let layer = pending
                        .get_mut(handle.0)
                        .and_then(Option::take)
                        .ok_or_else(|| {
                            EngineError::InvalidArchive(format!(
                                "layer {chain} is used at two depths; berth cannot load that yet"
                            ))
                        })?;
                    self.store.commit_layer(layer, parent.as_ref())?;
                }
                parent = Some(chain);
            }
            let id = self.store.put_image(&img.config, None)?;
            if img.repo_tags.is_empty() {
                report.untagged.push(id.clone());
            }
            for tag in &img.repo_tags {
                let r = Reference::parse(tag)
                    .map_err(|e| EngineError::InvalidArchive(format!("bad tag {tag:?}: {e}")))?;
                self.store.set_reference(&r.to_string(), &id)?;
                report.tags.push(familiar(&r.to_string()));
            }
        }
        Ok(report)
    }
}

/// Unpacks every layer of an archive into the store as it streams past.
struct StoreSink<'a> {
    engine: &'a Engine,
    pending: Vec<PendingLayer>,
}

impl LayerSink for StoreSink<'_> {
    fn layer(&mut self, r: &mut dyn Read) -> io::Result<LayerHandle> {
        let opts = self.engine.apply_options(None);
        let layer = self
            .engine
            .store
            .unpack_layer(r, &opts)
            .map_err(io::Error::other)?;
        self.pending.push(layer);
        Ok(LayerHandle(self.pending.len() - 1))
    }
}
