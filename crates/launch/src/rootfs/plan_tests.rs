//! The rootfs plan for Docker-like specs, run against the recording fake.

use std::path::Path;

use oci_spec::runtime::{LinuxBuilder, MountBuilder, RootBuilder, Spec};

use super::*;
use crate::rootfs::run;
use crate::sys::recording::Recorder;

fn docker_spec() -> Spec {
    let mut spec = Spec::default();
    spec.set_hostname(Some("c0ffee".into()));
    spec
}

fn calls(spec: &Spec, rootfs: &Path, ctx: &PlanContext) -> Vec<String> {
    let ops = plan(spec, rootfs, ctx).unwrap();
    let rec = Recorder::default();
    run(&ops, &rec).unwrap();
    rec.calls()
}

fn index(calls: &[String], prefix: &str) -> usize {
    calls
        .iter()
        .position(|c| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("no call starting with {prefix:?} in {calls:#?}"))
}

#[test]
fn root_is_made_slave_and_bound_before_anything_else() {
    let c = calls(&docker_spec(), Path::new("/r"), &PlanContext::default());
    assert_eq!(
        c[0],
        format!("mount - / - {:#x} -", libc::MS_SLAVE | libc::MS_REC)
    );
    assert_eq!(
        c[1],
        format!("mount /r /r - {:#x} -", libc::MS_BIND | libc::MS_REC)
    );
}

#[test]
fn rootful_dev_gets_mknod_nodes_links_and_devpts_before_pivot() {
    let ctx = PlanContext {
        tty_gid_mapped: true,
        ..Default::default()
    };
    let c = calls(&docker_spec(), Path::new("/r"), &ctx);
    let dev = index(&c, "mount tmpfs /r/dev tmpfs");
    let null = index(&c, "mknod /r/dev/null 20666 0x103");
    let link = index(&c, "symlink pts/ptmx /r/dev/ptmx");
    let pts = index(&c, "mount devpts /r/dev/pts devpts");
    let pivot = index(&c, "pivot_root");
    assert!(
        dev < null && null < link && link < pts && pts < pivot,
        "{c:#?}"
    );
    assert!(c[pts].ends_with("gid=5"), "{}", c[pts]);
    assert!(c.iter().any(|l| l == "mkdir /r/dev/pts 755"));
    assert!(c.iter().any(|l| l == "symlink /proc/self/fd /r/dev/fd"));
}

#[test]
fn userns_binds_host_nodes_and_drops_unmapped_tty_gid() {
    let ctx = PlanContext {
        userns: true,
        tty_gid_mapped: false,
        ..Default::default()
    };
    let c = calls(&docker_spec(), Path::new("/r"), &ctx);
    assert!(!c.iter().any(|l| l.starts_with("mknod")), "{c:#?}");
    let create = index(&c, "create /r/dev/null");
    let bind = index(&c, "mount /dev/null /r/dev/null -");
    assert!(create < bind);
    let pts = &c[index(&c, "mount devpts")];
    assert!(!pts.contains("gid="), "{pts}");
}

#[test]
fn masks_readonly_paths_and_hostname_come_after_pivot() {
    let c = calls(&docker_spec(), Path::new("/r"), &PlanContext::default());
    let pivot = index(&c, "pivot_root");
    assert!(index(&c, "mount /dev/null /proc/kcore") > pivot);
    assert!(index(&c, "mount /proc/sys /proc/sys") > pivot);
    assert_eq!(c.last().unwrap(), "sethostname c0ffee");
}

#[test]
fn no_hostname_without_a_uts_namespace() {
    let mut spec = docker_spec();
    spec.set_linux(Some(
        LinuxBuilder::default().namespaces(vec![]).build().unwrap(),
    ));
    let c = calls(&spec, Path::new("/r"), &PlanContext::default());
    assert!(!c.iter().any(|l| l.starts_with("sethostname")));
}

#[test]
fn readonly_root_is_remounted_after_pivot() {
    let mut spec = docker_spec();
    spec.set_root(Some(
        RootBuilder::default()
            .path("rootfs")
            .readonly(true)
            .build()
            .unwrap(),
    ));
    let c = calls(&spec, Path::new("/r"), &PlanContext::default());
    let ro = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID;
    assert!(index(&c, &format!("mount - / - {ro:#x}")) > index(&c, "pivot_root"));
}

