//! Steps that several account routes share: starting a session and answering with its
//! tokens (login, MFA verification), checking a new password against the policy and the
//! user's history (registration, change, reset), and issuing email links. Kept apart from the
//! handler files so no handler file imports another.

use serde_json::json;
use worker::{D1Database, Response};

use crate::auth::crypto::secrets::{random_token, sha256_hex, TOKEN_BYTES};
use crate::auth::email::{self, Mailer};
use crate::auth::guard;
use crate::auth::sessions::SessionStore;
use crate::auth::store::{self, UserRow};
use crate::http::ctx::Ctx;
use crate::http::error::{ApiError, ApiResult};
use crate::http::response;
use crate::platform::d1;
use crate::platform::random::SystemRandom;

/// `{access_token, refresh_token, token_type, expires_in}` for a new or refreshed session.
pub fn token_response(
    cx: &Ctx,
    user_id: &str,
    session_id: &str,
    refresh_token: &str,
    now_ms: u64,
) -> ApiResult<Response> {
    let signer = guard::signer(cx)?;
    let access = signer.issue(user_id, session_id, now_ms / 1000);
    response::json(
        200,
        &json!({
            "access_token": access,
            "refresh_token": refresh_token,
            "token_type": "bearer",
            "expires_in": signer.ttl_secs(),
        }),
    )
}

/// Starts a session and answers with its tokens: the end of every successful login.
pub async fn start_session(cx: &Ctx, user_id: &str, now_ms: u64) -> ApiResult<Response> {
    let store = SessionStore::new(cx)?;
    let (session, refresh) = store
        .create(
            user_id,
            cx.header("user-agent"),
            now_ms,
            cx.config.auth.refresh_token_ttl_secs,
        )
        .await?;
    token_response(cx, user_id, &session.id, &refresh, now_ms)
}

/// Issues a one-time email token: 256 random bits, stored only as a hash (see
/// [`store::replace_email_token`]); the raw token goes into the message.
pub async fn issue_email_token(
    db: &D1Database,
    user_id: &str,
    purpose: &str,
    now_ms: u64,
    ttl_secs: u64,
) -> ApiResult<String> {
    let token = random_token(&SystemRandom, TOKEN_BYTES)?;
    store::replace_email_token(
        db,
        user_id,
        purpose,
        &sha256_hex(&token),
        now_ms,
        now_ms + ttl_secs * 1000,
    )
    .await?;
    Ok(token)
}

/// Emails a verification link to `user`.
pub async fn send_verification(cx: &Ctx, user: &UserRow, now_ms: u64) -> ApiResult<()> {
    let mailer = Mailer::for_request(cx)?;
    mailer.require_configured()?;
    let db = d1::database(cx)?;
    let token = issue_email_token(
        &db,
        &user.id,
        "verify_email",
        now_ms,
        cx.config.auth.email_token_ttl_secs,
    )
    .await?;
    mailer
        .send(&email::verification_message(
            &user.email,
            &cx.config.email.app_base_url,
            &token,
        ))
        .await
}

/// Checks a new password against the policy and the user's recent passwords (422 on refusal).
pub async fn check_new_password(
    cx: &Ctx,
    user: &UserRow,
    password: &str,
    field: &str,
) -> ApiResult<()> {
    cx.config
        .auth
        .password_policy
        .check(password, &user.email)
        .map_err(|v| ApiError::new(422, v.code(), v.message()).with_field(field))?;
    let db = d1::database(cx)?;
    if store::reuses_recent_password(&db, &user.id, password).await? {
        return Err(ApiError::new(
            422,
            "password_reused",
            format!(
                "Choose a password you have not used for your last {} passwords.",
                store::PASSWORD_HISTORY_DEPTH
            ),
        )
        .with_field(field));
    }
    Ok(())
}
