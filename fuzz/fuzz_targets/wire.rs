//! Arbitrary bytes as one wire-format datagram.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| teardown::fuzzing::wire(data));
