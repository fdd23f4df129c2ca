use std::io::{self, Read};
use std::process::Command;

use berth_digest::{DiffId, Digest, ImageId};

use super::*;

/// Keeps every layer it is given; the handle is the position.
#[derive(Default)]
struct MemSink {
    layers: Vec<Vec<u8>>,
}

impl LayerSink for MemSink {
    fn layer(&mut self, r: &mut dyn Read) -> io::Result<LayerHandle> {
        let mut bytes = Vec::new();
        r.read_to_end(&mut bytes)?;
        self.layers.push(bytes);
        Ok(LayerHandle(self.layers.len() - 1))
    }
}

impl MemSink {
    fn bytes(&self, images: &[LoadedImage], image: usize) -> Vec<Vec<u8>> {
        images[image]
            .layers
            .iter()
            .map(|h| self.layers[h.0].clone())
            .collect()
    }
}

/// A layer tar holding one file.
fn layer_tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, name, content).unwrap();
    b.into_inner().unwrap()
}

fn diff_id(bytes: &[u8]) -> DiffId {
    DiffId::new(Digest::sha256(bytes))
}

fn config_for(layers: &[&[u8]], cmd: &str) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| diff_id(l).to_string()).collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "config": {"Cmd": [cmd], "Env": ["PATH=/bin"]},
        "created": "2024-01-02T03:04:05.123456789Z",
        "history": [],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap()
}

fn archive_image(layers: &[&[u8]], cmd: &str, tags: &[&str]) -> ArchiveImage {
    let config = config_for(layers, cmd);
    ArchiveImage {
        id: ImageId::new(Digest::sha256(&config)),
        config,
        repo_tags: tags.iter().map(|t| t.to_string()).collect(),
        layers: layers.iter().map(|l| mem_layer(l)).collect(),
    }
}

fn mem_layer(bytes: &[u8]) -> ArchiveLayer {
    let bytes = bytes.to_vec();
    ArchiveLayer {
        diff_id: diff_id(&bytes),
        size: bytes.len() as u64,
        open: Box::new(move || Ok(Box::new(io::Cursor::new(bytes.clone())) as Box<dyn Read>)),
    }
}

/// Two images where one's top layer is the other's base, plus a third with
/// the same base under a different top: exercises shared directories and
/// symlinked layer.tar.
fn three_images() -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<ArchiveImage>) {
    let base = layer_tar("bin/sh", b"#!shell");
    let app = layer_tar("app", b"application");
    let other = layer_tar("other", b"other things");
    let images = vec![
        archive_image(
            &[&base],
            "sh",
            &["busybox", "docker.io/library/busybox:1.36"],
        ),
        archive_image(&[&base, &app], "app", &["localhost:5000/team/app:v1"]),
        archive_image(&[&base, &other], "other", &[]),
    ];
    (base, app, other, images)
}

fn entries(archive: &[u8]) -> Vec<(String, tar::EntryType, u64)> {
    let mut a = tar::Archive::new(archive);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().into_owned();
            (p, e.header().entry_type(), e.size())
        })
        .collect()
}

#[test]
fn write_then_read_round_trips_with_shared_layers() {
    let (base, app, other, mut images) = three_images();
    let configs: Vec<Vec<u8>> = images.iter().map(|i| i.config.clone()).collect();
    let archive = write_docker_archive(Vec::new(), &mut images).unwrap();

    // Each layer's bytes are stored once; repeats are symlinks.
    let listed = entries(&archive);
    let real_tars = listed
        .iter()
        .filter(|(p, k, _)| p.ends_with("layer.tar") && *k == tar::EntryType::Regular)
        .count();
    let linked_tars = listed
        .iter()
        .filter(|(p, k, _)| p.ends_with("layer.tar") && *k == tar::EntryType::Symlink)
        .count();
    assert_eq!((real_tars, linked_tars), (3, 1), "{listed:#?}");

    let mut sink = MemSink::default();
    let loaded = read_image_archive(&archive[..], &mut sink).unwrap();
    assert_eq!(sink.layers.len(), 3, "every layer streamed once");
    assert_eq!(loaded.len(), 3);
    for (l, c) in loaded.iter().zip(&configs) {
        assert_eq!(&l.config, c, "config bytes kept verbatim");
    }
    assert_eq!(loaded[0].repo_tags, ["busybox:latest", "busybox:1.36"]);
    assert_eq!(loaded[1].repo_tags, ["localhost:5000/team/app:v1"]);
    assert!(loaded[2].repo_tags.is_empty());
    assert_eq!(sink.bytes(&loaded, 0), std::slice::from_ref(&base));
    assert_eq!(sink.bytes(&loaded, 1), [base.clone(), app]);
    assert_eq!(sink.bytes(&loaded, 2), [base, other]);
    assert_eq!(loaded[1].layers[0], loaded[0].layers[0]);
}

