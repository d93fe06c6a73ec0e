//! The host side of a worker's service calls: each runs through the group's own host handle,
//! exactly as the same call from an in-process plugin would (same scoping, metrics, limits).

use std::collections::HashMap;
use std::sync::Mutex;

use berth_plugin_api::{
    service_error_kind, HostHandle, OutboundRequest, RResult, RString, RVec, ServiceError, SqlTransactionBox, Tuple2,
};

use crate::wire::{Boot, OwnedResponse, SvcCall, SvcOk, WireServiceError, WireSql};

/// Open transactions of one worker, by the id the worker gave them.
#[derive(Default)]
pub struct Transactions(Mutex<HashMap<u64, std::sync::Arc<SqlTransactionBox>>>);

impl Transactions {
    fn get(&self, tx: u64) -> Result<std::sync::Arc<SqlTransactionBox>, WireServiceError> {
        self.0.lock().expect("tx lock").get(&tx).cloned().ok_or_else(|| WireServiceError {
            kind: service_error_kind::INVALID,
            service: "sql".into(),
            message: format!("transaction {tx} is not open (already committed or rolled back)"),
        })
    }

    /// Drops every open transaction (their worker is gone: each rolls back).
    pub fn clear(&self) {
        let all: Vec<_> = self.0.lock().expect("tx lock").drain().collect();
        drop(all);
    }
}

fn params(p: Vec<WireSql>) -> RVec<berth_plugin_api::SqlValue_NE> {
    p.into_iter().map(WireSql::into_value).collect()
}

fn pairs(p: Vec<(String, String)>) -> RVec<berth_plugin_api::Pair> {
    p.into_iter().map(|(k, v)| Tuple2(RString::from(k), RString::from(v))).collect()
}

async fn run<T>(
    fut: berth_plugin_api::ServiceResult<T>,
    ok: impl FnOnce(T) -> SvcOk,
) -> Result<SvcOk, WireServiceError> {
    match fut.await {
        RResult::ROk(v) => Ok(ok(v)),
        RResult::RErr(e) => Err(e.into()),
    }
}

fn handle<T>(r: RResult<T, ServiceError>) -> Result<T, WireServiceError> {
    r.into_result().map_err(Into::into)
}

