//! Reads a docker-archive (Docker 20.10's `<v1id>/layer.tar` layout or
//! Docker 25+'s `blobs/sha256/<hex>` one) or an OCI-layout tarball in one
//! streaming pass, in whatever order the entries come.
//!
//! Layers are recognised by their first bytes (a compression magic or a tar
//! header), not by name, because OCI blobs have no names to go by; they go
//! to the sink as they stream past. Everything else is small JSON and is
//! kept in memory until the end, when manifest.json or index.json says which
//! blobs form which image.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};

use serde::de::DeserializeOwned;

use super::{ImageArchiveError, LayerHandle, LayerSink, LoadedImage, METADATA_SIZE_LIMIT};
use crate::manifest::{
    annotation, host_architecture, is_index_media_type, ArchiveManifestEntry, Descriptor, Index,
    Manifest,
};
use crate::reference::Reference;

/// Links are followed at most this deep, so a loop cannot hang the load.
const MAX_LINK_DEPTH: usize = 16;
/// Nested indexes are followed at most this deep.
const MAX_INDEX_DEPTH: usize = 4;

/// Reads every image in the archive `r`, passing each layer blob to `sink`
/// as it arrives. Layers are not verified here: the caller checks them
/// against each config's `rootfs.diff_ids`.
pub fn read_image_archive<R: Read>(
    r: R,
    sink: &mut dyn LayerSink,
) -> Result<Vec<LoadedImage>, ImageArchiveError> {
    let mut contents = Contents::default();
    let mut archive = tar::Archive::new(r);
    let entries = archive
        .entries()
        .map_err(ImageArchiveError::io("reading the archive"))?;
    let mut last = String::from("the first entry");
    for entry in entries {
        let entry = entry.map_err(|e| entry_error(e, &last))?;
        last = normalise(&String::from_utf8_lossy(&entry.path_bytes()));
        contents.add(entry, &last, sink)?;
    }
    contents.images(sink)
}

/// What the archive held, by normalised path.
#[derive(Default)]
struct Contents {
    files: HashMap<String, Vec<u8>>,
    layers: HashMap<String, LayerHandle>,
    /// Symlinks and hard links: path -> the archive path they point to.
    links: HashMap<String, String>,
    too_large: HashSet<String>,
}

enum Found<'a> {
    File(&'a [u8]),
    Layer(LayerHandle),
}

