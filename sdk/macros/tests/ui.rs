//! Compile-fail tests of the macros (modelled on axum-macros' tests): each `fail/*.rs` must fail
//! to compile with exactly the messages in its `.stderr`, and each `pass/*.rs` must compile and
//! run. After changing a message, regenerate with
//! `TRYBUILD=overwrite cargo test -p berth-macros --test ui` and read the new `.stderr` files.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/fail/*.rs");
    t.pass("tests/pass/*.rs");
}
