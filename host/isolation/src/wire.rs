//! The worker protocol: length-delimited frames (a 4-byte big-endian length, then a postcard
//! body) on a Unix socket, both ways, many calls in flight at once (each has an id).
//!
//! Host → worker: [`ToWorker`]. Worker → host: [`FromWorker`]. A worker opens the plugin
//! (`Open` → `Opened`), instantiates it with what the host resolved for it (`Instantiate` →
//! `Ready`), then serves `Call`s and `Export`s; the plugin's service calls come back as
//! `Service` frames the host answers with `Reply`, through the group's own host handle (so
//! per-group scoping is the host's, unchanged).

use std::path::PathBuf;

use berth_loader::GroupManifest;
use berth_plugin_api::{
    BlobInfo, Event, HttpRequestBuilder, Input, OutboundRequest, PluginError, RString, RVec, Response, ServiceError,
    SqlExecuted, SqlValue, SqlValue_NE, Tuple2,
};
use serde::{Deserialize, Serialize};

/// The largest frame either side accepts (a body is bounded by the host's limits long before).
pub const MAX_FRAME: usize = 1 << 30;

/// The codec of both directions.
pub fn codec() -> tokio_util::codec::LengthDelimitedCodec {
    tokio_util::codec::LengthDelimitedCodec::builder().max_frame_length(MAX_FRAME).new_codec()
}

/// One encoded message on its way to the writer ([`pump`]). Messages are encoded where they
/// are made, from borrowed data (a request's head and body are not copied into owned fields
/// first), and the writer only writes.
#[derive(Debug)]
pub struct Frame {
    bytes: bytes::Bytes,
    /// The writer stops after this frame (the worker's `Stopped`).
    last: bool,
}

/// The sending half of a connection's writer.
pub type Out = tokio::sync::mpsc::UnboundedSender<Frame>;

/// Encodes `msg` and queues it on `out`; false when the writer is gone. A message that cannot
/// be encoded is logged and left out (the call it belongs to then ends at its deadline): it
/// never becomes a frame the peer cannot read.
pub fn send<T: Serialize>(out: &Out, msg: &T) -> bool {
    queue(out, msg, false)
}

/// [`send`], and the writer stops after this message.
pub fn send_last<T: Serialize>(out: &Out, msg: &T) -> bool {
    queue(out, msg, true)
}

fn queue<T: Serialize>(out: &Out, msg: &T, last: bool) -> bool {
    match postcard::to_stdvec(msg) {
        Ok(b) => out.send(Frame { bytes: b.into(), last }).is_ok(),
        Err(e) => {
            // Not the message itself: it may hold secrets or a whole body.
            tracing::error!(
                error = %e,
                kind = std::any::type_name::<T>(),
                "worker protocol: a message could not be encoded; left out"
            );
            !out.is_closed()
        }
    }
}

