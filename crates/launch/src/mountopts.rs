//! Parsing OCI mount options (`ro`, `nosuid`, `rbind`, `mode=755`, ...) into
//! `mount(2)` flags, propagation flags and the filesystem data string.

/// A mount's options split the way `mount(2)` wants them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct MountOptions {
    /// `MS_*` flags for the mount itself (without propagation).
    pub flags: libc::c_ulong,
    /// `MS_PRIVATE`/`MS_SLAVE`/... (with `MS_REC` for the `r` forms), applied
    /// by a separate call because the kernel ignores them combined with others.
    pub propagation: libc::c_ulong,
    /// Filesystem-specific options, comma-joined (`mode=755,size=65536k`).
    pub data: String,
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags & libc::MS_BIND != 0
    }
}

/// Parses OCI mount options. Unknown words are passed to the filesystem as
/// data, as runc does, so the kernel is the one to reject a typo.
pub(crate) fn parse(options: &[String]) -> MountOptions {
    let mut out = MountOptions::default();
    let mut data: Vec<&str> = Vec::new();
    for opt in options {
        let opt = opt.as_str();
        if let Some((clear, flag)) = flag_for(opt) {
            if clear {
                out.flags &= !flag;
            } else {
                out.flags |= flag;
            }
        } else if let Some(p) = propagation_for(opt) {
            out.propagation = p;
        } else {
            data.push(opt);
        }
    }
    out.data = data.join(",");
    out
}

/// `(clears, flag)` for the option words that are `MS_*` flags.
fn flag_for(opt: &str) -> Option<(bool, libc::c_ulong)> {
    Some(match opt {
        "ro" => (false, libc::MS_RDONLY),
        "rw" => (true, libc::MS_RDONLY),
        "nosuid" => (false, libc::MS_NOSUID),
        "suid" => (true, libc::MS_NOSUID),
        "nodev" => (false, libc::MS_NODEV),
        "dev" => (true, libc::MS_NODEV),
        "noexec" => (false, libc::MS_NOEXEC),
        "exec" => (true, libc::MS_NOEXEC),
        "sync" => (false, libc::MS_SYNCHRONOUS),
        "async" => (true, libc::MS_SYNCHRONOUS),
        "dirsync" => (false, libc::MS_DIRSYNC),
        "remount" => (false, libc::MS_REMOUNT),
        "mand" => (false, libc::MS_MANDLOCK),
        "nomand" => (true, libc::MS_MANDLOCK),
        "noatime" => (false, libc::MS_NOATIME),
        "atime" => (true, libc::MS_NOATIME),
        "nodiratime" => (false, libc::MS_NODIRATIME),
        "diratime" => (true, libc::MS_NODIRATIME),
        "relatime" => (false, libc::MS_RELATIME),
        "norelatime" => (true, libc::MS_RELATIME),
        "strictatime" => (false, libc::MS_STRICTATIME),
        "nostrictatime" => (true, libc::MS_STRICTATIME),
        "bind" => (false, libc::MS_BIND),
        "rbind" => (false, libc::MS_BIND | libc::MS_REC),
        _ => return None,
    })
}

pub(crate) fn propagation_for(opt: &str) -> Option<libc::c_ulong> {
    Some(match opt {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_propagation_and_data_are_separated() {
        let m = p(&["nosuid", "rbind", "rslave", "mode=755", "ro", "size=64k"]);
        assert_eq!(
            m.flags,
            libc::MS_NOSUID | libc::MS_BIND | libc::MS_REC | libc::MS_RDONLY
        );
        assert_eq!(m.propagation, libc::MS_SLAVE | libc::MS_REC);
        assert_eq!(m.data, "mode=755,size=64k");
        assert!(m.is_bind());
    }

    #[test]
    fn later_options_clear_earlier_ones() {
        let m = p(&["ro", "noexec", "rw", "exec"]);
        assert_eq!(m.flags, 0);
    }

    #[test]
    fn unknown_words_go_to_the_filesystem() {
        let m = p(&["newinstance", "ptmxmode=0666"]);
        assert_eq!(m.flags, 0);
        assert_eq!(m.data, "newinstance,ptmxmode=0666");
    }
}
