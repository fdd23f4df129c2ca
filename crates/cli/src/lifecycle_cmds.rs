//! The commands on running containers: stop, kill, restart, wait, logs,
//! attach, exec, top, rename, and the hidden detached monitor.
//!
//! As Docker's CLI, commands that take several containers go on past a
//! failure, print each error, and exit 1 at the end.

use std::io::Write;

use anyhow::Result;
use berth_engine::{ContainerError, ContainerExecOptions, Engine, LogOptions, LogStream};
use chrono::{DateTime, Utc};
use clap::Args;

/// Runs `f` on every container, printing the name of each that worked
/// (as Docker does) and the error of each that did not; 1 if any failed.
fn each(
    containers: &[String],
    print: bool,
    mut f: impl FnMut(&str) -> Result<(), ContainerError>,
) -> u8 {
    let mut code = 0;
    for c in containers {
        match f(c) {
            Ok(()) if print => println!("{c}"),
            Ok(()) => {}
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                code = 1;
            }
        }
    }
    code
}

#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait for stop before killing it
    #[arg(short, long, allow_negative_numbers = true)]
    time: Option<i64>,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn stop(engine: &Engine, a: StopArgs) -> Result<u8> {
    Ok(each(&a.containers, true, |c| {
        engine.stop_container(c, a.time)
    }))
}

pub fn restart(engine: &Engine, a: StopArgs) -> Result<u8> {
    Ok(each(&a.containers, true, |c| {
        engine.stop_container(c, a.time)?;
        engine.start_detached(c).map(drop)
    }))
}

#[derive(Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn kill(engine: &Engine, a: KillArgs) -> Result<u8> {
    if let Err(e) = berth_engine::parse_signal(&a.signal) {
        anyhow::bail!("{e}");
    }
    Ok(each(&a.containers, true, |c| {
        engine.kill_container(c, &a.signal)
    }))
}

#[derive(Args)]
pub struct WaitArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn wait(engine: &Engine, a: WaitArgs) -> Result<u8> {
    Ok(each(&a.containers, false, |c| {
        let code = engine.wait_container(c)?;
        println!("{code}");
        Ok(())
    }))
}

#[derive(Args)]
pub struct RenameArgs {
    container: String,
    new_name: String,
}

pub fn rename(engine: &Engine, a: RenameArgs) -> Result<u8> {
    Ok(each(std::slice::from_ref(&a.container), false, |c| {
        engine.rename_container(c, &a.new_name)
    }))
}

#[derive(Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    follow: bool,
    /// Show timestamps
    #[arg(short, long)]
    timestamps: bool,
    /// Number of lines to show from the end of the logs (or "all")
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)
    #[arg(long)]
    since: Option<String>,
    /// Show logs before a timestamp or relative time
    #[arg(long)]
    until: Option<String>,
    container: String,
}

/// Docker's `--since`/`--until`: RFC 3339 (with or without zone), a Unix
/// time (with fractions), or a duration before now (`10m`, `1h30m`).
pub fn parse_time(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(t.and_utc());
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(s, fmt) {
            return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
        }
    }
    if let Ok(secs) = s.parse::<f64>() {
        let nanos = (secs.fract() * 1e9) as u32;
        if let Some(t) = DateTime::from_timestamp(secs.trunc() as i64, nanos) {
            return Ok(t);
        }
    }
    let d = parse_duration(s).ok_or_else(|| {
        anyhow::anyhow!(
            "invalid value for \"since\": failed to parse value as time or duration: \"{s}\""
        )
    })?;
    Ok(now - d)
}

/// Go's duration syntax (`1h2m3.5s`, `300ms`).
fn parse_duration(s: &str) -> Option<chrono::Duration> {
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Some(chrono::Duration::nanoseconds((total * 1e9) as i64))
}

pub fn logs(engine: &Engine, a: LogsArgs) -> Result<u8> {
    let now = Utc::now();
    let tail = match a.tail.as_str() {
        "all" => None,
        n => Some(
            n.parse::<i64>()
                .map(|n| n.max(0) as usize)
                .map_err(|_| anyhow::anyhow!("invalid value for \"tail\": {n}"))?,
        ),
    };
    let opts = LogOptions {
        follow: a.follow,
        tail,
        since: a.since.as_deref().map(|s| parse_time(s, now)).transpose()?,
        until: a.until.as_deref().map(|s| parse_time(s, now)).transpose()?,
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let result = engine.container_logs(&a.container, &opts, |e| {
        let prefix = if a.timestamps {
            format!("{} ", e.time_text)
        } else {
            String::new()
        };
        match e.stream {
            LogStream::Stdout => {
                let mut out = stdout.lock();
                out.write_all(prefix.as_bytes())?;
                out.write_all(e.text.as_bytes())?;
                out.flush()
            }
            LogStream::Stderr => {
                let mut err = stderr.lock();
                err.write_all(prefix.as_bytes())?;
                err.write_all(e.text.as_bytes())
            }
        }
    });
    match result {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("Error response from daemon: {e}");
            Ok(1)
        }
    }
}

#[derive(Args)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long)]
    no_stdin: bool,
    /// Proxy all received signals to the process (accepted for Docker's sake)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    sig_proxy: bool,
    container: String,
}

