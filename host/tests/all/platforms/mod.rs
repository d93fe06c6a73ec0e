//! The per-platform entry shims, each driven through the artifact `berth package` writes for it
//! and the same fixture `.so`: against real peers where they exist (cargo-lambda's Runtime API
//! emulator with AWS's own sample events, the CloudEvents SDK), else exactly as the platform's
//! contract says (FC, SCF, kubeless, and a fake Lambda Runtime API for what the emulator does
//! not cover).

mod fc;
mod knative;
mod kubeless;
mod lambda;
mod lambda_fake;
mod package;
mod scf;
mod support;
