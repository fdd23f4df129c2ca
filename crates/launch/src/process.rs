//! Turning an OCI `process` plus the caller's stdio choice into the parts of
//! a [`ChildPlan`], shared by [`spawn`](crate::spawn) and [`exec`](crate::exec).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use oci_spec::runtime::{PosixRlimitType, Process};

use crate::caps::CapSets;
use crate::child::{ChildPlan, ExecTarget, PtyPlan};
use crate::error::{Error, Result};
use crate::rootfs::{self, Op};

/// Where the container's stdin, stdout and stderr go when it has no terminal.
#[derive(Debug, Default)]
pub enum Stdio {
    /// The caller's own fds 0, 1 and 2.
    #[default]
    Inherit,
    /// These fds (each `None` inherits the caller's).
    Fds {
        /// Becomes fd 0.
        stdin: Option<OwnedFd>,
        /// Becomes fd 1.
        stdout: Option<OwnedFd>,
        /// Becomes fd 2.
        stderr: Option<OwnedFd>,
    },
}

/// Stdio ready for the fork: copies numbered 3 and up, so that placing them
/// on 0..2 in the child can never overwrite one another. With a terminal,
/// the child opens the pty itself, inside the container (so it is
/// `/dev/pts/N` of the container's devpts, as with runc), and sends the
/// master back on `pty_socket`.
pub(crate) struct PreparedStdio {
    fds: [Option<OwnedFd>; 3],
    /// Our end and the child's end of the socket the master comes back on.
    pty_socket: Option<(OwnedFd, OwnedFd)>,
}

impl PreparedStdio {
    pub fn new(terminal: bool, stdio: &Stdio) -> Result<Self> {
        if terminal {
            let (ours, theirs) = nix::sys::socket::socketpair(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::SeqPacket,
                None,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            )
            .map_err(|e| Error::io("pty socket", e.into()))?;
            return Ok(PreparedStdio {
                fds: [None, None, None],
                pty_socket: Some((ours, theirs)),
            });
        }
        let fds = match stdio {
            Stdio::Inherit => [None, None, None],
            Stdio::Fds {
                stdin,
                stdout,
                stderr,
            } => {
                let d =
                    |f: &Option<OwnedFd>| f.as_ref().map(|f| dup_high(f.as_raw_fd())).transpose();
                [d(stdin)?, d(stdout)?, d(stderr)?]
            }
        };
        Ok(PreparedStdio {
            fds,
            pty_socket: None,
        })
    }

    /// The child's end of the pty socket, for its plan.
    fn pty_child_fd(&self) -> Option<RawFd> {
        self.pty_socket.as_ref().map(|(_, c)| c.as_raw_fd())
    }

