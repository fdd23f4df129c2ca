//! The OCI runtime spec of a container: the image's config and the user's
//! flags (already merged into the record) made into what berth-launch runs,
//! with Docker's defaults for namespaces, capabilities, masked paths and
//! mounts.

use std::path::Path;

use oci_spec::runtime::{
    LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespace, LinuxNamespaceBuilder,
    LinuxNamespaceType, MountBuilder, ProcessBuilder, RootBuilder, Spec, UserBuilder,
};
use serde_json::Value;

use super::error::{CResult, ContainerError};
use super::state::Record;
use super::strings;

/// The user a container runs as, from `-u` / the image's `User`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// Resolves `user[:group]` (names or numbers) against the container's own
/// `/etc/passwd` and `/etc/group` contents, as Docker does.
pub(crate) fn resolve_user(spec: &str, passwd: &str, group: &str) -> CResult<ResolvedUser> {
    let bad = |what: &str| {
        ContainerError::InvalidArgument(format!(
            "unable to find user {spec}: no matching entries in {what} file"
        ))
    };
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    // name:x:uid:gid:gecos:home:shell
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && (f[0] == user || (!user.is_empty() && f[2] == user)));
    let (uid, mut gid, home) = match (&entry, user.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse().map_err(|_| bad("passwd"))?,
            f[3].parse().map_err(|_| bad("passwd"))?,
            f[5].to_string(),
        ),
        (None, Ok(uid)) => (uid, uid, "/".to_string()),
        (None, Err(_)) if user.is_empty() => (0, 0, "/root".to_string()),
        (None, Err(_)) => return Err(bad("passwd")),
    };
    if let Some(g) = grp {
        let found = group
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() >= 3 && (f[0] == g || f[2] == g));
        gid = match (found, g.parse::<u32>()) {
            (Some(f), _) => f[2].parse().map_err(|_| bad("group"))?,
            (None, Ok(n)) => n,
            (None, Err(_)) => return Err(bad("group")),
        };
    }
    Ok(ResolvedUser { uid, gid, home })
}

fn ns(typ: LinuxNamespaceType) -> LinuxNamespace {
    LinuxNamespaceBuilder::default()
        .typ(typ)
        .build()
        .expect("namespace has its type")
}

fn bind(dest: &str, source: &str) -> CResult<oci_spec::runtime::Mount> {
    MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(source)
        .options(vec!["rbind".to_string(), "rprivate".to_string()])
        .build()
        .map_err(|e| ContainerError::InvalidArgument(format!("mount {dest}: {e}")))
}

/// The spec for `record`, whose root filesystem is mounted at `rootfs`.
pub(crate) fn build(record: &Record, rootfs: &Path) -> CResult<Spec> {
    let read = |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap_or_default();
    build_with_users(record, rootfs, &read("etc/passwd"), &read("etc/group"))
}

/// [`build`] with the container's `/etc/passwd` and `/etc/group` given.
pub(crate) fn build_with_users(
    record: &Record,
    rootfs: &Path,
    passwd: &str,
    group: &str,
) -> CResult<Spec> {
    let config = &record.config;
    let text = |k: &str| config.get(k).and_then(Value::as_str).unwrap_or("");
    let user = resolve_user(text("User"), passwd, group)?;

    let mut env = strings(config.get("Env"));
    // Docker sets HOSTNAME, after PATH, unless the user did.
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        let at = env
            .iter()
            .position(|e| e.starts_with("PATH="))
            .map_or(0, |i| i + 1);
        env.insert(at, format!("HOSTNAME={}", text("Hostname")));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    let cwd = match text("WorkingDir") {
        "" => "/",
        w => w,
    };
    let args: Vec<String> = std::iter::once(record.path.clone())
        .chain(record.args.iter().cloned())
        .collect();
    let invalid = |e: oci_spec::OciSpecError| ContainerError::InvalidArgument(e.to_string());
    let caps = berth_launch::default_capabilities();
    let process = ProcessBuilder::default()
        .args(args)
        .env(env)
        .cwd(cwd)
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(user.uid)
                .gid(user.gid)
                .build()
                .map_err(invalid)?,
        )
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(caps.clone())
                .effective(caps.clone())
                .permitted(caps)
                .build()
                .map_err(invalid)?,
        )
        .build()
        .map_err(invalid)?;

    use LinuxNamespaceType::*;
    let mut namespaces = vec![ns(Pid), ns(Ipc), ns(Uts), ns(Mount), ns(Cgroup)];
    // `host` shares the host's network; anything else gets its own (for now
    // only a loopback: bridge networking comes with the network issue).
    if record.host_config.network_mode != "host" {
        namespaces.push(ns(Network));
    }
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(berth_launch::default_masked_paths())
        .readonly_paths(berth_launch::default_readonly_paths())
        .build()
        .map_err(invalid)?;

    let mut mounts = berth_launch::default_mounts();
    mounts.push(bind("/etc/resolv.conf", &record.resolv_conf_path)?);
    mounts.push(bind("/etc/hostname", &record.hostname_path)?);
    mounts.push(bind("/etc/hosts", &record.hosts_path)?);
    super::mounts::add_spec_mounts(&mut mounts, record)?;

    let mut spec = Spec::default();
    spec.set_process(Some(process));
    spec.set_linux(Some(linux));
    spec.set_hostname(Some(text("Hostname").to_string()));
    spec.set_mounts(Some(mounts));
    spec.set_root(Some(
        RootBuilder::default()
            .path(rootfs)
            .readonly(record.host_config.readonly_rootfs)
            .build()
            .map_err(invalid)?,
    ));
    super::resources::apply_to_spec(record, &mut spec)?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34:www:/var/www:/bin/false\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:\n";

    #[test]
    fn users_resolve_by_name_number_and_group() {
        let u = |s| resolve_user(s, PASSWD, GROUP);
        assert_eq!(
            u("").unwrap(),
            ResolvedUser {
                uid: 0,
                gid: 0,
                home: "/root".into()
            }
        );
        assert_eq!(
            u("www").unwrap(),
            ResolvedUser {
                uid: 33,
                gid: 34,
                home: "/var/www".into()
            }
        );
        assert_eq!(u("33").unwrap().home, "/var/www");
        assert_eq!(
            u("1000").unwrap(),
            ResolvedUser {
                uid: 1000,
                gid: 1000,
                home: "/".into()
            }
        );
        assert_eq!(u("www:staff").unwrap().gid, 50);
        assert_eq!(u("www:7").unwrap().gid, 7);
        assert!(u("nobody").is_err());
        assert!(u("www:wheel").is_err());
    }
}
