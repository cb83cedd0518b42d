//! Fuzz target `presence`: the body of a typing notice.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidings_protocol::fuzzing::presence(data));
