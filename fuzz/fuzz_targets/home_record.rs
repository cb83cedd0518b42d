//! Fuzz target `home_record`: a home record found in the DHT, decoded and verified.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidings_protocol::fuzzing::home_record(data));
