//! Fuzz target `client_request`: a frame a device sends to its relay (requests, envelope batches).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidings_protocol::fuzzing::client_request(data));
