//! `cargo xtask bench run`: container lifecycle latency of berth, under each
//! storage driver as root and as the unprivileged test user, side by side
//! with Docker and podman, all running the same busybox image built here.
//!
//! Noise (other builds, the page cache, a daemon's timers) is spread over
//! every tool alike: samples are interleaved tool by tool in a rotating
//! order, and each cell is a median. A tool or an operation that does not
//! work is a cell of n/a with the reason, never an aborted run.

mod report;
pub(crate) mod tools;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::env;
use crate::measure::{median, timed};
use report::{Cell, Column, Goal, Role, Unit};
use tools::{check_interrupted, Kind, Session, Tool, IMAGE};

const DRIVERS: [&str; 3] = ["overlay", "fuse", "vfs"];

/// The rows of the table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    RunTrue,
    RunEcho,
    CreateStart,
    Exec,
    Ps50,
    Commit,
    MonitorRss,
}

const OPS: [Op; 7] = [
    Op::RunTrue,
    Op::RunEcho,
    Op::CreateStart,
    Op::Exec,
    Op::Ps50,
    Op::Commit,
    Op::MonitorRss,
];

/// The pause before each sample.
const SETTLE: Duration = Duration::from_millis(100);

/// Containers `ps -a` lists in its row.
const PS_CONTAINERS: usize = 50;
/// The change `commit` writes into a layer.
const COMMIT_MB: usize = 100;

/// Samples kept and warm-up rounds thrown away, per row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Plan {
    samples: usize,
    warmup: usize,
}

impl Op {
    fn label(self) -> String {
        match self {
            Op::RunTrue => "run --rm IMG /bin/true".into(),
            Op::RunEcho => "run --rm IMG echo hello".into(),
            Op::CreateStart => "create + start -a (/bin/true)".into(),
            Op::Exec => "exec ID true (running container)".into(),
            Op::Ps50 => format!("ps -a ({PS_CONTAINERS} containers)"),
            Op::Commit => format!("commit ({COMMIT_MB} MB change)"),
            Op::MonitorRss => "RSS per detached container".into(),
        }
    }

    /// The goals from the issue.
    fn goal(self) -> Goal {
        match self {
            Op::RunTrue | Op::RunEcho => Goal {
                max_ms: Some(30.0),
                strict: false,
                vs_docker: Some(9.0),
                vs_podman: Some(6.0),
            },
            Op::Exec => Goal {
                max_ms: Some(15.0),
                strict: true,
                ..Goal::default()
            },
            Op::Ps50 => Goal {
                max_ms: Some(10.0),
                strict: true,
                ..Goal::default()
            },
            Op::Commit => Goal {
                vs_docker: Some(2.0),
                ..Goal::default()
            },
            Op::CreateStart | Op::MonitorRss => Goal::default(),
        }
    }

    fn unit(self) -> Unit {
        match self {
            Op::MonitorRss => Unit::KiB,
            _ => Unit::Seconds,
        }
    }

    fn plan(self, quick: bool) -> Plan {
        let (samples, warmup) = match (self, quick) {
            (Op::MonitorRss, _) => (1, 0),
            (Op::Commit, true) => (1, 0),
            (Op::Commit, false) => (7, 1),
            (_, true) => (3, 1),
            (_, false) => (30, 2),
        };
        Plan { samples, warmup }
    }
}

