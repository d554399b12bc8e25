//! `/api/admin` — what only an operator may see or change: every user's usage totals and the
//! role of a user. Every role change is written to the log as an audit line
//! (`msg: "role_changed"`, with who changed whose role from what to what).

use serde::{Deserialize, Serialize};
use worker::Response;

use crate::admin::access::require_admin;
use crate::admin::role::Role;
use crate::admin::store::{self, UsageRow};
use crate::conversations::input::{parse_id_cursor, parse_limit};
use crate::http::ctx::Ctx;
use crate::http::error::{ApiError, ApiResult};
use crate::http::response;
use crate::http::router::{handler, Method, Route};
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::d1;
use crate::platform::ids::is_valid_id;
use crate::platform::logging::{LogLevel, LogLine};

const DEFAULT_USAGE_PAGE: usize = 100;
const MAX_USAGE_PAGE: usize = 500;

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::Get, "/api/admin/usage", handler!(usage)),
        Route::new(
            Method::Get,
            "/api/admin/users/{id}/role",
            handler!(get_role),
        ),
        Route::new(
            Method::Put,
            "/api/admin/users/{id}/role",
            handler!(put_role),
        ),
    ]
}

#[derive(Serialize)]
struct UsageEntry {
    #[serde(flatten)]
    row: UsageRow,
    total_tokens: u64,
}

#[derive(Serialize)]
struct UsagePage {
    data: Vec<UsageEntry>,
    has_more: bool,
    /// Pass as `after` for the next page.
    next_cursor: Option<String>,
}

/// GET /api/admin/usage — every user's usage totals (chat and pipelines), in the order the
/// users registered, `limit` (100, at most 500) at a time after the cursor `after`.
async fn usage(cx: Ctx) -> ApiResult<Response> {
    require_admin(&cx).await?;
    let pairs = cx.query_pairs();
    let limit = parse_limit(&pairs, DEFAULT_USAGE_PAGE, MAX_USAGE_PAGE)?;
    let after = parse_id_cursor(&pairs, "after")?;
    let db = d1::database(&cx)?;
    let mut rows = store::usage_page(&db, after.as_deref(), limit as u32 + 1).await?;
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    let admin = &cx.config.admin;
    let data: Vec<UsageEntry> = rows
        .into_iter()
        .map(|mut row| {
            row.role = admin
                .effective(Role::from_stored(&row.role), &row.email)
                .as_str()
                .to_string();
            let total_tokens = row.prompt_tokens
                + row.completion_tokens
                + row.pipeline_prompt_tokens
                + row.pipeline_completion_tokens;
            UsageEntry { row, total_tokens }
        })
        .collect();
    let next_cursor = has_more
        .then(|| data.last().map(|e| e.row.user_id.clone()))
        .flatten();
    response::json(
        200,
        &UsagePage {
            data,
            has_more,
            next_cursor,
        },
    )
}

#[derive(Serialize)]
struct RoleView {
    user_id: String,
    email: String,
    role: Role,
    /// Whether `ADMIN_EMAILS` makes this user an admin (the API cannot revoke that).
    from_setting: bool,
}

fn role_view(cx: &Ctx, row: &store::RoleRow) -> RoleView {
    let admin = &cx.config.admin;
    RoleView {
        user_id: row.id.clone(),
        email: row.email.clone(),
        role: admin.effective(Role::from_stored(&row.role), &row.email),
        from_setting: admin.lists(&row.email),
    }
}

async fn target(cx: &Ctx, db: &worker::D1Database) -> ApiResult<store::RoleRow> {
    let id = cx.param("id")?;
    if !is_valid_id(id) {
        return Err(ApiError::not_found());
    }
    store::role_of(db, id)
        .await?
        .ok_or_else(ApiError::not_found)
}

/// GET /api/admin/users/{id}/role — a user's role.
async fn get_role(cx: Ctx) -> ApiResult<Response> {
    require_admin(&cx).await?;
    let db = d1::database(&cx)?;
    let row = target(&cx, &db).await?;
    response::json(200, &role_view(&cx, &row))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: Role,
}

/// PUT /api/admin/users/{id}/role — grants (`admin`) or revokes (`user`) the operator role.
/// It takes effect on the user's next request in every isolate (roles are never cached).
/// Revoking the role of an address listed in `ADMIN_EMAILS` is a 409: only the operator's
/// setting can take that away.
async fn put_role(mut cx: Ctx) -> ApiResult<Response> {
    let admin = require_admin(&cx).await?;
    let body: RoleBody = cx.json().await?;
    let db = d1::database(&cx)?;
    let row = target(&cx, &db).await?;
    if body.role == Role::User && cx.config.admin.lists(&row.email) {
        return Err(ApiError::conflict(
            "role_from_setting",
            "This user is an admin through ADMIN_EMAILS; remove the address from that setting to revoke it.",
        ));
    }
    let before = role_view(&cx, &row).role;
    let now = SystemClock.now_ms();
    if !store::set_role(&db, &row.id, body.role.as_str(), now).await? {
        return Err(ApiError::not_found());
    }
    LogLine::new(LogLevel::Info, now, "role_changed")
        .field("request_id", cx.request_id.as_str())
        .field("actor_user_id", admin.principal.user_id.as_str())
        .field("actor_email", admin.email.as_str())
        .field("user_id", row.id.as_str())
        .field("from", before.as_str())
        .field("to", body.role.as_str())
        .emit(LogLevel::Debug);
    let updated = store::RoleRow {
        role: body.role.as_str().to_string(),
        ..row
    };
    response::json(200, &role_view(&cx, &updated))
}
