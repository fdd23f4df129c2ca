//! Images with Docker's semantics: name resolution, import, listing,
//! tagging, removal, prune and history.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use berth_archive::{ApplyOptions, OpaquePrefix, WhiteoutFormat};
use berth_digest::{chain_ids, ChainId, DiffId, ImageId};
use berth_image::Reference;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::changes::Change;
use crate::error::{EngineError, Result};
use crate::Engine;

/// Where `import` reads the root filesystem tarball from.
pub enum ImportSource<'a> {
    /// A file (or `-` mapped to stdin by the caller), named for messages.
    Reader {
        name: String,
        reader: Box<dyn Read + Send + 'a>,
    },
}

#[derive(Default)]
pub struct ImportOptions<'a> {
    /// `REPO[:TAG]` to tag the new image with.
    pub reference: Option<String>,
    /// `-m`: the commit message (defaults to "Imported from SRC").
    pub message: Option<String>,
    /// `-c`: config changes.
    pub changes: Vec<Change>,
    /// Called with the number of bytes read so far.
    pub progress: Option<&'a (dyn Fn(u64) + Sync)>,
}

/// One image as `images` lists it.
#[derive(Debug, Clone)]
pub struct ImageSummary {
    pub id: ImageId,
    /// Familiar `name:tag` forms, sorted.
    pub repo_tags: Vec<String>,
    /// Familiar `name@sha256:...` forms, sorted.
    pub repo_digests: Vec<String>,
    pub created: Option<DateTime<Utc>>,
    pub size: u64,
    pub parent: Option<ImageId>,
    /// Whether another image is built on this one.
    pub has_children: bool,
}

/// `images` filters.
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    /// `-a`: include intermediate images.
    pub all: bool,
    /// `-f dangling=true|false`.
    pub dangling: Option<bool>,
    /// `-f reference=PATTERN` or the positional `REPOSITORY[:TAG]`.
    pub reference: Option<String>,
    /// `-f label=KEY[=VALUE]`.
    pub labels: Vec<String>,
}

/// What `rmi` and `image prune` did, in order, as Docker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveEvent {
    Untagged(String),
    Deleted(String),
}

#[derive(Debug, Default)]
pub struct PruneReport {
    pub events: Vec<RemoveEvent>,
    pub reclaimed: u64,
}

/// One row of `history`, newest first.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    /// The image ID for the rows that are local images, else None (`<missing>`).
    pub id: Option<ImageId>,
    pub created: Option<DateTime<Utc>>,
    pub created_by: String,
    pub size: u64,
    pub comment: String,
}

/// The Docker platform name of the architecture berth runs on.
pub(crate) fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

pub(crate) fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// A parsed image config, with the few fields the engine reasons about.
pub(crate) struct Config {
    pub value: Value,
    pub diff_ids: Vec<DiffId>,
}

impl Config {
    pub fn parse(bytes: &[u8]) -> Result<Config> {
        let value: Value = serde_json::from_slice(bytes)?;
        let diff_ids = match value.pointer("/rootfs/diff_ids") {
            Some(Value::Array(ids)) => ids
                .iter()
                .map(|v| {
                    v.as_str()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| EngineError::InvalidArchive(format!("bad diff_id {v}")))
                })
                .collect::<Result<_>>()?,
            _ => Vec::new(),
        };
        Ok(Config { value, diff_ids })
    }

    pub fn created(&self) -> Option<DateTime<Utc>> {
        parse_time(self.value.get("created"))
    }

    pub fn chain(&self) -> Vec<ChainId> {
        chain_ids(&self.diff_ids)
    }
}

pub(crate) fn parse_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    v?.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

