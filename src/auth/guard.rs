//! Who is calling: turns `Authorization: Bearer …` into a [`Principal`].
//!
//! Two kinds of credential work everywhere, including the OpenAI-compatible `/v1` routes:
//! an access token (a JWT whose session must still be live in KV — so logout takes effect at
//! once) and an API key (`tl_…`, looked up by hash in D1, so revocation is immediate).

use crate::auth::crypto::access_token::{TokenError, TokenSigner, TokenType};
use crate::auth::crypto::secrets::{is_api_key_format, sha256_hex};
use crate::auth::sessions::SessionStore;
use crate::auth::store;
use crate::http::ctx::Ctx;
use crate::http::error::{ApiError, ApiResult};
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::d1;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    /// The session of an access token; `None` for API keys.
    pub session_id: Option<String>,
    /// The key used, for API-key callers.
    pub api_key_id: Option<String>,
}

/// The signer for this deployment's tokens.
pub fn signer(cx: &Ctx) -> ApiResult<TokenSigner> {
    TokenSigner::new(
        &cx.config.jwt_secret,
        &cx.config.auth.issuer,
        &cx.config.auth.audience,
        cx.config.auth.access_token_ttl_secs,
    )
    .map_err(|_| ApiError::misconfigured("JWT_SECRET", "is shorter than 32 bytes"))
}

/// The bearer credential, from `Authorization: Bearer` (any case of the scheme) or, for
/// clients written against APIs that use it, `x-api-key`.
pub fn bearer(cx: &Ctx) -> Option<String> {
    if let Some(value) = cx.header("authorization") {
        let (scheme, rest) = value.trim().split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") {
            let token = rest.trim();
            return (!token.is_empty()).then(|| token.to_string());
        }
        return None;
    }
    cx.header("x-api-key")
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
}

fn missing() -> ApiError {
    ApiError::unauthorized(
        "unauthorized",
        "Authentication required: send Authorization: Bearer <access token or API key>.",
    )
}

fn token_error(err: TokenError) -> ApiError {
    ApiError::unauthorized(err.code(), err.message()).with_internal(err.to_string())
}

/// Authenticates the request or answers 401.
pub async fn authenticate(cx: &Ctx) -> ApiResult<Principal> {
    let credential = bearer(cx).ok_or_else(missing)?;
    if is_api_key_format(&credential) {
        return authenticate_api_key(cx, &credential).await;
    }
    let now_ms = SystemClock.now_ms();
    let claims = signer(cx)?
        .verify_type(&credential, TokenType::Access, now_ms / 1000)
        .map_err(token_error)?;
    let store = SessionStore::new(cx)?;
    let session = store
        .get(&claims.sid, now_ms)
        .await?
        .filter(|s| s.user_id == claims.sub)
        .ok_or_else(|| {
            ApiError::unauthorized("session_revoked", "This session has ended; log in again.")
        })?;
    let user_id = session.user_id.clone();
    let session_id = session.id.clone();
    // Recording use is bookkeeping: it must not delay or fail the request.
    cx.worker_ctx.wait_until(async move {
        let _ = store.touch(session, now_ms).await;
    });
    Ok(Principal {
        user_id,
        session_id: Some(session_id),
        api_key_id: None,
    })
}

async fn authenticate_api_key(cx: &Ctx, key: &str) -> ApiResult<Principal> {
    let db = d1::database(cx)?;
    let now_ms = SystemClock.now_ms();
    let row = store::find_api_key(&db, &sha256_hex(key)).await?;
    let row = row
        .filter(|r| r.expires_at.is_none_or(|e| e > now_ms))
        .ok_or_else(|| {
            ApiError::unauthorized(
                "api_key_invalid",
                "The API key is invalid, expired or revoked.",
            )
        })?;
    if row
        .last_used_at
        .is_none_or(|t| now_ms.saturating_sub(t) > 60_000)
    {
        let id = row.id.clone();
        cx.worker_ctx.wait_until(async move {
            let _ = store::touch_api_key(&db, &id, now_ms).await;
        });
    }
    Ok(Principal {
        user_id: row.user_id,
        session_id: None,
        api_key_id: Some(row.id),
    })
}