/// Writes what `queue` holds to `sink` until either ends or a last frame has been written.
/// Every frame already waiting goes into the sink's buffer before one flush writes them all: a
/// burst of calls or answers costs one write, not one per frame (and the peer one wake-up).
pub async fn pump<S>(mut queue: tokio::sync::mpsc::UnboundedReceiver<Frame>, mut sink: S)
where
    S: futures_util::Sink<bytes::Bytes> + Unpin,
{
    use futures_util::SinkExt as _;
    let mut batch = Vec::with_capacity(64);
    while queue.recv_many(&mut batch, 256).await > 0 {
        // Let the tasks that are ready run first: under load they add their messages to this
        // batch. Without it the first message of a burst is written alone, and the peer,
        // woken by it, takes the core from the rest.
        tokio::task::yield_now().await;
        while batch.len() < 1024 {
            match queue.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut end = false;
        for frame in batch.drain(..) {
            end |= frame.last;
            if sink.feed(frame.bytes).await.is_err() {
                return;
            }
            if end {
                break;
            }
        }
        if sink.flush().await.is_err() || end {
            return;
        }
    }
}

/// Decodes one frame's body.
pub fn decode<'a, T: Deserialize<'a>>(frame: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(frame)
}

/// Borrowed fields (`&'a str`, `&'a [u8]`) are encoded from the caller's data and decoded
/// in place from the frame.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToWorker<'a> {
    Open {
        file: PathBuf,
        copy_dir: PathBuf,
    },
    Instantiate(Boot),
    Call {
        id: u64,
        function: u32,
        #[serde(borrow)]
        meta: Meta<'a>,
        #[serde(borrow)]
        input: WireInput<'a>,
    },
    Export {
        id: u64,
        service: &'a str,
        method: &'a str,
        #[serde(with = "serde_bytes")]
        payload: &'a [u8],
        #[serde(borrow)]
        meta: Meta<'a>,
    },
    /// Give call `id` up (its deadline passed or its caller went away).
    Cancel {
        id: u64,
    },
    Reply {
        id: u64,
        result: Result<SvcOk, WireServiceError>,
    },
    /// Run the stop hook and exit.
    Shutdown,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum FromWorker<'a> {
    Opened {
        manifest: GroupManifest,
        sha256: String,
    },
    /// Opening or instantiating failed; the message is the loader's.
    Failed {
        message: String,
    },
    Ready,
    Done {
        id: u64,
        #[serde(borrow)]
        result: Result<WireResponse<'a>, WirePluginError>,
    },
    ExportDone {
        id: u64,
        #[serde(borrow)]
        result: Result<Bytes<'a>, WireServiceError>,
    },
    /// Call `id` was given up (after a `Cancel`).
    Cancelled {
        id: u64,
    },
    Service {
        id: u64,
        call: SvcCall,
    },
    Log {
        level: u8,
        target: &'a str,
        request_id: &'a str,
        message: &'a str,
    },
    Stopped,
}

/// Bytes borrowed from the frame (encoded as one byte string, not a sequence of numbers).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bytes<'a>(#[serde(with = "serde_bytes")] pub &'a [u8]);

/// What a call carries besides its input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta<'a> {
    pub request_id: &'a str,
    pub deadline_unix_ms: u64,
    pub trigger: &'a str,
    pub caller: Option<&'a str>,
}

/// What the host resolved for the group: everything the plugin's host handle answers without
/// waiting (its configuration, its secrets, which services it reaches).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Boot {
    pub group: String,
    pub max_log_level: u8,
    pub config_json: String,
    /// (kind, name) → reachable or why not. `http` has an empty name.
    pub services: Vec<(String, String, Result<(), WireServiceError>)>,
    pub secrets: Vec<(String, Result<String, WireServiceError>)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireServiceError {
    pub kind: u8,
    pub service: String,
    pub message: String,
}

impl From<ServiceError> for WireServiceError {
    fn from(e: ServiceError) -> Self {
        WireServiceError { kind: e.kind, service: e.service.into_string(), message: e.message.into_string() }
    }
}

