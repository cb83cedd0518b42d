//! Fuzz target `content`: end-to-end payloads: envelope bodies and decrypted plaintexts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidings_protocol::fuzzing::content(data));
