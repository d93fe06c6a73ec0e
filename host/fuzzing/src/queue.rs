//! A Redis stream entry → the queue message envelope → the CloudEvent a queue function receives.
//! (NATS and RabbitMQ messages reach the same envelope through their clients' own decoders.)
//!
//! Input: an attempt byte, then NUL-separated pieces: the entry id, then field and value pairs;
//! a value's first byte picks how Redis typed it (bulk, simple, integer, or something else).
//!
//! The oracle: the event id is the publisher's `ce-id` header where it set one, else the entry
//! id; `attempt` is one extension, the delivery's own count, whatever the publisher's headers say;
//! the data is the `data` field unchanged.

use std::collections::HashMap;

use berth_triggers::queue::{message_event, redis_entry};
use redis::streams::StreamId;
use redis::Value;

pub fn run(data: &[u8]) {
    let (attempt, rest) = crate::split(data);
    let attempt = u32::from(attempt).max(1);
    let mut pieces = rest.split(|&b| b == 0);
    let id = String::from_utf8_lossy(pieces.next().unwrap_or_default()).into_owned();
    let mut map = HashMap::new();
    while let (Some(k), Some(v)) = (pieces.next(), pieces.next()) {
        let value = match v.split_first() {
            Some((b'$', b)) => Value::BulkString(b.to_vec()),
            Some((b'+', s)) => Value::SimpleString(String::from_utf8_lossy(s).into_owned()),
            Some((b':', n)) => match std::str::from_utf8(n).ok().and_then(|n| n.parse().ok()) {
                Some(n) => Value::Int(n),
                None => Value::Nil,
            },
            _ => Value::Nil,
        };
        map.insert(String::from_utf8_lossy(k).into_owned(), value);
    }
    let data_field = match map.get("data") {
        Some(Value::BulkString(b)) => b.clone(),
        Some(Value::SimpleString(s)) => s.clone().into_bytes(),
        Some(Value::Int(i)) => i.to_string().into_bytes(),
        _ => Vec::new(),
    };
    let msg = redis_entry(StreamId { id: id.clone(), map, ..Default::default() }, attempt);
    let ev = message_event("orders", &msg);

    let ce_id = msg.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("ce-id")).map(|(_, v)| v.as_str());
    assert_eq!(ev.id, ce_id.unwrap_or(&id), "event id");
    let attempts: Vec<&str> = ev.extensions.iter().filter(|(k, _)| k == "attempt").map(|(_, v)| v.as_str()).collect();
    assert_eq!(attempts, [attempt.to_string().as_str()], "the attempt extension");
    assert_eq!(ev.data, data_field, "data");
}
