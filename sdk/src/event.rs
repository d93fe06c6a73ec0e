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
        let mut headers = vec![
            ("ce-specversion".to_owned(), "1.0".to_owned()),
            ("ce-id".to_owned(), self.id),
            ("ce-source".to_owned(), self.source),
            ("ce-type".to_owned(), self.ty),
        ];
        if let Some(s) = self.subject {
            headers.push(("ce-subject".into(), s));
        }
        if let Some(t) = self.time {
            headers.push(("ce-time".into(), t));
        }
        if let Some(ct) = self.datacontenttype {
            headers.push(("content-type".into(), ct));
        }
        for (k, v) in self.extensions {
            headers.push((format!("ce-{k}"), v));
        }
        Request { method: "POST".into(), headers, body: self.data, ..Default::default() }
    }
}

impl FromCall for Event {
    fn from_call(_ctx: &Context, req: &mut Request) -> Result<Self> {
        let mut ev = Event { data: std::mem::take(&mut req.body), ..Default::default() };
        for (k, v) in &req.headers {
            match k.as_str() {
                "ce-specversion" => {}
                "ce-id" => ev.id = v.clone(),
                "ce-source" => ev.source = v.clone(),
                "ce-type" => ev.ty = v.clone(),
                "ce-subject" => ev.subject = Some(v.clone()),
                "ce-time" => ev.time = Some(v.clone()),
                "content-type" => ev.datacontenttype = Some(v.clone()),
                other => {
                    if let Some(ext) = other.strip_prefix("ce-") {
                        ev.extensions.push((ext.to_owned(), v.clone()));
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
