//! Fuzz target `device_list`: an account's signed device list, decoded, verified and compared.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tidings_protocol::fuzzing::device_list(data));
