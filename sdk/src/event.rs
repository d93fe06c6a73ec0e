//! CloudEvents delivered by timer, queue and blob triggers.

use serde::de::DeserializeOwned;

use crate::{Context, Error, FromCall, Request, Result};

/// A CloudEvents 1.0 event. Take it as a handler argument of a timer, queue or blob function.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub source: String,
    pub ty: String,
    pub subject: Option<String>,
    /// RFC 3339.
    pub time: Option<String>,
    pub datacontenttype: Option<String>,
    pub data: Vec<u8>,
    /// Extension attributes (`attempt`, `deadletter_reason`, ...).
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

    /// The request form of this event (CloudEvents HTTP binary mode), as the host delivers it.
    pub fn into_request(self) -> Request {
        let mut req = Request::new("POST", "")
            .with_header("ce-specversion", "1.0")
            .with_header("ce-id", &self.id)
            .with_header("ce-source", &self.source)
            .with_header("ce-type", &self.ty);
        if let Some(s) = &self.subject {
            req = req.with_header("ce-subject", s);
        }
        if let Some(t) = &self.time {
            req = req.with_header("ce-time", t);
        }
        if let Some(ct) = &self.datacontenttype {
            req = req.with_header("content-type", ct);
        }
        for (k, v) in &self.extensions {
            req = req.with_header(&format!("ce-{k}"), v);
        }
        req.with_body(self.data)
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
