//! Fuzz target `relay_config`: the relay's `relay.toml`, parsed, validated and written back.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidings_relay::fuzzing::relay_config(data));
