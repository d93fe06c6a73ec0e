//! SQL: parameterised queries, rows decoded with serde, transactions.

use std::fmt;

use berth_plugin_api::{service_error_kind as kind, RVec, SqlExecuted, SqlHandle, SqlTransactionBox, SqlValue_NE};
use serde::de::DeserializeOwned;
use serde::Deserialize as _;

use super::{lift, ServiceError, ServiceResult};

/// A statement parameter. Build them with `.into()` from Rust values, or with [`crate::params!`].
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for SqlValue {
            fn from(v: $t) -> Self { SqlValue::Int(v as i64) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<u64> for SqlValue {
    fn from(v: u64) -> Self {
        // Values past i64::MAX do not fit any SQL integer column; keep them as text, visibly.
        i64::try_from(v).map(SqlValue::Int).unwrap_or_else(|_| SqlValue::Text(v.to_string()))
    }
}
impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        SqlValue::Bool(v)
    }
}
impl From<f64> for SqlValue {
    fn from(v: f64) -> Self {
        SqlValue::Float(v)
    }
}
impl From<f32> for SqlValue {
    fn from(v: f32) -> Self {
        SqlValue::Float(v as f64)
    }
}
impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_owned())
    }
}
impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}
impl From<&String> for SqlValue {
    fn from(v: &String) -> Self {
        SqlValue::Text(v.clone())
    }
}
impl From<Vec<u8>> for SqlValue {
    fn from(v: Vec<u8>) -> Self {
        SqlValue::Bytes(v)
    }
}
impl From<&[u8]> for SqlValue {
    fn from(v: &[u8]) -> Self {
        SqlValue::Bytes(v.to_vec())
    }
}
impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map(Into::into).unwrap_or(SqlValue::Null)
    }
}

impl SqlValue {
    fn to_abi(&self) -> SqlValue_NE {
        use berth_plugin_api::SqlValue as A;
        SqlValue_NE::new(match self {
            SqlValue::Null => A::Null,
            SqlValue::Bool(b) => A::Bool(*b),
            SqlValue::Int(i) => A::Int(*i),
            SqlValue::Float(f) => A::Float(*f),
            SqlValue::Text(s) => A::Text(s.as_str().into()),
            SqlValue::Bytes(b) => A::Bytes(b.as_slice().into()),
        })
    }
}

/// Statement parameters: `berth::params![id, title, done]`.
#[macro_export]
macro_rules! params {
    ($($v:expr),* $(,)?) => {
        &[$($crate::SqlValue::from($v)),*][..]
    };
}

fn abi_params(params: &[SqlValue]) -> RVec<SqlValue_NE> {
    params.iter().map(SqlValue::to_abi).collect()
}

fn decode<T: DeserializeOwned>(service: &str, json: &str) -> ServiceResult<Vec<T>> {
    serde_json::from_str(json)
        .map_err(|e| ServiceError::local(kind::INVALID, service, format!("rows do not match the requested type: {e}")))
}

/// A SQL database: a pool on the host. Cheap to clone.
#[derive(Clone)]
pub struct Sql {
    name: String,
    handle: SqlHandle,
}

impl fmt::Debug for Sql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sql").field("name", &self.name).finish()
    }
}

impl Sql {
    pub(crate) fn new(name: &str, handle: SqlHandle) -> Self {
        Sql { name: name.to_owned(), handle }
    }

    /// Runs a query and decodes every row into `T` (a struct whose fields are column names).
    pub async fn query<T: DeserializeOwned>(&self, sql: &str, params: &[SqlValue]) -> ServiceResult<Vec<T>> {
        let json = lift(self.handle.query(sql.into(), abi_params(params)).await)?;
        decode(&self.name, &json)
    }

    /// Runs a query expected to return at most one row.
    pub async fn query_opt<T: DeserializeOwned>(&self, sql: &str, params: &[SqlValue]) -> ServiceResult<Option<T>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// Runs a statement that returns no rows.
    pub async fn execute(&self, sql: &str, params: &[SqlValue]) -> ServiceResult<SqlExecuted> {
        lift(self.handle.execute(sql.into(), abi_params(params)).await)
    }

    /// Starts a transaction. Commit it; dropping it rolls back.
    pub async fn begin(&self) -> ServiceResult<Transaction> {
        let tx = lift(self.handle.begin().await)?;
        Ok(Transaction { name: self.name.clone(), tx })
    }
}

/// An open transaction.
pub struct Transaction {
    name: String,
    tx: SqlTransactionBox,
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction").field("name", &self.name).finish()
    }
}

impl Transaction {
    pub async fn query<T: DeserializeOwned>(&self, sql: &str, params: &[SqlValue]) -> ServiceResult<Vec<T>> {
        let json = lift(self.tx.query(sql.into(), abi_params(params)).await)?;
        decode(&self.name, &json)
    }
    pub async fn query_opt<T: DeserializeOwned>(&self, sql: &str, params: &[SqlValue]) -> ServiceResult<Option<T>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }
    pub async fn execute(&self, sql: &str, params: &[SqlValue]) -> ServiceResult<SqlExecuted> {
        lift(self.tx.execute(sql.into(), abi_params(params)).await)
    }
    /// Commits; the transaction is finished either way.
    pub async fn commit(self) -> ServiceResult<()> {
        lift(self.tx.commit().await)
    }
    /// Rolls back explicitly (dropping does the same).
    pub async fn rollback(self) -> ServiceResult<()> {
        lift(self.tx.rollback().await)
    }
}

/// Deserializes a SQL boolean whichever way the database returns it (`true`, `1`, `"t"`):
/// SQLite and MySQL store booleans as integers. Use as `#[serde(deserialize_with = "berth::sql_bool")]`.
pub fn sql_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    use serde::de::{Error as _, Unexpected};
    let v = serde_json::Value::deserialize(d)?;
    match &v {
        serde_json::Value::Bool(b) => Ok(*b),
        serde_json::Value::Number(n) => Ok(n.as_i64().unwrap_or(0) != 0),
        serde_json::Value::String(s) => match s.as_str() {
            "t" | "true" | "1" => Ok(true),
            "f" | "false" | "0" => Ok(false),
            other => Err(D::Error::invalid_value(Unexpected::Str(other), &"a boolean")),
        },
        _ => Err(D::Error::invalid_type(Unexpected::Other("non-boolean"), &"a boolean")),
    }
}
