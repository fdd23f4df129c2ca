//! Owners and modes that could not be written to disk, kept beside the file
//! in containers/storage's `user.containers.override_stat` xattr (what
//! fuse-overlayfs reads with `xattr_permissions=2`). An unprivileged user
//! cannot chown, so a rootless unpack (berth-archive) records the tar
//! header's owner there instead; berth-unionfs shows and updates it, and
//! writing a layer reads it back. This crate is the value's one codec.
//!
//! The value is `UID:GID:MODE[:TYPE]`: decimal ids, the permission bits in
//! octal (`%04o`), and the file type (`file`, `dir`, `symlink`, `pipe`,
//! `socket`, `block-MAJOR-MINOR`, `char-MAJOR-MINOR`); a device node that
//! could not be made is stored as an empty regular file with its type here.
//! Only regular files and directories can carry `user.` xattrs.

/// The xattr's name.
pub const OVERRIDE_XATTR: &str = "user.containers.override_stat";

/// The file type recorded in the xattr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideKind {
    File,
    Dir,
    Symlink,
    Pipe,
    Socket,
    Block { major: u32, minor: u32 },
    Char { major: u32, minor: u32 },
}

/// One decoded `user.containers.override_stat` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverrideStat {
    pub uid: u32,
    pub gid: u32,
    /// Permission, set-id and sticky bits (`0o7777`).
    pub mode: u32,
    /// None when the value has no type field (older writers).
    pub kind: Option<OverrideKind>,
}

impl OverrideStat {
    /// The xattr value, as containers/storage formats it.
    /// A value without a type (fuse-overlayfs 1.x's) stays without one.
    pub fn format(&self) -> String {
        let Some(kind) = self.kind else {
            return format!("{}:{}:{:04o}", self.uid, self.gid, self.mode & 0o7777);
        };
        let kind = match kind {
            OverrideKind::File => "file".to_string(),
            OverrideKind::Dir => "dir".to_string(),
            OverrideKind::Symlink => "symlink".to_string(),
            OverrideKind::Pipe => "pipe".to_string(),
            OverrideKind::Socket => "socket".to_string(),
            OverrideKind::Block { major, minor } => format!("block-{major}-{minor}"),
            OverrideKind::Char { major, minor } => format!("char-{major}-{minor}"),
        };
        format!(
            "{}:{}:{:04o}:{kind}",
            self.uid,
            self.gid,
            self.mode & 0o7777
        )
    }

    /// Decodes a value; None when it is not one (then it is ignored, as
    /// fuse-overlayfs ignores what it cannot parse).
    pub fn parse(value: &[u8]) -> Option<OverrideStat> {
        let text = std::str::from_utf8(value).ok()?;
        let text = text.trim_end_matches('\0');
        let mut parts = text.splitn(4, ':');
        let uid = parts.next()?.parse().ok()?;
        let gid = parts.next()?.parse().ok()?;
        let mode = u32::from_str_radix(parts.next()?, 8).ok()?;
        if mode > 0o7777 {
            return None;
        }
        let kind = match parts.next() {
            None => None,
            Some(t) => Some(parse_kind(t)?),
        };
        Some(OverrideStat {
            uid,
            gid,
            mode,
            kind,
        })
    }
}

fn parse_kind(t: &str) -> Option<OverrideKind> {
    let device = |rest: &str| -> Option<(u32, u32)> {
        // Extra fields are ignored, for writers newer than us.
        let mut it = rest.split('-');
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    Some(match t {
        "file" => OverrideKind::File,
        "dir" => OverrideKind::Dir,
        "symlink" => OverrideKind::Symlink,
        "pipe" => OverrideKind::Pipe,
        "socket" => OverrideKind::Socket,
        _ => {
            if let Some(rest) = t.strip_prefix("block-") {
                let (major, minor) = device(rest)?;
                OverrideKind::Block { major, minor }
            } else if let Some(rest) = t.strip_prefix("char-") {
                let (major, minor) = device(rest)?;
                OverrideKind::Char { major, minor }
            } else {
                return None;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_containers_storage() {
        let s = OverrideStat {
            uid: 1000,
            gid: 42,
            mode: 0o4755,
            kind: Some(OverrideKind::File),
        };
        assert_eq!(s.format(), "1000:42:4755:file");
        let d = OverrideStat {
            uid: 0,
            gid: 0,
            mode: 0o600,
            kind: Some(OverrideKind::Char { major: 1, minor: 3 }),
        };
        assert_eq!(d.format(), "0:0:0600:char-1-3");
        assert_eq!(OverrideStat::parse(d.format().as_bytes()), Some(d));
        assert_eq!(OverrideStat::parse(s.format().as_bytes()), Some(s));
    }

    #[test]
    fn parses_every_writer_and_refuses_garbage() {
        // fuse-overlayfs 1.x writes no type.
        let old = OverrideStat::parse(b"33:33:755").unwrap();
        assert_eq!(
            (old.uid, old.gid, old.mode, old.kind),
            (33, 33, 0o755, None)
        );
        assert_eq!(old.format(), "33:33:0755");
        assert_eq!(
            OverrideStat::parse(b"1:2:2775:dir").unwrap().kind,
            Some(OverrideKind::Dir)
        );
        assert_eq!(
            OverrideStat::parse(b"0:0:0660:block-8-1-extra")
                .unwrap()
                .kind,
            Some(OverrideKind::Block { major: 8, minor: 1 })
        );
        for bad in [
            &b""[..],
            b"1:2",
            b"a:2:755",
            b"1:2:99",
            b"1:2:17777",
            b"1:2:755:door",
            b"1:2:755:char-1",
            b"\xff:1:1",
        ] {
            assert_eq!(OverrideStat::parse(bad), None, "{bad:?}");
        }
    }
}
