//! Fuzz target `client_response`: a frame a relay sends to a device (answers, mailbox pushes).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidings_protocol::fuzzing::client_response(data));
