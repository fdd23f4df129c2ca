//! uid/gid mapping at the filesystem layer, in fuse-overlayfs's syntax.
//!
//! `uidmapping=0:1000:1:1:100000:65536` is a list of triples
//! `INSIDE:ONDISK:LEN`: ids seen through the mount on the left, ids stored in
//! the layers on the right. Layers are never rewritten: the translation happens
//! on every stat and every chown/create.

use crate::options::OptionError;

/// One contiguous id range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    inside: u32,
    disk: u32,
    len: u32,
}

/// An id mapping; empty means identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    ranges: Vec<Range>,
}

/// The id shown for on-disk ids the mapping cannot express (the kernel's
/// overflow id).
pub const OVERFLOW_ID: u32 = 65534;

impl IdMap {
    /// Parses `A:B:N[:A:B:N...]`.
    pub fn parse(s: &str) -> Result<IdMap, OptionError> {
        let bad = || OptionError::BadValue("mapping", s.to_string());
        let nums = s
            .split(':')
            .map(|p| p.trim().parse::<u32>().map_err(|_| bad()))
            .collect::<Result<Vec<_>, _>>()?;
        if nums.is_empty() || nums.len() % 3 != 0 {
            return Err(bad());
        }
        let ranges = nums
            .chunks(3)
            .map(|c| Range {
                inside: c[0],
                disk: c[1],
                len: c[2],
            })
            .collect::<Vec<_>>();
        if ranges.iter().any(|r| {
            r.len == 0
                || r.inside.checked_add(r.len - 1).is_none()
                || r.disk.checked_add(r.len - 1).is_none()
        }) {
            return Err(bad());
        }
        Ok(IdMap { ranges })
    }

    /// True when no mapping was given.
    pub fn is_identity(&self) -> bool {
        self.ranges.is_empty()
    }

    /// On-disk id to the id shown through the mount.
    pub fn to_inside(&self, disk: u32) -> u32 {
        if self.ranges.is_empty() {
            return disk;
        }
        self.ranges
            .iter()
            .find(|r| disk >= r.disk && disk - r.disk < r.len)
            .map_or(OVERFLOW_ID, |r| r.inside + (disk - r.disk))
    }

    /// Id given through the mount to the on-disk id, or None when the mapping
    /// cannot express it.
    pub fn to_disk(&self, inside: u32) -> Option<u32> {
        if self.ranges.is_empty() {
            return Some(inside);
        }
        self.ranges
            .iter()
            .find(|r| inside >= r.inside && inside - r.inside < r.len)
            .map(|r| r.disk + (inside - r.inside))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_both_ways() {
        let m = IdMap::parse("0:1000:1:1:100000:65536").unwrap();
        assert_eq!(m.to_inside(1000), 0);
        assert_eq!(m.to_inside(100_000), 1);
        assert_eq!(m.to_inside(100_004), 5);
        assert_eq!(m.to_inside(7), OVERFLOW_ID);
        assert_eq!(m.to_disk(0), Some(1000));
        assert_eq!(m.to_disk(5), Some(100_004));
        assert_eq!(m.to_disk(70_000), None);
    }

    #[test]
    fn identity_when_empty() {
        let m = IdMap::default();
        assert!(m.is_identity());
        assert_eq!(m.to_inside(42), 42);
        assert_eq!(m.to_disk(42), Some(42));
    }

    #[test]
    fn rejects_malformed() {
        assert!(IdMap::parse("0:1000").is_err());
        assert!(IdMap::parse("a:b:c").is_err());
        assert!(IdMap::parse("0:0:0").is_err());
        assert!(IdMap::parse("4294967295:0:2").is_err());
    }
}
