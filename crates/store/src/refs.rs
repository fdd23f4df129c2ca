//! References (`name:tag` and `name@digest` to image ID), kept in
//! `image/<driver>/repositories.json` in Docker's shape:
//! `{"Repositories":{"<repo>":{"<repo>:<tag>":"sha256:..."}}}`.
//!
//! Names are stored as the caller gives them; normalising them
//! (`busybox` = `docker.io/library/busybox:latest`) is berth-image's job.

use std::collections::BTreeMap;
use std::path::Path;

use berth_digest::ImageId;

use crate::error::{Result, StoreError};
use crate::fsutil;
use crate::layer::corrupt;
use crate::Store;

/// A snapshot of every reference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    by_name: BTreeMap<String, ImageId>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct RepositoriesJson {
    #[serde(rename = "Repositories", default)]
    repositories: BTreeMap<String, BTreeMap<String, ImageId>>,
}

/// The repository a reference belongs to: the name without tag or digest.
fn repository(name: &str) -> &str {
    if let Some((repo, _)) = name.split_once('@') {
        return repo;
    }
    match name.rfind(':') {
        Some(colon) if !name[colon..].contains('/') => &name[..colon],
        _ => name,
    }
}

impl References {
    pub fn get(&self, name: &str) -> Option<&ImageId> {
        self.by_name.get(name)
    }

    /// Every (name, image) pair, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ImageId)> {
        self.by_name.iter().map(|(n, id)| (n.as_str(), id))
    }

    /// The names pointing at `id`, sorted.
    pub fn names_of(&self, id: &ImageId) -> Vec<String> {
        self.iter()
            .filter(|(_, target)| *target == id)
            .map(|(name, _)| name.to_owned())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    pub(crate) fn from_json(path: &Path, bytes: &[u8]) -> Result<References> {
        let parsed: RepositoriesJson =
            serde_json::from_slice(bytes).map_err(|e| corrupt(path, &e.to_string()))?;
        let by_name = parsed
            .repositories
            .into_values()
            .flat_map(|names| names.into_iter())
            .collect();
        Ok(References { by_name })
    }

    pub(crate) fn to_json(&self) -> Vec<u8> {
        let mut repositories: BTreeMap<String, BTreeMap<String, ImageId>> = BTreeMap::new();
        for (name, id) in &self.by_name {
            repositories
                .entry(repository(name).to_owned())
                .or_default()
                .insert(name.clone(), id.clone());
        }
        serde_json::to_vec(&RepositoriesJson { repositories })
            .expect("maps of strings always serialise")
    }
}

impl Store {
    /// Every reference, as of now.
    pub fn references(&self) -> Result<References> {
        let path = self.repositories_path();
        match fsutil::read_optional(&path)? {
            Some(text) => References::from_json(&path, text.as_bytes()),
            None => Ok(References::default()),
        }
    }

    /// Points `name` at `id` (which must exist); returns the image it pointed
    /// at before.
    pub fn set_reference(&self, name: &str, id: &ImageId) -> Result<Option<ImageId>> {
        if name.is_empty() {
            return Err(StoreError::BadReference(name.to_owned()));
        }
        let _lock = self.lock()?;
        if !self.has_image(id) {
            return Err(StoreError::NoSuchImage(id.clone()));
        }
        let mut refs = self.references()?;
        let previous = refs.by_name.insert(name.to_owned(), id.clone());
        if previous.as_ref() != Some(id) {
            self.write_references(&refs)?;
        }
        Ok(previous)
    }

    /// Removes `name`; returns the image it pointed at.
    pub fn remove_reference(&self, name: &str) -> Result<Option<ImageId>> {
        let _lock = self.lock()?;
        let mut refs = self.references()?;
        let previous = refs.by_name.remove(name);
        if previous.is_some() {
            self.write_references(&refs)?;
        }
        Ok(previous)
    }

    fn write_references(&self, refs: &References) -> Result<()> {
        fsutil::write_atomic(&self.tmp_dir(), &self.repositories_path(), &refs.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_strips_tag_and_digest_but_not_port() {
        assert_eq!(
            repository("docker.io/library/busybox:latest"),
            "docker.io/library/busybox"
        );
        assert_eq!(repository("localhost:5000/x"), "localhost:5000/x");
        assert_eq!(repository("localhost:5000/x:y"), "localhost:5000/x");
        let digest = format!("busybox@sha256:{}", "a".repeat(64));
        assert_eq!(repository(&digest), "busybox");
    }
}
