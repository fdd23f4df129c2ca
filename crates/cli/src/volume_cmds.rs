//! `berth volume create|ls|inspect|rm|prune`, printed as Docker prints them.

use std::io::{self, BufRead, Write};

use anyhow::Result;
use berth_engine::{Engine, Volume, VolumeCreateOptions, VolumeError, VolumeFilter};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::format::{human_size, Format};

/// `berth volume ...`.
#[derive(Subcommand)]
pub enum VolumeCmd {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused local volumes
    Prune(PruneArgs),
}

pub fn dispatch(engine: &Engine, cmd: VolumeCmd) -> Result<u8> {
    match cmd {
        VolumeCmd::Create(a) => create(engine, a),
        VolumeCmd::Ls(a) => ls(engine, a),
        VolumeCmd::Inspect(a) => inspect(engine, a),
        VolumeCmd::Rm(a) => rm(engine, a),
        VolumeCmd::Prune(a) => prune(engine, a),
    }
}

/// Prints a volume failure as Docker's CLI does; returns the exit code.
fn failed(e: &VolumeError) -> u8 {
    if e.from_daemon() {
        eprintln!("Error response from daemon: {e}");
    } else {
        eprintln!("Error: {e}");
    }
    1
}

#[derive(Args)]
pub struct CreateArgs {
    /// Volume driver name
    #[arg(short, long)]
    driver: Option<String>,
    /// Set metadata for a volume
    #[arg(long)]
    label: Vec<String>,
    /// Set driver specific options
    #[arg(short, long)]
    opt: Vec<String>,
    /// Specify volume name
    #[arg(long = "name")]
    name_flag: Option<String>,
    /// The volume's name (generated when absent)
    name: Option<String>,
}

pub fn create(engine: &Engine, a: CreateArgs) -> Result<u8> {
    let name = match (a.name, a.name_flag) {
        (Some(n), Some(f)) if n != f => {
            eprintln!(
                "Conflicting options: either specify --name or provide positional arg, not both"
            );
            return Ok(125);
        }
        (n, f) => n.or(f),
    };
    let opts = VolumeCreateOptions {
        name,
        driver: a.driver,
        labels: a.label,
        options: a.opt,
    };
    match engine.create_volume(&opts) {
        Ok(v) => {
            println!("{}", v.name);
            Ok(0)
        }
        Err(e) => Ok(failed(&e)),
    }
}

#[derive(Args)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short, long)]
    quiet: bool,
    /// Provide filter values (e.g. 'dangling=true')
    #[arg(short, long)]
    filter: Vec<String>,
    /// Pretty-print volumes using a Go template
    #[arg(long)]
    format: Option<String>,
}

/// The `--format` fields of one `volume ls` row.
fn ls_row(v: &Volume) -> Value {
    let labels = v
        .labels
        .iter()
        .flatten()
        .map(|(k, val)| format!("{k}={val}"))
        .collect::<Vec<_>>()
        .join(",");
    json!({
        "Name": v.name,
        "Driver": "local",
        "Scope": "local",
        "Mountpoint": v.mountpoint.display().to_string(),
        "Labels": labels,
        "Links": "N/A",
        "Size": "N/A",
    })
}

const LS_HEADERS: &[(&str, &str)] = &[
    ("Name", "VOLUME NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Labels", "LABELS"),
    ("Links", "LINKS"),
    ("Size", "SIZE"),
];

pub fn ls(engine: &Engine, a: LsArgs) -> Result<u8> {
    let filter = match VolumeFilter::parse(&a.filter) {
        Ok(f) => f,
        Err(e) => return Ok(failed(&e)),
    };
    let volumes = match engine.list_volumes(&filter) {
        Ok(v) => v,
        Err(e) => return Ok(failed(&e)),
    };
    if a.quiet {
        for v in &volumes {
            println!("{}", v.name);
        }
        return Ok(0);
    }
    let format = Format::parse(
        a.format
            .as_deref()
            .unwrap_or("table {{.Driver}}\t{{.Name}}"),
    )?;
    let rows: Vec<Value> = volumes.iter().map(ls_row).collect();
    print!("{}", format.render_rows(&rows, LS_HEADERS)?);
    Ok(0)
}

#[derive(Args)]
pub struct InspectArgs {
    /// Format the output using the given Go template
    #[arg(short, long)]
    format: Option<String>,
    /// The volumes
    #[arg(required = true)]
    volumes: Vec<String>,
}

pub fn inspect(engine: &Engine, a: InspectArgs) -> Result<u8> {
    let format = a.format.as_deref().map(Format::parse).transpose()?;
    let mut docs = Vec::new();
    let mut failures = Vec::new();
    for name in &a.volumes {
        match engine.volume(name) {
            Ok(v) => docs.push(v.inspect()),
            Err(e) => failures.push(e),
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
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
            serde::Serialize::serialize(&docs, &mut ser)?;
            writeln!(out)?;
        }
    }
    drop(out);
    let mut code = 0;
    for e in &failures {
        code = failed(e);
    }
    Ok(code)
}

#[derive(Args)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short, long)]
    force: bool,
    /// The volumes
    #[arg(required = true)]
    volumes: Vec<String>,
}

pub fn rm(engine: &Engine, a: RmArgs) -> Result<u8> {
    let mut code = 0;
    for name in &a.volumes {
        match engine.remove_volume(name, a.force) {
            Ok(()) => println!("{name}"),
            Err(e) => code = failed(&e),
        }
    }
    Ok(code)
}

#[derive(Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

pub fn prune(engine: &Engine, a: PruneArgs) -> Result<u8> {
    if !a.force {
        eprint!("WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] ");
        let mut answer = String::new();
        io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let report = match engine.prune_volumes() {
        Ok(r) => r,
        Err(e) => return Ok(failed(&e)),
    };
    if !report.deleted.is_empty() {
        println!("Deleted Volumes:");
        for name in &report.deleted {
            println!("{name}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(report.reclaimed));
    Ok(0)
}
