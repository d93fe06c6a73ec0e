//! Services a host offers plugins: SQL, key-value, Redis, blob storage, outbound HTTP, queue
//! publishing, and services that other plugins export. Each is a `sabi_trait` the host implements;
//! a plugin gets a handle from [`crate::Host`] for a service its manifest declared.
//!
//! Every method takes owned arguments and returns a host-made [`FfiFuture`], so a plugin never
//! needs a runtime and never lends memory to the host across an await.

use abi_stable::{
    sabi_trait,
    std_types::{RArc, RBox, ROption, RResult, RString, RVec},
    StableAbi,
};
use async_ffi::FfiFuture;

use crate::{Pair, Response};

/// Kinds of [`ServiceError`] (a `u8` so that a newer host can add kinds without breaking older
/// plugins, which treat an unknown kind as [`service_error_kind::OTHER`]).
pub mod service_error_kind {
    /// The backend is down or unreachable; retrying later may work.
    pub const UNAVAILABLE: u8 = 1;
    /// The thing asked for does not exist.
    pub const NOT_FOUND: u8 = 2;
    /// The request was refused as invalid (bad SQL, bad name, bad parameters).
    pub const INVALID: u8 = 3;
    /// A value or body exceeds a configured limit.
    pub const TOO_LARGE: u8 = 4;
    /// A conflicting concurrent change (compare-and-swap lost, unique constraint).
    pub const CONFLICT: u8 = 5;
    /// The backend did not answer in time.
    pub const TIMEOUT: u8 = 6;
    /// The group did not declare this service, or the host has no such service configured.
    pub const NOT_DECLARED: u8 = 7;
    /// A method of an exported service answered an error of its own (what its handler returned):
    /// `message` is the JSON object `{"status": 422, "code": "invalid", "message": "..."}`, so
    /// that the consumer can answer its caller the provider's status, code and message. A
    /// plugin that predates this kind treats it as [`OTHER`].
    pub const HANDLER: u8 = 8;
    /// Anything else.
    pub const OTHER: u8 = 255;
}

/// Why a service call failed.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct ServiceError {
    /// One of [`service_error_kind`].
    pub kind: u8,
    /// The service name as configured (`db`, `cache`).
    pub service: RString,
    pub message: RString,
}

impl ServiceError {
    pub fn new(kind: u8, service: &str, message: impl Into<RString>) -> Self {
        ServiceError { kind, service: service.into(), message: message.into() }
    }
}

/// The answer of a service call.
pub type ServiceResult<T> = FfiFuture<RResult<T, ServiceError>>;

// === SQL ===

/// A parameter of a SQL statement. Parameters are always bound, never spliced into the text.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 5], traits(Debug, Clone, PartialEq))))]
#[non_exhaustive]
pub enum SqlValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(RString),
    Bytes(RVec<u8>),
}

/// What a statement that returns no rows did.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlExecuted {
    pub rows_affected: u64,
    /// The id of the last inserted row where the database reports one (SQLite, MySQL), else 0.
    pub last_insert_id: i64,
}

/// A SQL database (a pool of connections on the host).
#[sabi_trait]
pub trait SqlService: Send + Sync + Clone {
    /// Runs a query; the rows come back as a JSON array of objects (column name → value; blobs as
    /// arrays of bytes), ready for serde.
    fn query(&self, sql: RString, params: RVec<SqlValue_NE>) -> ServiceResult<RString>;
    /// Runs a statement that returns no rows.
    fn execute(&self, sql: RString, params: RVec<SqlValue_NE>) -> ServiceResult<SqlExecuted>;
    /// Starts a transaction on one connection of the pool.
    #[sabi(last_prefix_field)]
    fn begin(&self) -> ServiceResult<SqlTransactionBox>;
}

/// A transaction. Dropping it without [`SqlTransaction::commit`] rolls it back.
#[sabi_trait]
pub trait SqlTransaction: Send + Sync {
    fn query(&self, sql: RString, params: RVec<SqlValue_NE>) -> ServiceResult<RString>;
    fn execute(&self, sql: RString, params: RVec<SqlValue_NE>) -> ServiceResult<SqlExecuted>;
    fn commit(&self) -> ServiceResult<()>;
    #[sabi(last_prefix_field)]
    fn rollback(&self) -> ServiceResult<()>;
}

