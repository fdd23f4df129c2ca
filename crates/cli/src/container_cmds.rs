//! The container commands: run, create, start, ps, rm and diff.
//!
//! Like Docker's CLI, a failure of berth itself while creating or running a
//! container exits 125 (126 or 127 when the command cannot be run), so the
//! container's own codes stay distinguishable.

use std::io::Write;

use anyhow::Result;
use berth_engine::{ContainerError, ContainerRecord, CreateOptions, Engine};
use chrono::Utc;
use clap::{Args, Subcommand};

use serde_json::{json, Value};

use crate::format::{ellipsis, go_time, human_duration, since, Format};

/// `berth container ...`.
#[derive(Subcommand)]
pub enum ContainerCmd {
    /// Create and run a new container from an image
    Run(CreateArgs),
    /// Create a new container
    Create(CreateArgs),
    /// Start a stopped container
    Start(StartArgs),
    /// List containers
    #[command(alias = "ps", alias = "list")]
    Ls(PsArgs),
    /// Remove one or more containers
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(DiffArgs),
    /// Display detailed information on one or more containers
    Inspect(InspectArgs),
}

pub fn dispatch(engine: &Engine, cmd: ContainerCmd) -> Result<u8> {
    match cmd {
        ContainerCmd::Run(a) => run(engine, a),
        ContainerCmd::Create(a) => create(engine, a),
        ContainerCmd::Start(a) => start(engine, a),
        ContainerCmd::Ls(a) => ps(engine, a),
        ContainerCmd::Rm(a) => rm(engine, a),
        ContainerCmd::Diff(a) => diff(engine, a),
        ContainerCmd::Inspect(a) => inspect(engine, a),
    }
}

#[derive(Args)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    /// Print help (`-h` is --hostname, as in Docker)
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Assign a name to the container
    #[arg(long)]
    name: Option<String>,
    /// Set environment variables
    #[arg(short, long)]
    env: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    user: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    entrypoint: Option<String>,
    /// Connect a container to a network (none or host)
    #[arg(long)]
    network: Option<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    read_only: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Keep STDIN open and pass it to the container
    #[arg(short, long)]
    interactive: bool,
    /// Bind mount a volume ([SRC:]DST[:ro|rw])
    #[arg(short = 'v', long = "volume")]
    volume: Vec<String>,
    /// Attach a filesystem mount to the container (type=bind|volume|tmpfs,...)
    #[arg(long)]
    mount: Vec<String>,
    /// Mount a tmpfs directory (DST[:OPTIONS])
    #[arg(long)]
    tmpfs: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long)]
    volumes_from: Vec<String>,
    /// The image to create the container from
    image: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

impl CreateArgs {
    fn options(&self) -> CreateOptions {
        CreateOptions {
            image: self.image.clone(),
            cmd: self.command.clone(),
            entrypoint: self.entrypoint.clone(),
            env: self.env.clone(),
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            hostname: self.hostname.clone(),
            name: self.name.clone(),
            network: self.network.clone(),
            read_only: self.read_only,
            auto_remove: self.rm,
            volumes: self.volume.clone(),
            mounts: self.mount.clone(),
            tmpfs: self.tmpfs.clone(),
            volumes_from: self.volumes_from.clone(),
        }
    }
}

/// Prints a container failure as Docker's CLI does and returns its code.
fn failed(e: &ContainerError) -> u8 {
    let msg = e.to_string();
    let stop = if msg.ends_with('.') { "" } else { "." };
    eprintln!("berth: Error response from daemon: {msg}{stop}");
    e.exit_code()
}

pub fn create(engine: &Engine, a: CreateArgs) -> Result<u8> {
    match engine.create_container(&a.options()) {
        Ok(id) => {
            println!("{id}");
            Ok(0)
        }
        Err(e) => Ok(failed(&e)),
    }
}

pub fn run(engine: &Engine, a: CreateArgs) -> Result<u8> {
    let id = match engine.create_container(&a.options()) {
        Ok(id) => id,
        Err(e) => return Ok(failed(&e)),
    };
    let result = engine.run_attached(&id, a.interactive);
    if a.rm {
        if let Err(e) = engine.remove_container_and_volumes(&id, true) {
            eprintln!("berth: removing container {}: {e}", &id[..12]);
        }
    }
    match result {
        Ok(code) => Ok(code.clamp(0, 255) as u8),
        Err(e) => Ok(failed(&e)),
    }
}