impl Contents {
    fn add<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        path: &str,
        sink: &mut dyn LayerSink,
    ) -> Result<(), ImageArchiveError> {
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .unwrap_or_default();
            // A symlink is relative to its directory; a hard link names an
            // archive path.
            let resolved = if kind.is_symlink() && !target.starts_with('/') {
                let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                normalise(&format!("{dir}/{target}"))
            } else {
                normalise(&target)
            };
            self.links.insert(path.to_owned(), resolved);
            return Ok(());
        }
        if !(kind.is_file() || kind.is_contiguous()) {
            return Ok(());
        }
        let size = entry.size();
        let mut data = Exact {
            inner: &mut entry,
            remaining: size,
            truncated: false,
        };
        let head = read_head(&mut data).map_err(|e| read_error(e, path))?;
        if looks_like_layer(path, &head) {
            let mut stream = (&head[..]).chain(&mut data);
            let result = sink.layer(&mut stream);
            // Drain what the sink left, so truncation is noticed here too.
            let drained = io::copy(&mut data, &mut io::sink());
            if data.truncated {
                return Err(ImageArchiveError::Truncated {
                    entry: path.to_owned(),
                });
            }
            let handle = result.map_err(|source| ImageArchiveError::Sink {
                entry: path.to_owned(),
                source,
            })?;
            drained.map_err(|e| read_error(e, path))?;
            self.layers.insert(path.to_owned(), handle);
        } else if size > METADATA_SIZE_LIMIT {
            // Only an error if something needs it: archives may carry
            // blobs berth does not use.
            self.too_large.insert(path.to_owned());
        } else {
            let mut bytes = head;
            data.read_to_end(&mut bytes)
                .map_err(|e| read_error(e, path))?;
            self.files.insert(path.to_owned(), bytes);
        }
        Ok(())
    }

    fn find(&self, path: &str) -> Result<Option<Found<'_>>, ImageArchiveError> {
        let mut path = normalise(path);
        for _ in 0..MAX_LINK_DEPTH {
            if let Some(&h) = self.layers.get(&path) {
                return Ok(Some(Found::Layer(h)));
            }
            if let Some(bytes) = self.files.get(&path) {
                return Ok(Some(Found::File(bytes)));
            }
            if self.too_large.contains(&path) {
                return Err(ImageArchiveError::TooLarge {
                    entry: path,
                    limit: METADATA_SIZE_LIMIT,
                });
            }
            match self.links.get(&path) {
                Some(target) => path = target.clone(),
                None => return Ok(None),
            }
        }
        Err(ImageArchiveError::LinkLoop { entry: path })
    }

    /// A metadata file, or None when absent.
    fn file(&self, path: &str) -> Result<Option<&[u8]>, ImageArchiveError> {
        Ok(match self.find(path)? {
            Some(Found::File(bytes)) => Some(bytes),
            // Something that looked like a layer cannot be a config.
            _ => None,
        })
    }

    fn json<T: DeserializeOwned>(
        &self,
        path: &str,
        image: &str,
        what: &'static str,
    ) -> Result<(T, Vec<u8>), ImageArchiveError> {
        let bytes = self.file(path)?.ok_or_else(|| ImageArchiveError::Missing {
            image: image.to_owned(),
            what,
            path: path.to_owned(),
        })?;
        let value = serde_json::from_slice(bytes).map_err(|source| ImageArchiveError::Json {
            file: path.to_owned(),
            source,
        })?;
        Ok((value, bytes.to_vec()))
    }

    /// The handle for a layer named by a manifest. A blob that did not look
    /// like a layer while streaming (it is in memory) is handed over now.
    fn layer(
        &mut self,
        path: &str,
        image: &str,
        sink: &mut dyn LayerSink,
    ) -> Result<LayerHandle, ImageArchiveError> {
        let missing = || ImageArchiveError::Missing {
            image: image.to_owned(),
            what: "layer",
            path: path.to_owned(),
        };
        let bytes = match self.find(path)?.ok_or_else(missing)? {
            Found::Layer(h) => return Ok(h),
            Found::File(bytes) => bytes.to_vec(),
        };
        let handle = sink
            .layer(&mut &bytes[..])
            .map_err(|source| ImageArchiveError::Sink {
                entry: path.to_owned(),
                source,
            })?;
        let path = normalise(path);
        self.files.remove(&path);
        self.layers.insert(path, handle);
        Ok(handle)
    }

    fn images(mut self, sink: &mut dyn LayerSink) -> Result<Vec<LoadedImage>, ImageArchiveError> {
        if self.file("manifest.json")?.is_some() {
            self.docker_images(sink)
        } else if self.file("index.json")?.is_some() {
            self.oci_images(sink)
        } else {
            Err(ImageArchiveError::MissingManifest)
        }
    }

    fn docker_images(
        &mut self,
        sink: &mut dyn LayerSink,
    ) -> Result<Vec<LoadedImage>, ImageArchiveError> {
        let (entries, _): (Vec<ArchiveManifestEntry>, _) =
            self.json("manifest.json", "", "manifest")?;
        let mut images = Vec::with_capacity(entries.len());
        for entry in entries {
            let repo_tags = entry.repo_tags.unwrap_or_default();
            let name = repo_tags.first().unwrap_or(&entry.config).clone();
            let config = self
                .file(&entry.config)?
                .ok_or_else(|| ImageArchiveError::Missing {
                    image: name.clone(),
                    what: "config",
                    path: entry.config.clone(),
                })?
                .to_vec();
            let layers = entry
                .layers
                .iter()
                .map(|l| self.layer(l, &name, sink))
                .collect::<Result<_, _>>()?;
            images.push(LoadedImage {
                config,
                repo_tags,
                ref_name: None,
                layers,
            });
        }
        Ok(images)
    }

    fn oci_images(
        &mut self,
        sink: &mut dyn LayerSink,
    ) -> Result<Vec<LoadedImage>, ImageArchiveError> {
        let (index, _): (Index, _) = self.json("index.json", "", "index")?;
        let mut images: Vec<LoadedImage> = Vec::new();
        // Several names may point at one manifest: one image, several tags.
        let mut by_manifest: HashMap<String, usize> = HashMap::new();
        for top in &index.manifests {
            let desc = self.resolve_platform(top, 0)?;
            let manifest_path = blob_path(&desc);
            let (manifest, _): (Manifest, _) =
                self.json(&manifest_path, &top.digest.to_string(), "manifest")?;
            let name = top.digest.to_string();
            let (repo_tags, ref_name) = names(top);
            let i = match by_manifest.get(&manifest_path) {
                Some(&i) => i,
                None => {
                    let (_, config) = self.json::<serde_json::Value>(
                        &blob_path(&manifest.config),
                        &name,
                        "config",
                    )?;
                    let layers = manifest
                        .layers
                        .iter()
                        .map(|l| self.layer(&blob_path(l), &name, sink))
                        .collect::<Result<_, _>>()?;
                    images.push(LoadedImage {
                        config,
                        repo_tags: Vec::new(),
                        ref_name: None,
                        layers,
                    });
                    by_manifest.insert(manifest_path, images.len() - 1);
                    images.len() - 1
                }
            };
            let image = &mut images[i];
            for t in repo_tags {
                if !image.repo_tags.contains(&t) {
                    image.repo_tags.push(t);
                }
            }
            image.ref_name = image.ref_name.take().or(ref_name);
        }
        Ok(images)
    }

    /// Follows nested indexes (multi-platform images) down to the manifest
    /// for this machine: linux on the host architecture.
    fn resolve_platform(
        &self,
        desc: &Descriptor,
        depth: usize,
    ) -> Result<Descriptor, ImageArchiveError> {
        if !is_index_media_type(&desc.media_type) {
            return Ok(desc.clone());
        }
        let path = blob_path(desc);
        if depth >= MAX_INDEX_DEPTH {
            return Err(ImageArchiveError::LinkLoop { entry: path });
        }
        let (index, _): (Index, _) = self.json(&path, &desc.digest.to_string(), "index")?;
        let arch = host_architecture();
        let pick = index
            .manifests
            .iter()
            .find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == arch)
            })
            .ok_or_else(|| ImageArchiveError::NoPlatform {
                index: desc.digest.to_string(),
                platform: format!("linux/{arch}"),
            })?;
        self.resolve_platform(pick, depth + 1)
    }
}

