//! Event payloads of the clouds that call a runtime with them: Alibaba FC (`POST /invoke`:
//! timers, OSS, anything else as an invoke) and Tencent SCF event functions (API Gateway,
//! timers, COS, anything else as an invoke).
//!
//! Input: a selector byte (even: FC, odd: SCF), then the payload.
//!
//! The oracle: every payload ends with an answer or a failure that says why; a payload FC's
//! shim refuses is refused with a 4xx (it is the caller's input) unless a function failed.

use berth_platforms::{fc, scf, Platform};

pub fn run(data: &[u8]) {
    let (which, payload) = crate::split(data);
    if which % 2 == 0 {
        let shim = crate::shims::shim(Platform::Fc);
        let payload = bytes::Bytes::copy_from_slice(payload);
        if let Err((status, kind, message)) = crate::shims::block_on(fc::event_call(&shim, &payload, "fuzz-request")) {
            assert!(!message.trim().is_empty(), "an FC {kind} failure with no message");
            assert!(status.is_client_error(), "FC refused outside input with {status} ({kind}: {message})");
        }
    } else {
        let shim = crate::shims::shim(Platform::Scf);
        if let scf::Outcome::Failed(message) =
            crate::shims::block_on(scf::handle_event(&shim, "fuzz-request", payload, None))
        {
            assert!(!message.trim().is_empty(), "an SCF failure with no message");
        }
    }
}
