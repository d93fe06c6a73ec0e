#![no_main]
// Thin: the target and its oracle live in host/fuzzing (berth_fuzzing::lambda).
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzzing::lambda::run(data));