/// Runs one service call of a worker's plugin.
pub async fn serve(host: &HostHandle, txs: &Transactions, call: SvcCall) -> Result<SvcOk, WireServiceError> {
    match call {
        SvcCall::SqlQuery { name, sql, params: p } => {
            run(handle(host.sql(name.as_str().into()))?.query(sql.into(), params(p)), |s| SvcOk::Text(s.into())).await
        }
        SvcCall::SqlExecute { name, sql, params: p } => {
            run(handle(host.sql(name.as_str().into()))?.execute(sql.into(), params(p)), SvcOk::from).await
        }
        SvcCall::SqlBegin { name, tx } => {
            let t = match handle(host.sql(name.as_str().into()))?.begin().await {
                RResult::ROk(t) => t,
                RResult::RErr(e) => return Err(e.into()),
            };
            txs.0.lock().expect("tx lock").insert(tx, std::sync::Arc::new(t));
            Ok(SvcOk::Unit)
        }
        SvcCall::TxQuery { tx, sql, params: p } => {
            run(txs.get(tx)?.query(sql.into(), params(p)), |s| SvcOk::Text(s.into())).await
        }
        SvcCall::TxExecute { tx, sql, params: p } => {
            run(txs.get(tx)?.execute(sql.into(), params(p)), SvcOk::from).await
        }
        SvcCall::TxCommit { tx } => run(txs.get(tx)?.commit(), |()| SvcOk::Unit).await,
        SvcCall::TxRollback { tx } => run(txs.get(tx)?.rollback(), |()| SvcOk::Unit).await,
        SvcCall::TxDrop { tx } => {
            let t = txs.0.lock().expect("tx lock").remove(&tx);
            drop(t);
            Ok(SvcOk::Unit)
        }
        SvcCall::KvGet { name, key } => {
            run(handle(host.kv(name.as_str().into()))?.get(key.into()), |v| {
                SvcOk::MaybeBytes(v.into_option().map(RVec::into_vec))
            })
            .await
        }
        SvcCall::KvSet { name, key, value, ttl_ms } => {
            run(handle(host.kv(name.as_str().into()))?.set(key.into(), value.into(), ttl_ms), |()| SvcOk::Unit).await
        }
        SvcCall::KvDelete { name, key } => {
            run(handle(host.kv(name.as_str().into()))?.delete(key.into()), SvcOk::Bool).await
        }
        SvcCall::KvIncrement { name, key, delta } => {
            run(handle(host.kv(name.as_str().into()))?.increment(key.into(), delta), SvcOk::Int).await
        }
        SvcCall::KvCas { name, key, expected, new, ttl_ms } => {
            let kv = handle(host.kv(name.as_str().into()))?;
            run(kv.compare_and_swap(key.into(), expected.map(RVec::from).into(), new.into(), ttl_ms), SvcOk::Bool).await
        }
        SvcCall::KvList { name, prefix, limit } => {
            run(handle(host.kv(name.as_str().into()))?.list_keys(prefix.into(), limit), |k| {
                SvcOk::Keys(k.into_iter().map(RString::into_string).collect())
            })
            .await
        }
        SvcCall::Redis { name, args } => {
            let args = args.into_iter().map(RVec::from).collect();
            run(handle(host.redis(name.as_str().into()))?.command(args), |s| SvcOk::Text(s.into())).await
        }
        SvcCall::BlobPut { name, object, data } => {
            run(handle(host.blob(name.as_str().into()))?.put(object.into(), data.into()), |b| SvcOk::Blob((&b).into()))
                .await
        }
        SvcCall::BlobGet { name, object } => {
            run(handle(host.blob(name.as_str().into()))?.get(object.into()), |v| {
                SvcOk::MaybeBytes(v.into_option().map(RVec::into_vec))
            })
            .await
        }
        SvcCall::BlobDelete { name, object } => {
            run(handle(host.blob(name.as_str().into()))?.delete(object.into()), SvcOk::Bool).await
        }
        SvcCall::BlobList { name, prefix } => {
            run(handle(host.blob(name.as_str().into()))?.list(prefix.into()), |l| {
                SvcOk::Blobs(l.iter().map(Into::into).collect())
            })
            .await
        }
        SvcCall::Http { method, url, headers, body, timeout_ms } => {
            let req = OutboundRequest {
                method: method.into(),
                url: url.into(),
                headers: pairs(headers),
                body: body.into(),
                timeout_ms,
            };
            run(handle(host.http_client())?.fetch(req), |r| SvcOk::Response(OwnedResponse::from_response(&r))).await
        }
        SvcCall::Publish { name, payload, headers } => {
            run(handle(host.queue(name.as_str().into()))?.publish(payload.into(), pairs(headers)), |id| {
                SvcOk::Text(id.into())
            })
            .await
        }
        SvcCall::Service { name, method, payload, request_id } => {
            let client = handle(host.service(name.as_str().into()))?;
            run(client.call(method.into(), payload.into(), request_id.into()), |b| SvcOk::Bytes(b.into_vec())).await
        }
    }
}

/// What the worker's host handle answers without asking: the group's configuration, its
/// secrets, and which of the services it declared it reaches (resolved by the host when the
/// group was instantiated, as for an in-process group).
pub fn boot(group: &str, host: &HostHandle, needs: &[berth_loader::ServiceNeed]) -> Boot {
    let mut services = Vec::new();
    let mut secrets = Vec::new();
    let reach = |r: Result<(), ServiceError>| r.map_err(WireServiceError::from);
    for n in needs {
        let name = n.name.as_str().into();
        let outcome = match n.kind.as_str() {
            "sql" => reach(host.sql(name).into_result().map(drop)),
            "kv" => reach(host.kv(name).into_result().map(drop)),
            "redis" => reach(host.redis(name).into_result().map(drop)),
            "blob" => reach(host.blob(name).into_result().map(drop)),
            "http" => reach(host.http_client().into_result().map(drop)),
            "queue" => reach(host.queue(name).into_result().map(drop)),
            "service" => reach(host.service(name).into_result().map(drop)),
            "secret" => {
                secrets.push((
                    n.name.clone(),
                    host.secret(name).into_result().map(RString::into_string).map_err(Into::into),
                ));
                continue;
            }
            _ => continue,
        };
        let key = if n.kind == "http" { String::new() } else { n.name.clone() };
        services.push((n.kind.clone(), key, outcome));
    }
    Boot {
        group: group.to_owned(),
        max_log_level: host.max_log_level(),
        config_json: host.config_json().into_string(),
        services,
        secrets,
    }
}
