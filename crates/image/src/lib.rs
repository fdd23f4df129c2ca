//! berth-image: what an image *is* on paper, without a store behind it.
//!
//! - [`Reference`]: `[registry/]name[:tag][@digest]` with Docker's grammar
//!   and normalisation (`busybox` = `docker.io/library/busybox:latest`).
//! - [`ImageConfig`] and friends: the image config JSON, lossless.
//! - [`manifest`]: Docker schema2 and OCI manifests/indexes, media types.
//! - [`write_docker_archive`] / [`read_image_archive`]: `docker save`'s
//!   tarball, and loading it or an OCI-layout tarball in one streaming pass.
//!
//! Not here: storing layers or images (berth-store), unpacking layer tars
//! (berth-archive), verifying layers against a config (the engine).

mod archive;
pub mod config;
pub mod manifest;
mod reference;

pub use archive::{
    read_image_archive, write_docker_archive, ArchiveImage, ArchiveLayer, ImageArchiveError,
    LayerHandle, LayerSink, LoadedImage, TagProblem, METADATA_SIZE_LIMIT,
};
pub use config::{ContainerConfig, History, ImageConfig, RootFs};
pub use reference::{Reference, ReferenceError, DEFAULT_DOMAIN, DEFAULT_TAG};

/// oci-spec's strict OCI image types, for building OCI documents.
pub use oci_spec::image as oci;
