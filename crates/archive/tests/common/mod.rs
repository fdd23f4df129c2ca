//! Helpers shared by the integration tests: hand-made tarballs (including
//! entries a well-behaved tar writer refuses to produce) and a target dir.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use berth_archive::{
    apply_layer, AppliedLayer, ApplyOptions, ArchiveError, OpaquePrefix, WhiteoutFormat,
};
use tar::{EntryType, Header};

pub const OVERLAY: WhiteoutFormat = WhiteoutFormat::Overlay {
    xattr_prefix: OpaquePrefix::User,
};

/// A tarball built entry by entry with raw names (`..`, `/abs`, `.wh.` all allowed).
#[derive(Default)]
pub struct Tar {
    pub bytes: Vec<u8>,
}

impl Tar {
    pub fn new() -> Self {
        Tar::default()
    }

    fn raw(
        &mut self,
        name: &[u8],
        kind: EntryType,
        link: &[u8],
        data: &[u8],
        mode: u32,
    ) -> &mut Self {
        self.raw_dev(name, kind, link, data, mode, (0, 0))
    }

    fn raw_dev(
        &mut self,
        name: &[u8],
        kind: EntryType,
        link: &[u8],
        data: &[u8],
        mode: u32,
        (major, minor): (u32, u32),
    ) -> &mut Self {
        let mut h = Header::new_gnu();
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.bytes.extend_from_slice(h.as_bytes());
        self.bytes.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.bytes.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw(name.as_bytes(), EntryType::Regular, b"", data, 0o644)
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.raw(name.as_bytes(), EntryType::Directory, b"", b"", 0o755)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            name.as_bytes(),
            EntryType::Symlink,
            target.as_bytes(),
            b"",
            0o777,
        )
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            name.as_bytes(),
            EntryType::Link,
            target.as_bytes(),
            b"",
            0o644,
        )
    }

    pub fn char_dev(&mut self, name: &str, major: u32, minor: u32) -> &mut Self {
        self.raw_dev(
            name.as_bytes(),
            EntryType::Char,
            b"",
            b"",
            0o666,
            (major, minor),
        )
    }

    /// A PAX extended header applying `records` to the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (k, v) in records {
            let body = format!(" {k}=").len() + v.len() + 1;
            let mut len = body + 1;
            while len != body + len.to_string().len() {
                len = body + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        self.raw(b"././@PaxHeader", EntryType::XHeader, b"", &data, 0o644)
    }

    /// The end-of-archive marker: two zero blocks.
    pub fn finish(&mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(&[0u8; 1024]);
        std::mem::take(&mut self.bytes)
    }
}

/// `<tmp>/root` (the target) beside `<tmp>/outside` (must stay empty).
pub struct Target {
    pub tmp: tempfile::TempDir,
}

impl Target {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("root")).unwrap();
        std::fs::create_dir(tmp.path().join("outside")).unwrap();
        Target { tmp }
    }

    pub fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    pub fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }

    pub fn apply(
        &self,
        bytes: &[u8],
        whiteouts: WhiteoutFormat,
    ) -> Result<AppliedLayer, ArchiveError> {
        let opts = ApplyOptions {
            whiteouts,
            chown: true,
            record_owners: false,
            progress: None,
        };
        apply_layer(bytes, &self.root(), &opts)
    }

    /// Nothing appeared beside the root and nothing inside `outside`.
    pub fn assert_contained(&self) {
        let mut names: Vec<_> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["outside", "root"]);
        assert_eq!(std::fs::read_dir(self.outside()).unwrap().count(), 0);
    }
}

pub fn exists(p: &Path) -> bool {
    p.symlink_metadata().is_ok()
}