    /// After the child exec'd: the pty master it sent, if it has a terminal.
    pub fn receive_pty_master(&mut self) -> Result<Option<OwnedFd>> {
        let Some((ours, theirs)) = self.pty_socket.take() else {
            return Ok(None);
        };
        // The child's copy closed at exec; ours must go too, or a child that
        // sent nothing would leave us waiting.
        drop(theirs);
        let mut byte = [0u8; 1];
        let mut iov = [std::io::IoSliceMut::new(&mut byte)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = nix::sys::socket::recvmsg::<()>(
            ours.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| Error::io("receive pty master", e.into()))?;
        for cmsg in msg
            .cmsgs()
            .map_err(|e| Error::io("pty message", e.into()))?
        {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = cmsg {
                if let Some(&fd) = fds.first() {
                    // SAFETY: the kernel just gave us this fd.
                    return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
                }
            }
        }
        Err(Error::io(
            "receive pty master",
            std::io::Error::other("the container sent no pty"),
        ))
    }

    fn raw(&self) -> [Option<RawFd>; 3] {
        [0, 1, 2].map(|i| self.fds[i].as_ref().map(AsRawFd::as_raw_fd))
    }
}

fn dup_high(fd: RawFd) -> Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new fd we own, or -1.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new == -1 {
        return Err(Error::io(
            "duplicate stdio fd",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: `new` is a fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

fn rlimit_resource(t: PosixRlimitType) -> libc::c_int {
    use PosixRlimitType::*;
    (match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }) as libc::c_int
}

/// Knobs that differ between a container's init and an exec'd process.
pub(crate) struct PlanExtras {
    pub rootfs_ops: Vec<Op>,
    pub new_cgroupns: bool,
    /// setgroups(2) is denied in the user namespace (single-id rootless map).
    pub setgroups_denied: bool,
    /// With a terminal: also show the pty as `/dev/console` (a container's
    /// init, not an exec'd process).
    pub console: bool,
}

pub(crate) fn child_plan(
    process: &Process,
    stdio: &PreparedStdio,
    extras: PlanExtras,
) -> Result<ChildPlan> {
    let user = process.user();
    let args = process.args().as_deref().unwrap_or_default();
    let env = process.env().as_deref().unwrap_or_default();
    let cwd = process.cwd();
    if !cwd.is_absolute() {
        return Err(Error::InvalidSpec(format!(
            "process.cwd {} is not absolute",
            cwd.display()
        )));
    }
    let extra_gids = user.additional_gids().clone().unwrap_or_default();
    let groups = if extras.setgroups_denied {
        if !extra_gids.is_empty() {
            log::warn!("additional groups {extra_gids:?} ignored: setgroups is denied in a single-id user namespace");
        }
        None
    } else {
        // Set even when empty: it clears the caller's own supplementary groups.
        Some(extra_gids)
    };
    let rlimits = process
        .rlimits()
        .iter()
        .flatten()
        .map(|r| {
            (
                rlimit_resource(r.typ()),
                libc::rlimit {
                    rlim_cur: r.soft(),
                    rlim_max: r.hard(),
                },
            )
        })
        .collect();
    Ok(ChildPlan {
        rootfs_ops: extras.rootfs_ops,
        new_cgroupns: extras.new_cgroupns,
        setsid: true,
        stdio: stdio.raw(),
        pty: stdio.pty_child_fd().map(|socket| PtyPlan {
            socket,
            console: extras.console,
        }),
        rlimits,
        caps: process.capabilities().as_ref().map(CapSets::from_spec),
        no_new_privs: process.no_new_privileges().unwrap_or(false),
        uid: user.uid(),
        gid: user.gid(),
        groups,
        umask: user.umask().unwrap_or(0o022),
        cwd: rootfs::cstr(cwd)?,
        exec: ExecTarget::new(args, env)?,
        init: false,
        cgroup_join: Vec::new(),
    })
}

/// Command name for error messages.
pub(crate) fn command_name(process: &Process) -> String {
    process
        .args()
        .as_ref()
        .and_then(|a| a.first().cloned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{ProcessBuilder, UserBuilder};

    #[test]
    fn relative_cwd_is_rejected() {
        let p = ProcessBuilder::default()
            .args(vec!["sh".to_string()])
            .cwd("rel")
            .build()
            .unwrap();
        let stdio = PreparedStdio::new(false, &Stdio::Inherit).unwrap();
        let extras = PlanExtras {
            rootfs_ops: vec![],
            new_cgroupns: false,
            setgroups_denied: false,
            console: false,
        };
        assert!(matches!(
            child_plan(&p, &stdio, extras),
            Err(Error::InvalidSpec(_))
        ));
    }

    #[test]
    fn groups_are_cleared_unless_setgroups_is_denied() {
        let p = ProcessBuilder::default()
            .args(vec!["sh".to_string()])
            .user(
                UserBuilder::default()
                    .uid(5u32)
                    .gid(6u32)
                    .additional_gids(vec![7u32])
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let stdio = PreparedStdio::new(false, &Stdio::Inherit).unwrap();
        let mk = |denied| PlanExtras {
            rootfs_ops: vec![],
            new_cgroupns: false,
            setgroups_denied: denied,
            console: false,
        };
        let plan = child_plan(&p, &stdio, mk(false)).unwrap();
        assert_eq!(plan.groups, Some(vec![7]));
        assert_eq!((plan.uid, plan.gid, plan.umask), (5, 6, 0o022));
        assert_eq!(child_plan(&p, &stdio, mk(true)).unwrap().groups, None);
    }

    #[test]
    fn fds_are_moved_above_stdio() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        let s = Stdio::Fds {
            stdin: Some(r),
            stdout: None,
            stderr: None,
        };
        let p = PreparedStdio::new(false, &s).unwrap();
        let raw = p.raw();
        assert!(raw[0].unwrap() >= 3);
        assert_eq!(raw[1], None);
    }
}
