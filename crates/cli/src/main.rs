//! `berth`: the command line. It parses Docker's flags, calls the engine and
//! prints what comes back the way Docker does; it holds no Docker semantics
//! of its own.

mod commit_cmds;
mod container_cmds;
mod format;
mod image_cmds;
mod lifecycle_cmds;
mod progress;
mod resource_flags;
mod volume_cmds;

use std::path::PathBuf;
use std::process::ExitCode;

use berth_engine::{Engine, EngineOptions};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A daemonless, rootless-first container engine with Docker's command line"
)]
struct Cli {
    /// Root of berth's storage (default: /var/lib/berth as root, else $XDG_DATA_HOME/berth).
    #[arg(long, global = true, env = "BERTH_ROOT")]
    root: Option<PathBuf>,
    /// Storage driver: overlay, fuse or vfs (default: the first that works).
    #[arg(long, global = true, env = "BERTH_STORAGE_DRIVER")]
    storage_driver: Option<String>,
    /// Log level: error, warn, info, debug.
    #[arg(short = 'l', long, global = true, default_value = "warn")]
    log_level: String,
    /// Debug output (same as --log-level debug).
    #[arg(short = 'D', long, global = true)]
    debug: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Import the contents from a tarball to create a filesystem image
    Import(image_cmds::ImportArgs),
    /// List images
    Images(image_cmds::ImagesArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(image_cmds::TagArgs),
    /// Remove one or more images
    Rmi(image_cmds::RmiArgs),
    /// Return low-level information on images
    Inspect(image_cmds::InspectArgs),
    /// Show the history of an image
    History(image_cmds::HistoryArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(image_cmds::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(image_cmds::LoadArgs),
    /// Display system-wide information
    Info(image_cmds::InfoArgs),
    /// Create and run a new container from an image
    Run(container_cmds::CreateArgs),
    /// Create a new container
    Create(container_cmds::CreateArgs),
    /// Start a stopped container
    Start(container_cmds::StartArgs),
    /// List containers
    Ps(container_cmds::PsArgs),
    /// Remove one or more containers
    Rm(container_cmds::RmArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(container_cmds::DiffArgs),
    /// Stop one or more running containers
    Stop(lifecycle_cmds::StopArgs),
    /// Kill one or more running containers
    Kill(lifecycle_cmds::KillArgs),
    /// Restart one or more containers
    Restart(lifecycle_cmds::StopArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(lifecycle_cmds::WaitArgs),
    /// Fetch the logs of a container
    Logs(lifecycle_cmds::LogsArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(lifecycle_cmds::AttachArgs),
    /// Run a command in a running container
    Exec(lifecycle_cmds::ExecArgs),
    /// Display the running processes of a container
    Top(lifecycle_cmds::TopArgs),
    /// Rename a container
    Rename(lifecycle_cmds::RenameArgs),
    /// Pause all processes within one or more containers
    Pause(lifecycle_cmds::PauseArgs),
    /// Unpause all processes within one or more containers
    Unpause(lifecycle_cmds::PauseArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(lifecycle_cmds::StatsArgs),
    /// Create a new image from a container's changes
    Commit(commit_cmds::CommitArgs),
    /// Export a container's filesystem as a tar archive
    Export(commit_cmds::ExportArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(commit_cmds::CpArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(container_cmds::ContainerCmd),
    /// The monitor of a detached container (internal)
    #[command(name = "container-monitor", hide = true)]
    ContainerMonitor(lifecycle_cmds::MonitorArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCmd),
    /// Manage berth
    #[command(subcommand)]
    System(SystemCmd),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume_cmds::VolumeCmd),
}

#[derive(Subcommand)]
enum ImageCmd {
    /// List images
    #[command(alias = "list")]
    Ls(image_cmds::ImagesArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(image_cmds::ImportArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(image_cmds::TagArgs),
    /// Remove one or more images
    #[command(alias = "remove")]
    Rm(image_cmds::RmiArgs),
    /// Display detailed information on one or more images
    Inspect(image_cmds::InspectArgs),
    /// Show the history of an image
    History(image_cmds::HistoryArgs),
    /// Save one or more images to a tar archive
    Save(image_cmds::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(image_cmds::LoadArgs),
    /// Remove unused images
    Prune(image_cmds::PruneArgs),
}

#[derive(Subcommand)]
enum SystemCmd {
    /// Show berth disk usage
    Df(DfArgs),
    /// Display system-wide information
    Info(image_cmds::InfoArgs),
}

#[derive(Args)]
struct DfArgs {}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let level = if cli.debug { "debug" } else { &cli.log_level };
    let mut logger = env_logger::Builder::new();
    logger.parse_filters(level);
    // With --debug, microseconds show where a command spends its time.
    if level.contains("debug") || level.contains("trace") {
        logger.format_timestamp_micros();
    } else {
        logger.format_timestamp(None);
    }
    logger.init();
    log::debug!("berth {}", env!("CARGO_PKG_VERSION"));
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("Error: {}", error_chain(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, without repeating a cause that
/// its parent already quoted.
fn error_chain(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let opts = EngineOptions {
        root: cli.root,
        storage_driver: cli.storage_driver,
    };
    let engine = Engine::open(&opts)?;
    use image_cmds as i;
    match cli.cmd {
        Cmd::Import(a) | Cmd::Image(ImageCmd::Import(a)) => i::import(&engine, a),
        Cmd::Images(a) | Cmd::Image(ImageCmd::Ls(a)) => i::images(&engine, a),
        Cmd::Tag(a) | Cmd::Image(ImageCmd::Tag(a)) => i::tag(&engine, a),
        Cmd::Rmi(a) | Cmd::Image(ImageCmd::Rm(a)) => i::rmi(&engine, a),
        Cmd::Inspect(a) => i::inspect(&engine, a, "object"),
        Cmd::Image(ImageCmd::Inspect(a)) => i::inspect(&engine, a, "image"),
        Cmd::History(a) | Cmd::Image(ImageCmd::History(a)) => i::history(&engine, a),
        Cmd::Save(a) | Cmd::Image(ImageCmd::Save(a)) => i::save(&engine, a),
        Cmd::Load(a) | Cmd::Image(ImageCmd::Load(a)) => i::load(&engine, a),
        Cmd::Image(ImageCmd::Prune(a)) => i::prune(&engine, a),
        Cmd::Info(a) | Cmd::System(SystemCmd::Info(a)) => i::info(&engine, a),
        Cmd::System(SystemCmd::Df(_)) => i::df(&engine),
        Cmd::Run(a) => container_cmds::run(&engine, a),
        Cmd::Create(a) => container_cmds::create(&engine, a),
        Cmd::Start(a) => container_cmds::start(&engine, a),
        Cmd::Ps(a) => container_cmds::ps(&engine, a),
        Cmd::Rm(a) => container_cmds::rm(&engine, a),
        Cmd::Diff(a) => container_cmds::diff(&engine, a),
        Cmd::Stop(a) => lifecycle_cmds::stop(&engine, a),
        Cmd::Kill(a) => lifecycle_cmds::kill(&engine, a),
        Cmd::Restart(a) => lifecycle_cmds::restart(&engine, a),
        Cmd::Wait(a) => lifecycle_cmds::wait(&engine, a),
        Cmd::Logs(a) => lifecycle_cmds::logs(&engine, a),
        Cmd::Attach(a) => lifecycle_cmds::attach(&engine, a),
        Cmd::Exec(a) => lifecycle_cmds::exec(&engine, a),
        Cmd::Top(a) => lifecycle_cmds::top(&engine, a),
        Cmd::Rename(a) => lifecycle_cmds::rename(&engine, a),
        Cmd::Pause(a) => lifecycle_cmds::pause(&engine, a),
        Cmd::Unpause(a) => lifecycle_cmds::unpause(&engine, a),
        Cmd::Stats(a) => lifecycle_cmds::stats(&engine, a),
        Cmd::Commit(a) => commit_cmds::commit(&engine, a),
        Cmd::Export(a) => commit_cmds::export(&engine, a),
        Cmd::Cp(a) => commit_cmds::cp(&engine, a),
        Cmd::Container(c) => container_cmds::dispatch(&engine, c),
        Cmd::ContainerMonitor(a) => lifecycle_cmds::monitor(&engine, a),
        Cmd::Volume(c) => volume_cmds::dispatch(&engine, c),
    }
}