impl From<WireServiceError> for ServiceError {
    fn from(e: WireServiceError) -> Self {
        ServiceError { kind: e.kind, service: e.service.into(), message: e.message.into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WireInput<'a> {
    Http {
        method: &'a str,
        path: &'a str,
        query: &'a str,
        #[serde(borrow)]
        headers: Vec<(&'a str, &'a str)>,
        #[serde(borrow)]
        params: Vec<(&'a str, &'a str)>,
        #[serde(with = "serde_bytes")]
        body: &'a [u8],
    },
    Event {
        id: &'a str,
        source: &'a str,
        ty: &'a str,
        subject: Option<&'a str>,
        time: Option<&'a str>,
        datacontenttype: Option<&'a str>,
        #[serde(with = "serde_bytes")]
        data: &'a [u8],
        #[serde(borrow)]
        extensions: Vec<(&'a str, &'a str)>,
    },
}

fn opt(v: &berth_plugin_api::ROption<RString>) -> Option<&str> {
    v.as_ref().map(|s| s.as_str()).into_option()
}

impl<'a> WireInput<'a> {
    /// `None` for an input kind this host does not know.
    pub fn from_input(input: &'a Input) -> Option<Self> {
        Some(match input {
            Input::Http(r) => WireInput::Http {
                method: r.method(),
                path: r.path(),
                query: r.query(),
                headers: r.headers.iter().collect(),
                params: r.params().collect(),
                body: &r.body,
            },
            Input::Event(e) => WireInput::Event {
                id: &e.id,
                source: &e.source,
                ty: &e.ty,
                subject: opt(&e.subject),
                time: opt(&e.time),
                datacontenttype: opt(&e.datacontenttype),
                data: &e.data,
                extensions: e.extensions.iter().map(|p| (p.0.as_str(), p.1.as_str())).collect(),
            },
            _ => return None,
        })
    }

    /// The plugin's input, built in one pass from the frame's bytes.
    pub fn to_input(&self) -> Input {
        match self {
            WireInput::Http { method, path, query, headers, params, body } => {
                let text = headers.iter().chain(params).map(|(k, v)| k.len() + v.len()).sum();
                let mut b = HttpRequestBuilder::new(method, path, query, text, headers.len(), params.len());
                for (k, v) in headers {
                    b.header(k, v);
                }
                for (k, v) in params {
                    b.param(k, v);
                }
                Input::Http(b.finish(RVec::from_slice(body)))
            }
            WireInput::Event { id, source, ty, subject, time, datacontenttype, data, extensions } => {
                let o = |v: &Option<&str>| v.map(RString::from).into();
                Input::Event(Event {
                    id: (*id).into(),
                    source: (*source).into(),
                    ty: (*ty).into(),
                    subject: o(subject),
                    time: o(time),
                    datacontenttype: o(datacontenttype),
                    data: RVec::from_slice(data),
                    extensions: extensions.iter().map(|(k, v)| Tuple2(RString::from(*k), RString::from(*v))).collect(),
                })
            }
        }
    }
}

/// A handler's answer, borrowed from the plugin's response when encoded and from the frame
/// when decoded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireResponse<'a> {
    pub status: u16,
    #[serde(borrow)]
    pub headers: Vec<(&'a str, &'a str)>,
    #[serde(with = "serde_bytes")]
    pub body: &'a [u8],
}

impl<'a> WireResponse<'a> {
    pub fn from_response(r: &'a Response) -> Self {
        WireResponse { status: r.status, headers: r.headers.iter().collect(), body: &r.body }
    }

    pub fn to_response(&self) -> Response {
        response(self.status, self.headers.iter().copied(), self.headers.len(), RVec::from_slice(self.body))
    }
}

/// An outbound HTTP answer (a service reply, owned: it goes to the waiting proxy call).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OwnedResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

impl OwnedResponse {
    pub fn from_response(r: &Response) -> Self {
        OwnedResponse {
            status: r.status,
            headers: r.headers.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            body: r.body.to_vec(),
        }
    }