#[test]
fn written_metadata_has_dockers_shape() {
    let (_, _, _, mut images) = three_images();
    let ids: Vec<ImageId> = images.iter().map(|i| i.id.clone()).collect();
    let archive = write_docker_archive(Vec::new(), &mut images).unwrap();
    let files = read_files(&archive);
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest[0]["Config"], format!("{}.json", ids[0].hex()));
    assert_eq!(manifest[2]["RepoTags"], serde_json::Value::Null);
    let layers = manifest[1]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    // Images sharing a base share its directory.
    assert_eq!(manifest[1]["Layers"][0], manifest[2]["Layers"][0]);
    // manifest.json names real files, never the symlinks: skopeo takes a
    // layer's size from the entry it names.
    let listed = entries(&archive);
    for image in manifest.as_array().unwrap() {
        for layer in image["Layers"].as_array().unwrap() {
            let entry = listed.iter().find(|(p, _, _)| p == layer.as_str().unwrap());
            assert!(
                matches!(entry, Some((_, tar::EntryType::Regular, n)) if *n > 0),
                "{layer}: {entry:?}"
            );
        }
    }

    let repos: serde_json::Value = serde_json::from_slice(&files["repositories"]).unwrap();
    let top = layers[1].as_str().unwrap().trim_end_matches("/layer.tar");
    assert_eq!(repos["localhost:5000/team/app"]["v1"], top);
    assert!(repos["busybox"]["1.36"].is_string());

    let v1: serde_json::Value = serde_json::from_slice(&files[&format!("{top}/json")]).unwrap();
    assert_eq!(v1["id"], top);
    assert_eq!(v1["config"]["Cmd"][0], "app");
    assert!(v1["parent"].is_string() && v1.get("rootfs").is_none());
    assert_eq!(files[&format!("{top}/VERSION")], b"1.0");

    // Deterministic: the same input gives the same bytes.
    let (_, _, _, mut again) = three_images();
    assert_eq!(
        write_docker_archive(Vec::new(), &mut again).unwrap(),
        archive
    );
}

fn read_files(archive: &[u8]) -> std::collections::HashMap<String, Vec<u8>> {
    let mut a = tar::Archive::new(archive);
    let mut out = std::collections::HashMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().into_owned();
        let mut v = Vec::new();
        e.read_to_end(&mut v).unwrap();
        out.insert(p, v);
    }
    out
}

#[test]
fn writer_rejects_bad_input_before_writing() {
    let layer = layer_tar("f", b"x");
    let mut wrong_id = vec![archive_image(&[&layer], "sh", &[])];
    wrong_id[0].id = ImageId::new(Digest::sha256(b"something else"));
    let err = write_docker_archive(Vec::new(), &mut wrong_id).unwrap_err();
    assert!(
        matches!(err, ImageArchiveError::ConfigMismatch { .. }),
        "{err}"
    );

    let mut bad_tag = vec![archive_image(&[&layer], "sh", &["Busybox:latest"])];
    let err = write_docker_archive(Vec::new(), &mut bad_tag).unwrap_err();
    assert!(err.to_string().contains("must be lowercase"), "{err}");

    let digest_only = format!("busybox@{}", Digest::sha256(b"m"));
    let mut no_tag = vec![archive_image(&[&layer], "sh", &[&digest_only])];
    let err = write_docker_archive(Vec::new(), &mut no_tag).unwrap_err();
    assert!(err.to_string().contains("has no tag"), "{err}");
}

