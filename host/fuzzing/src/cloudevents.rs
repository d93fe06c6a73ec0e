//! CloudEvents 1.0 as Knative delivers them: binary mode (`ce-*` headers, the body as data) and
//! structured mode (the whole event as JSON).
//!
//! Input: a selector byte (even: structured; odd: binary), then for binary mode `name: value`
//! header lines, an empty line and the body.
//!
//! The oracle: an accepted event has the attributes CloudEvents 1.0 requires, non-empty
//! (`id`, `source`, `type`), and in binary mode its data is the body unchanged.

use berth_platforms::knative::{binary_event, structured_event};
use http::{HeaderMap, HeaderName, HeaderValue};

pub fn run(data: &[u8]) {
    let (mode, rest) = crate::split(data);
    let event = if mode % 2 == 0 {
        structured_event(rest)
    } else {
        let (headers, body) = headers_and_body(rest);
        let event = binary_event(&headers, body.to_vec());
        if let Ok(ev) = &event {
            assert_eq!(ev.data, body, "binary-mode data is not the body");
        }
        event
    };
    if let Ok(ev) = event {
        assert!(!ev.id.is_empty(), "an event with an empty id accepted");
        assert!(!ev.source.is_empty(), "an event with an empty source accepted");
        assert!(!ev.ty.is_empty(), "an event with an empty type accepted");
    }
}

/// `name: value` lines up to an empty line, then the body; lines that are not valid headers are
/// left out (hyper would have refused them).
pub fn headers_and_body(data: &[u8]) -> (HeaderMap, &[u8]) {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(name, value);
        }
    }
    (headers, body)
}