pub fn run(quick: bool) -> Result<()> {
    let started = Instant::now();
    install_peers();
    if !["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .any(|p| std::path::Path::new(p).exists())
    {
        bail!("busybox not found: apt-get install busybox-static");
    }
    let mut cargo = env::cargo();
    cargo.args(["build", "--release", "-p", "berth-cli", "--bins"]);
    env::run(&mut cargo)?;
    let berth = env::target_dir().join("release/berth");

    tools::catch_interrupts();
    // From here on every exit, `?` included, drops the session, which
    // removes what the bench made and stops the dockerd it started.
    let mut session = Session::new()?;
    let tarball = berth_e2e::busybox_tarball(&session.scratch);
    session.add_docker();
    session.add_podman();
    for driver in DRIVERS {
        session.add_berth(&berth, driver, None)?;
    }
    match env::test_user() {
        Some(user) if env::is_root() => {
            for driver in DRIVERS {
                session.add_berth(&berth, driver, Some(user))?;
            }
        }
        Some(_) => {}
        None => eprintln!(
            "bench: no `{}` user: no rootless columns (cargo xtask test creates it)",
            env::TEST_USER
        ),
    }
    check_interrupted()?;
    session.prepare(&tarball);

    let mut rows = Vec::new();
    for op in OPS {
        let cells = measure(op, &session.tools, quick)?;
        rows.push(report::Row {
            label: op.label(),
            unit: op.unit(),
            goal: op.goal(),
            cells,
        });
    }
    let columns: Vec<Column> = session
        .tools
        .iter()
        .map(|t| Column {
            name: t.name.clone(),
            role: match t.kind {
                Kind::Berth => Role::Berth,
                Kind::Docker => Role::Docker,
                Kind::Podman => Role::Podman,
            },
        })
        .collect();
    let notes = notes(&session.tools, quick);
    drop(session);
    println!("\n{}", report::render(&notes, &columns, &rows));
    eprintln!("bench run: done in {:.0?}", started.elapsed());
    Ok(())
}

/// As root, installs the peers whose programs are missing; a failure
/// leaves their columns n/a rather than stopping the bench.
fn install_peers() {
    let wanted = [
        ("busybox-static", "busybox"),
        ("docker.io", "dockerd"),
        ("podman", "podman"),
        ("runc", "runc"),
    ];
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(_, prog)| !on_path(prog))
        .map(|(pkg, _)| *pkg)
        .collect();
    if let Err(e) = env::install_packages(&missing) {
        eprintln!("bench: {e:#}: the missing peers will show n/a");
    }
}

fn on_path(prog: &str) -> bool {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .any(|d| std::path::Path::new(d).join(prog).exists());
    found
}

fn notes(tools: &[Tool], quick: bool) -> Vec<String> {
    let plan = |op: Op| op.plan(quick);
    let fast = plan(Op::RunTrue);
    let commit = plan(Op::Commit);
    let flags: Vec<String> = tools
        .iter()
        .filter(|t| t.broken.is_none())
        .map(|t| format!("{} `{}`", t.name, t.run_flags().join(" ")))
        .collect();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let commit_id = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env::workspace_root())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    vec![
        format!(
            "### Container lifecycle: berth vs Docker vs podman (`cargo xtask bench run{}`)",
            if quick { " --quick" } else { "" }
        ),
        String::new(),
        "Goals (from the issue): `run --rm` ≤ 30 ms with any driver and rootless, ≥ 6x podman, \
         ≥ 9x Docker; `exec` < 15 ms; `commit` ≥ 2x Docker's throughput; `ps -a` with 50 \
         containers < 10 ms."
            .into(),
        String::new(),
        format!(
            "Medians of {} samples ({} for commit) after {} warm-up, the tools interleaved in a \
             rotating order, {} ms of pause before each sample. berth cells add Docker's (D) and podman's (P) median divided by \
             berth's (above 1: berth is faster, or smaller), and ✓/✗ against the row's goal. \
             RSS: the per-container processes left while a container runs detached \
             (containerd-shim, conmon, berth's monitor).",
            fast.samples,
            commit.samples,
            fast.warmup,
            SETTLE.as_millis()
        ),
        format!(
            "Image: busybox-static imported from one tarball into each. Flags on run/create: {}. \
             Docker on its own dockerd (`--bridge=none --iptables=false`), podman `--runtime runc` \
             on scratch roots. Machine: {cores} cores, Linux {}, berth {commit_id}.",
            flags.join("; "),
            kernel.trim()
        ),
    ]
}

