//! The run benchmark's table: medians per row and tool, berth's speed-up
//! over Docker and podman, the goal each row is held to, and footnotes for
//! the cells that have no number.

use crate::measure::{fmt_time, Table};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    Berth,
    Docker,
    Podman,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Unit {
    Seconds,
    KiB,
}

/// What a row must show for berth, from the issue. Limits are on berth's
/// median; ratios are the peer's median over berth's (lower is better for
/// every row, so above 1 means berth wins).
#[derive(Clone, Copy, Default, Debug)]
pub struct Goal {
    pub max_ms: Option<f64>,
    /// `<` rather than `≤`.
    pub strict: bool,
    pub vs_docker: Option<f64>,
    pub vs_podman: Option<f64>,
}

impl Goal {
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(ms) = self.max_ms {
            parts.push(format!("{} {ms} ms", if self.strict { "<" } else { "≤" }));
        }
        if let Some(r) = self.vs_docker {
            parts.push(format!("≥ {r}x Docker"));
        }
        if let Some(r) = self.vs_podman {
            parts.push(format!("≥ {r}x podman"));
        }
        parts.join(", ")
    }

    /// None when there is nothing to judge: no goal, or only ratio goals
    /// against peers that have no number.
    pub fn met(&self, berth: f64, docker: Option<f64>, podman: Option<f64>) -> Option<bool> {
        let mut verdicts = Vec::new();
        if let Some(ms) = self.max_ms {
            let v = berth * 1000.0;
            verdicts.push(if self.strict { v < ms } else { v <= ms });
        }
        for (goal, peer) in [(self.vs_docker, docker), (self.vs_podman, podman)] {
            if let (Some(r), Some(p)) = (goal, peer) {
                verdicts.push(p / berth >= r);
            }
        }
        if verdicts.is_empty() {
            None
        } else {
            Some(verdicts.into_iter().all(|v| v))
        }
    }
}

/// A median, or why there is none.
pub type Cell = Result<f64, String>;

pub struct Row {
    pub label: String,
    pub unit: Unit,
    pub goal: Goal,
    pub cells: Vec<Cell>,
}

pub struct Column {
    pub name: String,
    pub role: Role,
}

/// Header lines, the table, and the footnotes.
pub fn render(notes: &[String], columns: &[Column], rows: &[Row]) -> String {
    let mut footnotes: Vec<String> = Vec::new();
    let mut note = |why: &str| {
        let i = match footnotes.iter().position(|f| f == why) {
            Some(i) => i,
            None => {
                footnotes.push(why.to_string());
                footnotes.len() - 1
            }
        };
        format!("n/a [{}]", i + 1)
    };
    let mut table = Table::new(
        ["operation", "goal"]
            .into_iter()
            .map(String::from)
            .chain(columns.iter().map(|c| c.name.clone())),
    )
    .labels(2);
    for row in rows {
        let peer = |role| {
            columns
                .iter()
                .position(|c| c.role == role)
                .and_then(|i| row.cells[i].as_ref().ok().copied())
        };
        let (docker, podman) = (peer(Role::Docker), peer(Role::Podman));
        let mut cells = vec![row.label.clone(), row.goal.describe()];
        for (col, cell) in columns.iter().zip(&row.cells) {
            cells.push(match cell {
                Err(why) => note(why),
                Ok(v) if col.role == Role::Berth => {
                    let mut s = fmt_value(*v, row.unit);
                    let ratios: Vec<String> = [(docker, "D"), (podman, "P")]
                        .into_iter()
                        .filter_map(|(p, tag)| Some(format!("{} {tag}", fmt_ratio(p? / v))))
                        .collect();
                    if !ratios.is_empty() {
                        s += &format!(" ({})", ratios.join(", "));
                    }
                    match row.goal.met(*v, docker, podman) {
                        Some(true) => s += " ✓",
                        Some(false) => s += " ✗",
                        None => {}
                    }
                    s
                }
                Ok(v) => fmt_value(*v, row.unit),
            });
        }
        table.row(cells);
    }
    let mut out = String::new();
    for n in notes {
        out += n;
        out += "\n";
    }
    out += "\n";
    out += &table.render();
    if !footnotes.is_empty() {
        out += "\n";
        for (i, f) in footnotes.iter().enumerate() {
            out += &format!("[{}] {f}\n", i + 1);
        }
    }
    out
}