    pub fn into_response(self) -> Response {
        let headers = self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        response(self.status, headers, self.headers.len(), RVec::from(self.body))
    }
}

fn response<'h>(
    status: u16,
    headers: impl Iterator<Item = (&'h str, &'h str)> + Clone,
    count: usize,
    body: RVec<u8>,
) -> Response {
    let mut head =
        berth_plugin_api::HeadBuilder::with_capacity(headers.clone().map(|(k, v)| k.len() + v.len()).sum(), count);
    for (k, v) in headers {
        head.push(k, v, false);
    }
    Response { status, headers: head.finish(), body }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WirePluginError {
    Handler { status: u16, code: String, message: String },
    Panicked { message: String },
    Other { message: String },
}

impl WirePluginError {
    pub fn from_plugin(e: &berth_plugin_api::PluginError_NE) -> Self {
        match e.as_enum() {
            Ok(PluginError::Handler { status, code, message }) => {
                WirePluginError::Handler { status: *status, code: code.to_string(), message: message.to_string() }
            }
            Ok(PluginError::Panicked { message }) => WirePluginError::Panicked { message: message.to_string() },
            _ => WirePluginError::Other { message: berth_plugin_api::describe_error(e) },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WireSql {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
}

impl WireSql {
    /// `None` for a value kind this host does not know.
    pub fn from_value(v: &SqlValue_NE) -> Option<Self> {
        Some(match v.as_enum().ok()? {
            SqlValue::Null => WireSql::Null,
            SqlValue::Bool(b) => WireSql::Bool(*b),
            SqlValue::Int(i) => WireSql::Int(*i),
            SqlValue::Float(f) => WireSql::Float(*f),
            SqlValue::Text(t) => WireSql::Text(t.to_string()),
            SqlValue::Bytes(b) => WireSql::Bytes(b.to_vec()),
            _ => return None,
        })
    }

    pub fn into_value(self) -> SqlValue_NE {
        SqlValue_NE::new(match self {
            WireSql::Null => SqlValue::Null,
            WireSql::Bool(b) => SqlValue::Bool(b),
            WireSql::Int(i) => SqlValue::Int(i),
            WireSql::Float(f) => SqlValue::Float(f),
            WireSql::Text(t) => SqlValue::Text(t.into()),
            WireSql::Bytes(b) => SqlValue::Bytes(b.into()),
        })
    }
}

/// A service call a plugin in a worker makes, for the host to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SvcCall {
    SqlQuery {
        name: String,
        sql: String,
        params: Vec<WireSql>,
    },
    SqlExecute {
        name: String,
        sql: String,
        params: Vec<WireSql>,
    },
    /// Begins transaction `tx` (an id the worker chose).
    SqlBegin {
        name: String,
        tx: u64,
    },
    TxQuery {
        tx: u64,
        sql: String,
        params: Vec<WireSql>,
    },
    TxExecute {
        tx: u64,
        sql: String,
        params: Vec<WireSql>,
    },
    TxCommit {
        tx: u64,
    },
    TxRollback {
        tx: u64,
    },
    /// The plugin dropped transaction `tx` (rolled back unless committed).
    TxDrop {
        tx: u64,
    },
    KvGet {
        name: String,
        key: String,
    },
    KvSet {
        name: String,
        key: String,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        ttl_ms: u64,
    },
    KvDelete {
        name: String,
        key: String,
    },
    KvIncrement {
        name: String,
        key: String,
        delta: i64,
    },
    KvCas {
        name: String,
        key: String,
        #[serde(with = "serde_bytes")]
        expected: Option<Vec<u8>>,
        #[serde(with = "serde_bytes")]
        new: Vec<u8>,
        ttl_ms: u64,
    },
    KvList {
        name: String,
        prefix: String,
        limit: u32,
    },
    Redis {
        name: String,
        args: Vec<Vec<u8>>,
    },
    BlobPut {
        name: String,
        object: String,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    BlobGet {
        name: String,
        object: String,
    },
    BlobDelete {
        name: String,
        object: String,
    },
    BlobList {
        name: String,
        prefix: String,
    },
    Http {
        method: String,
        url: String,
        headers: Vec<(String, String)>,
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
        timeout_ms: u64,
    },
    Publish {
        name: String,
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
        headers: Vec<(String, String)>,
    },
    Service {
        name: String,
        method: String,
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
        request_id: String,
    },
}

/// The answer to a [`SvcCall`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SvcOk {
    Unit,
    Text(String),
    Bool(bool),
    Int(i64),
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    MaybeBytes(#[serde(with = "serde_bytes")] Option<Vec<u8>>),
    Keys(Vec<String>),
    Executed { rows_affected: u64, last_insert_id: i64 },
    Blob(WireBlob),
    Blobs(Vec<WireBlob>),
    Response(OwnedResponse),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireBlob {
    pub name: String,
    pub size: u64,
    pub modified_unix_ms: u64,
}

impl From<&BlobInfo> for WireBlob {
    fn from(b: &BlobInfo) -> Self {
        WireBlob { name: b.name.to_string(), size: b.size, modified_unix_ms: b.modified_unix_ms }
    }
}

impl From<WireBlob> for BlobInfo {
    fn from(b: WireBlob) -> Self {
        BlobInfo { name: b.name.into(), size: b.size, modified_unix_ms: b.modified_unix_ms }
    }
}

impl From<SqlExecuted> for SvcOk {
    fn from(e: SqlExecuted) -> Self {
        SvcOk::Executed { rows_affected: e.rows_affected, last_insert_id: e.last_insert_id }
    }
}

impl SvcCall {
    /// An outbound request as a service call.
    pub fn http(r: OutboundRequest) -> Self {
        SvcCall::Http {
            method: r.method.into_string(),
            url: r.url.into_string(),
            headers: r.headers.into_iter().map(|p| (p.0.into_string(), p.1.into_string())).collect(),
            body: r.body.into_vec(),
            timeout_ms: r.timeout_ms,
        }
    }
}
