//! Fuzz target `link`: a link code's text and a link package, decoded, re-encoded and checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidings_protocol::fuzzing::link(data));
