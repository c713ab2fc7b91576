//! The whole conversion path (chunking, inference, decoding on several threads, Parquet
//! writing, error records) on arbitrary bytes with options drawn from the first two bytes:
//! `converter/tests/invariants` says what must hold.
#![no_main]

#[path = "../../converter/tests/common/mod.rs"]
mod common;
#[path = "../../converter/tests/invariants/mod.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    invariants::check(&invariants::Case::from_bytes(data));
});
