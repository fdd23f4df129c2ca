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
        let (loaded, pending) = std::thread::scope(|scope| -> Result<_> {
            let mut sink = StoreSink {
                engine: self,
                scope,
                workers: Vec::new(),
            };
            let loaded = berth_image::read_image_archive(input, &mut sink);
            // Every worker is joined, even when reading failed.
            let pending = sink.finish();
            let loaded = loaded?;
            Ok((loaded, pending?))
        })?;
        let mut pending: Vec<Option<PendingLayer>> = pending.into_iter().map(Some).collect();
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

/// Layers unpacked at once while an archive streams past.
const UNPACK_THREADS: usize = 2;
/// Chunks of a layer read ahead of its unpacker: a layer whose last
/// `READ_AHEAD` MiB fit here lets the next layer start unpacking meanwhile.
const READ_AHEAD: usize = 16;
const CHUNK: usize = 1 << 20;

type Unpacked = std::result::Result<PendingLayer, berth_store::StoreError>;

enum Worker<'scope> {
    Running(std::thread::ScopedJoinHandle<'scope, Unpacked>),
    Done(Unpacked),
    /// Only while being joined.
    Joining,
}

impl Worker<'_> {
    fn join(self) -> Unpacked {
        match self {
            Worker::Running(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            Worker::Done(r) => r,
            Worker::Joining => unreachable!("a worker is joined once"),
        }
    }
}

/// Unpacks the layers of an archive into the store as they stream past,
/// on up to [`UNPACK_THREADS`] threads: each layer's bytes go to its own
/// unpacker through a bounded channel, so the next layer in the archive can
/// be read (and unpacked) while the previous one finishes.
struct StoreSink<'scope, 'env> {
    engine: &'env Engine,
    scope: &'scope std::thread::Scope<'scope, 'env>,
    /// By handle.
    workers: Vec<Worker<'scope>>,
}

impl<'scope> StoreSink<'scope, '_> {
    /// Waits until fewer than [`UNPACK_THREADS`] unpackers run.
    fn wait_for_a_thread(&mut self) {
        loop {
            let running: Vec<usize> = (0..self.workers.len())
                .filter(|&i| matches!(&self.workers[i], Worker::Running(h) if !h.is_finished()))
                .collect();
            let Some(&oldest) = running.first() else {
                return;
            };
            if running.len() < UNPACK_THREADS {
                return;
            }
            let worker = std::mem::replace(&mut self.workers[oldest], Worker::Joining);
            self.workers[oldest] = Worker::Done(worker.join());
        }
    }

    /// Every unpacked layer, by handle; the first failure if any failed.
    fn finish(self) -> Result<Vec<PendingLayer>> {
        let mut out = Vec::with_capacity(self.workers.len());
        let mut first_error = None;
        for worker in self.workers {
            match worker.join() {
                Ok(layer) => out.push(layer),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(out),
        }
    }
}

impl LayerSink for StoreSink<'_, '_> {
    fn layer(&mut self, r: &mut dyn Read) -> io::Result<LayerHandle> {
        self.wait_for_a_thread();
        let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(READ_AHEAD);
        let engine = self.engine;
        let handle = self.scope.spawn(move || {
            let opts = engine.apply_options(None);
            let input = ChannelReader {
                rx,
                chunk: Vec::new(),
                at: 0,
            };
            engine.store.unpack_layer(input, &opts)
        });
        let sent = forward(r, &tx);
        drop(tx);
        match sent {
            Ok(()) => {
                self.workers.push(Worker::Running(handle));
                Ok(LayerHandle(self.workers.len() - 1))
            }
            // The unpacker stopped reading: its error says why.
            Err(Forward::Unpacker) => match Worker::Running(handle).join() {
                Err(e) => Err(io::Error::other(e)),
                Ok(_) => Err(io::Error::other("layer unpacker stopped early")),
            },
            Err(Forward::Read(e)) => {
                let _ = Worker::Running(handle).join();
                Err(e)
            }
        }
    }
}

enum Forward {
    Read(io::Error),
    Unpacker,
}

/// Sends `r` in chunks; a read error is sent too, so the unpacker fails
/// rather than taking a cut stream for a whole one.
fn forward(
    r: &mut dyn Read,
    tx: &std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
) -> std::result::Result<(), Forward> {
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let mut n = 0;
        while n < CHUNK {
            match r.read(&mut chunk[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let kind = e.kind();
                    let text = e.to_string();
                    let _ = tx.send(Err(io::Error::new(kind, text)));
                    return Err(Forward::Read(e));
                }
            }
        }
        if n == 0 {
            return Ok(());
        }
        chunk.truncate(n);
        tx.send(Ok(chunk)).map_err(|_| Forward::Unpacker)?;
    }
}

/// The unpacker's end of a layer's channel.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk?;
                    self.at = 0;
                }
                // The sender is gone after the whole layer was sent.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