#[test]
fn bind_mounts_of_files_and_readonly_dirs() {
    let host = tempfile::tempdir().unwrap();
    let file = host.path().join("hosts");
    std::fs::write(&file, "x").unwrap();
    let mut spec = docker_spec();
    spec.set_mounts(Some(vec![
        MountBuilder::default()
            .destination("/etc/hosts")
            .typ("bind")
            .source(&file)
            .options(vec!["rbind".to_string(), "rprivate".to_string()])
            .build()
            .unwrap(),
        MountBuilder::default()
            .destination("/data")
            .typ("bind")
            .source(host.path())
            .options(vec!["bind".to_string(), "ro".to_string()])
            .build()
            .unwrap(),
    ]));
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    // The image's own symlinks are resolved inside the rootfs when planning.
    std::os::unix::fs::symlink("/etc", root.path().join("data")).unwrap();
    let r = root.path().display().to_string();
    let c = calls(&spec, root.path(), &PlanContext::default());
    // Each mount point is found (or made) inside the root by descriptor,
    // and the mount goes through that descriptor, never through a path.
    let open = index(&c, &format!("open_in_root {r} etc/hosts file = "));
    let fd = c[open].rsplit(' ').next().unwrap().to_string();
    let bind = libc::MS_BIND | libc::MS_REC;
    assert_eq!(
        c[open + 1],
        format!("mount {} /proc/self/fd/{fd} - {bind:#x} -", file.display())
    );
    assert_eq!(c[open + 2], format!("close {fd}"));
    // Propagation is set on the new mount, found again.
    assert!(c[open + 3].starts_with(&format!("open_in_root {r} etc/hosts open = ")));
    assert!(c[open + 4].ends_with(&format!(" - {:#x} -", libc::MS_PRIVATE | libc::MS_REC)));
    let data = index(&c, &format!("open_in_root {r} etc dir = "));
    let fd = c[data].rsplit(' ').next().unwrap().to_string();
    assert_eq!(
        c[data + 1],
        format!(
            "mount {} /proc/self/fd/{fd} - {:#x} -",
            host.path().display(),
            libc::MS_BIND
        )
    );
    let again = c[data + 3].rsplit(' ').next().unwrap().to_string();
    let remount = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID;
    assert_eq!(
        c[data + 4],
        format!("mount - /proc/self/fd/{again} - {remount:#x} -")
    );
    assert_eq!(c[data + 5], format!("close {again}"));
    assert!(
        !c.iter().any(|l| l.starts_with("mkdir") && l.contains(&r)),
        "{c:#?}"
    );
}

#[test]
fn tmpfs_mounts_other_than_dev_are_made_in_root() {
    let mut spec = docker_spec();
    spec.set_mounts(Some(vec![MountBuilder::default()
        .destination("/run")
        .typ("tmpfs")
        .source("tmpfs")
        .options(vec!["nosuid".to_string(), "size=1m".to_string()])
        .build()
        .unwrap()]));
    let c = calls(&spec, Path::new("/r"), &PlanContext::default());
    let open = index(&c, "open_in_root /r run dir = ");
    let fd = c[open].rsplit(' ').next().unwrap();
    assert_eq!(
        c[open + 1],
        format!(
            "mount tmpfs /proc/self/fd/{fd} tmpfs {:#x} size=1m",
            libc::MS_NOSUID
        )
    );
}

#[test]
fn bad_specs_are_rejected() {
    let mut spec = docker_spec();
    spec.set_mounts(Some(vec![MountBuilder::default()
        .destination("/x")
        .typ("bind")
        .source("/definitely/not/here")
        .build()
        .unwrap()]));
    assert!(matches!(
        plan(&spec, Path::new("/r"), &PlanContext::default()),
        Err(Error::Io { .. })
    ));
    let mut spec = docker_spec();
    spec.set_linux(Some(
        LinuxBuilder::default()
            .rootfs_propagation("sideways")
            .build()
            .unwrap(),
    ));
    assert!(matches!(
        plan(&spec, Path::new("/r"), &PlanContext::default()),
        Err(Error::InvalidSpec(_))
    ));
}

#[test]
fn cgroup_mounts_follow_the_host_version() {
    let v1 = calls(&docker_spec(), Path::new("/r"), &PlanContext::default());
    assert!(!v1.iter().any(|l| l.contains("/r/sys/fs/cgroup cgroup")));
    let ctx = PlanContext {
        cgroup_v2: true,
        ..Default::default()
    };
    let v2 = calls(&docker_spec(), Path::new("/r"), &ctx);
    assert!(
        v2.iter().any(|l| l.contains("/r/sys/fs/cgroup cgroup2")),
        "{v2:#?}"
    );
}
