//! OCI/AUFS whiteout names: `.wh.NAME` deletes NAME from the lower layers,
//! `.wh..wh..opq` hides everything the lower layers had in its directory.

use crate::ArchiveError;

pub(crate) const WHITEOUT_PREFIX: &str = ".wh.";
pub(crate) const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// AUFS metadata (`.wh..wh.plnk`, `.wh..wh.aufs`): never content, skipped.
const META_PREFIX: &str = ".wh..wh.";

/// What a whiteout entry asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteout<'a> {
    /// `.wh..wh..opq`: the directory holding it is opaque to lower layers.
    Opaque,
    /// `.wh.NAME`: NAME is deleted from the lower layers.
    Remove(&'a str),
    /// Other AUFS metadata (`.wh..wh.*`): ignored, like Docker does.
    Meta,
}

/// Classifies one path component. `Ok(None)`: an ordinary name.
///
/// Names that would whiteout `.`, `..`, nothing, or something with a `/` in it
/// are errors: engines that accepted them deleted the parent directory.
pub fn parse_whiteout(name: &str) -> Result<Option<Whiteout<'_>>, ArchiveError> {
    let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) else {
        return Ok(None);
    };
    let bad = |reason| {
        Err(ArchiveError::BadWhiteout {
            name: name.to_string(),
            reason,
        })
    };
    if name == OPAQUE_MARKER {
        return Ok(Some(Whiteout::Opaque));
    }
    if name.starts_with(META_PREFIX) {
        return Ok(Some(Whiteout::Meta));
    }
    match target {
        "" => bad("whiteout of nothing"),
        "." | ".." => bad("whiteout of the directory itself or its parent"),
        t if t.contains('/') || t.contains('\0') => bad("whiteout of a path, not a name"),
        t => Ok(Some(Whiteout::Remove(t))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_names() {
        assert_eq!(parse_whiteout("foo").unwrap(), None);
        assert_eq!(parse_whiteout(".wh").unwrap(), None);
        assert_eq!(
            parse_whiteout(".wh.foo").unwrap(),
            Some(Whiteout::Remove("foo"))
        );
        assert_eq!(
            parse_whiteout(".wh..foo").unwrap(),
            Some(Whiteout::Remove(".foo"))
        );
        assert_eq!(
            parse_whiteout(".wh....").unwrap(),
            Some(Whiteout::Remove("..."))
        );
        assert_eq!(
            parse_whiteout(".wh..wh..opq").unwrap(),
            Some(Whiteout::Opaque)
        );
        assert_eq!(
            parse_whiteout(".wh..wh.plnk").unwrap(),
            Some(Whiteout::Meta)
        );
    }

    #[test]
    fn rejects_names_that_resolve_to_nothing_dot_or_dotdot() {
        for name in [".wh.", ".wh..", ".wh...", ".wh.a/b", ".wh.a\0"] {
            let err = parse_whiteout(name).unwrap_err();
            assert!(
                matches!(err, ArchiveError::BadWhiteout { .. }),
                "{name}: {err}"
            );
        }
    }
}
