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

/// The caller's rootless maps (uids, gids): its own ids become 0 and its
/// subordinate ranges follow, as [`rootless_map`] builds them. A map that
/// needs newuidmap/newgidmap falls back to the single-id map when that
/// helper is not installed (`have_helper` answers for a program name), so a
/// missing uidmap package costs the extra ids, not the container.
pub(crate) fn rootless_maps(
    uid: u32,
    gid: u32,
    user: &str,
    files: (&Path, &Path),
    have_helper: impl Fn(&str) -> bool,
) -> (Vec<IdRange>, Vec<IdRange>) {
    let narrow = |mut map: Vec<IdRange>, helper: &str| {
        if map.len() > 1 && !have_helper(helper) {
            log::warn!("{helper} not found (install the uidmap package): mapping only your own id");
            map.truncate(1);
        }
        map
    };
    (
        narrow(rootless_map(uid, user, files.0), "newuidmap"),
        narrow(rootless_map(gid, user, files.1), "newgidmap"),
    )
}

/// The maps of the calling process's effective user from /etc/subuid and
/// /etc/subgid, for a user namespace it creates or asks a child to create.
pub(crate) fn own_rootless_maps() -> (Vec<IdRange>, Vec<IdRange>) {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    let name = nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    rootless_maps(
        uid,
        gid,
        &name,
        (Path::new("/etc/subuid"), Path::new("/etc/subgid")),
        in_path,
    )
}

/// Whether an executable `program` is in `$PATH` (or the usual places).
fn in_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(program))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Parses a `/proc/PID/uid_map` or `gid_map`.
pub(crate) fn parse_map(text: &str) -> Vec<IdRange> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().map(str::parse::<u32>);
            Some(IdRange {
                container: f.next()?.ok()?,
                host: f.next()?.ok()?,
                size: f.next()?.ok()?,
            })
        })
        .collect()
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

    // The setuid helpers are the slow part of a rootless start (an exec
    // each): both run at once.
    let uid_helper = if privileged || is_self_map(uids, nix::unistd::geteuid().as_raw()) {
        write_proc(pid, "uid_map", &render(uids))?;
        None
    } else {
        Some(Helper::start("newuidmap", pid, uids)?)
    };
    let gid_helper = if privileged {
        write_proc(pid, "gid_map", &render(gids))?;
        None
    } else if self_gid {
        write_proc(pid, "setgroups", "deny")?;
        setgroups_allowed = false;
        write_proc(pid, "gid_map", &render(gids))?;
        None
    } else {
        Some(Helper::start("newgidmap", pid, gids))
    };
    let uid_result = uid_helper.map_or(Ok(()), Helper::finish);
    gid_helper.map_or(Ok(()), |h| h.and_then(Helper::finish))?;
    uid_result?;
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

/// A running newuidmap or newgidmap.
struct Helper {
    name: &'static str,
    pid: i32,
    child: std::process::Child,
}

impl Helper {
    fn start(name: &'static str, pid: i32, map: &[IdRange]) -> Result<Helper> {
        let mut cmd = Command::new(name);
        cmd.arg(pid.to_string());
        for r in map {
            cmd.args([r.container, r.host, r.size].map(|n| n.to_string()));
        }
        let child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(format!("run {name} (install the uidmap package)"), e))?;
        Ok(Helper { name, pid, child })
    }

    fn finish(self) -> Result<()> {
        let Helper { name, pid, child } = self;
        let out = child
            .wait_with_output()
            .map_err(|e| Error::io(format!("waiting for {name}"), e))?;
        if !out.status.success() {
            return Err(Error::io(
                format!("{name} {pid}"),
                std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
            ));
        }
        Ok(())
    }
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
    fn maps_narrow_to_one_id_without_the_helper() {
        let dir = tempfile::tempdir().unwrap();
        let (u, g) = (dir.path().join("subuid"), dir.path().join("subgid"));
        std::fs::write(&u, "alice:100000:65536\n").unwrap();
        std::fs::write(&g, "alice:200000:1000\n").unwrap();
        let files = (u.as_path(), g.as_path());
        let (uids, gids) = rootless_maps(1000, 1000, "alice", files, |_| true);
        assert_eq!((uids.len(), gids.len()), (2, 2));
        assert_eq!(gids[1].host, 200000);
        let (uids, gids) = rootless_maps(1000, 1000, "alice", files, |h| h == "newgidmap");
        assert_eq!(
            uids,
            [IdRange {
                container: 0,
                host: 1000,
                size: 1
            }]
        );
        assert_eq!(gids.len(), 2, "each map falls back on its own");
        let (uids, gids) = rootless_maps(1000, 50, "bob", files, |_| true);
        assert_eq!(
            uids,
            [IdRange {
                container: 0,
                host: 1000,
                size: 1
            }]
        );
        assert_eq!(
            gids,
            [IdRange {
                container: 0,
                host: 50,
                size: 1
            }]
        );
    }

    #[test]
    fn proc_maps_parse() {
        let text = "         0       1001          1\n         1     100000      65536\n";
        let map = parse_map(text);
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
        assert!(parse_map("").is_empty());
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
