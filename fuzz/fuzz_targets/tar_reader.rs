//! Arbitrary bytes through decompression and the tar reader, touching every
//! field apply_layer reads: errors are fine, panics and hangs are not.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((_, reader)) = berth_archive::decompress(std::io::Cursor::new(data.to_vec())) else {
        return;
    };
    // A gzip/zstd bomb must not exhaust memory: cap what one input may expand to.
    let mut archive = tar::Archive::new(reader.take(64 << 20));
    let Ok(entries) = archive.entries() else {
        return;
    };
    for entry in entries {
        let Ok(mut entry) = entry else { return };
        let _ = entry.path();
        let _ = entry.link_name();
        let header = entry.header();
        let _ = (header.mode(), header.uid(), header.gid(), header.mtime());
        let _ = (
            header.device_major(),
            header.device_minor(),
            header.entry_type(),
        );
        if let Some(name) = entry
            .path()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_owned()))
        {
            if let Some(name) = name.to_str() {
                let _ = berth_archive::parse_whiteout(name);
            }
        }
        if let Ok(Some(extensions)) = entry.pax_extensions() {
            for ext in extensions.flatten() {
                let _ = (ext.key(), ext.value());
            }
        }
        let _ = std::io::copy(&mut entry, &mut std::io::sink());
    }
});
