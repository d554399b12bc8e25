//! `/api/users` — the caller's profile, password change and account deletion.

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};
use worker::Response;

use crate::auth::account::check_new_password;
use crate::auth::crypto::password_hash::verify_password;
use crate::auth::guard::{self, Revoked};
use crate::auth::sessions::SessionStore;
use crate::auth::store;
use crate::http::ctx::required;
use crate::http::ctx::Ctx;
use crate::http::error::{ApiError, ApiResult};
use crate::http::response;
use crate::http::router::handler;
use crate::http::router::{Method, Route};
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::d1::{self};

/// Preferences are the client's own settings; bounded so a profile cannot become a blob store.
const MAX_PREFERENCES_BYTES: usize = 16 * 1024;

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::Get, "/api/users/profile", handler!(get_profile)),
        Route::new(Method::Put, "/api/users/profile", handler!(update_profile)),
        Route::new(
            Method::Post,
            "/api/users/change-password",
            handler!(change_password),
        ),
        Route::new(
            Method::Delete,
            "/api/users/account",
            handler!(delete_account),
        ),
    ]
}

/// GET /api/users/profile — the caller's account.
async fn get_profile(cx: Ctx) -> ApiResult<Response> {
    let principal = guard::authenticate(&cx).await?;
    let user = store::require_by_id(&d1::database(&cx)?, &principal.user_id).await?;
    response::json(200, &user.public())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileBody {
    full_name: Option<Option<String>>,
    preferences: Option<Value>,
    // What a profile returns but no client sets, ignored so a client can PUT back the whole
    // profile it read; the email changes only through its own verified flow, never here.
    #[serde(default, rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(default, rename = "email")]
    _email: Option<IgnoredAny>,
    #[serde(default, rename = "email_verified")]
    _email_verified: Option<IgnoredAny>,
    #[serde(default, rename = "mfa_enabled")]
    _mfa_enabled: Option<IgnoredAny>,
    #[serde(default, rename = "created_at")]
    _created_at: Option<IgnoredAny>,
    #[serde(default, rename = "updated_at")]
    _updated_at: Option<IgnoredAny>,
}

/// PUT /api/users/profile — sets `full_name` and/or `preferences` (a JSON object); fields
/// left out keep their value, `full_name: null` clears it.
async fn update_profile(mut cx: Ctx) -> ApiResult<Response> {
    let principal = guard::authenticate(&cx).await?;
    let body: ProfileBody = cx.json().await?;
    let db = d1::database(&cx)?;
    let user = store::require_by_id(&db, &principal.user_id).await?;
    let full_name = match body.full_name {
        None => user.full_name.clone(),
        Some(None) => None,
        Some(Some(name)) => {
            let name = name.trim().to_string();
            if name.chars().count() > 200 {
                return Err(ApiError::validation(
                    "full_name",
                    "`full_name` must be at most 200 characters.",
                ));
            }
            (!name.is_empty()).then_some(name)
        }
    };
    let preferences = match body.preferences {
        None => user.preferences.clone(),
        Some(v @ Value::Object(_)) => {
            let text = v.to_string();
            if text.len() > MAX_PREFERENCES_BYTES {
                return Err(ApiError::validation(
                    "preferences",
                    format!("`preferences` must be at most {MAX_PREFERENCES_BYTES} bytes of JSON."),
                ));
            }
            text
        }
        Some(_) => {
            return Err(ApiError::validation(
                "preferences",
                "`preferences` must be a JSON object.",
            ))
        }
    };
    store::update_profile(
        &db,
        &user.id,
        full_name.as_deref(),
        &preferences,
        SystemClock.now_ms(),
    )
    .await?;
    let user = store::require_by_id(&db, &user.id).await?;
    response::json(200, &user.public())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePasswordBody {
    current_password: Option<String>,
    new_password: Option<String>,
}

/// POST /api/users/change-password — needs the current password; ends the user's other
/// sessions (the one making the change stays logged in).
async fn change_password(mut cx: Ctx) -> ApiResult<Response> {
    let principal = guard::authenticate(&cx).await?;
    let body: ChangePasswordBody = cx.json().await?;
    let current = required(&body.current_password, "current_password")?.to_string();
    let new_password = required(&body.new_password, "new_password")?.to_string();
    let db = d1::database(&cx)?;
    let user = store::require_by_id(&db, &principal.user_id).await?;
    if !verify_password(&current, &user.password_hash) {
        return Err(
            ApiError::forbidden("invalid_password", "The current password is incorrect.")
                .with_field("current_password"),
        );
    }
    check_new_password(&cx, &user, &new_password, "new_password").await?;
    let now_ms = SystemClock.now_ms();
    let hash = store::hash_new_password(&new_password, cx.config.auth.argon2)?;
    store::set_password(&db, &user.id, &hash, now_ms).await?;
    SessionStore::new(&cx)?
        .revoke_all(&user.id, principal.session_id.as_deref())
        .await?;
    guard::forget(Revoked::SessionsOf {
        user_id: &user.id,
        keep: principal.session_id.as_deref(),
    });
    response::json(
        200,
        &json!({ "message": "Password changed. Other sessions have been logged out." }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteAccountBody {
    password: Option<String>,
}

/// DELETE /api/users/account — removes the user and everything of theirs (conversations,
/// messages, API keys, tokens, file rows: by cascade in D1; sessions: from KV; file bytes:
/// from R2). Needs the password.
async fn delete_account(mut cx: Ctx) -> ApiResult<Response> {
    let principal = guard::authenticate(&cx).await?;
    let body: DeleteAccountBody = cx.json().await?;
    let password = required(&body.password, "password")?.to_string();
    let db = d1::database(&cx)?;
    let user = store::require_by_id(&db, &principal.user_id).await?;
    if !verify_password(&password, &user.password_hash) {
        return Err(
            ApiError::forbidden("invalid_password", "The password is incorrect.")
                .with_field("password"),
        );
    }
    // Sessions first: if deleting the row failed afterwards, the user could log in again;
    // the other order could leave live sessions of a deleted user.
    SessionStore::new(&cx)?.revoke_all(&user.id, None).await?;
    // The files' bytes in R2 before the rows (which go by cascade with the user).
    crate::files::routes::delete_all_of(&cx, &user.id).await?;
    store::delete_user(&db, &user).await?;
    guard::forget(Revoked::User { user_id: &user.id });
    response::no_content()
}
