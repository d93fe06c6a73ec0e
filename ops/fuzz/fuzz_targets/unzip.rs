#![no_main]
// Thin: the target and its oracle live in host/fuzzing (berth_fuzzing::unzip).
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzzing::unzip::run(data));
