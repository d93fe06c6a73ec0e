//! The `users` service interface: what a provider implements and what consumers call.
//!
//! Both sides depend on this crate. The provider (`plugins/users`) exports it with
//! `berth::group!{ exports: [users_api::export("users", MyUsers)], .. }`; a consumer declares
//! `services: [users_api::requirement("users")]` and calls `UsersClient::new(&ctx, "users")?`.
//! The host checks at load that the provider implements this interface with a compatible
//! version (same major, provider at least the consumer's version).

use std::future::Future;
use std::sync::Arc;

use berth::services::decl::ServiceDecl;
use berth::{Context, ExportDef, Result, ServiceClient, ServiceResult};
use serde::{Deserialize, Serialize};

/// The interface's name, as the host checks it.
pub const INTERFACE: &str = env!("CARGO_PKG_NAME");
/// The interface's version; bump the major on any incompatible change.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    pub name: String,
    pub email: String,
}

/// What a provider implements.
pub trait Users: Send + Sync + 'static {
    fn create(&self, ctx: Context, new: NewUser) -> impl Future<Output = Result<User>> + Send;
    fn get(&self, ctx: Context, id: u64) -> impl Future<Output = Result<Option<User>>> + Send;
    fn list(&self, ctx: Context) -> impl Future<Output = Result<Vec<User>>> + Send;
}

/// Exports `users` under `name`.
pub fn export<U: Users>(name: &'static str, users: U) -> ExportDef {
    let users = Arc::new(users);
    let (a, b, c) = (users.clone(), users.clone(), users);
    ExportDef::new(name, INTERFACE, VERSION)
        .method("create", move |ctx, new: NewUser| {
            let u = a.clone();
            async move { u.create(ctx, new).await }
        })
        .method("get", move |ctx, id: u64| {
            let u = b.clone();
            async move { u.get(ctx, id).await }
        })
        .method("list", move |ctx, (): ()| {
            let u = c.clone();
            async move { u.list(ctx).await }
        })
}

/// The declaration a consumer lists in `services: [...]`.
pub fn requirement(name: &str) -> ServiceDecl {
    berth::services::decl::service(name, INTERFACE, VERSION)
}

/// A consumer's typed client.
#[derive(Debug, Clone)]
pub struct UsersClient {
    inner: ServiceClient,
}

impl UsersClient {
    /// The client for the service declared as `name`.
    pub fn new(ctx: &Context, name: &str) -> ServiceResult<Self> {
        Ok(UsersClient { inner: ctx.service(name)? })
    }
    pub async fn create(&self, new: &NewUser) -> ServiceResult<User> {
        self.inner.call("create", new).await
    }
    pub async fn get(&self, id: u64) -> ServiceResult<Option<User>> {
        self.inner.call("get", &id).await
    }
    pub async fn list(&self) -> ServiceResult<Vec<User>> {
        self.inner.call("list", &()).await
    }
}
