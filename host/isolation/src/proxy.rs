//! The worker side of the plugin's host handle: what a plugin in a worker process sees as its
//! host. Logging and services go to the host over the socket; the clock and timers are the
//! worker's own; configuration, secrets and which services resolve come with [`Boot`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::host_future::FutureExt as _;
use berth_plugin_api::abi_stable::sabi_trait::TD_Opaque;
use berth_plugin_api::abi_stable::std_types::RArc;
use berth_plugin_api::{
    service_error_kind, BlobHandle, BlobInfo, BlobStore, BlobStore_TO, FfiFuture, Host, HostHandle, Host_TO,
    HttpClient, HttpClientHandle, HttpClient_TO, KvHandle, KvStore, KvStore_TO, LogRecord, OutboundRequest, Pair,
    QueueHandle, QueuePublisher, QueuePublisher_TO, ROption, RResult, RStr, RString, RVec, RedisClient, RedisClient_TO,
    RedisHandle, Response, ServiceClient, ServiceClientHandle, ServiceClient_TO, ServiceError, ServiceResult,
    SqlExecuted, SqlHandle, SqlService, SqlService_TO, SqlTransaction, SqlTransactionBox, SqlTransaction_TO,
    SqlValue_NE,
};
use tokio::sync::oneshot;

use crate::wire::{self, Boot, FromWorker, SvcCall, SvcOk, WireServiceError, WireSql};

type Pending = Mutex<HashMap<u64, oneshot::Sender<Result<SvcOk, WireServiceError>>>>;

/// The channel to the host: frames out, and the service calls waiting for their reply.
pub struct Link {
    pub out: wire::Out,
    pending: Pending,
    next: AtomicU64,
}

impl Link {
    pub fn new(out: wire::Out) -> Arc<Self> {
        Arc::new(Link { out, pending: Mutex::default(), next: AtomicU64::new(1) })
    }

    /// Delivers the host's reply to service call `id`.
    pub fn reply(&self, id: u64, result: Result<SvcOk, WireServiceError>) {
        if let Some(tx) = self.pending.lock().expect("pending lock").remove(&id) {
            let _ = tx.send(result);
        }
    }

    fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `call` and waits for the host's answer.
    async fn ask(self: Arc<Self>, service: String, call: SvcCall) -> Result<SvcOk, ServiceError> {
        let id = self.next_id();
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending lock").insert(id, tx);
        let gone = || ServiceError::new(service_error_kind::UNAVAILABLE, &service, "the host went away");
        if !wire::send(&self.out, &FromWorker::Service { id, call }) {
            return Err(gone());
        }
        match rx.await {
            Ok(r) => r.map_err(Into::into),
            Err(_) => Err(gone()),
        }
    }

    fn call<T: Send + 'static>(
        self: &Arc<Self>,
        service: &str,
        call: SvcCall,
        pick: impl FnOnce(SvcOk) -> Option<T> + Send + 'static,
    ) -> ServiceResult<T> {
        let (link, name) = (self.clone(), service.to_owned());
        async move {
            let ok = link.ask(name.clone(), call).await?;
            pick(ok)
                .ok_or_else(|| ServiceError::new(service_error_kind::OTHER, &name, "the host answered another kind"))
        }
        .map(RResult::from)
        .into_ffi()
    }
}

trait MapExt: std::future::Future + Sized {
    fn map<U>(
        self,
        f: impl FnOnce(Self::Output) -> U,
    ) -> futures_util::future::Map<Self, impl FnOnce(Self::Output) -> U> {
        futures_util::FutureExt::map(self, f)
    }
}
impl<F: std::future::Future> MapExt for F {}

fn sql_params(p: RVec<SqlValue_NE>, service: &str) -> Result<Vec<WireSql>, ServiceError> {
    p.iter().map(WireSql::from_value).collect::<Option<Vec<_>>>().ok_or_else(|| {
        ServiceError::new(service_error_kind::INVALID, service, "a SQL parameter of a kind this host does not know")
    })
}

fn refused<T: Send + 'static>(e: ServiceError) -> ServiceResult<T> {
    async move { RResult::RErr(e) }.into_ffi()
}