#[test]
fn writer_rejects_layers_of_the_wrong_size() {
    let layer = layer_tar("f", b"x");
    for declared in [layer.len() as u64 - 1, layer.len() as u64 + 1] {
        let mut images = vec![archive_image(&[&layer], "sh", &[])];
        images[0].layers[0].size = declared;
        let err = write_docker_archive(Vec::new(), &mut images).unwrap_err();
        assert!(err.to_string().contains("declared"), "{err}");
    }
}

#[test]
fn writer_reports_open_failures() {
    let layer = layer_tar("f", b"x");
    let mut images = vec![archive_image(&[&layer], "sh", &[])];
    images[0].layers[0].open = Box::new(|| Err(io::Error::other("blob vanished")));
    let err = write_docker_archive(Vec::new(), &mut images).unwrap_err();
    assert!(err.to_string().contains("blob vanished"), "{err}");
}

/// Builds a tar from (path, content) files and (path, target) symlinks, in
/// the given order.
enum E<'a> {
    File(&'a str, &'a [u8]),
    Link(&'a str, &'a str),
}

fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        match e {
            E::File(p, c) => {
                h.set_size(c.len() as u64);
                h.set_mode(0o644);
                b.append_data(&mut h, p, *c).unwrap();
            }
            E::Link(p, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, p, t).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// A `docker save`-like archive of two images sharing a layer through a
/// symlink; `manifest_first` moves manifest.json to the front.
fn docker_save_like(manifest_first: bool) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let l1 = layer_tar("a", b"1");
    let l2 = layer_tar("b", b"2");
    let manifest = br#"[{"Config":"c1.json","RepoTags":["one:latest"],"Layers":["aaa/layer.tar"]},
        {"Config":"c2.json","RepoTags":null,"Layers":["bbb/layer.tar","ccc/layer.tar"]}]"#;
    let mut list = vec![
        E::File("aaa/VERSION", b"1.0"),
        E::File("aaa/layer.tar", &l1),
        E::Link("bbb/layer.tar", "../aaa/layer.tar"),
        E::File("c1.json", b"{\"c\":1}"),
        E::File("c2.json", b"{\"c\":2}"),
        E::File("./ccc/layer.tar", &l2),
        E::File("repositories", b"{}"),
    ];
    let m = E::File("manifest.json", manifest);
    if manifest_first {
        list.insert(0, m);
    } else {
        list.push(m);
    }
    (tar_of(&list), l1, l2)
}

#[test]
fn reads_docker_save_order_and_manifest_first_order() {
    for manifest_first in [false, true] {
        let (archive, l1, l2) = docker_save_like(manifest_first);
        let mut sink = MemSink::default();
        let images = read_image_archive(&archive[..], &mut sink).unwrap();
        assert_eq!(sink.layers.len(), 2, "the symlink is not a second layer");
        assert_eq!(images[0].config, b"{\"c\":1}");
        assert_eq!(images[0].repo_tags, ["one:latest"]);
        assert!(images[1].repo_tags.is_empty());
        assert_eq!(sink.bytes(&images, 1), [l1.clone(), l2]);
        assert_eq!(images[1].layers[0], images[0].layers[0]);
    }
}

#[test]
fn symlink_before_its_target_resolves() {
    let l1 = layer_tar("a", b"1");
    let archive = tar_of(&[
        E::File(
            "manifest.json",
            br#"[{"Config":"c.json","Layers":["x/layer.tar"]}]"#,
        ),
        E::Link("x/layer.tar", "../y/layer.tar"),
        E::File("c.json", b"{}"),
        E::File("y/layer.tar", &l1),
    ]);
    let mut sink = MemSink::default();
    let images = read_image_archive(&archive[..], &mut sink).unwrap();
    assert_eq!(sink.bytes(&images, 0), [l1]);
}

