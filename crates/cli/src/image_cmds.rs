//! The image commands: import, images, tag, rmi, inspect, history, save,
//! load, image prune, info and system df.

use std::fs::File;
use std::io::{self, BufRead, BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use berth_engine::{
    parse_change, Engine, ImageSummary, ImportOptions, ImportSource, ListFilter, RemoveEvent,
};
use clap::Args;
use serde_json::{json, Value};

use crate::format::{ellipsis, go_time, human_size, since, tabulate, Format};
use crate::progress;

#[derive(Args)]
pub struct ImportArgs {
    /// Tarball to import, or `-` for standard input
    file: String,
    /// Repository and optional tag for the new image
    reference: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long)]
    change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long)]
    message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
}

pub fn import(engine: &Engine, a: ImportArgs) -> Result<u8> {
    let changes = a
        .change
        .iter()
        .map(|c| parse_change(c))
        .collect::<Result<Vec<_>, _>>()?;
    let is_url = a.file.contains("://");
    let (reader, total): (Box<dyn Read + Send>, Option<u64>) = if a.file == "-" {
        (Box::new(io::stdin()), None)
    } else if is_url {
        (berth_engine::open_url(&a.file)?, None)
    } else {
        let f = File::open(&a.file).with_context(|| format!("open {}", a.file))?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(f), len)
    };
    let reader = progress::Reading {
        inner: reader,
        bar: progress::bar("Importing", total),
    };
    let id = engine.import(
        ImportSource::Reader {
            // Docker names the source only for URLs: files stream as `-`.
            name: if is_url { a.file.clone() } else { "-".into() },
            reader: Box::new(reader),
        },
        ImportOptions {
            reference: a.reference,
            message: a.message,
            changes,
            progress: None,
        },
    )?;
    println!("{id}");
    Ok(0)
}

#[derive(Args)]
pub struct ImagesArgs {
    /// Only list images of this repository (and tag)
    repository: Option<String>,
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    all: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Filter output based on conditions provided (dangling=, reference=, label=)
    #[arg(short, long)]
    filter: Vec<String>,
    /// Pretty-print images using a Go template
    #[arg(long)]
    format: Option<String>,
}

/// One printed line of `images`: an image under one of its names.
struct ImageRow<'a> {
    image: &'a ImageSummary,
    repository: String,
    tag: String,
    digest: String,
}

fn image_rows(images: &[ImageSummary]) -> Vec<ImageRow<'_>> {
    let mut rows = Vec::new();
    for image in images {
        let digest_of = |repo: &str| {
            image
                .repo_digests
                .iter()
                .find_map(|d| {
                    d.split_once('@')
                        .filter(|(r, _)| *r == repo)
                        .map(|(_, d)| d)
                })
                .unwrap_or("<none>")
                .to_string()
        };
        for t in &image.repo_tags {
            let (repo, tag) = split_tag(t);
            rows.push(ImageRow {
                image,
                digest: digest_of(repo),
                repository: repo.to_string(),
                tag: tag.to_string(),
            });
        }
        if image.repo_tags.is_empty() {
            let (repository, digest) = match image.repo_digests.first() {
                Some(d) => {
                    let (r, dg) = d.split_once('@').unwrap_or((d, "<none>"));
                    (r.to_string(), dg.to_string())
                }
                None => ("<none>".to_string(), "<none>".to_string()),
            };
            rows.push(ImageRow {
                image,
                repository,
                tag: "<none>".into(),
                digest,
            });
        }
    }
    rows
}

/// `name:tag` split at the tag's colon (not a registry port's).
fn split_tag(t: &str) -> (&str, &str) {
    match t.rfind(':') {
        Some(i) if !t[i..].contains('/') => (&t[..i], &t[i + 1..]),
        _ => (t, "<none>"),
    }
}

fn short_id(id: &berth_engine::ImageId, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        id.short().to_string()
    }
}