fn text(ok: SvcOk) -> Option<RString> {
    match ok {
        SvcOk::Text(t) => Some(t.into()),
        _ => None,
    }
}
fn unit(ok: SvcOk) -> Option<()> {
    matches!(ok, SvcOk::Unit).then_some(())
}
fn boolean(ok: SvcOk) -> Option<bool> {
    match ok {
        SvcOk::Bool(b) => Some(b),
        _ => None,
    }
}
fn maybe_bytes(ok: SvcOk) -> Option<ROption<RVec<u8>>> {
    match ok {
        SvcOk::MaybeBytes(b) => Some(b.map(RVec::from).into()),
        _ => None,
    }
}
fn executed(ok: SvcOk) -> Option<SqlExecuted> {
    match ok {
        SvcOk::Executed { rows_affected, last_insert_id } => Some(SqlExecuted { rows_affected, last_insert_id }),
        _ => None,
    }
}
fn pairs(p: RVec<Pair>) -> Vec<(String, String)> {
    p.into_iter().map(|p| (p.0.into_string(), p.1.into_string())).collect()
}

/// The host handle of the plugin in this worker.
#[derive(Clone)]
pub struct WorkerHost {
    link: Arc<Link>,
    boot: Arc<Boot>,
}

impl WorkerHost {
    pub fn handle(link: Arc<Link>, boot: Boot) -> HostHandle {
        Host_TO::from_ptr(RArc::new(WorkerHost { link, boot: Arc::new(boot) }), TD_Opaque)
    }

    /// Whether the group reaches service `kind`/`name` (as the host resolved it).
    fn reach(&self, kind: &str, name: &str) -> Result<(), ServiceError> {
        match self.boot.services.iter().find(|(k, n, _)| k == kind && n == name) {
            Some((_, _, r)) => r.clone().map_err(Into::into),
            None => Err(ServiceError::new(
                service_error_kind::NOT_DECLARED,
                name,
                format!("group `{}` did not declare {kind} service `{name}`; declare it in the group", self.boot.group),
            )),
        }
    }
}

impl Host for WorkerHost {
    fn max_log_level(&self) -> u8 {
        self.boot.max_log_level
    }

    fn log(&self, r: LogRecord<'_>) {
        wire::send(
            &self.link.out,
            &FromWorker::Log {
                level: r.level,
                target: r.target.as_str(),
                request_id: r.request_id.as_str(),
                message: r.message.as_str(),
            },
        );
    }

    fn sleep(&self, millis: u64) -> FfiFuture<()> {
        tokio::time::sleep(Duration::from_millis(millis)).into_ffi()
    }

    fn now_unix_ms(&self) -> u64 {
        berth_core::clock::now_unix_ms()
    }

    fn config_json(&self) -> RString {
        self.boot.config_json.as_str().into()
    }

    fn secret(&self, name: RStr<'_>) -> RResult<RString, ServiceError> {
        match self.boot.secrets.iter().find(|(n, _)| n == name.as_str()) {
            Some((_, r)) => r.clone().map(RString::from).map_err(Into::into).into(),
            None => RResult::RErr(ServiceError::new(
                service_error_kind::NOT_DECLARED,
                name.as_str(),
                format!("group `{}` did not declare secret `{name}`", self.boot.group),
            )),
        }
    }

    fn sql(&self, name: RStr<'_>) -> RResult<SqlHandle, ServiceError> {
        let p = Proxy { link: self.link.clone(), name: name.as_str().into() };
        self.reach("sql", name.as_str()).map(|()| SqlService_TO::from_ptr(RArc::new(p), TD_Opaque)).into()
    }

    fn kv(&self, name: RStr<'_>) -> RResult<KvHandle, ServiceError> {
        let p = Proxy { link: self.link.clone(), name: name.as_str().into() };
        self.reach("kv", name.as_str()).map(|()| KvStore_TO::from_ptr(RArc::new(p), TD_Opaque)).into()
    }

    fn redis(&self, name: RStr<'_>) -> RResult<RedisHandle, ServiceError> {
        let p = Proxy { link: self.link.clone(), name: name.as_str().into() };
        self.reach("redis", name.as_str()).map(|()| RedisClient_TO::from_ptr(RArc::new(p), TD_Opaque)).into()
    }

    fn blob(&self, name: RStr<'_>) -> RResult<BlobHandle, ServiceError> {
        let p = Proxy { link: self.link.clone(), name: name.as_str().into() };
        self.reach("blob", name.as_str()).map(|()| BlobStore_TO::from_ptr(RArc::new(p), TD_Opaque)).into()
    }