/// What one tool keeps for one row between samples.
#[derive(Default)]
struct Prep {
    containers: Vec<String>,
    /// The running container's main process (for its parents' RSS).
    pid: Option<u32>,
}

/// One row: prepares every tool, samples them interleaved, cleans up.
fn measure(op: Op, tools: &[Tool], quick: bool) -> Result<Vec<Cell>> {
    let plan = op.plan(quick);
    let started = Instant::now();
    let n = tools.len();
    check_interrupted()?;
    // Setup and cleanup are not timed: all tools at once, to save minutes.
    let prepared: Vec<(std::result::Result<Prep, String>, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = tools
            .iter()
            .enumerate()
            .map(|(i, t)| {
                s.spawn(move || {
                    let start = Instant::now();
                    let prep = match &t.broken {
                        Some(why) => Err(why.clone()),
                        None => prepare(op, t, i).map_err(|e| format!("{e:#}")),
                    };
                    (prep, start.elapsed())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("setup thread panicked"))
            .collect()
    });
    let setup: Vec<String> = tools
        .iter()
        .zip(&prepared)
        .filter(|(_, (_, d))| *d > Duration::from_secs(1))
        .map(|(t, (_, d))| format!("{} {d:.1?}", t.name))
        .collect();
    if !setup.is_empty() {
        eprintln!("bench: {} setup: {}", op.label(), setup.join(", "));
    }
    let mut preps: Vec<std::result::Result<Prep, String>> =
        prepared.into_iter().map(|(p, _)| p).collect();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); n];
    for round in 0..plan.warmup + plan.samples {
        check_interrupted().inspect_err(|_| finish_all(tools, &preps))?;
        for k in 0..n {
            let i = (k + round) % n;
            let Ok(prep) = &preps[i] else { continue };
            // What a tool leaves running after its command returns (podman's
            // cleanup process, dockerd's and the kernel's teardown of a
            // network namespace) must not land in the next tool's sample.
            std::thread::sleep(SETTLE);
            match sample(op, &tools[i], prep, round) {
                Ok(v) if round >= plan.warmup => samples[i].push(v),
                Ok(_) => {}
                Err(e) => {
                    eprintln!("bench: {} on {}: {e:#}", op.label(), tools[i].name);
                    if let Err(e) = finish(&tools[i], prep) {
                        eprintln!("bench: {}: {e:#}", tools[i].name);
                    }
                    preps[i] = Err(format!("{e:#}"));
                }
            }
        }
    }
    let cleanup = Instant::now();
    finish_all(tools, &preps);
    if cleanup.elapsed() > Duration::from_secs(1) {
        eprintln!("bench: {} cleanup: {:.1?}", op.label(), cleanup.elapsed());
    }
    let cells: Vec<Cell> = preps
        .into_iter()
        .zip(samples)
        .map(|(p, s)| p.and_then(|_| median(s).ok_or_else(|| "no sample".to_string())))
        .collect();
    let summary: Vec<String> = tools
        .iter()
        .zip(&cells)
        .map(|(t, c)| match c {
            Ok(v) => format!("{} {}", t.name, report::fmt_value(*v, op.unit())),
            Err(_) => format!("{} n/a", t.name),
        })
        .collect();
    eprintln!(
        "bench: {} ({:.0?}): {}",
        op.label(),
        started.elapsed(),
        summary.join(", ")
    );
    Ok(cells)
}

fn finish_all(tools: &[Tool], preps: &[std::result::Result<Prep, String>]) {
    std::thread::scope(|s| {
        for (t, p) in tools.iter().zip(preps) {
            if let Ok(p) = p {
                s.spawn(move || {
                    if let Err(e) = finish(t, p) {
                        eprintln!("bench: {}: {e:#}", t.name);
                    }
                });
            }
        }
    });
}

