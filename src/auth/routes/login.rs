//! `/api/auth` — registration, login (form and JSON), refresh rotation, logout, the caller's
//! identity, sessions, email verification and password reset.

use crate::platform::random::SystemRandom;
use std::cell::RefCell;

use serde::Deserialize;
use serde_json::json;
use worker::Response;

use crate::auth::crypto::access_token::{TokenType, MFA_TOKEN_TTL_SECS};
use crate::auth::crypto::password_hash::{
    hash_password, needs_rehash, verify_password, Argon2Params, DUMMY_HASH,
};
use crate::auth::crypto::secrets::{random_token, sha256_hex, TOKEN_BYTES};
use crate::auth::email::{self, Mailer};
use crate::auth::guard::{self, Principal};
use crate::auth::sessions::{RefreshRefused, SessionStore};
use crate::auth::store::{self, UserRow};
use crate::http::ctx::Ctx;
use crate::http::error::{ApiError, ApiResult};
use crate::http::response;
use crate::http::router::handler;
use crate::http::router::{Method, Route};
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::d1::{self, Val};
use crate::platform::ids;
use crate::rate_limit::kv::{self as rate_limit, client_ip};

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::Post, "/api/auth/register", handler!(register)),
        Route::new(Method::Post, "/api/auth/login", handler!(login_form)),
        Route::new(Method::Post, "/api/auth/login-json", handler!(login_json)),
        Route::new(Method::Post, "/api/auth/refresh", handler!(refresh)),
        Route::new(Method::Post, "/api/auth/logout", handler!(logout)),
        Route::new(Method::Post, "/api/auth/logout-all", handler!(logout_all)),
        Route::new(Method::Get, "/api/auth/me", handler!(me)),
        Route::new(Method::Get, "/api/auth/verify", handler!(verify)),
        Route::new(Method::Get, "/api/auth/sessions", handler!(list_sessions)),
        Route::new(
            Method::Delete,
            "/api/auth/sessions/{id}",
            handler!(delete_session),
        ),
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

// ---- shared pieces --------------------------------------------------------------------------

/// A string field that must be present and non-empty.
pub fn required<'a>(value: &'a Option<String>, field: &str) -> ApiResult<&'a str> {
    match value.as_deref() {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ApiError::validation(
            field,
            format!("`{field}` is required."),
        )),
    }
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthorized("invalid_credentials", "Incorrect email or password.")
}

thread_local! {
    static DUMMY_FOR_PARAMS: RefCell<Option<(Argon2Params, String)>> = const { RefCell::new(None) };
}

/// A hash to verify against when the email is unknown, made with the configured parameters so
/// both paths cost the same.
fn dummy_hash(params: Argon2Params) -> String {
    if params == Argon2Params::OWASP_DEFAULT {
        return DUMMY_HASH.to_string();
    }
    DUMMY_FOR_PARAMS.with(|cell| {
        if let Some((p, h)) = cell.borrow().as_ref() {
            if *p == params {
                return h.clone();
            }
        }
        let hash = hash_password("threadline-dummy-password", &[7u8; 16], params)
            .unwrap_or_else(|_| DUMMY_HASH.to_string());
        *cell.borrow_mut() = Some((params, hash.clone()));
        hash
    })
}

/// `{access_token, refresh_token, token_type, expires_in}` for a new or refreshed session.
fn token_response(
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

/// Stores a one-time email token (hashed) and returns the raw token for the message. Only
/// the newest link of a kind works: older unused ones are spent.
async fn store_email_token(
    db: &worker::D1Database,
    user_id: &str,
    purpose: &str,
    now_ms: u64,
    ttl_secs: u64,
) -> ApiResult<String> {
    let token = random_token(&mut SystemRandom, TOKEN_BYTES)?;
    let spend_older = d1::stmt(
        db,
        "update email_tokens set used_at = ?1 where user_id = ?2 and purpose = ?3 and used_at is null",
        &[Val::from(now_ms), Val::from(user_id), Val::from(purpose)],
    )?;
    let insert = d1::stmt(
        db,
        "insert into email_tokens (token_hash, user_id, purpose, created_at, expires_at) values (?1, ?2, ?3, ?4, ?5)",
        &[
            Val::from(&sha256_hex(&token)),
            Val::from(user_id),
            Val::from(purpose),
            Val::from(now_ms),
            Val::from(now_ms + ttl_secs * 1000),
        ],
    )?;
    d1::batch(db, vec![spend_older, insert]).await?;
    Ok(token)
}

/// Spends a one-time email token: returns its user when it was valid, unused and unexpired.
/// The conditional update makes it single-use even under concurrent attempts.
async fn spend_email_token(
    cx: &Ctx,
    token: &str,
    purpose: &str,
    now_ms: u64,
) -> ApiResult<Option<String>> {
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
    }
    let db = d1::database(cx)?;
    let row: Option<Row> = d1::first(
        &db,
        "update email_tokens set used_at = ?1 where token_hash = ?2 and purpose = ?3 and used_at is null and expires_at > ?1 returning user_id",
        &[Val::from(now_ms), Val::from(&sha256_hex(token)), Val::from(purpose)],
    )
    .await?;
    Ok(row.map(|r| r.user_id))
}

