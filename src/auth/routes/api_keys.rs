//! `/api/keys` — API keys for programs: created with a name and optional expiry, shown once,
//! stored as a SHA-256 hash, listed by prefix, revoked at once. A key works as
//! `Authorization: Bearer tl_…` wherever an access token does, `/v1` included.
//!
//! Managing keys needs a login session: a leaked key must not be able to mint more keys.

use crate::platform::random::SystemRandom;
use serde::Deserialize;
use serde_json::json;
use worker::Response;

use crate::auth::crypto::secrets::{generate_api_key, sha256_hex, shown_prefix};
use crate::auth::guard::{self, Principal, Revoked};
use crate::auth::store;
use crate::http::ctx::Ctx;
use crate::http::error::{ApiError, ApiResult};
use crate::http::response;
use crate::http::router::handler;
use crate::http::router::{Method, Route};
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::d1::{self};
use crate::platform::ids;

/// Keys a user may hold at once (revoked ones do not count).
const MAX_KEYS_PER_USER: u64 = 100;
const MAX_EXPIRY_DAYS: u64 = 3650;

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::Get, "/api/keys", handler!(list)),
        Route::new(Method::Post, "/api/keys", handler!(create)),
        Route::new(Method::Delete, "/api/keys/{id}", handler!(revoke)),
    ]
}

async fn session_principal(cx: &Ctx) -> ApiResult<Principal> {
    let principal = guard::authenticate(cx).await?;
    if principal.session_id.is_none() {
        return Err(ApiError::forbidden(
            "session_required",
            "API keys are managed with a login session, not with an API key.",
        ));
    }
    Ok(principal)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: Option<String>,
    /// Days until the key stops working; absent means it does not expire.
    expires_in_days: Option<u64>,
}

/// POST /api/keys — creates a key; 201 with the full key, which is never shown again.
async fn create(mut cx: Ctx) -> ApiResult<Response> {
    let principal = session_principal(&cx).await?;
    let body: CreateBody = cx.json().await?;
    let name = body.name.as_deref().map(str::trim).unwrap_or("");
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::validation(
            "name",
            "`name` is required, at most 100 characters.",
        ));
    }
    if body
        .expires_in_days
        .is_some_and(|d| d == 0 || d > MAX_EXPIRY_DAYS)
    {
        return Err(ApiError::validation(
            "expires_in_days",
            format!("`expires_in_days` must be from 1 to {MAX_EXPIRY_DAYS}."),
        ));
    }
    let db = d1::database(&cx)?;
    let active = store::count_active_api_keys(&db, &principal.user_id).await?;
    if active >= MAX_KEYS_PER_USER {
        return Err(ApiError::conflict(
            "too_many_api_keys",
            format!("A user may hold at most {MAX_KEYS_PER_USER} active keys; revoke one first."),
        ));
    }
    let now_ms = SystemClock.now_ms();
    let id = ids::new_id(now_ms)?;
    let (key, prefix) = generate_api_key(&SystemRandom)?;
    let expires_at = body.expires_in_days.map(|d| now_ms + d * 86_400_000);
    store::insert_api_key(
        &db,
        &store::NewApiKey {
            id: &id,
            user_id: &principal.user_id,
            name,
            prefix: &prefix,
            key_hash: &sha256_hex(&key),
            created_at: now_ms,
            expires_at,
        },
    )
    .await?;
    response::json(
        201,
        &json!({
            "id": id,
            "name": name,
            "prefix": shown_prefix(&prefix),
            "key": key,
            "created_at": now_ms,
            "expires_at": expires_at,
            "last_used_at": null,
        }),
    )
}

/// GET /api/keys — the user's active keys: prefix, name, created, last used, expiry.
async fn list(cx: Ctx) -> ApiResult<Response> {
    let principal = session_principal(&cx).await?;
    let mut rows = store::list_api_keys(&d1::database(&cx)?, &principal.user_id).await?;
    for row in &mut rows {
        row.prefix = shown_prefix(&row.prefix);
    }
    response::json(200, &json!({ "keys": rows }))
}

/// DELETE /api/keys/{id} — revokes a key at once (404 for anyone else's).
async fn revoke(cx: Ctx) -> ApiResult<Response> {
    let principal = session_principal(&cx).await?;
    let id = cx.param("id")?.to_string();
    if !ids::is_valid_id(&id) {
        return Err(ApiError::not_found());
    }
    let revoked = store::revoke_api_key(
        &d1::database(&cx)?,
        &principal.user_id,
        &id,
        SystemClock.now_ms(),
    )
    .await?;
    if !revoked {
        return Err(ApiError::not_found());
    }
    guard::forget(Revoked::ApiKey { id: &id });
    response::no_content()
}
