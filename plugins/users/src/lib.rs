//! The `users` group: a small user directory kept in the `userstore` key-value store, served
//! over HTTP (`/users`) and exported to other groups as the `users` service (interface crate
//! `users-api`).

use berth::{Context, Error, Json, Path, Result, StatusCode};
use users_api::{NewUser, User, Users};

const STORE: &str = "userstore";

fn validate(new: &NewUser) -> Result<()> {
    if new.name.trim().is_empty() || new.name.len() > 200 {
        return Err(Error::unprocessable("`name` must be 1 to 200 bytes"));
    }
    if !new.email.contains('@') || new.email.len() > 320 {
        return Err(Error::unprocessable("`email` must be an address"));
    }
    Ok(())
}

/// The provider, over the key-value store.
pub struct KvUsers;

impl Users for KvUsers {
    async fn create(&self, ctx: Context, new: NewUser) -> Result<User> {
        validate(&new)?;
        let kv = ctx.kv(STORE)?;
        let id = kv.increment("next_id", 1).await? as u64;
        let user = User { id, name: new.name, email: new.email };
        kv.set_json(&format!("user/{id:012}"), &user, None).await?;
        tracing::info!(id, "user created");
        Ok(user)
    }

    async fn get(&self, ctx: Context, id: u64) -> Result<Option<User>> {
        Ok(ctx.kv(STORE)?.get_json(&format!("user/{id:012}")).await?)
    }

    async fn list(&self, ctx: Context) -> Result<Vec<User>> {
        let kv = ctx.kv(STORE)?;
        let mut users = Vec::new();
        for key in kv.list_keys("user/", 1000).await? {
            if let Some(u) = kv.get_json::<User>(&key).await? {
                users.push(u);
            }
        }
        Ok(users)
    }
}

/// `POST /users`
#[berth::http(POST, "/users", body_limit = "16KiB")]
async fn create_user(ctx: Context, Json(new): Json<NewUser>) -> Result<(StatusCode, Json<User>)> {
    Ok((StatusCode::CREATED, Json(KvUsers.create(ctx, new).await?)))
}

/// `GET /users/{id}`
#[berth::http(GET, "/users/{id}")]
async fn get_user(ctx: Context, Path(id): Path<u64>) -> Result<Json<User>> {
    KvUsers.get(ctx, id).await?.map(Json).ok_or_else(|| Error::not_found(format!("no user {id}")))
}

/// `GET /users`
#[berth::http(GET, "/users")]
async fn list_users(ctx: Context) -> Result<Json<Vec<User>>> {
    Ok(Json(KvUsers.list(ctx).await?))
}

berth::group! {
    functions: [create_user, get_user, list_users],
    services: [kv(STORE)],
    exports: [users_api::export("users", KvUsers)],
}
