//! `/api/auth/mfa/*` — TOTP two-factor authentication (RFC 6238) with recovery codes.
//!
//! Setup stores a secret that is not yet in force; enabling it needs a valid code (proof the
//! authenticator app has it) and returns ten single-use recovery codes, stored hashed. With
//! MFA on, login answers an MFA challenge token instead of a session, completed here.

use serde::Deserialize;
use serde_json::json;
use worker::Response;

use crate::auth::account::start_session;
use crate::auth::crypto::access_token::TokenType;
use crate::auth::crypto::password_hash::verify_password;
use crate::auth::crypto::totp;
use crate::auth::guard;
use crate::auth::store::{self, UserRow};
use crate::http::ctx::required;
use crate::http::ctx::Ctx;
use crate::http::error::{ApiError, ApiResult};
use crate::http::response;
use crate::http::router::handler;
use crate::http::router::{Method, Route};
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::d1::{self};
use crate::platform::random::SystemRandom;
use crate::rate_limit::kv as rate_limit;

const ISSUER: &str = "Threadline";

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::Post, "/api/auth/mfa/setup", handler!(setup)),
        Route::new(Method::Post, "/api/auth/mfa/enable", handler!(enable)),
        Route::new(Method::Post, "/api/auth/mfa/disable", handler!(disable)),
        Route::new(Method::Post, "/api/auth/mfa/verify", handler!(verify)),
    ]
}

fn invalid_code() -> ApiError {
    ApiError::unauthorized(
        "mfa_code_invalid",
        "The code is invalid or was already used.",
    )
}

/// Accepts a TOTP code for `user`, at most once per time step: the step is recorded with a
/// conditional update, so a replayed code (or a concurrent second use) is refused.
async fn accept_totp(
    db: &worker::D1Database,
    user: &UserRow,
    code: &str,
    now_ms: u64,
) -> ApiResult<bool> {
    let Some(secret) = user.mfa_secret.as_deref().and_then(totp::base32_decode) else {
        return Ok(false);
    };
    let Some(step) = totp::verify(&secret, code, now_ms / 1000, user.mfa_last_step) else {
        return Ok(false);
    };
    store::record_totp_step(db, &user.id, step).await
}

/// Spends a recovery code of `user`; true when it was valid and unused.
async fn accept_recovery_code(
    db: &worker::D1Database,
    user: &UserRow,
    code: &str,
    now_ms: u64,
) -> ApiResult<bool> {
    let Some(hash) = totp::hash_recovery_code(code) else {
        return Ok(false);
    };
    store::spend_recovery_code(db, &user.id, &hash, now_ms).await
}