pub fn images(engine: &Engine, a: ImagesArgs) -> Result<u8> {
    let mut filter = ListFilter {
        all: a.all,
        reference: a.repository.clone(),
        ..Default::default()
    };
    for f in &a.filter {
        match f.split_once('=') {
            Some(("dangling", v)) => {
                filter.dangling = Some(match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => bail!("invalid filter 'dangling={v}'"),
                })
            }
            Some(("reference", v)) => filter.reference = Some(v.to_string()),
            Some(("label", v)) => filter.labels.push(v.to_string()),
            _ => bail!("invalid filter '{f}'"),
        }
    }
    let list = engine.list_images(&filter)?;
    let rows = image_rows(&list);
    if a.quiet {
        let mut out = String::new();
        for r in &rows {
            out.push_str(&short_id(&r.image.id, a.no_trunc));
            out.push('\n');
        }
        print!("{out}");
        return Ok(0);
    }
    let values: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "Containers": "N/A",
                "CreatedAt": go_time(r.image.created),
                "CreatedSince": since(r.image.created),
                "Digest": r.digest,
                "ID": short_id(&r.image.id, a.no_trunc),
                "Repository": r.repository,
                "SharedSize": "N/A",
                "Size": human_size(r.image.size),
                "Tag": r.tag,
                "UniqueSize": "N/A",
                "VirtualSize": human_size(r.image.size),
            })
        })
        .collect();
    let default = if a.digests {
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    let format = Format::parse(a.format.as_deref().unwrap_or(default))?;
    print!(
        "{}",
        format.render_rows(
            &values,
            &[
                ("Repository", "REPOSITORY"),
                ("Tag", "TAG"),
                ("Digest", "DIGEST"),
                ("ID", "IMAGE ID"),
                ("CreatedSince", "CREATED"),
                ("CreatedAt", "CREATED AT"),
                ("Size", "SIZE"),
                ("VirtualSize", "VIRTUAL SIZE"),
                ("SharedSize", "SHARED SIZE"),
                ("UniqueSize", "UNIQUE SIZE"),
                ("Containers", "CONTAINERS"),
            ]
        )?
    );
    Ok(0)
}

#[derive(Args)]
pub struct TagArgs {
    source: String,
    target: String,
}

pub fn tag(engine: &Engine, a: TagArgs) -> Result<u8> {
    engine.tag(&a.source, &a.target)?;
    Ok(0)
}

#[derive(Args)]
pub struct RmiArgs {
    #[arg(required = true)]
    images: Vec<String>,
    /// Force removal of the image
    #[arg(short, long)]
    force: bool,
    /// Do not delete untagged parents (accepted for compatibility)
    #[arg(long)]
    no_prune: bool,
}

fn print_events(events: &[RemoveEvent]) {
    for e in events {
        match e {
            RemoveEvent::Untagged(n) => println!("Untagged: {n}"),
            RemoveEvent::Deleted(id) => println!("Deleted: {id}"),
        }
    }
}