pub fn attach(engine: &Engine, a: AttachArgs) -> Result<u8> {
    let _ = a.sig_proxy;
    match engine.attach_container(&a.container, a.no_stdin) {
        Ok(Some(code)) => Ok(code.clamp(0, 255) as u8),
        Ok(None) => Ok(0),
        Err(e) => {
            eprintln!("{e}");
            Ok(1)
        }
    }
}

#[derive(Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Set environment variables
    #[arg(short, long)]
    env: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    user: Option<String>,
    container: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

pub fn exec(engine: &Engine, a: ExecArgs) -> Result<u8> {
    use std::io::IsTerminal;
    if a.tty && a.interactive && !std::io::stdin().is_terminal() {
        eprintln!("the input device is not a TTY");
        return Ok(1);
    }
    let opts = ContainerExecOptions {
        cmd: a.command,
        interactive: a.interactive,
        tty: a.tty,
        detach: a.detach,
        env: a.env,
        workdir: a.workdir,
        user: a.user,
    };
    match engine.exec_container(&a.container, &opts) {
        Ok(code) => Ok(code.clamp(0, 255) as u8),
        Err(e @ (ContainerError::Launch(_) | ContainerError::StartFailed { .. })) => {
            eprintln!("berth: exec failed: {e}");
            Ok(e.exit_code())
        }
        Err(e) => {
            eprintln!("Error response from daemon: {e}");
            Ok(1)
        }
    }
}

#[derive(Args)]
pub struct TopArgs {
    container: String,
    /// Options for ps (default -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

pub fn top(engine: &Engine, a: TopArgs) -> Result<u8> {
    match engine.top_container(&a.container, &a.ps_args) {
        Ok((header, rows)) => {
            let mut table = vec![header];
            table.extend(rows);
            print!("{}", crate::format::tabulate(&table));
            Ok(0)
        }
        Err(e) => {
            eprintln!("Error response from daemon: {e}");
            Ok(1)
        }
    }
}

#[derive(Args)]
pub struct PauseArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn pause(engine: &Engine, a: PauseArgs) -> Result<u8> {
    Ok(each(&a.containers, true, |c| engine.pause_container(c)))
}

pub fn unpause(engine: &Engine, a: PauseArgs) -> Result<u8> {
    Ok(each(&a.containers, true, |c| engine.unpause_container(c)))
}

#[derive(Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    no_trunc: bool,
    containers: Vec<String>,
}

/// One `stats` table, as Docker prints it.
fn stats_table(stats: &[berth_engine::ContainerStats], no_trunc: bool) -> String {
    use crate::format::{bytes_size, human_size, tabulate};
    let mut rows = vec![[
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ]
    .map(String::from)
    .to_vec()];
    for s in stats {
        let mem_pct = if s.memory_limit > 0 {
            s.memory_usage as f64 / s.memory_limit as f64 * 100.0
        } else {
            0.0
        };
        rows.push(vec![
            if no_trunc {
                s.id.clone()
            } else {
                s.id[..12].to_string()
            },
            s.name.clone(),
            format!("{:.2}%", s.cpu_percent),
            format!(
                "{} / {}",
                bytes_size(s.memory_usage),
                bytes_size(s.memory_limit)
            ),
            format!("{mem_pct:.2}%"),
            format!("{} / {}", human_size(s.net_rx), human_size(s.net_tx)),
            "0B / 0B".into(),
            s.pids.to_string(),
        ]);
    }
    tabulate(&rows)
}

pub fn stats(engine: &Engine, a: StatsArgs) -> Result<u8> {
    let _ = a.all;
    let interval = std::time::Duration::from_millis(500);
    loop {
        let stats = match engine.container_stats(&a.containers, interval) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                return Ok(1);
            }
        };
        let table = stats_table(&stats, a.no_trunc);
        if a.no_stream {
            print!("{table}");
            return Ok(0);
        }
        // Docker redraws in place on a terminal.
        print!("\x1b[2J\x1b[H{table}");
        std::io::stdout().flush()?;
    }
}

/// The hidden subcommand behind `run -d` / `start`.
#[derive(Args)]
pub struct MonitorArgs {
    id: String,
}

pub fn monitor(engine: &Engine, a: MonitorArgs) -> Result<u8> {
    match engine.serve_monitor(&a.id) {
        Ok(code) => Ok(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("monitor of {}: {e}", a.id);
            Ok(125)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_like_dockers() {
        let now: DateTime<Utc> = "2026-01-01T12:00:00Z".parse().unwrap();
        let t = |s| parse_time(s, now).unwrap().to_rfc3339();
        assert_eq!(t("2025-12-31T10:00:00Z"), "2025-12-31T10:00:00+00:00");
        assert_eq!(t("2025-12-31T10:00:00"), "2025-12-31T10:00:00+00:00");
        assert_eq!(t("2025-12-31"), "2025-12-31T00:00:00+00:00");
        assert_eq!(t("1767268800"), "2026-01-01T12:00:00+00:00");
        assert_eq!(t("10m"), "2026-01-01T11:50:00+00:00");
        assert_eq!(t("1h30m"), "2026-01-01T10:30:00+00:00");
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("10x", now).is_err());
    }
}