#[derive(Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    interactive: bool,
    /// The containers to start
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn start(engine: &Engine, a: StartArgs) -> Result<u8> {
    if !a.attach {
        anyhow::bail!("starting in the background needs the container monitor, which is not there yet: use `start -a`");
    }
    if a.containers.len() != 1 {
        anyhow::bail!("you cannot start and attach multiple containers at once");
    }
    let name = &a.containers[0];
    let result = engine.run_attached(name, a.interactive);
    let auto_remove = engine
        .container(name)
        .map(|r| r.host_config.auto_remove)
        .unwrap_or(false);
    if auto_remove {
        if let Err(e) = engine.remove_container_and_volumes(name, true) {
            eprintln!("berth: removing container {name}: {e}");
        }
    }
    match result {
        Ok(code) => Ok(code.clamp(0, 255) as u8),
        Err(e) => Ok(failed(&e)),
    }
}

#[derive(Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long, default_value_t = -1, allow_negative_numbers = true)]
    last: i64,
    /// Show the latest created container (includes all states); no `-l`:
    /// berth's global `-l` is --log-level
    #[arg(long)]
    latest: bool,
    /// Pretty-print containers using a Go template
    #[arg(long)]
    format: Option<String>,
}

/// Docker's STATUS column: "Created", "Up 3 seconds", "Exited (0) 2 minutes ago".
fn status(r: &ContainerRecord) -> String {
    let at = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    match r.state.status.as_str() {
        "running" => match at(&r.state.started_at) {
            Some(t) => format!("Up {}", human_duration(Utc::now() - t)),
            None => "Up".into(),
        },
        "exited" => format!(
            "Exited ({}) {}",
            r.state.exit_code,
            since(at(&r.state.finished_at))
        ),
        "created" => "Created".into(),
        other => other.to_string(),
    }
}

/// The `--format` fields of one `ps` row, as Docker names them.
fn ps_row(r: &ContainerRecord, trunc: bool) -> Value {
    let (id, command) = if trunc {
        (r.id[..12].to_string(), ellipsis(&r.command(), 20))
    } else {
        (r.id.clone(), r.command())
    };
    json!({
        "ID": id,
        "Image": r.image_name(),
        "Command": format!("{command:?}"),
        "CreatedAt": go_time(r.created_at()),
        "RunningFor": since(r.created_at()),
        "Ports": "",
        "State": r.state.status,
        "Status": status(r),
        "Size": "",
        "Names": r.short_name(),
        "Labels": "",
        "Mounts": "",
        "Networks": "",
    })
}

const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
];

const PS_TABLE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

pub fn ps(engine: &Engine, a: PsArgs) -> Result<u8> {
    let last = if a.latest { 1 } else { a.last };
    let all = a.all || last >= 0;
    let mut records: Vec<ContainerRecord> = engine
        .list_containers()?
        .into_iter()
        .filter(|r| all || r.state.running)
        .collect();
    if let Ok(n) = usize::try_from(last) {
        records.truncate(n);
    }
    let rows: Vec<Value> = records.iter().map(|r| ps_row(r, !a.no_trunc)).collect();
    if a.quiet {
        for row in &rows {
            println!("{}", row["ID"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    let format = Format::parse(a.format.as_deref().unwrap_or(PS_TABLE))?;
    print!("{}", format.render_rows(&rows, PS_HEADERS)?);
    Ok(0)
}

#[derive(Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    volumes: bool,
    /// The containers to remove
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn rm(engine: &Engine, a: RmArgs) -> Result<u8> {
    let mut code = 0;
    for name in &a.containers {
        let removed = if a.volumes {
            engine.remove_container_and_volumes(name, a.force)
        } else {
            engine.remove_container(name, a.force)
        };
        match removed {
            Ok(_) => println!("{name}"),
            Err(e) => {
                eprintln!("Error: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

#[derive(Args)]
pub struct DiffArgs {
    /// The container
    container: String,
}

pub fn diff(engine: &Engine, a: DiffArgs) -> Result<u8> {
    for change in engine.container_changes(&a.container)? {
        println!("{change}");
    }
    Ok(0)
}

#[derive(Args)]
pub struct InspectArgs {
    /// Format the output using the given Go template
    #[arg(short, long)]
    format: Option<String>,
    /// The containers
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn inspect(engine: &Engine, a: InspectArgs) -> Result<u8> {
    let format = a.format.as_deref().map(Format::parse).transpose()?;
    let mut docs = Vec::new();
    let mut failures = Vec::new();
    for name in &a.containers {
        match engine.inspect_container(name) {
            Ok(doc) => docs.push(doc),
            Err(ContainerError::NoSuchContainer(_)) => {
                failures.push(format!("Error: No such container: {name}"))
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut out = std::io::stdout().lock();
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
    for f in &failures {
        eprintln!("{f}");
    }
    Ok(u8::from(!failures.is_empty()))
}
