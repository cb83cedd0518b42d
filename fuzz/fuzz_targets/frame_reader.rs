//! Fuzz target `frame_reader`: a byte stream cut into length-prefixed frames.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidings_protocol::fuzzing::frame_reader(data));
