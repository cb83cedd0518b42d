//! Fuzz target `relay_store_records`: values of the relay's redb tables.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidings_relay::fuzzing::relay_store_records(data));
