//! Lambda invocation events, as the Runtime API hands them over.
//!
//! Input: a selector byte, then the event. Selector 0–3 decode the event directly as one HTTP
//! source (API Gateway v1, v2, ALB, ALB with multi-value headers) and route the request; any
//! other value hands the event to the shim, which classifies it (HTTP sources, SQS, S3,
//! EventBridge schedules, anything else as a direct invoke) and delivers it.
//!
//! The oracle: a decoded HTTP request that is routed never answers 500 (no group is loaded: it
//! is refused or not found), and the shim always ends the invocation with an answer or a
//! failure that says why.

use berth_platforms::lambda::http::{request, Source};
use berth_platforms::lambda::{handle, Invocation, Outcome};
use berth_platforms::{http_event, Platform};

pub fn run(data: &[u8]) {
    let (which, event) = crate::split(data);
    let shim = crate::shims::shim(Platform::Lambda);
    let source = match which {
        0 => Some(Source::ApiGatewayV1),
        1 => Some(Source::HttpApiV2),
        2 => Some(Source::Alb { multi_value: false }),
        3 => Some(Source::Alb { multi_value: true }),
        _ => None,
    };
    if let Some(source) = source {
        let Ok(call) = request(source, event) else { return };
        let answer = crate::shims::block_on(http_event::route(&shim, call));
        assert_ne!(answer.status.as_u16(), 500, "a decoded {source:?} request answered 500");
        return;
    }
    let invocation = Invocation {
        request_id: "fuzz-request".into(),
        deadline_ms: None,
        trace_id: None,
        event: bytes::Bytes::copy_from_slice(event),
    };
    let (_kind, outcome) = crate::shims::block_on(handle(&shim, &invocation));
    if let Outcome::Failed { message, .. } = outcome {
        assert!(!message.trim().is_empty(), "a failed invocation with no message");
    }
}
