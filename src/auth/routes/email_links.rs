//! `/api/auth` email links: verifying an address and resetting a password. Requests for a
//! link always answer 202 and do their work after the response, so neither the answer nor
//! its timing tells whether an address has an account.

use serde::Deserialize;
use serde_json::json;
use worker::Response;

use crate::auth::account::{check_new_password, issue_email_token};
use crate::auth::crypto::secrets::sha256_hex;
use crate::auth::email::{self, Mailer};
use crate::auth::guard::{self, Revoked};
use crate::auth::sessions::SessionStore;
use crate::auth::store;
use crate::http::ctx::{required, Ctx};
use crate::http::error::{ApiError, ApiResult};
use crate::http::response;
use crate::http::router::{handler, Method, Route};
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::d1;
use crate::rate_limit::kv::{self as rate_limit, client_ip};

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::Post,
            "/api/auth/verify-email",
            handler!(verify_email),
        ),
        Route::new(
            Method::Post,
            "/api/auth/resend-verification",
            handler!(resend_verification),
        ),
        Route::new(
            Method::Post,
            "/api/auth/forgot-password",
            handler!(forgot_password),
        ),
        Route::new(
            Method::Post,
            "/api/auth/reset-password",
            handler!(reset_password),
        ),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    token: Option<String>,
}

/// POST /api/auth/verify-email — spends a verification token from the email.
async fn verify_email(mut cx: Ctx) -> ApiResult<Response> {
    let body: TokenBody = cx.json().await?;
    let token = required(&body.token, "token")?.to_string();
    let now_ms = SystemClock.now_ms();
    let db = d1::database(&cx)?;
    let user_id = store::spend_email_token(&db, &sha256_hex(&token), "verify_email", now_ms)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(
                "token_invalid",
                "The verification token is invalid, used or expired.",
            )
        })?;
    store::mark_email_verified(&db, &user_id, now_ms).await?;
    let user = store::require_by_id(&db, &user_id).await?;
    response::json(200, &user.public())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailBody {
    email: Option<String>,
}

/// The work behind forgot-password and resend-verification runs after the response, so the
/// answer (always 202) and its timing say nothing about whether the address has an account.
fn send_in_background(cx: &Ctx, email: String, purpose: &'static str) -> ApiResult<()> {
    let db = d1::database(cx)?;
    let mailer = Mailer::for_request(cx)?;
    mailer.require_configured()?;
    let app_base_url = cx.config.email.app_base_url.clone();
    let ttl_secs = cx.config.auth.email_token_ttl_secs;
    let log_level = cx.config.log_level;
    let request_id = cx.request_id.clone();
    cx.worker_ctx.wait_until(async move {
        let now_ms = SystemClock.now_ms();
        let result: ApiResult<()> = async {
            let Some(user) = store::find_by_email(&db, &email).await? else {
                return Ok(());
            };
            if purpose == "verify_email" && user.email_verified_at.is_some() {
                return Ok(());
            }
            let token = issue_email_token(&db, &user.id, purpose, now_ms, ttl_secs).await?;
            let message = if purpose == "reset_password" {
                email::reset_message(&user.email, &app_base_url, &token, ttl_secs / 60)
            } else {
                email::verification_message(&user.email, &app_base_url, &token)
            };
            mailer.send(&message).await
        }
        .await;
        if let Err(err) = result {
            crate::platform::logging::LogLine::new(
                crate::platform::logging::LogLevel::Error,
                now_ms,
                "account email failed",
            )
            .field("request_id", request_id.as_str())
            .field("purpose", purpose)
            .field("error_code", err.code)
            .field("error_detail", err.internal.unwrap_or_default())
            .emit(log_level);
        }
    });
    Ok(())
}

fn accepted() -> ApiResult<Response> {
    response::json(
        202,
        &json!({ "message": "If an account exists for that address, an email is on its way." }),
    )
}

async fn email_request(mut cx: Ctx, purpose: &'static str) -> ApiResult<Response> {
    let ip_limit = cx.config.rate_limits.forgot_password;
    rate_limit::enforce(
        &cx,
        &format!("{purpose}-ip"),
        &client_ip(&cx),
        crate::rate_limit::Limit::new(ip_limit.max * 4, ip_limit.window_secs),
    )
    .await?;
    let body: EmailBody = cx.json().await?;
    let email = store::normalize_email(required(&body.email, "email")?)
        .ok_or_else(|| ApiError::validation("email", "`email` is not a valid email address."))?;
    rate_limit::enforce(&cx, purpose, &email.to_lowercase(), ip_limit).await?;
    send_in_background(&cx, email, purpose)?;
    accepted()
}

/// POST /api/auth/forgot-password — always 202, whether or not the address has an account;
/// when it does, a single-use reset link is emailed.
async fn forgot_password(cx: Ctx) -> ApiResult<Response> {
    email_request(cx, "reset_password").await
}

/// POST /api/auth/resend-verification — always 202; sends a fresh verification link to an
/// unverified account (works without logging in, for deployments that require verification).
async fn resend_verification(cx: Ctx) -> ApiResult<Response> {
    email_request(cx, "verify_email").await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    token: Option<String>,
    new_password: Option<String>,
    password: Option<String>,
}

/// POST /api/auth/reset-password — sets a new password with a reset token and ends every
/// session of the user.
async fn reset_password(mut cx: Ctx) -> ApiResult<Response> {
    let body: ResetBody = cx.json().await?;
    let token = required(&body.token, "token")?.to_string();
    let new_password = body.new_password.or(body.password);
    let new_password = required(&new_password, "new_password")?.to_string();
    let db = d1::database(&cx)?;
    let now_ms = SystemClock.now_ms();

    // Validate against the token's user before spending the token, so a refused password
    // does not burn the link.
    let token_user = store::reset_token_user(&db, &sha256_hex(&token), now_ms).await?;
    let invalid = || {
        ApiError::bad_request(
            "token_invalid",
            "The reset token is invalid, used or expired.",
        )
    };
    let user_id = token_user.ok_or_else(invalid)?;
    let user = store::find_by_id(&db, &user_id)
        .await?
        .ok_or_else(invalid)?;
    check_new_password(&cx, &user, &new_password, "new_password").await?;
    if store::spend_email_token(&db, &sha256_hex(&token), "reset_password", now_ms)
        .await?
        .as_deref()
        != Some(user.id.as_str())
    {
        return Err(invalid());
    }
    let hash = store::hash_new_password(&new_password, cx.config.auth.argon2)?;
    store::set_password(&db, &user.id, &hash, now_ms).await?;
    store::clear_failures(&db, &user.email).await?;
    SessionStore::new(&cx)?.revoke_all(&user.id, None).await?;
    guard::forget(Revoked::SessionsOf {
        user_id: &user.id,
        keep: None,
    });
    response::json(
        200,
        &json!({ "message": "Password changed. Log in with the new password." }),
    )
}
