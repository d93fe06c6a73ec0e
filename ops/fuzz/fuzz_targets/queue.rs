#![no_main]
// Thin: the target and its oracle live in host/fuzzing (berth_fuzzing::queue).
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzzing::queue::run(data));
