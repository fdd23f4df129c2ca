//! Container layers' records, `layerdb/mounts/<container-id>/{mount-id,
//! init-id,parent}` as in Docker. The store only records them (and keeps
//! their parent layers and cache dirs alive in gc); making the directories
//! and mounting them is the snapshotter's job.

use std::fs;

use berth_digest::ChainId;

use crate::error::{IoContext, Result, StoreError};
use crate::fsutil::{self, TempEntry};
use crate::layer::{optional_field, valid_name};
use crate::Store;

/// One container's layer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub container_id: String,
    /// Cache dir (under `<root>/<driver>/`) of the container's writable layer.
    pub mount_id: String,
    /// Cache dir of its init layer, if it has one.
    pub init_id: Option<String>,
    /// The image layer it sits on.
    pub parent: Option<ChainId>,
}

impl Store {
    /// Records a container's layer; its parent layer must exist, and the
    /// container must not have a record yet. Record it BEFORE creating its
    /// cache dirs: gc removes hex-named dirs under `<root>/<driver>/` that no
    /// layer or record names.
    ///
    /// Not synced, unlike layers and images: a container's record, its
    /// config and its snapshot are all lost together in a crash at worst
    /// (gc then removes an orphaned snapshot), and `run` cannot afford a
    /// handful of fsyncs per container.
    pub fn set_mount(&self, mount: &MountInfo) -> Result<()> {
        if !valid_name(&mount.container_id) {
            return Err(StoreError::BadContainerId(mount.container_id.clone()));
        }
        for id in std::iter::once(&mount.mount_id).chain(&mount.init_id) {
            if !valid_name(id) {
                return Err(StoreError::BadContainerId(id.clone()));
            }
        }
        let entry = TempEntry::dir(&self.tmp_dir(), "mount")?;
        let mut fields = vec![("mount-id", mount.mount_id.clone())];
        fields.extend(mount.init_id.clone().map(|i| ("init-id", i)));
        fields.extend(mount.parent.as_ref().map(|p| ("parent", p.to_string())));
        for (name, value) in fields {
            let path = entry.path().join(name);
            let file = fs::File::create(&path).ctx("creating", &path)?;
            std::io::Write::write_all(&mut &file, value.as_bytes()).ctx("writing", &path)?;
        }

        let _lock = self.lock()?;
        if let Some(parent) = &mount.parent {
            if !self.layer_dir(parent).is_dir() {
                return Err(StoreError::ParentMissing(parent.clone()));
            }
        }
        let dest = self.mounts_dir().join(&mount.container_id);
        if !fsutil::rename_noreplace(entry.path(), &dest)? {
            return Err(StoreError::MountExists(mount.container_id.clone()));
        }
        entry.keep();
        Ok(())
    }

    /// The record of one container, if any.
    pub fn mount(&self, container_id: &str) -> Result<Option<MountInfo>> {
        if !valid_name(container_id) {
            return Err(StoreError::BadContainerId(container_id.to_owned()));
        }
        let dir = self.mounts_dir().join(container_id);
        let Some(mount_id) = optional_field::<String>(&dir.join("mount-id"))? else {
            return Ok(None);
        };
        Ok(Some(MountInfo {
            container_id: container_id.to_owned(),
            mount_id,
            init_id: optional_field(&dir.join("init-id"))?,
            parent: optional_field(&dir.join("parent"))?,
        }))
    }

    /// Every container record, sorted by container ID.
    pub fn mounts(&self) -> Result<Vec<MountInfo>> {
        let dir = self.mounts_dir();
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).ctx("listing", &dir)? {
            names.push(entry.ctx("listing", &dir)?.file_name());
        }
        names.sort();
        let mut out = Vec::new();
        for name in names {
            if let Some(m) = name.to_str().map(|n| self.mount(n)).transpose()?.flatten() {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Forgets a container's record; returns whether there was one. Its
    /// parent layer becomes collectable by the next gc.
    pub fn remove_mount(&self, container_id: &str) -> Result<bool> {
        if !valid_name(container_id) {
            return Err(StoreError::BadContainerId(container_id.to_owned()));
        }
        let _lock = self.lock()?;
        let dir = self.mounts_dir().join(container_id);
        if !dir.exists() {
            return Ok(false);
        }
        // Renamed away first, so a crash mid-removal never leaves half a record.
        let doomed = self
            .tmp_dir()
            .join(format!("removed-{}", fsutil::random_hex()));
        fs::rename(&dir, &doomed).ctx("removing", &dir)?;
        fsutil::remove_any(&doomed).ctx("removing", &doomed)?;
        Ok(true)
    }
}
