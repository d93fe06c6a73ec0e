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

/// Encodes one frame's body.
pub fn encode<T: Serialize>(msg: &T) -> bytes::Bytes {
    postcard::to_stdvec(msg).map(bytes::Bytes::from).unwrap_or_default()
}

/// Decodes one frame's body.
pub fn decode<'a, T: Deserialize<'a>>(frame: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(frame)
}

#[derive(Debug, Serialize, Deserialize)]
pub enum ToWorker {
    Open {
        file: PathBuf,
        copy_dir: PathBuf,
    },
    Instantiate(Boot),
    Call {
        id: u64,
        function: u32,
        meta: Meta,
        input: WireInput,
    },
    Export {
        id: u64,
        service: String,
        method: String,
        payload: Vec<u8>,
        meta: Meta,
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
pub enum FromWorker {
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
        result: Result<WireResponse, WirePluginError>,
    },
    ExportDone {
        id: u64,
        result: Result<Vec<u8>, WireServiceError>,
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
        target: String,
        request_id: String,
        message: String,
    },
    Stopped,
}

/// What a call carries besides its input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub request_id: String,
    pub deadline_unix_ms: u64,
    pub trigger: String,
    pub caller: Option<String>,
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
pub enum WireInput {
    Http {
        method: String,
        path: String,
        query: String,
        headers: Vec<(String, String)>,
        params: Vec<(String, String)>,
        body: Vec<u8>,
    },
    Event {
        id: String,
        source: String,
        ty: String,
        subject: Option<String>,
        time: Option<String>,
        datacontenttype: Option<String>,
        data: Vec<u8>,
        extensions: Vec<(String, String)>,
    },
}

fn opt(v: &berth_plugin_api::ROption<RString>) -> Option<String> {
    v.as_ref().map(|s| s.to_string()).into_option()
}

impl WireInput {
    /// `None` for an input kind this host does not know.
    pub fn from_input(input: &Input) -> Option<Self> {
        Some(match input {
            Input::Http(r) => WireInput::Http {
                method: r.method().to_owned(),
                path: r.path().to_owned(),
                query: r.query().to_owned(),
                headers: r.headers.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
                params: r.params().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
                body: r.body.to_vec(),
            },
            Input::Event(e) => WireInput::Event {
                id: e.id.to_string(),
                source: e.source.to_string(),
                ty: e.ty.to_string(),
                subject: opt(&e.subject),
                time: opt(&e.time),
                datacontenttype: opt(&e.datacontenttype),
                data: e.data.to_vec(),
                extensions: e.extensions.iter().map(|p| (p.0.to_string(), p.1.to_string())).collect(),
            },
            _ => return None,
        })
    }

    pub fn into_input(self) -> Input {
        match self {
            WireInput::Http { method, path, query, headers, params, body } => {
                let text = headers.iter().chain(&params).map(|(k, v)| k.len() + v.len()).sum();
                let mut b = HttpRequestBuilder::new(&method, &path, &query, text, headers.len(), params.len());
                for (k, v) in &headers {
                    b.header(k, v);
                }
                for (k, v) in &params {
                    b.param(k, v);
                }
                Input::Http(b.finish(RVec::from(body)))
            }
            WireInput::Event { id, source, ty, subject, time, datacontenttype, data, extensions } => {
                let o = |v: Option<String>| v.map(RString::from).into();
                Input::Event(Event {
                    id: id.into(),
                    source: source.into(),
                    ty: ty.into(),
                    subject: o(subject),
                    time: o(time),
                    datacontenttype: o(datacontenttype),
                    data: RVec::from(data),
                    extensions: extensions
                        .into_iter()
                        .map(|(k, v)| Tuple2(RString::from(k), RString::from(v)))
                        .collect(),
                })
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl WireResponse {
    pub fn from_response(r: &Response) -> Self {
        WireResponse {
            status: r.status,
            headers: r.headers.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            body: r.body.to_vec(),
        }
    }

    pub fn into_response(self) -> Response {
        let mut head = berth_plugin_api::HeadBuilder::with_capacity(
            self.headers.iter().map(|(k, v)| k.len() + v.len()).sum(),
            self.headers.len(),
        );
        for (k, v) in &self.headers {
            head.push(k, v, false);
        }
        Response { status: self.status, headers: head.finish(), body: RVec::from(self.body) }
    }
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
    Bytes(Vec<u8>),
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
        expected: Option<Vec<u8>>,
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
        body: Vec<u8>,
        timeout_ms: u64,
    },
    Publish {
        name: String,
        payload: Vec<u8>,
        headers: Vec<(String, String)>,
    },
    Service {
        name: String,
        method: String,
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
    Bytes(Vec<u8>),
    MaybeBytes(Option<Vec<u8>>),
    Keys(Vec<String>),
    Executed { rows_affected: u64, last_insert_id: i64 },
    Blob(WireBlob),
    Blobs(Vec<WireBlob>),
    Response(WireResponse),
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
