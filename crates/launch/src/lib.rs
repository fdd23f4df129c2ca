//! berth-launch: starts containers from an OCI runtime spec and a prepared
//! root filesystem. It knows nothing of images or storage.
//!
//! - [`spawn`] starts a container's init in new namespaces (user, mount, pid,
//!   uts, ipc, net, cgroup, as the spec says), with uid/gid maps (rootless:
//!   the caller is root inside), the rootfs via `pivot_root`, `/proc`,
//!   `/sys`, `/dev`, the spec's mounts, masked and read-only paths, hostname,
//!   user, capabilities, rlimits, and an optional cgroup and pty.
//! - [`exec`] starts another process inside a running container (setns);
//!   [`read_container_files`] reads files as the container sees them.
//! - [`cgroups`] puts v1 and v2 behind one [`cgroups::Cgroup`] trait.
//! - [`enter_rootless_namespaces`] makes an unprivileged caller root of a
//!   user namespace with the rootless maps (and gives it a mount namespace),
//!   so it can mount a container's union root filesystem there and
//!   [`spawn`] the init with [`LaunchOptions::inside_userns`].
//!
//! # Speed and fork safety
//! There is no re-exec of a helper binary: the launcher clones the child
//! directly. The caller may have threads, so everything the child needs
//! (C strings, the mount plan, capability masks, `$PATH` candidates) is
//! computed before the fork, and the child only makes raw syscalls and
//! copies bytes into stack buffers until `execve`.
//!
//! # Failures and exit codes
//! The child reports failures on a close-on-exec pipe, so [`spawn`] and
//! [`exec`] return only after the command has started, or with
//! [`Error::CommandNotFound`] (Docker's 127), [`Error::CannotInvoke`] (126)
//! or another error (125); see [`Error::exit_code`].

mod caps;
pub mod cgroups;
mod child;
mod container_files;
mod defaults;
mod error;
mod exec;
mod fork;
mod idmap;
mod mountopts;
mod msg;
mod process;
mod rootfs;
mod spawn;
mod sys;
mod userns;

pub use container_files::read_container_files;
pub use defaults::{
    default_capabilities, default_masked_paths, default_mounts, default_readonly_paths,
    DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS,
};
pub use error::{Error, Result};
pub use exec::{exec, ExecChild, ExecOptions};
pub use fork::ExitStatus;
pub use idmap::{rootless_map, IdRange};
pub use process::Stdio;
pub use rootfs::secure_join;
pub use spawn::{spawn, Container, LaunchOptions};
pub use userns::{enter_rootless_namespaces, run_in_namespaces_of, run_in_rootless_namespaces};