/// The names an OCI index entry gives its image: full references, and a
/// bare tag when that is all there is.
fn names(desc: &Descriptor) -> (Vec<String>, Option<String>) {
    if let Some(full) = desc.annotation(annotation::CONTAINERD_IMAGE_NAME) {
        return (vec![full.to_owned()], None);
    }
    match desc.annotation(annotation::REF_NAME) {
        // Some tools (skopeo's oci-archive:FILE:busybox:latest) put a whole
        // reference here; the spec's plain tag has neither ':' nor '/'.
        Some(r) if r.contains([':', '/']) && Reference::parse(r).is_ok() => {
            (vec![r.to_owned()], None)
        }
        Some(tag) => (Vec::new(), Some(tag.to_owned())),
        None => (Vec::new(), None),
    }
}

fn blob_path(desc: &Descriptor) -> String {
    format!("blobs/{}/{}", desc.digest.algorithm(), desc.digest.hex())
}

/// `./a//b/../c` -> `a/c`. Paths never leave the archive's root.
fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Whether an entry is a layer blob: a compressed stream, a tar (ustar
/// magic, or the all-zero end blocks of an empty tar), or named like one.
fn looks_like_layer(path: &str, head: &[u8]) -> bool {
    const MAGICS: [&[u8]; 4] = [
        &[0x1f, 0x8b],                         // gzip
        &[0x28, 0xb5, 0x2f, 0xfd],             // zstd
        &[0xfd, b'7', b'z', b'X', b'Z', 0x00], // xz
        b"BZh",                                // bzip2
    ];
    path == "layer.tar"
        || path.ends_with("/layer.tar")
        || MAGICS.iter().any(|m| head.starts_with(m))
        || head.get(257..262) == Some(b"ustar")
        || (head.len() == 512 && head.iter().all(|&b| b == 0))
}

/// Up to the first 512 bytes of an entry.
fn read_head(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    r.take(512).read_to_end(&mut head)?;
    Ok(head)
}

fn read_error(e: io::Error, path: &str) -> ImageArchiveError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        ImageArchiveError::Truncated {
            entry: path.to_owned(),
        }
    } else {
        ImageArchiveError::Io {
            context: format!("reading {path}"),
            source: e,
        }
    }
}

fn entry_error(e: io::Error, last: &str) -> ImageArchiveError {
    let msg = e.to_string();
    if e.kind() == io::ErrorKind::UnexpectedEof
        || msg.contains("entire block")
        || msg.contains("EOF")
    {
        ImageArchiveError::Truncated {
            entry: format!("the entry after {last}"),
        }
    } else {
        ImageArchiveError::Io {
            context: format!("reading the archive after {last}"),
            source: e,
        }
    }
}

/// An entry's data, which must be `remaining` bytes long: tar's entry reader
/// just stops early when the archive is cut short, which would pass a short
/// layer off as a whole one.
struct Exact<R> {
    inner: R,
    remaining: u64,
    truncated: bool,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            self.truncated = true;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("archive ends {} bytes early", self.remaining),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}
