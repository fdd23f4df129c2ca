//! Container logs in Docker's `json-file` format: one JSON object per line,
//! `{"log":"hello\n","stream":"stdout","time":"2026-11-23T12:00:00.000000001Z"}`,
//! in `containers/<id>/<id>-json.log`. The monitor writes it; `logs` reads
//! it, optionally following it while the container runs.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::error::{CResult, ContainerError};

/// Which output a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    /// The stream byte of Docker's multiplexed attach frames.
    pub fn frame_id(self) -> u8 {
        match self {
            Stream::Stdout => 1,
            Stream::Stderr => 2,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Line<'a> {
    log: std::borrow::Cow<'a, str>,
    stream: std::borrow::Cow<'a, str>,
    time: String,
}

/// Docker's json-file caps a message at 16 KiB before splitting it.
const MAX_LINE: usize = 16 * 1024;

/// Appends output to a json-file log, one entry per line of output. A line
/// not yet ended is kept until its newline comes (or [`LogWriter::finish`]).
pub struct LogWriter {
    file: File,
    partial: [Vec<u8>; 2],
}

impl LogWriter {
    pub fn create(path: &Path) -> CResult<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| ContainerError::io(format!("opening {}", path.display()), e))?;
        Ok(LogWriter {
            file,
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Logs a chunk of `stream`'s output; complete lines are written at
    /// once, in one write.
    pub fn write(&mut self, stream: Stream, chunk: &[u8]) {
        let now = now();
        let idx = (stream.frame_id() - 1) as usize;
        let mut out = Vec::new();
        let mut rest = chunk;
        while !rest.is_empty() {
            let partial = &mut self.partial[idx];
            let room = MAX_LINE - partial.len();
            match rest[..rest.len().min(room)]
                .iter()
                .position(|&b| b == b'\n')
            {
                Some(i) => {
                    partial.extend_from_slice(&rest[..=i]);
                    rest = &rest[i + 1..];
                }
                None if rest.len() >= room => {
                    partial.extend_from_slice(&rest[..room]);
                    rest = &rest[room..];
                }
                None => {
                    partial.extend_from_slice(rest);
                    break;
                }
            }
            let line = std::mem::take(partial);
            encode(&mut out, stream, &line, &now);
        }
        self.flush(&out);
    }

    /// Writes whatever unterminated output is left, as Docker does when a
    /// stream ends.
    pub fn finish(&mut self) {
        let now = now();
        let mut out = Vec::new();
        for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            let line = std::mem::take(&mut self.partial[i]);
            if !line.is_empty() {
                encode(&mut out, stream, &line, &now);
            }
        }
        self.flush(&out);
    }

    fn flush(&mut self, out: &[u8]) {
        if !out.is_empty() {
            if let Err(e) = self.file.write_all(out) {
                log::warn!("writing the container log: {e}");
            }
        }
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn encode(out: &mut Vec<u8>, stream: Stream, line: &[u8], time: &str) {
    let entry = Line {
        log: String::from_utf8_lossy(line),
        stream: stream.name().into(),
        time: time.to_string(),
    };
    serde_json::to_writer(&mut *out, &entry).expect("a log line serialises");
    out.push(b'\n');
}

/// One entry read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub stream: Stream,
    pub time: DateTime<Utc>,
    /// The entry's time as written (RFC 3339 with nanoseconds).
    pub time_text: String,
    pub text: String,
}

fn parse_entry(line: &str) -> Option<LogEntry> {
    let l: Line = serde_json::from_str(line).ok()?;
    let time = DateTime::parse_from_rfc3339(&l.time)
        .ok()?
        .with_timezone(&Utc);
    Some(LogEntry {
        stream: if l.stream == "stderr" {
            Stream::Stderr
        } else {
            Stream::Stdout
        },
        time,
        time_text: l.time,
        text: l.log.into_owned(),
    })
}

/// `logs` options.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// `-f`.
    pub follow: bool,
    /// `--tail N`: the last N entries only.
    pub tail: Option<usize>,
    /// `--since`.
    pub since: Option<DateTime<Utc>>,
    /// `--until`.
    pub until: Option<DateTime<Utc>>,
}

/// Reads the log at `path` and hands each selected entry to `emit`. With
/// `follow`, keeps reading new entries until `running()` says the
/// container stopped and everything it wrote has been read.
pub fn read(
    path: &Path,
    opts: &LogOptions,
    mut running: impl FnMut() -> bool,
    mut emit: impl FnMut(&LogEntry) -> std::io::Result<()>,
) -> CResult<()> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !opts.follow => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Not started yet: wait for the monitor to create it.
            loop {
                if let Ok(f) = File::open(path) {
                    break f;
                }
                if !running() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Err(e) => return Err(ContainerError::io(format!("opening {}", path.display()), e)),
    };
    let mut reader = BufReader::new(file);
    let selected = |e: &LogEntry| {
        opts.since.is_none_or(|s| e.time >= s) && opts.until.is_none_or(|u| e.time <= u)
    };
    // What is there now, of which only the tail is wanted.
    let mut existing = Vec::new();
    let mut line = String::new();
    let mut pending = String::new();
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| ContainerError::io(format!("reading {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        if !line.ends_with('\n') {
            // A line the monitor is still writing: finish it when following.
            pending = line.clone();
            break;
        }
        if let Some(e) = parse_entry(&line) {
            if selected(&e) {
                existing.push(e);
            }
        }
    }
    let skip = opts.tail.map_or(0, |t| existing.len().saturating_sub(t));
    for e in &existing[skip..] {
        if emit(e).is_err() {
            return Ok(());
        }
    }
    if !opts.follow {
        return Ok(());
    }
    // Follow: poll for appended lines; stop once the container stopped and
    // one more read found nothing.
    let mut stopped = false;
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| ContainerError::io(format!("reading {}", path.display()), e))?;
        if n > 0 {
            pending.push_str(&line);
            if !pending.ends_with('\n') {
                continue;
            }
            let text = std::mem::take(&mut pending);
            if let Some(e) = parse_entry(&text) {
                if selected(&e) && emit(&e).is_err() {
                    return Ok(());
                }
            }
            continue;
        }
        if stopped {
            return Ok(());
        }
        if !running() {
            // One last read for what the monitor wrote before it exited.
            stopped = true;
            continue;
        }
        // A BufReader at the end of a file reads it again next time.
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(path: &Path, opts: &LogOptions) -> Vec<LogEntry> {
        let mut out = Vec::new();
        read(
            path,
            opts,
            || false,
            |e| {
                out.push(e.clone());
                Ok(())
            },
        )
        .unwrap();
        out
    }

    #[test]
    fn lines_are_split_and_partials_kept_until_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = LogWriter::create(&path).unwrap();
        w.write(Stream::Stdout, b"hel");
        w.write(Stream::Stderr, b"oops\n");
        w.write(Stream::Stdout, b"lo\nworld\npart");
        w.finish();
        let got: Vec<(Stream, String)> = entries(&path, &LogOptions::default())
            .into_iter()
            .map(|e| (e.stream, e.text))
            .collect();
        assert_eq!(
            got,
            vec![
                (Stream::Stderr, "oops\n".to_string()),
                (Stream::Stdout, "hello\n".to_string()),
                (Stream::Stdout, "world\n".to_string()),
                (Stream::Stdout, "part".to_string()),
            ]
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("{\"log\":\"oops\\n\",\"stream\":\"stderr\",\"time\":\""),
            "{text}"
        );
    }

    #[test]
    fn long_lines_are_split_at_16k() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = LogWriter::create(&path).unwrap();
        w.write(Stream::Stdout, &vec![b'x'; MAX_LINE * 2 + 5]);
        w.finish();
        let lens: Vec<usize> = entries(&path, &LogOptions::default())
            .iter()
            .map(|e| e.text.len())
            .collect();
        assert_eq!(lens, [MAX_LINE, MAX_LINE, 5]);
    }

    #[test]
    fn tail_and_since_select_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        std::fs::write(
            &path,
            "{\"log\":\"a\\n\",\"stream\":\"stdout\",\"time\":\"2020-01-01T00:00:00.5Z\"}\n\
             garbage\n\
             {\"log\":\"b\\n\",\"stream\":\"stdout\",\"time\":\"2021-01-01T00:00:00Z\"}\n\
             {\"log\":\"c\\n\",\"stream\":\"stderr\",\"time\":\"2022-01-01T00:00:00Z\"}\n",
        )
        .unwrap();
        let texts = |o: LogOptions| -> Vec<String> {
            entries(&path, &o).into_iter().map(|e| e.text).collect()
        };
        assert_eq!(texts(LogOptions::default()), ["a\n", "b\n", "c\n"]);
        let tail = LogOptions {
            tail: Some(2),
            ..Default::default()
        };
        assert_eq!(texts(tail), ["b\n", "c\n"]);
        let since = LogOptions {
            since: Some("2021-01-01T00:00:00Z".parse().unwrap()),
            until: Some("2021-06-01T00:00:00Z".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(texts(since), ["b\n"]);
        assert!(entries(&dir.path().join("none"), &LogOptions::default()).is_empty());
    }
}