fn prepare(op: Op, t: &Tool, index: usize) -> Result<Prep> {
    let mut prep = Prep::default();
    match op {
        Op::RunTrue | Op::RunEcho | Op::CreateStart => {}
        Op::Exec => {
            t.supports("exec")?;
            t.supports_detach()?;
            let id = run_detached(t, &["sleep", "3600"])?;
            prep.containers.push(id);
        }
        Op::Ps50 => prep.containers = create_many(t, PS_CONTAINERS)?,
        Op::Commit => {
            t.supports("commit")?;
            let count = format!("count={COMMIT_MB}");
            let args = t.container_args(
                "create",
                &[IMAGE, "dd", "if=/dev/urandom", "of=/big", "bs=1M", &count],
            );
            let id = t.ok(&args)?.trim().to_string();
            t.track_container(&id);
            prep.containers.push(id.clone());
            t.ok(&["start", "-a", &id])?;
        }
        Op::MonitorRss => {
            t.supports_detach()?;
            // An argv no other process has, to find the container's main
            // process without trusting any tool's inspect.
            let secs = (7_310_000 + index).to_string();
            let id = run_detached(t, &["sleep", &secs])?;
            prep.containers.push(id);
            let deadline = Instant::now() + Duration::from_secs(10);
            prep.pid = loop {
                if let Some(pid) = tools::pid_of_argv(&["sleep", &secs]) {
                    break Some(pid);
                }
                if Instant::now() > deadline {
                    bail!("the detached container's `sleep {secs}` never showed up");
                }
                std::thread::sleep(Duration::from_millis(20));
            };
        }
    }
    Ok(prep)
}

fn run_detached(t: &Tool, cmd: &[&str]) -> Result<String> {
    let mut rest = vec!["-d", IMAGE];
    rest.extend_from_slice(cmd);
    let id = t.ok(&t.container_args("run", &rest))?.trim().to_string();
    if id.is_empty() {
        bail!("`run -d` printed no container id");
    }
    t.track_container(&id);
    Ok(id)
}

