//! Who is calling: turns `Authorization: Bearer …` into a [`Principal`].
//!
//! Two kinds of credential work everywhere, including the OpenAI-compatible `/v1` routes:
//! an access token (a JWT whose session must still be live in KV) and an API key (`tl_…`,
//! looked up by hash in D1). Both are remembered by the isolate for `AUTH_CACHE_SECS`
//! ([`crate::auth::credential_cache`]), so a warm request makes no storage round trip;
//! logout and revocation [`forget`] them here at once.

use std::cell::RefCell;

use crate::auth::credential_cache::CredentialCache;
use crate::auth::crypto::access_token::{TokenError, TokenSigner, TokenType};
use crate::auth::crypto::secrets::{is_api_key_format, sha256_hex};
use crate::auth::sessions::{Session, SessionStore};
use crate::auth::store::{self, ApiKeyCredential};
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
        .or_else(|| websocket_bearer(cx))
}

/// A browser cannot set headers on a WebSocket, and a token in its URL would reach logs: it
/// names the credential as a subprotocol, `bearer.<token>` (beside `threadline`, the one the
/// server answers with). Only read on a WebSocket upgrade.
fn websocket_bearer(cx: &Ctx) -> Option<String> {
    let upgrade = cx.header("upgrade")?;
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return None;
    }
    cx.header("sec-websocket-protocol")?
        .split(',')
        .find_map(|p| p.trim().strip_prefix("bearer.").map(str::to_string))
        .filter(|t| !t.is_empty())
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

thread_local! {
    /// API keys by the SHA-256 of the key.
    static API_KEYS: RefCell<CredentialCache<ApiKeyCredential>> = RefCell::new(CredentialCache::default());
    /// Live sessions by id.
    static SESSIONS: RefCell<CredentialCache<Session>> = RefCell::new(CredentialCache::default());
}

fn cache_ttl_ms(cx: &Ctx) -> u64 {
    cx.config.auth.credential_cache_secs * 1000
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
    let ttl_ms = cache_ttl_ms(cx);
    let cached = SESSIONS.with(|c| c.borrow().get(&claims.sid, now_ms, ttl_ms));
    let store = SessionStore::new(cx)?;
    let session = match cached {
        Some(session) => Some(session),
        None => {
            let read = store.get(&claims.sid, now_ms).await?;
            if let Some(session) = &read {
                SESSIONS.with(|c| {
                    c.borrow_mut()
                        .insert(&session.id, session.clone(), now_ms, ttl_ms)
                });
            }
            read
        }
    };
    let session = session
        .filter(|s| s.user_id == claims.sub && s.expires_at > now_ms)
        .ok_or_else(|| {
            ApiError::unauthorized("session_revoked", "This session has ended; log in again.")
        })?;
    let user_id = session.user_id.clone();
    let session_id = session.id.clone();
    // Recording use is bookkeeping: it must not delay or fail the request, and the cached
    // copy learns of it so the next request does not record it again.
    if session.touch_due(now_ms) {
        SESSIONS.with(|c| {
            c.borrow_mut()
                .update(&session_id, |s| s.last_used_at = now_ms)
        });
        cx.worker_ctx.wait_until(async move {
            let _ = store.touch(session, now_ms).await;
        });
    }
    Ok(Principal {
        user_id,
        session_id: Some(session_id),
        api_key_id: None,
    })
}

async fn authenticate_api_key(cx: &Ctx, key: &str) -> ApiResult<Principal> {
    let now_ms = SystemClock.now_ms();
    let ttl_ms = cache_ttl_ms(cx);
    let hash = sha256_hex(key);
    let cached = API_KEYS.with(|c| c.borrow().get(&hash, now_ms, ttl_ms));
    let db = d1::database(cx)?;
    let row = match cached {
        Some(row) => Some(row),
        None => {
            let read = store::find_api_key(&db, &hash).await?;
            if let Some(row) = &read {
                API_KEYS.with(|c| c.borrow_mut().insert(&hash, row.clone(), now_ms, ttl_ms));
            }
            read
        }
    };
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
        .is_none_or(|t| now_ms.saturating_sub(t) > API_KEY_TOUCH_INTERVAL_MS)
    {
        API_KEYS.with(|c| {
            c.borrow_mut()
                .update(&hash, |r| r.last_used_at = Some(now_ms))
        });
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

/// `last_used_at` of a key is written at most this often.
const API_KEY_TOUCH_INTERVAL_MS: u64 = 60_000;

/// Forgets, in this isolate, what a revocation ended, so it takes effect here at once (other
/// isolates forget it within `AUTH_CACHE_SECS`).
pub enum Revoked<'a> {
    ApiKey {
        id: &'a str,
    },
    Session {
        id: &'a str,
    },
    /// Every session of the user except `keep`.
    SessionsOf {
        user_id: &'a str,
        keep: Option<&'a str>,
    },
    /// Everything of a deleted user.
    User {
        user_id: &'a str,
    },
}

pub fn forget(revoked: Revoked<'_>) {
    match revoked {
        Revoked::ApiKey { id } => API_KEYS.with(|c| c.borrow_mut().forget(|_, k| k.id == id)),
        Revoked::Session { id } => SESSIONS.with(|c| c.borrow_mut().forget(|sid, _| sid == id)),
        Revoked::SessionsOf { user_id, keep } => SESSIONS.with(|c| {
            c.borrow_mut()
                .forget(|sid, s| s.user_id == user_id && Some(sid) != keep)
        }),
        Revoked::User { user_id } => {
            SESSIONS.with(|c| c.borrow_mut().forget(|_, s| s.user_id == user_id));
            API_KEYS.with(|c| c.borrow_mut().forget(|_, k| k.user_id == user_id));
        }
    }
}
