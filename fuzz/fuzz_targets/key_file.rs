//! Fuzz target `key_file`: the client's identity key file.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidings_client::fuzzing::key_file(data));