impl Engine {
    pub(crate) fn apply_options<'a>(
        &self,
        progress: Option<&'a (dyn Fn(u64) + Sync)>,
    ) -> ApplyOptions<'a> {
        let xattr_prefix = if self.rootless {
            OpaquePrefix::User
        } else {
            OpaquePrefix::Trusted
        };
        ApplyOptions {
            whiteouts: WhiteoutFormat::Overlay { xattr_prefix },
            chown: !self.rootless,
            record_owners: self.rootless,
            progress,
        }
    }

    pub(crate) fn config(&self, id: &ImageId) -> Result<Config> {
        Config::parse(&self.store.image_config(id)?)
    }

    /// Resolves a name, `name:tag`, `name@digest`, full ID or unique ID
    /// prefix to an image ID, in Docker's order.
    pub fn resolve_image(&self, name: &str) -> Result<ImageId> {
        let not_found = || EngineError::NoSuchImage(display_name(name));
        let refs = self.store.references()?;
        if let Ok(r) = Reference::parse(name) {
            if let Some(id) = refs.get(&r.to_string()) {
                return Ok(id.clone());
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        let is_hex = !hex.is_empty()
            && hex.len() <= 64
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !is_hex {
            return Err(not_found());
        }
        let mut found = self
            .store
            .images()?
            .into_iter()
            .filter(|id| id.hex().starts_with(hex));
        match (found.next(), found.next()) {
            (Some(id), None) => Ok(id),
            (Some(_), Some(_)) => Err(EngineError::InvalidArgument(format!(
                "multiple IDs found with provided prefix: {hex}"
            ))),
            _ => Err(not_found()),
        }
    }

    /// `import`: one tarball becomes a one-layer image.
    pub fn import(&self, src: ImportSource<'_>, opts: ImportOptions<'_>) -> Result<ImageId> {
        let reference = opts
            .reference
            .as_deref()
            .map(parse_tag_reference)
            .transpose()?;
        let ImportSource::Reader { name, reader } = src;
        let pending = self
            .store
            .unpack_layer(reader, &self.apply_options(opts.progress))?;
        let diff_id = pending.diff_id.clone();
        self.store.commit_layer(pending, None)?;

        let message = opts
            .message
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| format!("Imported from {name}"));
        let mut container_config = Map::new();
        for change in &opts.changes {
            change.apply(&mut container_config);
        }
        let created = now_rfc3339();
        let config = json!({
            "architecture": go_arch(),
            "comment": message,
            "config": container_config,
            "created": created,
            "history": [{"created": created, "comment": message}],
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        });
        let bytes = serde_json::to_vec(&config)?;
        let id = self.store.put_image(&bytes, None)?;
        if let Some(r) = reference {
            self.store.set_reference(&r.to_string(), &id)?;
        }
        Ok(id)
    }

    /// `tag SOURCE TARGET`.
    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        let id = self.resolve_image(source)?;
        let r = parse_tag_reference(target)?;
        self.store.set_reference(&r.to_string(), &id)?;
        Ok(())
    }

    /// Every image with its names, for `images`, `rmi` and `prune`.
    pub fn image_summaries(&self) -> Result<Vec<ImageSummary>> {
        let refs = self.store.references()?;
        let mut names: HashMap<ImageId, (Vec<String>, Vec<String>)> = HashMap::new();
        for (name, id) in refs.iter() {
            let familiar = Reference::parse(name)
                .map(|r| r.familiar())
                .unwrap_or_else(|_| name.to_string());
            let entry = names.entry(id.clone()).or_default();
            if familiar.contains('@') {
                entry.1.push(familiar);
            } else {
                entry.0.push(familiar);
            }
        }
        let ids = self.store.images()?;
        let mut parents: HashSet<ImageId> = HashSet::new();
        // Images share base layers: read each layer's size once.
        let mut layer_sizes: HashMap<ChainId, u64> = HashMap::new();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let config = self.config(&id)?;
            let parent = self.store.image_meta(&id)?.parent;
            if let Some(p) = &parent {
                parents.insert(p.clone());
            }
            let size = self.chain_size_cached(&config.chain(), &mut layer_sizes)?;
            let (mut repo_tags, mut repo_digests) = names.remove(&id).unwrap_or_default();
            repo_tags.sort();
            repo_digests.sort();
            out.push(ImageSummary {
                created: config.created(),
                id,
                repo_tags,
                repo_digests,
                size,
                parent,
                has_children: false,
            });
        }
        for s in &mut out {
            s.has_children = parents.contains(&s.id);
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// `images`: the summaries that pass the filter.
    pub fn list_images(&self, filter: &ListFilter) -> Result<Vec<ImageSummary>> {
        let mut images = self.image_summaries()?;
        let labels: Vec<(String, Option<String>)> = filter
            .labels
            .iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (l.clone(), None),
            })
            .collect();
        let mut keep = Vec::with_capacity(images.len());
        for mut img in images.drain(..) {
            let dangling = img.repo_tags.is_empty() && img.repo_digests.is_empty();
            if !filter.all && dangling && img.has_children {
                continue;
            }
            if filter.dangling.is_some_and(|d| d != dangling) {
                continue;
            }
            if let Some(pattern) = &filter.reference {
                // Only the matching names are listed, as Docker does.
                img.repo_tags.retain(|t| reference_matches(pattern, t));
                if img.repo_tags.is_empty() {
                    continue;
                }
            }
            if !labels.is_empty() {
                let config = self.config(&img.id)?;
                let have = config.value.pointer("/config/Labels");
                let ok = labels
                    .iter()
                    .all(|(k, v)| match have.and_then(|l| l.get(k)) {
                        Some(actual) => v.as_deref().is_none_or(|v| actual.as_str() == Some(v)),
                        None => false,
                    });
                if !ok {
                    continue;
                }
            }
            keep.push(img);
        }
        Ok(keep)
    }

    /// Sum of the layer sizes of a chain.
    pub(crate) fn chain_size(&self, chain: &[ChainId]) -> Result<u64> {
        self.chain_size_cached(chain, &mut HashMap::new())
    }

    fn chain_size_cached(
        &self,
        chain: &[ChainId],
        seen: &mut HashMap<ChainId, u64>,
    ) -> Result<u64> {
        let mut total = 0;
        for c in chain {
            total += match seen.get(c) {
                Some(size) => *size,
                None => {
                    let size = self.store.layer(c)?.map_or(0, |l| l.size);
                    seen.insert(c.clone(), size);
                    size
                }
            };
        }
        Ok(total)
    }

    /// `rmi [-f] NAME...` for one name.
    pub fn remove_image(&self, name: &str, force: bool) -> Result<Vec<RemoveEvent>> {
        let id = self.resolve_image(name)?;
        // A container's image stays: unforced, nothing happens; forced, its
        // names go but the image and its layers stay for the container.
        let user = self.container_using_image(&id)?;
        if let (Some(c), false) = (&user, force) {
            return Err(EngineError::Conflict {
                id: id.short().to_string(),
                reason: format!("image is being used by container {c}"),
            });
        }
        let refs = self.store.references()?;
        let mine: Vec<String> = refs
            .iter()
            .filter(|(_, v)| **v == id)
            .map(|(k, _)| k.to_string())
            .collect();
        let by_reference = Reference::parse(name)
            .ok()
            .map(|r| r.to_string())
            .filter(|r| mine.contains(r));
        let mut events = Vec::new();
        if let Some(r) = by_reference {
            self.store.remove_reference(&r)?;
            events.push(RemoveEvent::Untagged(familiar(&r)));
            let others_left = mine.iter().any(|m| *m != r && !m.contains('@'));
            if others_left {
                return Ok(events);
            }
            // The last tag went: its digests go too, then the image.
            for m in mine.iter().filter(|m| **m != r) {
                self.store.remove_reference(m)?;
                events.push(RemoveEvent::Untagged(familiar(m)));
            }
        } else {
            let repos: HashSet<String> = mine
                .iter()
                .filter_map(|m| Reference::parse(m).ok().map(|r| r.name()))
                .collect();
            if repos.len() > 1 && !force {
                return Err(EngineError::Conflict {
                    id: id.short().to_string(),
                    reason: "image is referenced in multiple repositories".into(),
                });
            }
            for m in &mine {
                self.store.remove_reference(m)?;
                events.push(RemoveEvent::Untagged(familiar(m)));
            }
        }
        if user.is_some() {
            return Ok(events);
        }
        let children = self.children_of(&id)?;
        if !children.is_empty() {
            if events.is_empty() {
                return Err(EngineError::Conflict {
                    id: id.short().to_string(),
                    reason: "image has dependent child images".into(),
                });
            }
            return Ok(events);
        }
        events.extend(self.delete_image(&id)?);
        Ok(events)
    }

    fn children_of(&self, id: &ImageId) -> Result<Vec<ImageId>> {
        let mut out = Vec::new();
        for other in self.store.images()? {
            if self.store.image_meta(&other)?.parent.as_ref() == Some(id) {
                out.push(other);
            }
        }
        Ok(out)
    }

    /// Deletes an image with no references left, then its unused layers.
    fn delete_image(&self, id: &ImageId) -> Result<Vec<RemoveEvent>> {
        let report = self.store.delete_image(id)?;
        let mut events = vec![RemoveEvent::Deleted(id.to_string())];
        events.extend(
            report
                .layers_removed
                .iter()
                .map(|c| RemoveEvent::Deleted(c.to_string())),
        );
        Ok(events)
    }

    /// `image prune [-a]`: dangling images, or with `all` every image no
    /// container uses.
    pub fn prune_images(&self, all: bool) -> Result<PruneReport> {
        let mut report = PruneReport::default();
        let before = self.store_layer_bytes()?;
        for img in self.image_summaries()? {
            let dangling = img.repo_tags.is_empty() && img.repo_digests.is_empty();
            if img.has_children || !(all || dangling) {
                continue;
            }
            let refs = self.store.references()?;
            for (name, _) in refs.iter().filter(|(_, v)| **v == img.id) {
                self.store.remove_reference(name)?;
                report.events.push(RemoveEvent::Untagged(familiar(name)));
            }
            report.events.extend(self.delete_image(&img.id)?);
        }
        report.reclaimed = before.saturating_sub(self.store_layer_bytes()?);
        Ok(report)
    }

    pub(crate) fn store_layer_bytes(&self) -> Result<u64> {
        Ok(self.store.layers()?.iter().map(|l| l.size).sum())
    }

    /// `history IMAGE`, newest first, with `<missing>` for the rows that
    /// are not local images.
    pub fn history(&self, name: &str) -> Result<Vec<HistoryRow>> {
        let id = self.resolve_image(name)?;
        let config = self.config(&id)?;
        let chain = config.chain();
        let mut layer_sizes = Vec::with_capacity(chain.len());
        for c in &chain {
            layer_sizes.push(self.store.layer(c)?.map(|l| l.size).unwrap_or(0));
        }
        let history = config
            .value
            .get("history")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut rows = Vec::new();
        let mut layer = 0;
        let str_of =
            |h: &Value, k: &str| h.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        if history.is_empty() {
            // No history: one row per layer, like Docker does for such images.
            for size in &layer_sizes {
                rows.push(HistoryRow {
                    id: None,
                    created: config.created(),
                    created_by: String::new(),
                    size: *size,
                    comment: String::new(),
                });
            }
        }
        for h in &history {
            let empty = h
                .get("empty_layer")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let size = if empty {
                0
            } else {
                layer += 1;
                layer_sizes.get(layer - 1).copied().unwrap_or(0)
            };
            rows.push(HistoryRow {
                id: None,
                created: parse_time(h.get("created")),
                created_by: str_of(h, "created_by"),
                size,
                comment: str_of(h, "comment"),
            });
        }
        rows.reverse();
        // Label the rows that are local images: this one, then its parents.
        let mut cursor = Some(id);
        for row in rows.iter_mut() {
            match cursor.take() {
                Some(img) => {
                    cursor = self.store.image_meta(&img)?.parent;
                    row.id = Some(img);
                }
                None => break,
            }
        }
        Ok(rows)
    }
}