pub fn rmi(engine: &Engine, a: RmiArgs) -> Result<u8> {
    let mut status = 0;
    for name in &a.images {
        match engine.remove_image(name, a.force) {
            Ok(events) => print_events(&events),
            Err(e) => {
                eprintln!("Error: {e}");
                status = 1;
            }
        }
    }
    Ok(status)
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

pub fn prune(engine: &Engine, a: PruneArgs) -> Result<u8> {
    if !a.force {
        let warning = if a.all {
            "WARNING! This will remove all images without at least one container associated to them."
        } else {
            "WARNING! This will remove all dangling images."
        };
        eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
        let mut answer = String::new();
        io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let report = engine.prune_images(a.all)?;
    if !report.events.is_empty() {
        println!("Deleted Images:");
        for e in &report.events {
            match e {
                RemoveEvent::Untagged(n) => println!("untagged: {n}"),
                RemoveEvent::Deleted(id) => println!("deleted: {id}"),
            }
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(report.reclaimed));
    Ok(0)
}

#[derive(Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    names: Vec<String>,
    /// Format the output using the given Go template
    #[arg(short, long)]
    format: Option<String>,
    /// Return JSON for specified type
    #[arg(long = "type")]
    kind: Option<String>,
}

/// `inspect`: containers first, then images, as Docker looks objects up;
/// `--type` narrows it to one kind. `noun` names what was not found.
pub fn inspect(engine: &Engine, a: InspectArgs, noun: &str) -> Result<u8> {
    let kind = a
        .kind
        .as_deref()
        .unwrap_or(if noun == "image" { "image" } else { "" });
    if !matches!(kind, "" | "image" | "container") {
        bail!("\"{kind}\" is not a valid value for --type");
    }
    let noun = if kind == "container" {
        "container"
    } else {
        noun
    };
    print_inspected(&a.names, a.format.as_deref(), noun, |name| {
        if kind != "image" {
            match engine.inspect_container(name) {
                Ok(doc) => return Ok(Some(doc)),
                Err(berth_engine::ContainerError::NoSuchContainer(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if kind == "container" {
            return Ok(None);
        }
        match engine.inspect_image(name) {
            Ok(doc) => Ok(Some(doc)),
            Err(berth_engine::EngineError::NoSuchImage(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    })
}

/// Prints the documents `lookup` finds for `names` as Docker's inspect
/// does (a JSON array, or each through `format`), then an error line for
/// each name it did not find; 1 if any was missing.
pub fn print_inspected(
    names: &[String],
    format: Option<&str>,
    noun: &str,
    mut lookup: impl FnMut(&str) -> Result<Option<serde_json::Value>>,
) -> Result<u8> {
    let format = format.map(Format::parse).transpose()?;
    let mut docs = Vec::new();
    let mut failures = Vec::new();
    for name in names {
        match lookup(name)? {
            Some(doc) => docs.push(doc),
            None => failures.push(format!("Error: No such {noun}: {name}")),
        }
    }
    let mut out = io::stdout().lock();
    match format {
        Some(f) => {
            for d in &docs {
                writeln!(out, "{}", f.render(d)?)?;
            }
        }
        None => {
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            serde::Serialize::serialize(&docs, &mut ser)?;
            out.write_all(&buf)?;
            writeln!(out)?;
        }
    }
    drop(out);
    for f in &failures {
        eprintln!("{f}");
    }
    Ok(u8::from(!failures.is_empty()))
}

#[derive(Args)]
pub struct HistoryArgs {
    image: String,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
    /// Pretty-print history using a Go template
    #[arg(long)]
    format: Option<String>,
}

pub fn history(engine: &Engine, a: HistoryArgs) -> Result<u8> {
    let rows = engine.history(&a.image)?;
    let id_of = |r: &berth_engine::HistoryRow| match &r.id {
        Some(id) => short_id(id, a.no_trunc),
        None => "<missing>".to_string(),
    };
    if a.quiet {
        for r in &rows {
            println!("{}", id_of(r));
        }
        return Ok(0);
    }
    let values: Vec<Value> = rows
        .iter()
        .map(|r| {
            let created_by = r.created_by.replace('\t', " ");
            json!({
                "ID": id_of(r),
                "CreatedSince": if a.human { since(r.created) } else { r.created.map(|t| t.to_rfc3339()).unwrap_or_default() },
                "CreatedAt": r.created.map(|t| t.to_rfc3339()).unwrap_or_default(),
                "CreatedBy": if a.no_trunc { created_by } else { ellipsis(&created_by, 45) },
                "Size": if a.human { human_size(r.size) } else { r.size.to_string() },
                "Comment": r.comment,
            })
        })
        .collect();
    let format =
        Format::parse(a.format.as_deref().unwrap_or(
            "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
        ))?;
    print!(
        "{}",
        format.render_rows(
            &values,
            &[
                ("ID", "IMAGE"),
                ("CreatedSince", "CREATED"),
                ("CreatedAt", "CREATED AT"),
                ("CreatedBy", "CREATED BY"),
                ("Size", "SIZE"),
                ("Comment", "COMMENT"),
            ]
        )?
    );
    Ok(0)
}

#[derive(Args)]
pub struct SaveArgs {
    #[arg(required = true)]
    images: Vec<String>,
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<PathBuf>,
}

pub fn save(engine: &Engine, a: SaveArgs) -> Result<u8> {
    match &a.output {
        Some(path) => {
            // Write beside the target and rename, so a failed save never
            // leaves a truncated archive under the requested name.
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
            let dir = dir.unwrap_or(std::path::Path::new("."));
            let tmp = tempfile_in(dir)?;
            let file = tmp.reopen()?;
            let out = progress::Writing {
                inner: BufWriter::with_capacity(1 << 20, file),
                bar: progress::bar("Saving", None),
            };
            engine.save(&a.images, out)?;
            tmp.persist(path)
                .with_context(|| format!("write {}", path.display()))?;
        }
        None => {
            if io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let out = progress::Writing {
                inner: BufWriter::with_capacity(1 << 20, io::stdout().lock()),
                bar: progress::bar("Saving", None),
            };
            engine.save(&a.images, out)?;
        }
    }
    Ok(0)
}

fn tempfile_in(dir: &std::path::Path) -> Result<TempOut> {
    TempOut::new(dir)
}

/// A file written under a temporary name and renamed into place.
struct TempOut {
    path: PathBuf,
    kept: bool,
}

impl TempOut {
    fn new(dir: &std::path::Path) -> Result<TempOut> {
        let path = dir.join(format!(".berth-save-{}.tmp", std::process::id()));
        File::create(&path).with_context(|| format!("create {}", path.display()))?;
        Ok(TempOut { path, kept: false })
    }

    fn reopen(&self) -> io::Result<File> {
        File::options().write(true).open(&self.path)
    }

    fn persist(mut self, to: &std::path::Path) -> io::Result<()> {
        File::open(&self.path)?.sync_all()?;
        std::fs::rename(&self.path, to)?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for TempOut {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[derive(Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    quiet: bool,
}

pub fn load(engine: &Engine, a: LoadArgs) -> Result<u8> {
    let (reader, total): (Box<dyn Read>, Option<u64>) = match &a.input {
        Some(p) => {
            let f = File::open(p).with_context(|| format!("open {}", p.display()))?;
            let len = f.metadata().ok().map(|m| m.len());
            (Box::new(f), len)
        }
        None => {
            if io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            (Box::new(io::stdin().lock()), None)
        }
    };
    let reader = progress::Reading {
        inner: io::BufReader::with_capacity(1 << 20, reader),
        bar: if a.quiet {
            None
        } else {
            progress::bar("Loading", total)
        },
    };
    let report = engine.load(reader)?;
    if !a.quiet {
        for t in &report.tags {
            println!("Loaded image: {t}");
        }
        for id in &report.untagged {
            println!("Loaded image ID: {id}");
        }
    }
    Ok(0)
}

#[derive(Args)]
pub struct InfoArgs {
    /// Format the output using the given Go template
    #[arg(short, long)]
    format: Option<String>,
}

pub fn info(engine: &Engine, a: InfoArgs) -> Result<u8> {
    let i = engine.info()?;
    let doc = json!({
        "Containers": i.containers,
        "ContainersRunning": 0,
        "ContainersPaused": 0,
        "ContainersStopped": i.containers,
        "Images": i.images,
        "Layers": i.layers,
        "Driver": i.driver,
        "DockerRootDir": i.root.display().to_string(),
        "Rootless": i.rootless,
        "KernelVersion": i.kernel,
        "OperatingSystem": i.os,
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "NCPU": i.cpus,
        "MemTotal": i.memory,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
    });
    if let Some(f) = a.format {
        println!("{}", Format::parse(&f)?.render(&doc)?);
        return Ok(0);
    }
    let mut s = String::new();
    s.push_str("Server:\n");
    s.push_str(&format!(
        " Containers: {}\n  Running: 0\n  Paused: 0\n  Stopped: {}\n",
        i.containers, i.containers
    ));
    s.push_str(&format!(" Images: {}\n", i.images));
    s.push_str(&format!(" Layers: {}\n", i.layers));
    s.push_str(&format!(
        " Server Version: berth {}\n",
        env!("CARGO_PKG_VERSION")
    ));
    s.push_str(&format!(" Storage Driver: {}\n", i.driver));
    s.push_str(&format!(" Rootless: {}\n", i.rootless));
    s.push_str(&format!(" Kernel Version: {}\n", i.kernel));
    s.push_str(&format!(" Operating System: {}\n", i.os));
    s.push_str(" OSType: linux\n");
    s.push_str(&format!(" Architecture: {}\n", std::env::consts::ARCH));
    s.push_str(&format!(" CPUs: {}\n", i.cpus));
    s.push_str(&format!(" Total Memory: {}\n", human_binary(i.memory)));
    s.push_str(&format!(" Berth Root Dir: {}\n", i.root.display()));
    print!("{s}");
    Ok(0)
}

/// go-units `BytesSize` (binary units, two decimals) as `info` shows memory.
fn human_binary(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.4}")
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
        + UNITS[i]
}

pub fn df(engine: &Engine) -> Result<u8> {
    let u = engine.disk_usage()?;
    let volumes = engine.volume_usage()?;
    let pct = |r: u64, s: u64| match (r * 100).checked_div(s) {
        Some(p) => format!("{} ({p}%)", human_size(r)),
        None => "0B".to_string(),
    };
    let rows = vec![
        vec!["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
            .into_iter()
            .map(String::from)
            .collect(),
        vec![
            "Images".to_string(),
            u.total.to_string(),
            u.active.to_string(),
            human_size(u.size),
            pct(u.reclaimable, u.size),
        ],
        vec![
            "Containers".into(),
            "0".into(),
            "0".into(),
            "0B".into(),
            "0B".into(),
        ],
        vec![
            "Local Volumes".into(),
            volumes.0.to_string(),
            volumes.1.to_string(),
            human_size(volumes.2),
            pct(volumes.3, volumes.2),
        ],
        vec![
            "Build Cache".into(),
            "0".into(),
            "0".into(),
            "0B".into(),
            "0B".into(),
        ],
    ];
    print!("{}", tabulate(&rows));
    Ok(0)
}
