//! Fuzz target `envelope`: envelope bytes as a relay takes them in: decode, verify alone and in a batch, store.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidings_protocol::fuzzing::envelope(data));
