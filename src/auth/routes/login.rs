//! `/api/auth` — registration, login (form and JSON), refresh rotation, logout, the caller's
//! identity and sessions. Email links (verification, password reset) are in
//! [`super::email_links`], MFA in [`super::mfa`].

use std::cell::RefCell;

use serde::Deserialize;
use serde_json::json;
use worker::Response;

use crate::auth::account::{send_verification, start_session, token_response};
use crate::auth::crypto::access_token::{TokenType, MFA_TOKEN_TTL_SECS};
use crate::auth::crypto::password_hash::{
    hash_password, needs_rehash, verify_password, Argon2Params, DUMMY_HASH,
};
use crate::auth::guard::{self, Principal, Revoked};
use crate::auth::sessions::{session_id_of, RefreshRefused, SessionStore};
use crate::auth::store::{self};
use crate::http::ctx::{require_media_type, required, Ctx};
use crate::http::error::{ApiError, ApiResult};
use crate::http::response;
use crate::http::router::handler;
use crate::http::router::{Method, Route};
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::d1::{self};
use crate::platform::ids;
use crate::rate_limit::kv::{self as rate_limit, client_ip};

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::Post, "/api/auth/register", handler!(register)),
        Route::new(Method::Post, "/api/auth/login", handler!(login_either)),
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
    ]
}

// ---- shared pieces --------------------------------------------------------------------------

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

// ---- registration and login -----------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
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
/// `password`), so the docs page's "Authorize" button and OAuth2 clients work; or the same
/// login as JSON, which LLM_MODES and ChronoChat clients post here. The body's media type
/// decides; anything else is 415 naming both.
async fn login_either(cx: Ctx) -> ApiResult<Response> {
    let media = cx.header("content-type").unwrap_or_default();
    if require_media_type(Some(&media), "application/json").is_ok() {
        login_json(cx).await
    } else if require_media_type(Some(&media), FORM).is_ok() {
        login_form(cx).await
    } else {
        Err(ApiError::unsupported_media_type(&format!(
            "{FORM} or application/json"
        )))
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

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
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
        Ok((session, new_refresh)) => {
            token_response(&cx, &session.user_id, &session.id, &new_refresh, now_ms)
        }
        Err(RefreshRefused::Reused) => {
            if let Some(sid) = session_id_of(&token) {
                guard::forget(Revoked::Session { id: sid });
            }
            Err(ApiError::unauthorized(
            "refresh_token_reused",
            "This refresh token was already used; the session has been ended for safety. Log in again.",
        ))
        }
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
    guard::forget(Revoked::Session { id: sid });
    response::no_content()
}

/// POST /api/auth/logout-all — ends every session of the user.
async fn logout_all(cx: Ctx) -> ApiResult<Response> {
    let principal = guard::authenticate(&cx).await?;
    SessionStore::new(&cx)?
        .revoke_all(&principal.user_id, None)
        .await?;
    guard::forget(Revoked::SessionsOf {
        user_id: &principal.user_id,
        keep: None,
    });
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
    guard::forget(Revoked::Session { id: &id });
    response::no_content()
}