async fn send_verification(cx: &Ctx, user: &UserRow, now_ms: u64) -> ApiResult<()> {
    let mailer = Mailer::for_request(cx)?;
    mailer.require_configured()?;
    let db = d1::database(cx)?;
    let token = store_email_token(
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

// ---- registration and login -----------------------------------------------------------------

#[derive(Deserialize)]
struct RegisterBody {
    email: Option<String>,
    password: Option<String>,
    full_name: Option<String>,
}

/// POST /api/auth/register — creates an account and sends the verification email.
/// 201 with the user (never a secret); 409 when the email is taken; 422 naming the field
/// for a malformed email or a password the policy refuses, with the reason.
async fn register(mut cx: Ctx) -> ApiResult<Response> {
    rate_limit::enforce(
        &cx,
        "register-ip",
        &client_ip(&cx),
        cx.config.rate_limits.register_per_ip,
    )
    .await?;
    let body: RegisterBody = cx.json().await?;
    let email = store::normalize_email(required(&body.email, "email")?)
        .ok_or_else(|| ApiError::validation("email", "`email` is not a valid email address."))?;
    let password = required(&body.password, "password")?;
    cx.config
        .auth
        .password_policy
        .check(password, &email)
        .map_err(|v| ApiError::new(422, v.code(), v.message()).with_field("password"))?;
    let full_name = body
        .full_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    if full_name.is_some_and(|n| n.chars().count() > 200) {
        return Err(ApiError::validation(
            "full_name",
            "`full_name` must be at most 200 characters.",
        ));
    }
    let db = d1::database(&cx)?;
    if store::find_by_email(&db, &email).await?.is_some() {
        return Err(ApiError::conflict(
            "email_taken",
            "An account with this email already exists.",
        )
        .with_field("email"));
    }
    let now_ms = SystemClock.now_ms();
    let hash = store::hash_new_password(password, cx.config.auth.argon2)?;
    let id = ids::new_id(now_ms)?;
    store::create(&db, &id, &email, &hash, full_name, now_ms).await?;
    let user = store::require_by_id(&db, &id).await?;
    // The account exists either way; a mail failure is logged, and the user can resend.
    if let Err(err) = send_verification(&cx, &user, now_ms).await {
        crate::platform::logging::LogLine::new(
            crate::platform::logging::LogLevel::Warn,
            now_ms,
            "verification email not sent",
        )
        .field("request_id", cx.request_id.as_str())
        .field("error_code", err.code)
        .emit(cx.config.log_level);
    }
    response::json(201, &user.public())
}

/// Login from either form: checks rate limits and lockout, verifies the password (against a
/// dummy hash when the email is unknown, so both cost the same), then answers tokens, or an
/// MFA challenge when the account has TOTP on.
async fn login(cx: &Ctx, username: &str, password: &str) -> ApiResult<Response> {
    let limits = &cx.config.rate_limits;
    rate_limit::enforce(cx, "login-ip", &client_ip(cx), limits.login_per_ip).await?;
    let email = store::normalize_email(username).unwrap_or_else(|| username.trim().to_string());
    rate_limit::enforce(
        cx,
        "login-account",
        &email.to_lowercase(),
        limits.login_per_account,
    )
    .await?;
    let db = d1::database(cx)?;
    let now_ms = SystemClock.now_ms();
    let settings = &cx.config.auth;

    // Lockout is kept per address whether or not an account has it, so it reveals nothing.
    let failures = store::failure_record(&db, &email).await?;
    if let Some(secs) = store::locked_for_secs(failures.as_ref(), now_ms) {
        return Err(ApiError::new(
            429,
            "account_locked",
            "Too many failed login attempts; try again later.",
        )
        .with_header("retry-after", secs.to_string()));
    }

    let user = store::find_by_email(&db, &email).await?;
    let stored = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| dummy_hash(settings.argon2));
    let password_ok = verify_password(password, &stored) && user.is_some();
    let Some(user) = user.filter(|_| password_ok) else {
        let record = store::record_failure(
            failures.as_ref(),
            now_ms,
            settings.max_login_attempts,
            settings.login_attempt_window_secs * 1000,
            settings.lockout_secs * 1000,
        );
        store::save_failure(&db, &email, &record).await?;
        return Err(invalid_credentials());
    };
    if failures.is_some() {
        store::clear_failures(&db, &email).await?;
    }
    if needs_rehash(&user.password_hash, settings.argon2) {
        let upgraded = store::hash_new_password(password, settings.argon2)?;
        store::upgrade_hash(&db, &user.id, &upgraded).await?;
    }
    if settings.require_verified_email && user.email_verified_at.is_none() {
        return Err(ApiError::forbidden(
            "email_not_verified",
            "Verify your email address before logging in.",
        ));
    }
    if user.mfa_enabled() {
        let challenge = guard::signer(cx)?.issue_with_type(
            &user.id,
            "",
            TokenType::Mfa,
            MFA_TOKEN_TTL_SECS,
            now_ms / 1000,
        );
        return response::json(
            200,
            &json!({
                "mfa_required": true,
                "mfa_token": challenge,
                "token_type": "mfa",
                "expires_in": MFA_TOKEN_TTL_SECS,
            }),
        );
    }
    start_session(cx, &user.id, now_ms).await
}

/// POST /api/auth/login — the OAuth2 password grant, form-encoded (`username` = email,
/// `password`), so the docs page's "Authorize" button and OAuth2 clients work.
async fn login_form(mut cx: Ctx) -> ApiResult<Response> {
    let form = cx.form().await?;
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    if let Some(grant) = field("grant_type") {
        if grant != "password" {
            return Err(ApiError::bad_request(
                "unsupported_grant_type",
                "Only grant_type=password is supported here.",
            ));
        }
    }
    let username = field("username");
    let password = field("password");
    login(
        &cx,
        required(&username, "username")?,
        required(&password, "password")?,
    )
    .await
}

#[derive(Deserialize)]
struct LoginJson {
    email: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// POST /api/auth/login-json — the same login with a JSON body (`email` or `username`).
async fn login_json(mut cx: Ctx) -> ApiResult<Response> {
    let body: LoginJson = cx.json().await?;
    let email = body.email.or(body.username);
    login(
        &cx,
        required(&email, "email")?,
        required(&body.password, "password")?,
    )
    .await
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: Option<String>,
}

/// POST /api/auth/refresh — rotates the refresh token: the one presented stops working and a
/// new pair is returned. Presenting an already-rotated token ends the whole session.
async fn refresh(mut cx: Ctx) -> ApiResult<Response> {
    rate_limit::enforce(
        &cx,
        "refresh-ip",
        &client_ip(&cx),
        cx.config.rate_limits.refresh_per_ip,
    )
    .await?;
    let body: RefreshBody = cx.json().await?;
    let token = required(&body.refresh_token, "refresh_token")?.to_string();
    let now_ms = SystemClock.now_ms();
    match SessionStore::new(&cx)?.rotate(&token, now_ms).await? {
        Ok((session, new_refresh)) => token_response(&cx, &session.user_id, &session.id, &new_refresh, now_ms),
        Err(RefreshRefused::Reused) => Err(ApiError::unauthorized(
            "refresh_token_reused",
            "This refresh token was already used; the session has been ended for safety. Log in again.",
        )),
        Err(RefreshRefused::Invalid) => Err(ApiError::unauthorized(
            "refresh_token_invalid",
            "The refresh token is invalid or expired.",
        )),
    }
}

fn session_of(principal: &Principal) -> ApiResult<&str> {
    principal.session_id.as_deref().ok_or_else(|| {
        ApiError::forbidden(
            "session_required",
            "This action needs a login session (an access token), not an API key.",
        )
    })
}

/// POST /api/auth/logout — ends this session: its access and refresh tokens stop working.
async fn logout(cx: Ctx) -> ApiResult<Response> {
    let principal = guard::authenticate(&cx).await?;
    let sid = session_of(&principal)?;
    SessionStore::new(&cx)?
        .revoke(&principal.user_id, sid)
        .await?;
    response::no_content()
}

/// POST /api/auth/logout-all — ends every session of the user.
async fn logout_all(cx: Ctx) -> ApiResult<Response> {
    let principal = guard::authenticate(&cx).await?;
    SessionStore::new(&cx)?
        .revoke_all(&principal.user_id, None)
        .await?;
    response::no_content()
}

/// GET /api/auth/me — the caller's account (with `email_verified` and `mfa_enabled`).
async fn me(cx: Ctx) -> ApiResult<Response> {
    let principal = guard::authenticate(&cx).await?;
    let user = store::require_by_id(&d1::database(&cx)?, &principal.user_id).await?;
    response::json(200, &user.public())
}

/// GET /api/auth/verify — is this credential valid, and whose? 401 when it is not.
async fn verify(cx: Ctx) -> ApiResult<Response> {
    let principal = guard::authenticate(&cx).await?;
    let user = store::require_by_id(&d1::database(&cx)?, &principal.user_id).await?;
    response::json(
        200,
        &json!({
            "valid": true,
            "user_id": user.id,
            "email": user.email,
            "session_id": principal.session_id,
            "credential": if principal.api_key_id.is_some() { "api_key" } else { "access_token" },
        }),
    )
}

/// GET /api/auth/sessions — the user's live sessions, marking the caller's own.
async fn list_sessions(cx: Ctx) -> ApiResult<Response> {
    let principal = guard::authenticate(&cx).await?;
    let now_ms = SystemClock.now_ms();
    let sessions = SessionStore::new(&cx)?
        .list(&principal.user_id, now_ms)
        .await?;
    let items: Vec<_> = sessions
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "created_at": s.created_at,
                "last_used_at": s.last_used_at,
                "expires_at": s.expires_at,
                "user_agent": s.user_agent,
                "current": principal.session_id.as_deref() == Some(s.id.as_str()),
            })
        })
        .collect();
    response::json(200, &json!({ "sessions": items }))
}