/// POST /api/auth/mfa/setup — a new TOTP secret and its `otpauth://` URI (for a QR code).
/// Not in force until `/mfa/enable` confirms a code.
async fn setup(cx: Ctx) -> ApiResult<Response> {
    let principal = guard::authenticate(&cx).await?;
    let db = d1::database(&cx)?;
    let user = store::require_by_id(&db, &principal.user_id).await?;
    if user.mfa_enabled() {
        return Err(ApiError::conflict(
            "mfa_already_enabled",
            "MFA is already on; disable it first to set up a new secret.",
        ));
    }
    let secret = totp::base32_encode(&totp::generate_secret(&SystemRandom)?);
    let now_ms = SystemClock.now_ms();
    store::set_pending_mfa_secret(&db, &user.id, &secret, now_ms).await?;
    response::json(
        200,
        &json!({
            "secret": secret,
            "otpauth_uri": totp::otpauth_uri(ISSUER, &user.email, &secret),
            "algorithm": "SHA1",
            "digits": 6,
            "period": 30,
        }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    code: Option<String>,
}

/// POST /api/auth/mfa/enable — turns MFA on with a valid code; returns 10 recovery codes,
/// shown this once.
async fn enable(mut cx: Ctx) -> ApiResult<Response> {
    let principal = guard::authenticate(&cx).await?;
    let body: CodeBody = cx.json().await?;
    let code = required(&body.code, "code")?.to_string();
    let db = d1::database(&cx)?;
    let user = store::require_by_id(&db, &principal.user_id).await?;
    if user.mfa_enabled() {
        return Err(ApiError::conflict(
            "mfa_already_enabled",
            "MFA is already on.",
        ));
    }
    if user.mfa_secret.is_none() {
        return Err(ApiError::bad_request(
            "mfa_not_set_up",
            "Call /api/auth/mfa/setup first.",
        ));
    }
    let now_ms = SystemClock.now_ms();
    if !accept_totp(&db, &user, &code, now_ms).await? {
        return Err(invalid_code());
    }
    let codes = totp::generate_recovery_codes(&SystemRandom, totp::DEFAULT_RECOVERY_CODE_COUNT)?;
    let mut hashes = Vec::with_capacity(codes.len());
    for code in &codes {
        hashes.push(
            totp::hash_recovery_code(code)
                .ok_or_else(|| ApiError::internal("generated recovery code did not normalise"))?,
        );
    }
    store::enable_mfa(&db, &user.id, &hashes, now_ms).await?;
    response::json(
        200,
        &json!({ "mfa_enabled": true, "recovery_codes": codes }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisableBody {
    password: Option<String>,
    code: Option<String>,
}

/// POST /api/auth/mfa/disable — turns MFA off; needs the password and a current code (or a
/// recovery code).
async fn disable(mut cx: Ctx) -> ApiResult<Response> {
    let principal = guard::authenticate(&cx).await?;
    let body: DisableBody = cx.json().await?;
    let password = required(&body.password, "password")?.to_string();
    let code = required(&body.code, "code")?.to_string();
    let db = d1::database(&cx)?;
    let user = store::require_by_id(&db, &principal.user_id).await?;
    if !user.mfa_enabled() {
        return Err(ApiError::conflict("mfa_not_enabled", "MFA is not on."));
    }
    if !verify_password(&password, &user.password_hash) {
        return Err(ApiError::forbidden(
            "invalid_password",
            "The password is incorrect.",
        ));
    }
    let now_ms = SystemClock.now_ms();
    if !(accept_totp(&db, &user, &code, now_ms).await?
        || accept_recovery_code(&db, &user, &code, now_ms).await?)
    {
        return Err(invalid_code());
    }
    store::disable_mfa(&db, &user.id, now_ms).await?;
    response::json(200, &json!({ "mfa_enabled": false }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    mfa_token: Option<String>,
    code: Option<String>,
    recovery_code: Option<String>,
}

/// POST /api/auth/mfa/verify — completes a login that answered `mfa_required`, with a TOTP
/// `code` or a `recovery_code`; answers the session's tokens.
async fn verify(mut cx: Ctx) -> ApiResult<Response> {
    let body: VerifyBody = cx.json().await?;
    let challenge = required(&body.mfa_token, "mfa_token")?.to_string();
    let now_ms = SystemClock.now_ms();
    let claims = guard::signer(&cx)?
        .verify_type(&challenge, TokenType::Mfa, now_ms / 1000)
        .map_err(|e| {
            ApiError::unauthorized(
                e.code(),
                "The MFA challenge is invalid or expired; log in again.",
            )
        })?;
    rate_limit::enforce(
        &cx,
        "mfa-user",
        &claims.sub,
        cx.config.rate_limits.mfa_per_user,
    )
    .await?;
    let db = d1::database(&cx)?;
    let user = store::require_by_id(&db, &claims.sub).await?;
    if !user.mfa_enabled() {
        return Err(ApiError::unauthorized(
            "token_invalid",
            "The MFA challenge is invalid or expired; log in again.",
        ));
    }
    let accepted = match (body.code.as_deref(), body.recovery_code.as_deref()) {
        (Some(code), _) if !code.is_empty() => accept_totp(&db, &user, code, now_ms).await?,
        (_, Some(recovery)) if !recovery.is_empty() => {
            accept_recovery_code(&db, &user, recovery, now_ms).await?
        }
        _ => {
            return Err(ApiError::validation(
                "code",
                "Send `code` (from the authenticator app) or `recovery_code`.",
            ))
        }
    };
    if !accepted {
        return Err(invalid_code());
    }
    start_session(&cx, &user.id, now_ms).await
}
