//! uid/gid maps for the container's user namespace: computing the rootless
//! maps from /etc/subuid and /etc/subgid, and writing them for a child, by
//! hand when the kernel lets us or through newuidmap/newgidmap otherwise.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use oci_spec::runtime::{LinuxIdMapping, LinuxIdMappingBuilder};

use crate::error::{Error, Result};

/// One `container host size` line of a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id inside the container.
    pub container: u32,
    /// First id on the host.
    pub host: u32,
    /// Number of ids.
    pub size: u32,
}

impl From<&LinuxIdMapping> for IdRange {
    fn from(m: &LinuxIdMapping) -> Self {
        IdRange {
            container: m.container_id(),
            host: m.host_id(),
            size: m.size(),
        }
    }
}

impl IdRange {
    /// The `oci_spec` form, for putting into a spec.
    pub fn to_spec(self) -> LinuxIdMapping {
        LinuxIdMappingBuilder::default()
            .container_id(self.container)
            .host_id(self.host)
            .size(self.size)
            .build()
            .expect("all fields set")
    }
}

/// The rootless map for one id: the caller's own id becomes 0, and the
/// first subordinate range (from `subid_file`) fills 1..; without one, the
/// single-id map is all there is.
pub fn rootless_map(own: u32, user: &str, subid_file: &Path) -> Vec<IdRange> {
    let mut map = vec![IdRange {
        container: 0,
        host: own,
        size: 1,
    }];
    if let Some((start, count)) = std::fs::read_to_string(subid_file)
        .ok()
        .and_then(|text| find_subid(&text, user, own))
    {
        map.push(IdRange {
            container: 1,
            host: start,
            size: count,
        });
    }
    map
}

/// The first `name:start:count` (or `uid:start:count`) entry for the user.
fn find_subid(text: &str, user: &str, own: u32) -> Option<(u32, u32)> {
    let own = own.to_string();
    text.lines().find_map(|line| {
        let mut f = line.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        if who != user && who != own {
            return None;
        }
        let count: u32 = count.parse().ok()?;
        (count > 0).then_some((start.parse().ok()?, count))
    })
}

/// Whether `id` inside the container is covered by the map.
pub(crate) fn maps_id(map: &[IdRange], id: u32) -> bool {
    map.iter()
        .any(|r| id >= r.container && id - r.container < r.size)
}

fn render(map: &[IdRange]) -> String {
    map.iter()
        .map(|r| format!("{} {} {}\n", r.container, r.host, r.size))
        .collect()
}

/// A map that maps only the writer's own id: the kernel accepts it from an
/// unprivileged writer (for gids only once setgroups is denied).
fn is_self_map(map: &[IdRange], own: u32) -> bool {
    matches!(map, [r] if r.host == own && r.size == 1)
}

/// Whether an unprivileged caller must deny setgroups(2) to write `gids`
/// (it maps only its own gid, by hand).
pub(crate) fn setgroups_denied(gids: &[IdRange]) -> bool {
    !nix::unistd::geteuid().is_root() && is_self_map(gids, nix::unistd::getegid().as_raw())
}

/// Writes both maps for `pid`. Returns whether setgroups(2) stays usable in
/// the container (it is denied when an unprivileged caller maps only itself).
pub(crate) fn write_maps(pid: i32, uids: &[IdRange], gids: &[IdRange]) -> Result<bool> {
    let privileged = nix::unistd::geteuid().is_root();
    let self_gid = is_self_map(gids, nix::unistd::getegid().as_raw());
    let mut setgroups_allowed = true;

    if privileged || is_self_map(uids, nix::unistd::geteuid().as_raw()) {
        write_proc(pid, "uid_map", &render(uids))?;
    } else {
        run_helper("newuidmap", pid, uids)?;
    }
    if privileged {
        write_proc(pid, "gid_map", &render(gids))?;
    } else if self_gid {
        write_proc(pid, "setgroups", "deny")?;
        setgroups_allowed = false;
        write_proc(pid, "gid_map", &render(gids))?;
    } else {
        run_helper("newgidmap", pid, gids)?;
    }
    Ok(setgroups_allowed)
}

fn write_proc(pid: i32, file: &str, content: &str) -> Result<()> {
    let path = format!("/proc/{pid}/{file}");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(content.as_bytes()))
        .map_err(|e| Error::io(format!("write {path}"), e))
}

fn run_helper(helper: &str, pid: i32, map: &[IdRange]) -> Result<()> {
    let mut cmd = Command::new(helper);
    cmd.arg(pid.to_string());
    for r in map {
        cmd.args([r.container, r.host, r.size].map(|n| n.to_string()));
    }
    let out = cmd
        .output()
        .map_err(|e| Error::io(format!("run {helper} (install the uidmap package)"), e))?;
    if !out.status.success() {
        return Err(Error::io(
            format!("{helper} {pid}"),
            std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subid_entries_match_by_name_or_uid() {
        let text = "alice:100000:65536\n1001:200000:1000\nbob:300000:0\n";
        assert_eq!(find_subid(text, "alice", 1000), Some((100000, 65536)));
        assert_eq!(find_subid(text, "carol", 1001), Some((200000, 1000)));
        assert_eq!(find_subid(text, "bob", 1002), None, "empty range ignored");
    }

    #[test]
    fn rootless_map_falls_back_to_a_single_id() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("subuid");
        assert_eq!(
            rootless_map(1000, "alice", &f),
            vec![IdRange {
                container: 0,
                host: 1000,
                size: 1
            }]
        );
        std::fs::write(&f, "alice:100000:65536\n").unwrap();
        let map = rootless_map(1000, "alice", &f);
        assert_eq!(map.len(), 2);
        assert_eq!(
            map[1],
            IdRange {
                container: 1,
                host: 100000,
                size: 65536
            }
        );
        assert!(maps_id(&map, 5));
        assert!(!maps_id(&map[..1], 5));
    }

    #[test]
    fn self_maps_are_recognised() {
        let one = [IdRange {
            container: 0,
            host: 1000,
            size: 1,
        }];
        assert!(is_self_map(&one, 1000));
        assert!(!is_self_map(&one, 1001));
        assert_eq!(render(&one), "0 1000 1\n");
    }
}
