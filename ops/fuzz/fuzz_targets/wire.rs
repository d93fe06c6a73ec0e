#![no_main]
// Thin: the target and its oracle live in host/fuzzing (berth_fuzzing::wire).
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzzing::wire::run(data));
