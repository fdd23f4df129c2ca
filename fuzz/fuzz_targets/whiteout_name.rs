//! Whiteout-name parsing: never panics, and never names `.`, `..`, nothing,
//! or a path as the thing to delete.
#![no_main]

use berth_archive::{parse_whiteout, Whiteout};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|name: &str| {
    if let Ok(Some(Whiteout::Remove(target))) = parse_whiteout(name) {
        assert!(!target.is_empty());
        assert!(target != "." && target != "..");
        assert!(!target.contains('/') && !target.contains('\0'));
        assert_eq!(format!(".wh.{target}"), name);
    }
});