/// DELETE /api/auth/sessions/{id} — ends one of the user's sessions (404 for anyone else's).
async fn delete_session(cx: Ctx) -> ApiResult<Response> {
    let principal = guard::authenticate(&cx).await?;
    let id = cx.param("id")?.to_string();
    let store = SessionStore::new(&cx)?;
    let owned = ids::is_valid_id(&id)
        && store
            .get(&id, SystemClock.now_ms())
            .await?
            .is_some_and(|s| s.user_id == principal.user_id);
    if !owned {
        return Err(ApiError::not_found());
    }
    store.revoke(&principal.user_id, &id).await?;
    response::no_content()
}

// ---- email verification and password reset --------------------------------------------------

#[derive(Deserialize)]
struct TokenBody {
    token: Option<String>,
}

/// POST /api/auth/verify-email — spends a verification token from the email.
async fn verify_email(mut cx: Ctx) -> ApiResult<Response> {
    let body: TokenBody = cx.json().await?;
    let token = required(&body.token, "token")?.to_string();
    let now_ms = SystemClock.now_ms();
    let user_id = spend_email_token(&cx, &token, "verify_email", now_ms)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(
                "token_invalid",
                "The verification token is invalid, used or expired.",
            )
        })?;
    let db = d1::database(&cx)?;
    d1::execute(
        &db,
        "update users set email_verified_at = coalesce(email_verified_at, ?1), updated_at = ?1 where id = ?2",
        &[Val::from(now_ms), Val::from(&user_id)],
    )
    .await?;
    let user = store::require_by_id(&db, &user_id).await?;
    response::json(200, &user.public())
}

#[derive(Deserialize)]
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
            let token = store_email_token(&db, &user.id, purpose, now_ms, ttl_secs).await?;
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
    #[derive(Deserialize)]
    struct Row {
        user_id: String,
    }
    let row: Option<Row> = d1::first(
        &db,
        "select user_id from email_tokens where token_hash = ?1 and purpose = 'reset_password' and used_at is null and expires_at > ?2",
        &[Val::from(&sha256_hex(&token)), Val::from(now_ms)],
    )
    .await?;
    let invalid = || {
        ApiError::bad_request(
            "token_invalid",
            "The reset token is invalid, used or expired.",
        )
    };
    let user_id = row.ok_or_else(invalid)?.user_id;
    let user = store::find_by_id(&db, &user_id)
        .await?
        .ok_or_else(invalid)?;
    check_new_password(&cx, &user, &new_password, "new_password").await?;
    if spend_email_token(&cx, &token, "reset_password", now_ms)
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
    response::json(
        200,
        &json!({ "message": "Password changed. Log in with the new password." }),
    )
}
