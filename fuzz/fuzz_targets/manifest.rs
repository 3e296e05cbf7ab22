//! `fn.config.json` as an author or an upload may write it (functions and
//! policy overlays): parsing never panics, and every refusal names the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wasmfn_manifest::FunctionManifest;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("fuzz/fn.config.json");
    if let Err(e) = FunctionManifest::parse(path, text) {
        assert!(e.to_string().contains("fuzz/fn.config.json"), "{e}");
    }
});
