//! Frames between the host and a process-isolated worker: what the host reads from a worker
//! (which may be crashing, or running hostile plugin code) and what a worker reads from the host.
//!
//! Input: a selector byte (even: a frame from a worker, odd: a frame to one), then the frame.
//!
//! The oracle: a frame either decodes or is refused (the host then kills the worker); a decoded
//! call answer or call input converts to the ABI types without panicking.

use berth_isolation::wire::{decode, FromWorker, ToWorker};

pub fn run(data: &[u8]) {
    let (which, frame) = crate::split(data);
    if which % 2 == 0 {
        if let Ok(FromWorker::Done { result: Ok(r), .. }) = decode::<FromWorker>(frame) {
            let _ = r.to_response();
        }
    } else if let Ok(ToWorker::Call { input, .. }) = decode::<ToWorker>(frame) {
        let _ = input.to_input();
    }
}

/// Seed frames of each kind the host and a worker exchange on a call, with the selector byte.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    use berth_isolation::wire::{Meta, WireInput, WireResponse};
    let frame = |selector: u8, bytes: Vec<u8>| [vec![selector], bytes].concat();
    let headers = vec![("content-type", "application/json"), ("x-a", "1")];
    let done = FromWorker::Done {
        id: 7,
        result: Ok(WireResponse { status: 201, headers: headers.clone(), body: br#"{"id":1}"# }),
    };
    let call = ToWorker::Call {
        id: 7,
        function: 0,
        meta: Meta { request_id: "r-1", deadline_unix_ms: 1_700_000_000_000, trigger: "http", caller: None },
        input: WireInput::Http {
            method: "POST",
            path: "/items/1",
            query: "a=1",
            headers,
            params: vec![("id", "1")],
            body: b"{}",
        },
    };
    let log = FromWorker::Log { level: 3, target: "hello", request_id: "r-1", message: "hi" };
    let encode = |v: &dyn erased::Encode| v.encode();
    vec![
        ("from-done", frame(0, encode(&done))),
        ("from-log", frame(0, encode(&log))),
        ("to-call", frame(1, encode(&call))),
    ]
}

mod erased {
    pub trait Encode {
        fn encode(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Encode for T {
        fn encode(&self) -> Vec<u8> {
            postcard::to_allocvec(self).expect("a seed frame encodes")
        }
    }
}
