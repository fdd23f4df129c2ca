//! The image database: configs kept verbatim under their sha256 (the image
//! ID) plus small metadata files, as in Docker's `imagedb`.

use std::fs;

use berth_digest::{chain_ids, DiffId, Digest, ImageId};
use chrono::{DateTime, SecondsFormat, Utc};

use crate::error::{IoContext, Result, StoreError};
use crate::fsutil;
use crate::gc::GcReport;
use crate::layer::{corrupt, optional_field};
use crate::Store;

/// What the imagedb records about an image besides its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMeta {
    pub parent: Option<ImageId>,
    pub last_updated: Option<DateTime<Utc>>,
}

/// The only part of a config the store reads: which layers it needs.
#[derive(serde::Deserialize)]
struct ConfigLayers {
    rootfs: RootFs,
}

#[derive(serde::Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<DiffId>,
}

/// The layer diffIDs an image config names, bottom first.
pub(crate) fn config_diff_ids(id: &ImageId, config: &[u8]) -> Result<Vec<DiffId>> {
    serde_json::from_slice::<ConfigLayers>(config)
        .map(|c| c.rootfs.diff_ids)
        .map_err(|source| StoreError::BadConfig {
            id: id.clone(),
            source,
        })
}

impl Store {
    /// Stores an image config (verbatim) and returns its ID. Every layer of
    /// its `rootfs` must be committed already: an image never refers to
    /// layers the store does not have. Storing an existing image again
    /// updates its `lastUpdated` (and its parent, when given).
    pub fn put_image(&self, config: &[u8], parent: Option<&ImageId>) -> Result<ImageId> {
        let id = ImageId::new(Digest::sha256(config));
        let diff_ids = config_diff_ids(&id, config)?;
        let _lock = self.lock()?;
        for chain in chain_ids(&diff_ids) {
            if !self.layer_dir(&chain).is_dir() {
                return Err(StoreError::LayerMissing { image: id, chain });
            }
        }
        let tmp = self.tmp_dir();
        // Metadata first: the content file is what makes the image exist.
        let meta = self.image_meta_dir(&id);
        fs::create_dir_all(&meta).ctx("creating", &meta)?;
        fsutil::fsync_parent(&meta)?;
        // Without a parent, a parent recorded earlier (by a build) is kept.
        if let Some(parent) = parent {
            fsutil::write_atomic(&tmp, &meta.join("parent"), parent.to_string().as_bytes())?;
        }
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true);
        fsutil::write_atomic(&tmp, &meta.join("lastUpdated"), now.as_bytes())?;
        let content = self.image_content_path(&id);
        if !content.is_file() {
            fsutil::write_atomic(&tmp, &content, config)?;
        }
        Ok(id)
    }

    /// The config bytes exactly as stored.
    pub fn image_config(&self, id: &ImageId) -> Result<Vec<u8>> {
        let path = self.image_content_path(id);
        match fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::NoSuchImage(id.clone()))
            }
            other => other.ctx("reading image config", path),
        }
    }

    pub fn has_image(&self, id: &ImageId) -> bool {
        self.image_content_path(id).is_file()
    }

    /// Every image ID, sorted.
    pub fn images(&self) -> Result<Vec<ImageId>> {
        let dir = self.imagedb_content_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).ctx("listing", &dir)? {
            let name = entry.ctx("listing", &dir)?.file_name();
            match name.to_str().map(Digest::from_sha256_hex) {
                Some(Ok(d)) => out.push(ImageId::new(d)),
                // Temp files never land here; anything else is not ours.
                _ => log::warn!("ignoring {:?} in {}", name, dir.display()),
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn image_meta(&self, id: &ImageId) -> Result<ImageMeta> {
        if !self.has_image(id) {
            return Err(StoreError::NoSuchImage(id.clone()));
        }
        let meta = self.image_meta_dir(id);
        let parent = optional_field(&meta.join("parent"))?;
        let updated_path = meta.join("lastUpdated");
        let last_updated = match fsutil::read_optional(&updated_path)? {
            Some(text) => Some(
                DateTime::parse_from_rfc3339(text.trim())
                    .map_err(|e| corrupt(&updated_path, &e.to_string()))?
                    .with_timezone(&Utc),
            ),
            None => None,
        };
        Ok(ImageMeta {
            parent,
            last_updated,
        })
    }

    /// Removes an image from the imagedb, then every layer no image or
    /// container uses any more. Refuses while a reference points at it:
    /// untagging is the caller's decision.
    pub fn delete_image(&self, id: &ImageId) -> Result<GcReport> {
        let _lock = self.lock()?;
        if !self.has_image(id) {
            return Err(StoreError::NoSuchImage(id.clone()));
        }
        let names = self.references()?.names_of(id);
        if !names.is_empty() {
            return Err(StoreError::ImageReferenced {
                id: id.clone(),
                names,
            });
        }
        let content = self.image_content_path(id);
        fs::remove_file(&content).ctx("removing image config", &content)?;
        fsutil::fsync_parent(&content)?;
        let meta = self.image_meta_dir(id);
        fsutil::remove_any(&meta).ctx("removing image metadata", &meta)?;
        let mut report = self.gc_locked()?;
        report.images_removed.push(id.clone());
        Ok(report)
    }

    pub(crate) fn image_content_path(&self, id: &ImageId) -> std::path::PathBuf {
        self.imagedb_content_dir().join(id.hex())
    }

    pub(crate) fn image_meta_dir(&self, id: &ImageId) -> std::path::PathBuf {
        self.imagedb_metadata_dir().join(id.hex())
    }
}
