//! The decoder alone, line by line, against `serde_json`: a line the decoder accepts as a record
//! is one `serde_json` reads as an object, and one it rejects carries a reason. Inference and
//! decoding use the schema inferred from the same bytes, so every valid line must be accepted.
#![no_main]

#[path = "../../converter/tests/common/mod.rs"]
mod common;
#[path = "../../converter/tests/invariants/mod.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    invariants::check_decoder(data);
});
