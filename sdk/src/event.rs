//! CloudEvents delivered by timer, queue and blob triggers.

use berth_plugin_api::{RString, RVec, Tuple2};
use serde::de::DeserializeOwned;

use crate::{Context, Error, FromCall, Request, Result};

/// A CloudEvents 1.0 event. Take it as a handler argument of a timer, queue or blob function.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// The event id; the host uses it as the request id of the call.
    pub id: String,
    /// Where the event comes from (`berth/timer/<group>/<function>`, `berth/queue/<queue>`, ...).
    pub source: String,
    /// The event type (`berth.timer.fired`, `berth.queue.message`, `berth.blob.created`, ...).
    pub ty: String,
    /// What the event is about (a blob event's object name).
    pub subject: Option<String>,
    /// RFC 3339.
    pub time: Option<String>,
    /// The media type of [`Event::data`] (`application/json`, ...).
    pub datacontenttype: Option<String>,
    /// The payload.
    pub data: Vec<u8>,
    /// Extension attributes: `attempt` (queue and blob deliveries, 1 for the first), the
    /// publisher's other headers (a dead-letter copy's `x-berth-error`, `x-berth-attempts`,
    /// `x-berth-original-id`), ...
    pub extensions: Vec<(String, String)>,
}

impl Event {
    /// The data decoded as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.data)
            .map_err(|e| Error::bad_request(format!("event data is not the expected JSON: {e}")))
    }

    /// An extension attribute.
    pub fn extension(&self, name: &str) -> Option<&str> {
        self.extensions.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Builds an event, for tests.
    pub fn new(ty: &str, source: &str, data: impl Into<Vec<u8>>) -> Self {
        Event { id: "test-event".into(), source: source.into(), ty: ty.into(), data: data.into(), ..Default::default() }
    }

    /// The request form of this event (CloudEvents HTTP binary mode), as the host delivers it:
    /// the same conversion a plugin applies to the host's `Input::Event`.
    pub fn into_request(self) -> Request {
        Request::from_event(self.into_abi())
    }

    /// The ABI form of this event: what the host's `EventData::into_input` hands a plugin
    /// (`host/core/src/dispatcher.rs`).
    pub(crate) fn into_abi(self) -> berth_plugin_api::Event {
        let opt = |v: Option<String>| v.map(RString::from).into();
        berth_plugin_api::Event {
            id: self.id.into(),
            source: self.source.into(),
            ty: self.ty.into(),
            subject: opt(self.subject),
            time: opt(self.time),
            datacontenttype: opt(self.datacontenttype),
            data: RVec::from(self.data),
            extensions: self.extensions.into_iter().map(|(k, v)| Tuple2(RString::from(k), RString::from(v))).collect(),
        }
    }
}

impl FromCall for Event {
    fn from_call(_ctx: &Context, req: &mut Request) -> Result<Self> {
        let mut ev = Event { data: req.take_body(), ..Default::default() };
        for (k, v) in req.headers() {
            let v = v.to_owned();
            match k {
                "ce-specversion" => {}
                "ce-id" => ev.id = v,
                "ce-source" => ev.source = v,
                "ce-type" => ev.ty = v,
                "ce-subject" => ev.subject = Some(v),
                "ce-time" => ev.time = Some(v),
                "content-type" => ev.datacontenttype = Some(v),
                other => {
                    if let Some(ext) = other.strip_prefix("ce-") {
                        ev.extensions.push((ext.to_owned(), v));
                    }
                }
            }
        }
        if ev.id.is_empty() {
            return Err(Error::bad_request("not an event: no `ce-id` (call this function through an event trigger)"));
        }
        Ok(ev)
    }
}
