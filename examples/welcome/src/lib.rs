//! The `welcome` example group: a consumer of the `users` service that the `users` group
//! exports. It never touches the user store itself; the host injects a client at load.

use berth::{Context, Error, Json, Path, Result};
use serde::Serialize;
use users_api::UsersClient;

#[derive(Debug, Serialize)]
pub struct Welcome {
    pub message: String,
    pub served_by: &'static str,
}

/// `GET /welcome/{id}`: greets user `id` by name; 404 for an unknown user, 503 while the users
/// service is unavailable.
#[berth::http(GET, "/welcome/{id}")]
async fn welcome(ctx: Context, Path(id): Path<u64>) -> Result<Json<Welcome>> {
    let users = UsersClient::new(&ctx, "users")?;
    let user = users.get(id).await?.ok_or_else(|| Error::not_found(format!("no user {id}")))?;
    Ok(Json(Welcome { message: format!("Welcome back, {}!", user.name), served_by: "welcome" }))
}

berth::group! {
    functions: [welcome],
    services: [users_api::requirement("users")],
}