/// An OCI layout as `skopeo copy ... oci-archive:` or Docker 25 writes it.
fn oci_layout(layer: &[u8], annotations: serde_json::Value) -> (Vec<u8>, Vec<u8>) {
    let config = config_for(&[layer], "sh");
    let config_d = Digest::sha256(&config);
    let layer_d = Digest::sha256(layer);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_d.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_d.to_string(), "size": layer.len()}]
    }))
    .unwrap();
    let manifest_d = Digest::sha256(&manifest);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_d.to_string(), "size": manifest.len(),
                       "annotations": annotations}]
    }))
    .unwrap();
    let blob = |d: &Digest| format!("blobs/sha256/{}", d.hex());
    let (lp, cp, mp) = (blob(&layer_d), blob(&config_d), blob(&manifest_d));
    let archive = tar_of(&[
        E::File("oci-layout", crate::manifest::OCI_LAYOUT_FILE.as_bytes()),
        E::File(&lp, layer),
        E::File(&cp, &config),
        E::File(&mp, &manifest),
        E::File("index.json", &index),
    ]);
    (archive, config)
}

#[test]
fn reads_an_oci_layout() {
    let layer = layer_tar("bin/sh", b"sh");
    let cases = [
        (
            serde_json::json!({"io.containerd.image.name": "docker.io/library/busybox:latest",
                               "org.opencontainers.image.ref.name": "latest"}),
            vec!["docker.io/library/busybox:latest"],
            None,
        ),
        (
            serde_json::json!({"org.opencontainers.image.ref.name": "busybox:1.36"}),
            vec!["busybox:1.36"],
            None,
        ),
        (
            serde_json::json!({"org.opencontainers.image.ref.name": "1.36"}),
            vec![],
            Some("1.36".to_owned()),
        ),
    ];
    for (annotations, tags, ref_name) in cases {
        let (archive, config) = oci_layout(&layer, annotations);
        let mut sink = MemSink::default();
        let images = read_image_archive(&archive[..], &mut sink).unwrap();
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].config, config);
        assert_eq!(images[0].repo_tags, tags);
        assert_eq!(images[0].ref_name, ref_name);
        assert_eq!(sink.bytes(&images, 0), std::slice::from_ref(&layer));
    }
}

#[test]
fn oci_index_of_platforms_picks_the_hosts() {
    let layer = layer_tar("f", b"x");
    let (inner, config) = oci_layout(&layer, serde_json::json!({}));
    let files = read_files(&inner);
    let inner_index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let ours = inner_index["manifests"][0].clone();
    let mut platform_index = serde_json::json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json",
         "digest": Digest::sha256(b"not here").to_string(), "size": 1,
         "platform": {"architecture": "not-an-arch", "os": "linux"}},
        ours
    ]});
    platform_index["manifests"][1]["platform"] =
        serde_json::json!({"architecture": crate::manifest::host_architecture(), "os": "linux"});
    for (with_host, want_ok) in [(true, true), (false, false)] {
        if !with_host {
            platform_index["manifests"][1]["platform"]["architecture"] = "other".into();
        }
        let pi = serde_json::to_vec(&platform_index).unwrap();
        let pd = Digest::sha256(&pi);
        let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.index.v1+json",
             "digest": pd.to_string(), "size": pi.len()}]}))
        .unwrap();
        let mut list: Vec<E> = files
            .iter()
            .filter(|(p, _)| p.as_str() != "index.json")
            .map(|(p, c)| E::File(p, c))
            .collect();
        let pp = format!("blobs/sha256/{}", pd.hex());
        list.push(E::File(&pp, &pi));
        list.push(E::File("index.json", &index));
        let archive = tar_of(&list);
        let result = read_image_archive(&archive[..], &mut MemSink::default());
        match result {
            Ok(images) if want_ok => assert_eq!(images[0].config, config),
            Err(ImageArchiveError::NoPlatform { .. }) if !want_ok => {}
            other => panic!("with_host={with_host}: {other:?}"),
        }
    }
}

