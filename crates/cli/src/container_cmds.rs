//! The container commands: run, create, start, ps, rm and diff.
//!
//! Like Docker's CLI, a failure of berth itself while creating or running a
//! container exits 125 (126 or 127 when the command cannot be run), so the
//! container's own codes stay distinguishable.

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
    /// Stop one or more running containers
    Stop(crate::lifecycle_cmds::StopArgs),
    /// Kill one or more running containers
    Kill(crate::lifecycle_cmds::KillArgs),
    /// Restart one or more containers
    Restart(crate::lifecycle_cmds::StopArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(crate::lifecycle_cmds::WaitArgs),
    /// Fetch the logs of a container
    Logs(crate::lifecycle_cmds::LogsArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(crate::lifecycle_cmds::AttachArgs),
    /// Run a command in a running container
    Exec(crate::lifecycle_cmds::ExecArgs),
    /// Display the running processes of a container
    Top(crate::lifecycle_cmds::TopArgs),
    /// Rename a container
    Rename(crate::lifecycle_cmds::RenameArgs),
    /// Pause all processes within one or more containers
    Pause(crate::lifecycle_cmds::PauseArgs),
    /// Unpause all processes within one or more containers
    Unpause(crate::lifecycle_cmds::PauseArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(crate::lifecycle_cmds::StatsArgs),
    /// Create a new image from a container's changes
    Commit(crate::commit_cmds::CommitArgs),
    /// Export a container's filesystem as a tar archive
    Export(crate::commit_cmds::ExportArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(crate::commit_cmds::CpArgs),
    /// Remove all stopped containers
    Prune(crate::commit_cmds::ContainerPruneArgs),
}

pub fn dispatch(engine: &Engine, cmd: ContainerCmd) -> Result<u8> {
    use crate::lifecycle_cmds as l;
    match cmd {
        ContainerCmd::Run(a) => run(engine, a),
        ContainerCmd::Create(a) => create(engine, a),
        ContainerCmd::Start(a) => start(engine, a),
        ContainerCmd::Ls(a) => ps(engine, a),
        ContainerCmd::Rm(a) => rm(engine, a),
        ContainerCmd::Diff(a) => diff(engine, a),
        ContainerCmd::Inspect(a) => inspect(engine, a),
        ContainerCmd::Stop(a) => l::stop(engine, a),
        ContainerCmd::Kill(a) => l::kill(engine, a),
        ContainerCmd::Restart(a) => l::restart(engine, a),
        ContainerCmd::Wait(a) => l::wait(engine, a),
        ContainerCmd::Logs(a) => l::logs(engine, a),
        ContainerCmd::Attach(a) => l::attach(engine, a),
        ContainerCmd::Exec(a) => l::exec(engine, a),
        ContainerCmd::Top(a) => l::top(engine, a),
        ContainerCmd::Rename(a) => l::rename(engine, a),
        ContainerCmd::Pause(a) => l::pause(engine, a),
        ContainerCmd::Unpause(a) => l::unpause(engine, a),
        ContainerCmd::Stats(a) => l::stats(engine, a),
        ContainerCmd::Commit(a) => crate::commit_cmds::commit(engine, a),
        ContainerCmd::Export(a) => crate::commit_cmds::export(engine, a),
        ContainerCmd::Cp(a) => crate::commit_cmds::cp(engine, a),
        ContainerCmd::Prune(a) => crate::commit_cmds::container_prune(engine, a),
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
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Run container in background and print container ID (run only)
    #[arg(short, long)]
    detach: bool,
    #[command(flatten)]
    resources: crate::resource_flags::ResourceArgs,
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
            tty: self.tty,
            interactive: self.interactive,
            detach: self.detach,
            resources: self.resources.options(),
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
    use std::io::IsTerminal;
    if a.tty && a.interactive && !a.detach && !std::io::stdin().is_terminal() {
        eprintln!("the input device is not a TTY");
        return Ok(1);
    }
    let id = match engine.create_container(&a.options()) {
        Ok(id) => id,
        Err(e) => return Ok(failed(&e)),
    };
    if a.detach {
        return match engine.start_detached(&id) {
            Ok(id) => {
                println!("{id}");
                Ok(0)
            }
            Err(e) => {
                if a.rm {
                    let _ = engine.remove_container_and_volumes(&id, true);
                }
                Ok(failed(&e))
            }
        };
    }
    log::debug!("run: created {}", &id[..12]);
    let result = engine.run_attached(&id, a.interactive);
    if a.rm {
        if let Err(e) = engine.remove_container_and_volumes(&id, true) {
            eprintln!("berth: removing container {}: {e}", &id[..12]);
        }
        log::debug!("run: removed {}", &id[..12]);
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
    if !a.attach && !a.interactive {
        let mut failed_any = Vec::new();
        for c in &a.containers {
            match engine.start_detached(c) {
                Ok(_) => println!("{c}"),
                Err(e) => {
                    eprintln!("Error response from daemon: {e}");
                    failed_any.push(c.as_str());
                }
            }
        }
        if failed_any.is_empty() {
            return Ok(0);
        }
        eprintln!(
            "Error: failed to start containers: {}",
            failed_any.join(", ")
        );
        return Ok(1);
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
    /// Display total file sizes
    #[arg(short, long)]
    size: bool,
    /// Filter output based on conditions provided (id, name, status, exited, label, ancestor)
    #[arg(short, long)]
    filter: Vec<String>,
}

/// One `ps -f KEY=VALUE`.
fn ps_filter(f: &str) -> Result<(String, String)> {
    let (k, v) = f
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value)"))?;
    const KEYS: &[&str] = &["id", "name", "status", "exited", "label", "ancestor"];
    if !KEYS.contains(&k) {
        anyhow::bail!("invalid filter '{k}'");
    }
    if k == "status"
        && ![
            "created",
            "restarting",
            "running",
            "removing",
            "paused",
            "exited",
            "dead",
        ]
        .contains(&v)
    {
        anyhow::bail!("invalid filter 'status={v}': Unrecognised filter value for status: {v}");
    }
    if k == "exited" && v.parse::<i32>().is_err() {
        anyhow::bail!("invalid filter 'exited={v}'");
    }
    Ok((k.to_string(), v.to_string()))
}

/// Docker's filter semantics: values of one key are alternatives, keys
/// must all match.
fn ps_matches(r: &ContainerRecord, filters: &[(String, String)]) -> bool {
    let mut keys: Vec<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
    keys.dedup();
    keys.iter().all(|key| {
        filters
            .iter()
            .filter(|(k, _)| k == key)
            .any(|(_, v)| match *key {
                "id" => r.id.starts_with(v.as_str()),
                "name" => r.short_name().contains(v.as_str()),
                "status" => {
                    let s = if r.state.paused {
                        "paused"
                    } else {
                        r.state.status.as_str()
                    };
                    s == v
                }
                "exited" => r.state.status == "exited" && r.state.exit_code.to_string() == *v,
                "label" => {
                    let labels = r.config.get("Labels").and_then(Value::as_object);
                    match v.split_once('=') {
                        Some((lk, lv)) => {
                            labels.and_then(|l| l.get(lk)).and_then(Value::as_str) == Some(lv)
                        }
                        None => labels.is_some_and(|l| l.contains_key(v.as_str())),
                    }
                }
                "ancestor" => {
                    let name = r.image_name();
                    name == *v
                        || name == format!("{v}:latest")
                        || v.strip_suffix(":latest") == Some(name.as_str())
                        || r.image
                            .trim_start_matches("sha256:")
                            .starts_with(v.trim_start_matches("sha256:"))
                }
                _ => false,
            })
    })
}

/// Docker's STATUS column: "Created", "Up 3 seconds", "Exited (0) 2 minutes ago".
fn status(r: &ContainerRecord) -> String {
    let at = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    match r.state.status.as_str() {
        "running" | "paused" => {
            let up = match at(&r.state.started_at) {
                Some(t) => format!("Up {}", human_duration(Utc::now() - t)),
                None => "Up".into(),
            };
            if r.state.paused {
                format!("{up} (Paused)")
            } else {
                up
            }
        }
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
    let filters = a
        .filter
        .iter()
        .map(|f| ps_filter(f))
        .collect::<Result<Vec<_>>>()?;
    // A status or exited filter looks at every container, as Docker's.
    let all = all || filters.iter().any(|(k, _)| k == "status" || k == "exited");
    let mut records: Vec<ContainerRecord> = engine
        .list_containers()?
        .into_iter()
        .filter(|r| all || r.state.running)
        .filter(|r| ps_matches(r, &filters))
        .collect();
    if let Ok(n) = usize::try_from(last) {
        records.truncate(n);
    }
    let mut rows: Vec<Value> = records.iter().map(|r| ps_row(r, !a.no_trunc)).collect();
    if a.size || a.format.as_deref().is_some_and(|f| f.contains(".Size")) {
        for (row, (rw, virt)) in rows.iter_mut().zip(engine.container_sizes(&records)?) {
            row["Size"] = json!(format!(
                "{} (virtual {})",
                crate::format::human_size(rw),
                crate::format::human_size(virt)
            ));
        }
    }
    if a.quiet {
        for row in &rows {
            println!("{}", row["ID"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    let table = if a.size {
        format!("{PS_TABLE}\t{{{{.Size}}}}")
    } else {
        PS_TABLE.to_string()
    };
    let format = Format::parse(a.format.as_deref().unwrap_or(&table))?;
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
    crate::image_cmds::print_inspected(&a.containers, a.format.as_deref(), "container", |name| {
        match engine.inspect_container(name) {
            Ok(doc) => Ok(Some(doc)),
            Err(ContainerError::NoSuchContainer(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    })
}
