//! Fuzz target `federation_request`: a frame between relays (forwarded batches, descriptors, handoffs, answers).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidings_protocol::fuzzing::federation_request(data));
