//! Fuzz target `client_store_records`: values of the client's redb tables.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidings_client::fuzzing::client_store_records(data));