/// `n` stopped containers, created four at a time.
fn create_many(t: &Tool, n: usize) -> Result<Vec<String>> {
    let args = t.container_args("create", &[IMAGE, "/bin/true"]);
    let mut ids = Vec::with_capacity(n);
    let mut left = n;
    while left > 0 {
        let batch = left.min(4);
        let children = (0..batch)
            .map(|_| {
                t.cmd(&args)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
            })
            .collect::<std::io::Result<Vec<_>>>()
            .context("spawning create")?;
        let mut failed = None;
        for c in children {
            match t.check(&args, c.wait_with_output()?) {
                Ok(out) => {
                    let id = out.trim().to_string();
                    t.track_container(&id);
                    ids.push(id);
                }
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            let _ = t.remove_containers(&ids);
            return Err(e);
        }
        left -= batch;
    }
    Ok(ids)
}

/// One sample: seconds, or KiB for the RSS row.
fn sample(op: Op, t: &Tool, prep: &Prep, round: usize) -> Result<f64> {
    let secs = |d: Duration| d.as_secs_f64();
    Ok(match op {
        Op::RunTrue => {
            let args = t.container_args("run", &["--rm", IMAGE, "/bin/true"]);
            secs(timed(|| t.ok(&args))?)
        }
        Op::RunEcho => {
            let args = t.container_args("run", &["--rm", IMAGE, "echo", "hello"]);
            let start = Instant::now();
            let out = t.ok(&args)?;
            let d = start.elapsed();
            if out.trim() != "hello" {
                bail!("`run echo hello` printed {out:?}");
            }
            secs(d)
        }
        Op::CreateStart => {
            let args = t.container_args("create", &[IMAGE, "/bin/true"]);
            let start = Instant::now();
            let id = t.ok(&args)?.trim().to_string();
            t.track_container(&id);
            t.ok(&["start", "-a", &id])?;
            let d = start.elapsed();
            t.remove_containers(&[id])?;
            secs(d)
        }
        Op::Exec => secs(timed(|| t.ok(&["exec", &prep.containers[0], "true"]))?),
        Op::Ps50 => {
            let start = Instant::now();
            let out = t.ok(&["ps", "-a"])?;
            let d = start.elapsed();
            let listed = out.lines().count().saturating_sub(1);
            if listed < PS_CONTAINERS {
                bail!("`ps -a` listed {listed} containers, not {PS_CONTAINERS}");
            }
            secs(d)
        }
        Op::Commit => {
            let tag = format!("berth-bench/commit:{round}");
            let d = timed(|| t.ok(&["commit", &prep.containers[0], &tag]))?;
            t.track_image(&tag);
            t.remove_image(&tag)?;
            secs(d)
        }
        Op::MonitorRss => overhead_kib(prep.pid.expect("prepared with a pid"))?,
    })
}

fn finish(t: &Tool, prep: &Prep) -> Result<()> {
    t.remove_containers(&prep.containers)
}

/// The RSS of the processes between a container's main process and init
/// (or this bench): what one running container costs outside itself.
fn overhead_kib(main: u32) -> Result<f64> {
    let mut ours = HashSet::new();
    let mut p = std::process::id();
    while p > 1 {
        ours.insert(p);
        p = tools::proc_stat(p).map_or(0, |(pp, _)| pp);
    }
    let chain = keepers(main, |p| tools::proc_stat(p).map(|(pp, _)| pp), &ours);
    if chain.is_empty() {
        bail!("the container's main process has no per-container parent");
    }
    let mut total = 0;
    let mut names = Vec::new();
    for pid in chain {
        total += tools::vm_rss_kib(pid).context("a per-container process went away")?;
        names.push(tools::proc_stat(pid).map_or("?".into(), |(_, comm)| comm));
    }
    eprintln!(
        "bench: per-container processes: {} ({:.1} MiB)",
        names.join(" < "),
        total as f64 / 1024.0
    );
    Ok(total as f64)
}

/// The ancestors of `main` up to, not including, init or any of `ours`:
/// the shim, conmon or monitor that keeps the container.
fn keepers(main: u32, parent: impl Fn(u32) -> Option<u32>, ours: &HashSet<u32>) -> Vec<u32> {
    let mut chain = Vec::new();
    let mut pid = main;
    while let Some(ppid) = parent(pid) {
        if ppid <= 1 || ours.contains(&ppid) {
            break;
        }
        chain.push(ppid);
        pid = ppid;
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_mode_samples_less_but_every_row_keeps_a_sample() {
        for op in OPS {
            let (q, f) = (op.plan(true), op.plan(false));
            assert!(q.samples >= 1 && q.samples <= f.samples, "{op:?}");
            assert!(q.warmup <= f.warmup, "{op:?}");
        }
        // Odd sample counts: the median is a real sample.
        assert_eq!(Op::RunTrue.plan(true).samples % 2, 1);
    }

    #[test]
    fn keepers_stop_at_init_and_at_the_bench_itself() {
        let parents = std::collections::HashMap::from([
            (100, 90),
            (90, 1),
            (200, 190),
            (190, 180),
            (180, 50),
            (300, 50),
        ]);
        let parent = |p| parents.get(&p).copied();
        let ours = HashSet::from([50]);
        // containerd-shim under init.
        assert_eq!(keepers(100, parent, &ours), vec![90]);
        // A monitor and a helper, still children of the bench.
        assert_eq!(keepers(200, parent, &ours), vec![190, 180]);
        // Started by the bench directly: nothing keeps it.
        assert!(keepers(300, parent, &ours).is_empty());
        // Gone: nothing to measure.
        assert!(keepers(400, parent, &ours).is_empty());
    }

    #[test]
    fn the_run_rows_carry_the_issue_goals() {
        let g = Op::RunTrue.goal();
        assert_eq!(g.describe(), "≤ 30 ms, ≥ 9x Docker, ≥ 6x podman");
        assert_eq!(Op::Exec.goal().describe(), "< 15 ms");
        assert_eq!(Op::Ps50.goal().describe(), "< 10 ms");
        assert_eq!(Op::Commit.goal().describe(), "≥ 2x Docker");
    }
}
