//! The container's root filesystem: a plan of mount steps computed before
//! the fork (all strings ready as C strings) and run in the child through
//! the [`Syscall`](crate::sys::Syscall) seam.
//!
//! Order: make `/` a slave so nothing leaks to the host, bind the rootfs onto
//! itself, the spec's mounts in order (with `/dev` populated right after its
//! tmpfs), `pivot_root`, then masked and read-only paths, a read-only root,
//! and the hostname.

mod ops;
mod plan;
mod secure_join;

pub(crate) use ops::{run, Op};
pub(crate) use plan::{cstr, plan, PlanContext};
pub use secure_join::secure_join;
