//! Fuzz target `group_descriptor`: a signed group descriptor and the chain rules.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidings_protocol::fuzzing::group_descriptor(data));