#[test]
fn a_layer_that_does_not_sniff_as_one_is_still_delivered() {
    // Docker 25 layout: manifest.json naming blobs; the layer blob is bytes
    // no sniffing recognises.
    let archive = tar_of(&[
        E::File("blobs/sha256/aa", b"odd layer"),
        E::File("blobs/sha256/cc", b"{}"),
        E::File(
            "manifest.json",
            br#"[{"Config":"blobs/sha256/cc","RepoTags":["x:y"],"Layers":["blobs/sha256/aa"]}]"#,
        ),
    ]);
    let mut sink = MemSink::default();
    let images = read_image_archive(&archive[..], &mut sink).unwrap();
    assert_eq!(sink.bytes(&images, 0), [b"odd layer".to_vec()]);
}

fn load_err(archive: &[u8]) -> ImageArchiveError {
    read_image_archive(archive, &mut MemSink::default()).unwrap_err()
}

#[test]
fn missing_manifest_is_an_error() {
    let err = load_err(&tar_of(&[E::File("c.json", b"{}")]));
    assert!(matches!(err, ImageArchiveError::MissingManifest), "{err}");
    assert!(err.to_string().contains("manifest.json"));
}

#[test]
fn manifest_naming_an_absent_layer_is_an_error() {
    let archive = tar_of(&[
        E::File("c.json", b"{}"),
        E::File(
            "manifest.json",
            br#"[{"Config":"c.json","RepoTags":["x:y"],"Layers":["gone/layer.tar"]}]"#,
        ),
    ]);
    let err = load_err(&archive);
    assert_eq!(
        err.to_string(),
        "image x:y: layer gone/layer.tar is not in the archive"
    );
    let archive = tar_of(&[E::File(
        "manifest.json",
        br#"[{"Config":"c.json","Layers":[]}]"#,
    )]);
    assert!(load_err(&archive)
        .to_string()
        .contains("config c.json is not in the archive"));
}

#[test]
fn malformed_json_is_an_error() {
    let err = load_err(&tar_of(&[E::File("manifest.json", b"[{\"Config\":")]));
    assert!(matches!(err, ImageArchiveError::Json { .. }), "{err}");
    assert!(
        err.to_string().starts_with("manifest.json is not valid"),
        "{err}"
    );
    let err = load_err(&tar_of(&[E::File("index.json", b"{\"manifests\":3}")]));
    assert!(
        err.to_string().starts_with("index.json is not valid"),
        "{err}"
    );
}

#[test]
fn truncated_archive_is_an_error() {
    let (archive, _, _) = docker_save_like(false);
    let listed = entries(&archive);
    assert!(listed.iter().any(|(p, _, _)| p == "aaa/layer.tar"));
    // Cut inside the first layer's data and at several other points: never
    // a success, never a panic.
    let sink_calls_before = |cut: usize| {
        let mut sink = MemSink::default();
        let r = read_image_archive(&archive[..cut], &mut sink);
        (r, sink.layers.len())
    };
    let (r, _) = sink_calls_before(512 * 3 + 700);
    assert!(
        matches!(r, Err(ImageArchiveError::Truncated { .. })),
        "{r:?}"
    );
    for cut in (0..archive.len() - 1024).step_by(97) {
        let (r, _) = sink_calls_before(cut);
        assert!(r.is_err(), "cut at {cut} loaded");
    }
}

