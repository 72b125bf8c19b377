//! Arbitrary segment sequences and application calls into one engine.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| teardown::fuzzing::engine(data));
