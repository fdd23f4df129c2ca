//! The commands that take a container's files elsewhere: commit, export and
//! cp, and container prune. Failures the engine reports read as Docker's
//! daemon errors do (`Error response from daemon: ...`, exit 1).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use berth_engine::{parse_change, CommitOptions, CopyIn, CopyOptions, CopyOut, Engine};
use clap::{ArgAction, Args};

use crate::format::human_size;

/// Prints an engine failure as Docker's CLI prints a daemon error.
fn daemon_error(e: impl std::fmt::Display) -> u8 {
    eprintln!("Error response from daemon: {e}");
    1
}

#[derive(Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long)]
    author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long)]
    change: Vec<String>,
    /// Commit message
    #[arg(short, long)]
    message: Option<String>,
    /// Pause container during commit (berth cannot pause yet: a running
    /// container is committed as it is)
    #[arg(
        short,
        long,
        default_value_t = true,
        action = ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pause: bool,
    /// The container
    container: String,
    /// Repository and optional tag for the new image
    reference: Option<String>,
}

pub fn commit(engine: &Engine, a: CommitArgs) -> Result<u8> {
    let changes = match a.change.iter().map(|c| parse_change(c)).collect() {
        Ok(c) => c,
        Err(e) => return Ok(daemon_error(e)),
    };
    let opts = CommitOptions {
        reference: a.reference,
        author: a.author,
        message: a.message,
        changes,
        pause: a.pause,
    };
    match engine.commit_container(&a.container, &opts) {
        Ok(id) => {
            println!("{id}");
            Ok(0)
        }
        Err(e) => Ok(daemon_error(e)),
    }
}

#[derive(Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// The container
    container: String,
}

pub fn export(engine: &Engine, a: ExportArgs) -> Result<u8> {
    let Some(path) = &a.output else {
        if io::stdout().is_terminal() {
            bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
        }
        let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
        if let Err(e) = engine.export_container(&a.container, &mut out) {
            return Ok(daemon_error(e));
        }
        out.flush()?;
        return Ok(0);
    };
    // Written beside the target and renamed, so a failed export never
    // leaves a truncated tar under the name asked for.
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".berth-export-{}.tmp", std::process::id()));
    let file = File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let done = engine
        .export_container(&a.container, &mut out)
        .map_err(|e| e.to_string())
        .and_then(|_| out.flush().map_err(|e| e.to_string()))
        .and_then(|()| {
            std::fs::rename(&tmp, path).map_err(|e| format!("write {}: {e}", path.display()))
        });
    match done {
        Ok(()) => Ok(0),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Ok(daemon_error(e))
        }
    }
}

#[derive(Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// CONTAINER:SRC_PATH, or a local path, or - for a tar on STDIN
    source: String,
    /// CONTAINER:DEST_PATH, or a local path, or - for a tar on STDOUT
    destination: String,
}

/// Docker's `splitCpArg`: `CONTAINER:PATH` unless the argument is an
/// absolute path or starts with `.` before its first colon.
fn split_cp_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((c, _)) if c.starts_with('.') => (None, arg),
        Some(("", p)) => (None, p),
        Some((c, p)) => (Some(c), p),
        None => (None, arg),
    }
}

pub fn cp(engine: &Engine, a: CpArgs) -> Result<u8> {
    if a.source.is_empty() {
        bail!("source can not be empty");
    }
    if a.destination.is_empty() {
        bail!("destination can not be empty");
    }
    let opts = CopyOptions {
        archive: a.archive,
        follow_link: a.follow_link,
    };
    match (split_cp_arg(&a.source), split_cp_arg(&a.destination)) {
        ((Some(_), _), (Some(_), _)) => bail!("copying between containers is not supported"),
        ((Some(container), path), (None, dest)) => {
            if dest == "-" {
                let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
                engine.copy_from_container(container, path, CopyOut::Tar(&mut out), &opts)?;
                out.flush()?;
            } else {
                let dest = Path::new(OsStr::new(dest));
                engine.copy_from_container(container, path, CopyOut::Path(dest), &opts)?;
            }
        }
        ((None, src), (Some(container), path)) => {
            if src == "-" {
                let mut stdin = io::stdin().lock();
                engine.copy_into_container(CopyIn::Tar(&mut stdin), container, path, &opts)?;
            } else {
                let src = Path::new(OsStr::new(src));
                engine.copy_into_container(CopyIn::Path(src), container, path, &opts)?;
            }
        }
        ((None, _), (None, _)) => bail!("must specify at least one container source"),
    }
    Ok(0)
}

#[derive(Args)]
pub struct ContainerPruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Provide filter values (not supported yet)
    #[arg(long)]
    filter: Vec<String>,
}

pub fn container_prune(engine: &Engine, a: ContainerPruneArgs) -> Result<u8> {
    if let Some(f) = a.filter.first() {
        bail!("invalid filter '{f}': container prune filters are not supported yet");
    }
    let mut reclaimed = 0;
    if a.force || confirm("WARNING! This will remove all stopped containers.")? {
        let report = match engine.prune_containers() {
            Ok(r) => r,
            Err(e) => return Ok(daemon_error(e)),
        };
        if !report.deleted.is_empty() {
            println!("Deleted Containers:");
            for id in &report.deleted {
                println!("{id}");
            }
            println!();
        }
        reclaimed = report.reclaimed;
    }
    // Docker prints the total even when the user said no.
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(0)
}

/// Docker's prompt: on stdout, and only `y` or `Y` agrees.
fn confirm(warning: &str) -> Result<bool> {
    print!("{warning}\nAre you sure you want to continue? [y/N] ");
    io::stdout().flush()?;
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.split_whitespace().next(), Some("y" | "Y")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp_args_split_like_docker() {
        assert_eq!(
            split_cp_arg("web:/etc/passwd"),
            (Some("web"), "/etc/passwd")
        );
        assert_eq!(split_cp_arg("web:rel"), (Some("web"), "rel"));
        assert_eq!(split_cp_arg("/abs:path"), (None, "/abs:path"));
        assert_eq!(split_cp_arg("./file:name"), (None, "./file:name"));
        assert_eq!(split_cp_arg("plain"), (None, "plain"));
        assert_eq!(split_cp_arg("-"), (None, "-"));
        assert_eq!(split_cp_arg("web:"), (Some("web"), ""));
    }
}