#[test]
fn oversized_metadata_is_an_error_when_used() {
    let big = vec![b' '; METADATA_SIZE_LIMIT as usize + 1];
    let archive = tar_of(&[
        E::File("c.json", &big),
        E::File("manifest.json", br#"[{"Config":"c.json","Layers":[]}]"#),
    ]);
    let err = load_err(&archive);
    assert!(matches!(err, ImageArchiveError::TooLarge { .. }), "{err}");
}

#[test]
fn symlink_loops_are_an_error() {
    let archive = tar_of(&[
        E::Link("a/layer.tar", "../b/layer.tar"),
        E::Link("b/layer.tar", "../a/layer.tar"),
        E::File("c.json", b"{}"),
        E::File(
            "manifest.json",
            br#"[{"Config":"c.json","Layers":["a/layer.tar"]}]"#,
        ),
    ]);
    assert!(matches!(
        load_err(&archive),
        ImageArchiveError::LinkLoop { .. }
    ));
}

#[test]
fn sink_errors_carry_the_entry() {
    struct Full;
    impl LayerSink for Full {
        fn layer(&mut self, _: &mut dyn Read) -> io::Result<LayerHandle> {
            Err(io::Error::other("disk full"))
        }
    }
    let (archive, _, _) = docker_save_like(false);
    let err = read_image_archive(&archive[..], &mut Full).unwrap_err();
    assert_eq!(err.to_string(), "loading layer aaa/layer.tar: disk full");
}

/// skopeo is the independent judge of "a docker-archive": berth's output
/// must be one it accepts, layers and tags included.
#[test]
fn skopeo_accepts_written_archives() {
    if Command::new("skopeo").arg("--version").output().is_err() {
        eprintln!("skipping: skopeo is not installed (apt-get install skopeo)");
        return;
    }
    let (_, _, _, mut images) = three_images();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("save.tar");
    let file = std::fs::File::create(&path).unwrap();
    write_docker_archive(file, &mut images).unwrap();
    for (r, layers) in [
        ("busybox:1.36", 1),
        ("localhost:5000/team/app:v1", 2),
        ("@2", 2),
    ] {
        let out = Command::new("skopeo")
            .arg("inspect")
            .arg(format!("docker-archive:{}:{r}", path.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo inspect {r}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["Layers"].as_array().unwrap().len(), layers, "{v}");
        assert_eq!(v["Architecture"], "amd64");
    }
}

/// skopeo as an independent producer: it converts berth's archive into its
/// own docker-archive and an OCI-layout archive, and berth must read both
/// back to the same configs and layer bytes.
#[test]
fn reads_archives_skopeo_writes() {
    if Command::new("skopeo").arg("--version").output().is_err() {
        eprintln!("skipping: skopeo is not installed (apt-get install skopeo)");
        return;
    }
    let (base, app, _, mut images) = three_images();
    let app_config = images[1].config.clone();
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.tar");
    write_docker_archive(std::fs::File::create(&ours).unwrap(), &mut images).unwrap();
    let src = format!(
        "docker-archive:{}:localhost:5000/team/app:v1",
        ours.display()
    );
    for (kind, want_tags, want_ref_name) in [
        ("docker-archive", vec!["localhost:5000/team/app:v1"], None),
        ("oci-archive", vec!["localhost:5000/team/app:v1"], None),
    ] {
        let out_path = dir.path().join(format!("{kind}.tar"));
        let dest = format!("{kind}:{}:localhost:5000/team/app:v1", out_path.display());
        let out = Command::new("skopeo")
            .args(["copy", "--quiet", &src, &dest])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo copy to {kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut sink = MemSink::default();
        let file = std::fs::File::open(&out_path).unwrap();
        let loaded = read_image_archive(file, &mut sink).unwrap();
        assert_eq!(loaded.len(), 1, "{kind}");
        if kind == "docker-archive" {
            assert_eq!(loaded[0].config, app_config, "{kind}: config kept verbatim");
        } else {
            // Converting to OCI, skopeo rewrites the config itself.
            let got = crate::ImageConfig::from_slice(&loaded[0].config).unwrap();
            let want = crate::ImageConfig::from_slice(&app_config).unwrap();
            assert_eq!(got.rootfs.diff_ids, want.rootfs.diff_ids);
        }
        assert_eq!(loaded[0].repo_tags, want_tags, "{kind}");
        assert_eq!(loaded[0].ref_name, want_ref_name, "{kind}");
        let layers = sink.bytes(&loaded, 0);
        if kind == "docker-archive" {
            assert!(layers == [base.clone(), app.clone()], "{kind}: layer bytes");
        } else {
            // skopeo gzips OCI layers: they must have been sniffed as such.
            assert_eq!(layers.len(), 2);
            assert!(layers.iter().all(|l| l.starts_with(&[0x1f, 0x8b])));
        }
    }
}
