//! Which overlay implementations the benchmark compares, and where their
//! binaries are. Kernel overlayfs and berth-unionfs are always columns;
//! each fuse-overlayfs version is a column too, shown as n/a with the
//! reason when it is not installed, so tables from different machines keep
//! the same shape.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Kind {
    Kernel,
    /// fuse-overlayfs 1.x, the C implementation (Debian's package).
    FuseOverlayfs1,
    /// fuse-overlayfs 2.x, the Rust rewrite (`cargo install fuse-overlayfs`).
    FuseOverlayfs2,
    Berth,
}

/// One column of the table.
#[derive(Clone, Debug)]
pub struct Impl {
    pub kind: Kind,
    /// Column header, with the version when known.
    pub label: String,
    /// Short name for run directories and progress lines.
    pub slug: &'static str,
    /// The daemon to start (None for the kernel).
    pub bin: Option<PathBuf>,
    /// Why the column is empty.
    pub missing: Option<String>,
}

impl Impl {
    pub fn present(&self) -> bool {
        self.missing.is_none()
    }
}

/// `X.Y...` from `fuse-overlayfs: version X.Y.Z` (what both versions print).
fn version_of(bin: &Path) -> Option<String> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines()
        .filter(|l| l.starts_with("fuse-overlayfs"))
        .find_map(|l| l.split("version").nth(1))
        .map(|v| v.trim().to_string())
}

/// Every `fuse-overlayfs` on PATH, in PATH order.
fn on_path() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("fuse-overlayfs"))
                .filter(|b| b.is_file())
                .collect()
        })
        .unwrap_or_default()
}

/// The first candidate whose version has major number `major`.
fn find(major: &str, env: &str, extra: &[PathBuf]) -> Result<(PathBuf, String), String> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os(env) {
        candidates.push(PathBuf::from(p));
    }
    candidates.extend(extra.iter().cloned());
    candidates.extend(on_path());
    let mut seen = Vec::new();
    for c in candidates {
        match version_of(&c) {
            Some(v) if v.split('.').next() == Some(major) => return Ok((c, v)),
            Some(v) => seen.push(format!("{} is {v}", c.display())),
            None => {}
        }
    }
    if seen.is_empty() {
        Err("not installed".into())
    } else {
        Err(format!("not installed ({})", seen.join(", ")))
    }
}

fn fuse_overlayfs(kind: Kind) -> Impl {
    let (major, env, extra, slug, lang, hint): (_, _, Vec<PathBuf>, _, _, _) = match kind {
        Kind::FuseOverlayfs1 => (
            "1",
            "FUSE_OVERLAYFS1_BIN",
            vec!["/usr/bin/fuse-overlayfs".into()],
            "fo1",
            "C",
            "apt-get install fuse-overlayfs",
        ),
        _ => {
            let home = std::env::var_os("HOME").map(PathBuf::from);
            let mut extra = vec![PathBuf::from("/opt/fuse-overlayfs2/bin/fuse-overlayfs")];
            if let Some(h) = home {
                extra.push(h.join(".cargo/bin/fuse-overlayfs"));
            }
            (
                "2",
                "FUSE_OVERLAYFS2_BIN",
                extra,
                "fo2",
                "Rust",
                "cargo install --root /opt/fuse-overlayfs2 fuse-overlayfs, or set FUSE_OVERLAYFS2_BIN",
            )
        }
    };
    match find(major, env, &extra) {
        Ok((bin, version)) => Impl {
            kind,
            label: format!("fuse-overlayfs {version} ({lang})"),
            slug,
            bin: Some(bin),
            missing: None,
        },
        Err(why) => Impl {
            kind,
            label: format!("fuse-overlayfs {major}.x ({lang})"),
            slug,
            bin: None,
            missing: Some(format!("{why}: {hint}")),
        },
    }
}

/// The columns, in table order.
pub fn detect(berth_bin: &Path) -> Vec<Impl> {
    vec![
        Impl {
            kind: Kind::Kernel,
            label: "kernel".into(),
            slug: "kernel",
            bin: None,
            missing: None,
        },
        fuse_overlayfs(Kind::FuseOverlayfs1),
        fuse_overlayfs(Kind::FuseOverlayfs2),
        Impl {
            kind: Kind::Berth,
            label: "berth-unionfs".into(),
            slug: "berth",
            bin: Some(berth_bin.to_path_buf()),
            missing: None,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_is_reported_not_fatal() {
        let r = find(
            "9",
            "BERTH_TEST_NO_SUCH_VAR",
            &[PathBuf::from("/nonexistent/x")],
        );
        assert!(r.unwrap_err().starts_with("not installed"));
    }
}