pub type SqlHandle = SqlService_TO<'static, RArc<()>>;
pub type SqlTransactionBox = SqlTransaction_TO<'static, RBox<()>>;

// === Key-value ===

/// A key-value store. Keys are namespaced per group by the host unless the store is shared.
#[sabi_trait]
pub trait KvStore: Send + Sync + Clone {
    fn get(&self, key: RString) -> ServiceResult<ROption<RVec<u8>>>;
    /// Sets a value; `ttl_ms` 0 means no expiry.
    fn set(&self, key: RString, value: RVec<u8>, ttl_ms: u64) -> ServiceResult<()>;
    /// Deletes a key; true when it existed.
    fn delete(&self, key: RString) -> ServiceResult<bool>;
    /// Adds `delta` to an integer value (a missing key counts as 0) and returns the result.
    fn increment(&self, key: RString, delta: i64) -> ServiceResult<i64>;
    /// Sets `new` only if the current value equals `expected` (`None`: only if absent).
    fn compare_and_swap(
        &self,
        key: RString,
        expected: ROption<RVec<u8>>,
        new: RVec<u8>,
        ttl_ms: u64,
    ) -> ServiceResult<bool>;
    /// Keys starting with `prefix`, sorted, at most `limit`.
    #[sabi(last_prefix_field)]
    fn list_keys(&self, prefix: RString, limit: u32) -> ServiceResult<RVec<RString>>;
}

pub type KvHandle = KvStore_TO<'static, RArc<()>>;

// === Redis ===

/// Direct Redis access for what the key-value interface does not cover.
#[sabi_trait]
pub trait RedisClient: Send + Sync + Clone {
    /// Runs one command (`["HSET", "k", "f", "v"]`); the reply as JSON (nil → null, bulk strings
    /// → strings when UTF-8 else byte arrays, arrays → arrays).
    #[sabi(last_prefix_field)]
    fn command(&self, args: RVec<RVec<u8>>) -> ServiceResult<RString>;
}

pub type RedisHandle = RedisClient_TO<'static, RArc<()>>;

// === Blob storage ===

/// One stored object.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub name: RString,
    pub size: u64,
    pub modified_unix_ms: u64,
}

/// A bucket of named objects.
#[sabi_trait]
pub trait BlobStore: Send + Sync + Clone {
    fn put(&self, name: RString, data: RVec<u8>) -> ServiceResult<BlobInfo>;
    fn get(&self, name: RString) -> ServiceResult<ROption<RVec<u8>>>;
    fn delete(&self, name: RString) -> ServiceResult<bool>;
    #[sabi(last_prefix_field)]
    fn list(&self, prefix: RString) -> ServiceResult<RVec<BlobInfo>>;
}

pub type BlobHandle = BlobStore_TO<'static, RArc<()>>;

// === Outbound HTTP ===

/// A request a function sends.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Default)]
pub struct OutboundRequest {
    pub method: RString,
    pub url: RString,
    pub headers: RVec<Pair>,
    pub body: RVec<u8>,
    /// 0: the host's default timeout.
    pub timeout_ms: u64,
}

#[sabi_trait]
pub trait HttpClient: Send + Sync + Clone {
    #[sabi(last_prefix_field)]
    fn fetch(&self, request: OutboundRequest) -> ServiceResult<Response>;
}

pub type HttpClientHandle = HttpClient_TO<'static, RArc<()>>;

// === Queues ===

/// Publishes to a queue binding from `berth.toml`.
#[sabi_trait]
pub trait QueuePublisher: Send + Sync + Clone {
    /// Publishes one message; returns the backend's message id.
    #[sabi(last_prefix_field)]
    fn publish(&self, payload: RVec<u8>, headers: RVec<Pair>) -> ServiceResult<RString>;
}

pub type QueueHandle = QueuePublisher_TO<'static, RArc<()>>;

// === Services exported by plugins ===

/// A call to a service another plugin exports. Payloads are the interface crate's serde encoding.
#[sabi_trait]
pub trait ServiceClient: Send + Sync + Clone {
    /// `request_id` is the calling function's, so the provider's logs carry it too.
    #[sabi(last_prefix_field)]
    fn call(&self, method: RString, payload: RVec<u8>, request_id: RString) -> ServiceResult<RVec<u8>>;
}

pub type ServiceClientHandle = ServiceClient_TO<'static, RArc<()>>;
