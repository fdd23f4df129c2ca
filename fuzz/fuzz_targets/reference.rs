//! Image reference parsing: never panics, and a parsed reference prints to a
//! form that parses back to itself.
#![no_main]

use berth_image::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(reference) = Reference::parse(text) {
        let full = reference.to_string();
        let again = Reference::parse(&full).expect("a printed reference parses");
        assert_eq!(again.to_string(), full);
    }
});
