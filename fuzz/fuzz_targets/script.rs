//! Arbitrary text through the packetdrill-syntax parser and runner.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| teardown::fuzzing::script(data));
