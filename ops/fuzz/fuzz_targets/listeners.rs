#![no_main]
// Thin: the target and its oracle live in host/fuzzing (berth_fuzzing::listeners).
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzzing::listeners::run(data));