pub fn fmt_value(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Seconds => fmt_time(v),
        Unit::KiB => format!("{:.1} MiB", v / 1024.0),
    }
}

/// "29x" from 10 up, "2.4x" below.
pub fn fmt_ratio(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}x")
    } else {
        format!("{r:.1}x")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_goal() -> Goal {
        Goal {
            max_ms: Some(30.0),
            strict: false,
            vs_docker: Some(9.0),
            vs_podman: Some(6.0),
        }
    }

    #[test]
    fn goals_judge_every_criterion_that_has_a_number() {
        let g = run_goal();
        assert_eq!(g.met(0.020, Some(0.360), Some(0.180)), Some(true));
        // Fast enough, but podman is only 5x slower.
        assert_eq!(g.met(0.020, Some(0.360), Some(0.100)), Some(false));
        // Over 30 ms, however slow the peers.
        assert_eq!(g.met(0.031, Some(10.0), Some(10.0)), Some(false));
        // A peer without a number is not held against berth.
        assert_eq!(g.met(0.020, None, None), Some(true));
        let strict = Goal {
            max_ms: Some(15.0),
            strict: true,
            ..Goal::default()
        };
        assert_eq!(strict.met(0.015, None, None), Some(false));
        assert_eq!(strict.met(0.0149, None, None), Some(true));
        let ratio_only = Goal {
            vs_docker: Some(2.0),
            ..Goal::default()
        };
        assert_eq!(ratio_only.met(1.0, None, Some(5.0)), None);
        assert_eq!(Goal::default().met(1.0, Some(1.0), Some(1.0)), None);
        assert_eq!(g.describe(), "≤ 30 ms, ≥ 9x Docker, ≥ 6x podman");
        assert_eq!(strict.describe(), "< 15 ms");
    }

    #[test]
    fn table_has_ratios_verdicts_and_shared_footnotes() {
        let columns = vec![
            Column {
                name: "docker".into(),
                role: Role::Docker,
            },
            Column {
                name: "podman".into(),
                role: Role::Podman,
            },
            Column {
                name: "berth overlay".into(),
                role: Role::Berth,
            },
            Column {
                name: "berth vfs rootless".into(),
                role: Role::Berth,
            },
        ];
        let rows = vec![
            Row {
                label: "run".into(),
                unit: Unit::Seconds,
                goal: run_goal(),
                cells: vec![Ok(0.360), Ok(0.180), Ok(0.012), Ok(0.040)],
            },
            Row {
                label: "exec".into(),
                unit: Unit::Seconds,
                goal: Goal::default(),
                cells: vec![
                    Ok(0.1),
                    Err("no podman".into()),
                    Err("no exec".into()),
                    Err("no exec".into()),
                ],
            },
            Row {
                label: "rss".into(),
                unit: Unit::KiB,
                goal: Goal::default(),
                cells: vec![Ok(13312.0), Ok(2048.0), Ok(1024.0), Err("no exec".into())],
            },
        ];
        let out = render(&["# title".into()], &columns, &rows);
        let expected = "# title\n\n\
            | operation | goal | docker | podman | berth overlay | berth vfs rootless |\n\
            |---|---|---:|---:|---:|---:|\n\
            | run | ≤ 30 ms, ≥ 9x Docker, ≥ 6x podman | 360.0 ms | 180.0 ms | 12.0 ms (30x D, 15x P) ✓ | 40.0 ms (9.0x D, 4.5x P) ✗ |\n\
            | exec |  | 100.0 ms | n/a [1] | n/a [2] | n/a [2] |\n\
            | rss |  | 13.0 MiB | 2.0 MiB | 1.0 MiB (13x D, 2.0x P) | n/a [2] |\n\
            \n[1] no podman\n[2] no exec\n";
        assert_eq!(out, expected);
    }
}
