//! What every benchmark suite shares: running a command quietly, timing it,
//! medians, human units, and the markdown tables the suites print.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// Runs a command with stdout discarded; fails with its stderr.
pub fn quiet(mut cmd: Command) -> Result<()> {
    let out = cmd.stdout(Stdio::null()).output()?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

pub fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<Duration> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed())
}

pub fn median_of(n: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(timed(&mut f)?);
    }
    Ok(median(v).expect("n > 0"))
}

/// The middle sample (the upper one of the two middles for an even count:
/// with a handful of noisy samples a real value beats an average of two).
pub fn median<T: PartialOrd>(mut v: Vec<T>) -> Option<T> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let mid = v.len() / 2;
    v.into_iter().nth(mid)
}

/// Seconds as "12.3 ms" below a second, "1.23 s" above.
pub fn fmt_time(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

/// A markdown table: the leading (label) columns left-aligned, the rest
/// (numbers) right-aligned.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    labels: usize,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
            labels: 1,
        }
    }

    /// How many leading columns hold labels (default 1).
    pub fn labels(mut self, n: usize) -> Table {
        self.labels = n;
        self
    }

    /// Adds a row; missing cells print empty, extra cells are an error of
    /// the caller.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let cells: Vec<String> = cells.into_iter().map(Into::into).collect();
        debug_assert!(cells.len() <= self.header.len(), "row wider than header");
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let line = |cells: &[String]| {
            let mut s = String::from("|");
            for i in 0..self.header.len() {
                // A `|` inside a cell would start a new column.
                let c = cells.get(i).map(|c| c.replace('|', "\\|"));
                s += &format!(" {} |", c.unwrap_or_default());
            }
            s + "\n"
        };
        let mut out = line(&self.header);
        out += "|";
        for i in 0..self.header.len() {
            out += if i < self.labels { "---|" } else { "---:|" };
        }
        out += "\n";
        for r in &self.rows {
            out += &line(r);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_takes_the_middle_whatever_the_order() {
        assert_eq!(median(vec![5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(vec![4, 1, 3, 2]), Some(3));
        assert_eq!(median(vec![7]), Some(7));
        assert_eq!(median(Vec::<f64>::new()), None);
        // One wild outlier does not move it.
        assert_eq!(median(vec![10.0, 11.0, 9.0, 1000.0, 10.5]), Some(10.5));
    }

    #[test]
    fn times_switch_units_at_one_second() {
        assert_eq!(fmt_time(0.0123), "12.3 ms");
        assert_eq!(fmt_time(1.5), "1.50 s");
    }

    #[test]
    fn table_aligns_pads_and_escapes() {
        let mut t = Table::new(["op", "a", "b"]);
        t.row(["x", "1 ms"]);
        t.row(["y|z", "2 ms", "3 ms"]);
        assert_eq!(
            t.render(),
            "| op | a | b |\n|---|---:|---:|\n| x | 1 ms |  |\n| y\\|z | 2 ms | 3 ms |\n"
        );
        let mut t = Table::new(["op", "goal", "a"]).labels(2);
        t.row(["x", "fast", "1 ms"]);
        assert_eq!(
            t.render(),
            "| op | goal | a |\n|---|---|---:|\n| x | fast | 1 ms |\n"
        );
    }
}
