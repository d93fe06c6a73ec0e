#![no_main]
// Thin: the target and its oracle live in host/fuzzing (berth_fuzzing::cloudevents).
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_fuzzing::cloudevents::run(data));