    fn http_client(&self) -> RResult<HttpClientHandle, ServiceError> {
        let p = Proxy { link: self.link.clone(), name: "http".into() };
        self.reach("http", "").map(|()| HttpClient_TO::from_ptr(RArc::new(p), TD_Opaque)).into()
    }

    fn queue(&self, name: RStr<'_>) -> RResult<QueueHandle, ServiceError> {
        let p = Proxy { link: self.link.clone(), name: name.as_str().into() };
        self.reach("queue", name.as_str()).map(|()| QueuePublisher_TO::from_ptr(RArc::new(p), TD_Opaque)).into()
    }

    fn service(&self, name: RStr<'_>) -> RResult<ServiceClientHandle, ServiceError> {
        let p = Proxy { link: self.link.clone(), name: name.as_str().into() };
        self.reach("service", name.as_str()).map(|()| ServiceClient_TO::from_ptr(RArc::new(p), TD_Opaque)).into()
    }
}

/// One service of the plugin, reached through the host.
#[derive(Clone)]
struct Proxy {
    link: Arc<Link>,
    name: Arc<str>,
}

impl SqlService for Proxy {
    fn query(&self, sql: RString, params: RVec<SqlValue_NE>) -> ServiceResult<RString> {
        match sql_params(params, &self.name) {
            Ok(params) => self.link.call(
                &self.name,
                SvcCall::SqlQuery { name: self.name.to_string(), sql: sql.into(), params },
                text,
            ),
            Err(e) => refused(e),
        }
    }
    fn execute(&self, sql: RString, params: RVec<SqlValue_NE>) -> ServiceResult<SqlExecuted> {
        match sql_params(params, &self.name) {
            Ok(params) => self.link.call(
                &self.name,
                SvcCall::SqlExecute { name: self.name.to_string(), sql: sql.into(), params },
                executed,
            ),
            Err(e) => refused(e),
        }
    }
    fn begin(&self) -> ServiceResult<SqlTransactionBox> {
        let tx = self.link.next_id();
        let t = Transaction { link: self.link.clone(), name: self.name.clone(), tx };
        self.link.call(&self.name, SvcCall::SqlBegin { name: self.name.to_string(), tx }, move |ok| {
            unit(ok).map(|()| SqlTransaction_TO::from_value(t, TD_Opaque))
        })
    }
}

/// A transaction the host holds for the plugin; dropping it rolls it back (unless committed).
struct Transaction {
    link: Arc<Link>,
    name: Arc<str>,
    tx: u64,
}

impl Drop for Transaction {
    fn drop(&mut self) {
        let (link, name, tx) = (self.link.clone(), self.name.to_string(), self.tx);
        // Fire and forget: the host drops its transaction when it sees this.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = link.ask(name, SvcCall::TxDrop { tx }).await;
            });
        }
    }
}

impl SqlTransaction for Transaction {
    fn query(&self, sql: RString, params: RVec<SqlValue_NE>) -> ServiceResult<RString> {
        match sql_params(params, &self.name) {
            Ok(params) => self.link.call(&self.name, SvcCall::TxQuery { tx: self.tx, sql: sql.into(), params }, text),
            Err(e) => refused(e),
        }
    }
    fn execute(&self, sql: RString, params: RVec<SqlValue_NE>) -> ServiceResult<SqlExecuted> {
        match sql_params(params, &self.name) {
            Ok(params) => {
                self.link.call(&self.name, SvcCall::TxExecute { tx: self.tx, sql: sql.into(), params }, executed)
            }
            Err(e) => refused(e),
        }
    }
    fn commit(&self) -> ServiceResult<()> {
        self.link.call(&self.name, SvcCall::TxCommit { tx: self.tx }, unit)
    }
    fn rollback(&self) -> ServiceResult<()> {
        self.link.call(&self.name, SvcCall::TxRollback { tx: self.tx }, unit)
    }
}

