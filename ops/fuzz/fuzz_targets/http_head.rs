#![no_main]
// Thin: the target and its oracle live in host/fuzzing (berth_fuzzing::http_head).
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzzing::http_head::run(data));
