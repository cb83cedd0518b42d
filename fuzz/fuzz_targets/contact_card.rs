//! Fuzz target `contact_card`: text people paste: contact cards and ids.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidings_protocol::fuzzing::contact_card(data));
