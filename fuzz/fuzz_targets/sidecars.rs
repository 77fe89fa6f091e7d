//! Raw bytes → sidecar file parse + validate: never panics; every error is located.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(errors) = c8s_sidecar_core::parse_sidecars_bytes("fuzz.yml", data) {
        for error in errors.iter() {
            assert_eq!(error.position().file, "fuzz.yml");
        }
    }
});
