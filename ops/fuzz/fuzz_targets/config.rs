#![no_main]
// Thin: the target and its oracle live in host/fuzzing (berth_fuzzing::config).
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzzing::config::run(data));