impl KvStore for Proxy {
    fn get(&self, key: RString) -> ServiceResult<ROption<RVec<u8>>> {
        self.link.call(&self.name, SvcCall::KvGet { name: self.name.to_string(), key: key.into() }, maybe_bytes)
    }
    fn set(&self, key: RString, value: RVec<u8>, ttl_ms: u64) -> ServiceResult<()> {
        let call = SvcCall::KvSet { name: self.name.to_string(), key: key.into(), value: value.into(), ttl_ms };
        self.link.call(&self.name, call, unit)
    }
    fn delete(&self, key: RString) -> ServiceResult<bool> {
        self.link.call(&self.name, SvcCall::KvDelete { name: self.name.to_string(), key: key.into() }, boolean)
    }
    fn increment(&self, key: RString, delta: i64) -> ServiceResult<i64> {
        self.link.call(&self.name, SvcCall::KvIncrement { name: self.name.to_string(), key: key.into(), delta }, |ok| {
            match ok {
                SvcOk::Int(i) => Some(i),
                _ => None,
            }
        })
    }
    fn compare_and_swap(
        &self,
        key: RString,
        expected: ROption<RVec<u8>>,
        new: RVec<u8>,
        ttl_ms: u64,
    ) -> ServiceResult<bool> {
        let call = SvcCall::KvCas {
            name: self.name.to_string(),
            key: key.into(),
            expected: expected.into_option().map(RVec::into_vec),
            new: new.into(),
            ttl_ms,
        };
        self.link.call(&self.name, call, boolean)
    }
    fn list_keys(&self, prefix: RString, limit: u32) -> ServiceResult<RVec<RString>> {
        self.link.call(
            &self.name,
            SvcCall::KvList { name: self.name.to_string(), prefix: prefix.into(), limit },
            |ok| match ok {
                SvcOk::Keys(k) => Some(k.into_iter().map(RString::from).collect()),
                _ => None,
            },
        )
    }
}

impl RedisClient for Proxy {
    fn command(&self, args: RVec<RVec<u8>>) -> ServiceResult<RString> {
        let args = args.into_iter().map(RVec::into_vec).collect();
        self.link.call(&self.name, SvcCall::Redis { name: self.name.to_string(), args }, text)
    }
}

impl BlobStore for Proxy {
    fn put(&self, object: RString, data: RVec<u8>) -> ServiceResult<BlobInfo> {
        let call = SvcCall::BlobPut { name: self.name.to_string(), object: object.into(), data: data.into() };
        self.link.call(&self.name, call, |ok| match ok {
            SvcOk::Blob(b) => Some(b.into()),
            _ => None,
        })
    }
    fn get(&self, object: RString) -> ServiceResult<ROption<RVec<u8>>> {
        self.link.call(&self.name, SvcCall::BlobGet { name: self.name.to_string(), object: object.into() }, maybe_bytes)
    }
    fn delete(&self, object: RString) -> ServiceResult<bool> {
        self.link.call(&self.name, SvcCall::BlobDelete { name: self.name.to_string(), object: object.into() }, boolean)
    }
    fn list(&self, prefix: RString) -> ServiceResult<RVec<BlobInfo>> {
        self.link.call(&self.name, SvcCall::BlobList { name: self.name.to_string(), prefix: prefix.into() }, |ok| {
            match ok {
                SvcOk::Blobs(l) => Some(l.into_iter().map(Into::into).collect()),
                _ => None,
            }
        })
    }
}

impl HttpClient for Proxy {
    fn fetch(&self, request: OutboundRequest) -> ServiceResult<Response> {
        self.link.call(&self.name, SvcCall::http(request), |ok| match ok {
            SvcOk::Response(r) => Some(r.into_response()),
            _ => None,
        })
    }
}

impl QueuePublisher for Proxy {
    fn publish(&self, payload: RVec<u8>, headers: RVec<Pair>) -> ServiceResult<RString> {
        let call = SvcCall::Publish { name: self.name.to_string(), payload: payload.into(), headers: pairs(headers) };
        self.link.call(&self.name, call, text)
    }
}

impl ServiceClient for Proxy {
    fn call(&self, method: RString, payload: RVec<u8>, request_id: RString) -> ServiceResult<RVec<u8>> {
        let call = SvcCall::Service {
            name: self.name.to_string(),
            method: method.into(),
            payload: payload.into(),
            request_id: request_id.into(),
        };
        self.link.call(&self.name, call, |ok| match ok {
            SvcOk::Bytes(b) => Some(b.into()),
            _ => None,
        })
    }
}
