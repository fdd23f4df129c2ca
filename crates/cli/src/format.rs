//! Output formatting shared by every command: Docker's human sizes and
//! durations, its aligned tables, and `--format` Go templates.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use berth_template::Template;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// go-units `HumanSizeWithPrecision(size, 3)`: decimal units, three
/// significant digits, Go's `%g` (so `1.24MB`, `123kB`, `0B`).
pub fn human_size(size: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    scaled_size(size, 1000.0, &UNITS)
}

/// go-units' `BytesSize`: binary multiples, as `stats` prints memory
/// (`1.5MiB`).
pub fn bytes_size(size: u64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    scaled_size(size, 1024.0, &UNITS)
}

fn scaled_size(size: u64, base: f64, units: &[&str]) -> String {
    let mut v = size as f64;
    let mut i = 0;
    while v >= base && i < units.len() - 1 {
        v /= base;
        i += 1;
    }
    format!("{}{}", go_g3(v), units[i])
}

/// Go's `%.3g` for the non-negative values human_size produces.
fn go_g3(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let exp = v.abs().log10().floor() as i32;
    // Round to three significant digits first: rounding can bump the exponent.
    let scaled = format!("{:.2e}", v);
    let (mantissa, e) = scaled.split_once('e').expect("{:e} has an exponent");
    let e: i32 = e.parse().unwrap_or(exp);
    if !(-4..3).contains(&e) {
        let m = mantissa.trim_end_matches('0').trim_end_matches('.');
        let sign = if e < 0 { '-' } else { '+' };
        return format!("{m}e{sign}{:02}", e.abs());
    }
    let decimals = (2 - e).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// go-units `HumanDuration`: "Less than a second", "About a minute",
/// "3 hours", "2 weeks".
pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    let minutes = d.num_minutes();
    let hours = (d.num_milliseconds() as f64 / 3_600_000.0).round() as i64;
    if seconds < 1 {
        "Less than a second".into()
    } else if seconds == 1 {
        "1 second".into()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", d.num_hours() / 24 / 365)
    }
}

/// "2 minutes ago", or "N/A" for images without a creation time.
pub fn since(t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t) => format!("{} ago", human_duration(Utc::now() - t)),
        None => "N/A".into(),
    }
}

/// Go's `time.Time.String()` as Docker prints CreatedAt.
pub fn go_time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S %z UTC").to_string())
        .unwrap_or_default()
}

/// Docker's `Ellipsis`: at most `max` characters, the last one `…`.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Go's text/tabwriter as Docker configures it (minwidth 10, padding 3):
/// cells separated by tabs become aligned columns.
pub fn tabulate(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for row in rows {
        // The last cell of a row is not a column: it is never padded.
        for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            widths[i] = widths[i].max(cell.chars().count() + 3).max(10);
        }
    }
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                let _ = write!(out, "{cell:<w$}", w = widths[i]);
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    out
}

/// A `--format` value: Docker's `table` directive or a plain template.
pub struct Format {
    table: bool,
    template: Template,
}

impl Format {
    pub fn parse(src: &str) -> Result<Format> {
        let (table, body) = match src.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                (true, rest.trim_start())
            }
            _ => (false, src),
        };
        let body = if table && body.is_empty() {
            "{{.}}"
        } else {
            body
        };
        // Docker lets `\t` and `\n` be typed literally in a format.
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let template =
            Template::parse(&body).with_context(|| format!("template parsing error: {src}"))?;
        Ok(Format { table, template })
    }

    pub fn render(&self, v: &Value) -> Result<String> {
        self.template
            .render(v)
            .map_err(|e| anyhow::anyhow!("template: {e}"))
    }

    /// Renders every row; a table gets a header from `headers` (field name
    /// to column title) and aligned columns.
    pub fn render_rows(&self, rows: &[Value], headers: &[(&str, &str)]) -> Result<String> {
        if !self.table {
            let mut out = String::new();
            for row in rows {
                out.push_str(&self.render(row)?);
                out.push('\n');
            }
            return Ok(out);
        }
        let header: Map<String, Value> = headers
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string())))
            .collect();
        let mut lines = vec![self.render(&Value::Object(header))?];
        for row in rows {
            lines.push(self.render(row)?);
        }
        let cells: Vec<Vec<String>> = lines
            .iter()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect();
        Ok(tabulate(&cells))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_go_units() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(123), "123B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(1500), "1.5kB");
        assert_eq!(human_size(5_570), "5.57kB");
        assert_eq!(human_size(1_240_000), "1.24MB");
        assert_eq!(human_size(72_812_345), "72.8MB");
        assert_eq!(human_size(199_999_999), "200MB");
        // Go's %g switches to an exponent here, and so does Docker.
        assert_eq!(human_size(999_999), "1e+03kB");
    }

    #[test]
    fn durations_match_go_units() {
        let d = chrono::Duration::seconds;
        assert_eq!(human_duration(d(0)), "Less than a second");
        assert_eq!(human_duration(d(1)), "1 second");
        assert_eq!(human_duration(d(42)), "42 seconds");
        assert_eq!(human_duration(d(90)), "About a minute");
        assert_eq!(human_duration(d(600)), "10 minutes");
        assert_eq!(human_duration(d(3600)), "About an hour");
        assert_eq!(human_duration(d(5 * 3600)), "5 hours");
        assert_eq!(human_duration(d(3 * 86400)), "3 days");
        assert_eq!(human_duration(d(20 * 86400)), "2 weeks");
        assert_eq!(human_duration(d(90 * 86400)), "3 months");
        assert_eq!(human_duration(d(800 * 86400)), "2 years");
    }

    #[test]
    fn tables_align_like_tabwriter() {
        let t = tabulate(&[
            vec!["REPOSITORY".into(), "TAG".into(), "SIZE".into()],
            vec!["busybox".into(), "latest".into(), "1.24MB".into()],
        ]);
        assert_eq!(
            t,
            "REPOSITORY   TAG       SIZE\nbusybox      latest    1.24MB\n"
        );
    }

    #[test]
    fn ellipsis_cuts_with_one_char() {
        assert_eq!(ellipsis("abcdef", 4), "abc…");
        assert_eq!(ellipsis("abc", 4), "abc");
    }
}