/// Parses `REPO[:TAG]` for tagging: digests are not allowed.
pub(crate) fn parse_tag_reference(s: &str) -> Result<Reference> {
    let r = Reference::parse(s).map_err(|e| EngineError::InvalidReference(e.to_string()))?;
    if r.digest().is_some() {
        return Err(EngineError::InvalidReference(format!(
            "refusing to create a tag with a digest reference: {s}"
        )));
    }
    Ok(r)
}

/// Docker's way of naming a missing image: `foo` is shown as `foo:latest`.
fn display_name(name: &str) -> String {
    match Reference::parse(name) {
        Ok(r) => r.familiar(),
        Err(_) => name.to_string(),
    }
}

pub(crate) fn familiar(full: &str) -> String {
    Reference::parse(full)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| full.to_string())
}

/// Docker's `reference=` filter: a glob over the familiar name, matched
/// against `name` alone and `name:tag`.
fn reference_matches(pattern: &str, tag: &str) -> bool {
    let name = tag.rsplit_once(':').map(|(n, _)| n).unwrap_or(tag);
    glob(pattern, tag) || glob(pattern, name)
}

fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && t[0] != b'/' && go(p, &t[1..])),
            (Some(b'?'), Some(c)) if *c != b'/' => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_filter_globs() {
        assert!(reference_matches("busybox", "busybox:latest"));
        assert!(reference_matches("busy*", "busybox:1.36"));
        assert!(reference_matches("*:1.36", "busybox:1.36"));
        assert!(!reference_matches("busy*", "library/busybox:1"));
        assert!(!reference_matches("alpine", "busybox:latest"));
    }
}
