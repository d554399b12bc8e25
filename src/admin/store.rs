//! Every SQL statement of the operator role: a user's stored role, changing it, and the usage
//! totals of every user.

use serde::{Deserialize, Serialize};
use worker::D1Database;

use crate::http::error::ApiResult;
use crate::platform::d1::{self, Val};

/// Who a user is, as far as roles go.
#[derive(Debug, Clone, Deserialize)]
pub struct RoleRow {
    pub id: String,
    pub email: String,
    pub role: String,
}

/// One user's id, address and stored role, or `None` for no such user.
pub async fn role_of(db: &D1Database, user_id: &str) -> ApiResult<Option<RoleRow>> {
    d1::first(
        db,
        "select id, email, role from users where id = ?1",
        &[Val::Text(user_id)],
    )
    .await
}

/// Stores `role` for the user; `false` when there is no such user.
pub async fn set_role(db: &D1Database, user_id: &str, role: &str, now_ms: u64) -> ApiResult<bool> {
    let changed = d1::execute(
        db,
        "update users set role = ?2, updated_at = ?3 where id = ?1",
        &[Val::Text(user_id), Val::Text(role), Val::Int(now_ms as i64)],
    )
    .await?;
    Ok(changed > 0)
}

/// One user's totals: conversations, messages and tokens of chat, and pipeline runs with the
/// tokens their steps used.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct UsageRow {
    pub user_id: String,
    pub email: String,
    pub role: String,
    pub created_at: u64,
    pub conversations: u64,
    pub messages: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub pipeline_executions: u64,
    pub pipeline_prompt_tokens: u64,
    pub pipeline_completion_tokens: u64,
}

/// Users in id (creation) order after `after`, `limit` of them, with their totals. Each total
/// is a correlated subquery over an index by user, so a page costs its own users' rows only.
pub async fn usage_page(
    db: &D1Database,
    after: Option<&str>,
    limit: u32,
) -> ApiResult<Vec<UsageRow>> {
    d1::all(
        db,
        "select u.id as user_id, u.email, u.role, u.created_at, \
         (select count(*) from conversations c where c.user_id = u.id) as conversations, \
         (select count(*) from messages m join conversations c on c.id = m.conversation_id where c.user_id = u.id) as messages, \
         (select coalesce(sum(m.prompt_tokens), 0) from messages m join conversations c on c.id = m.conversation_id where c.user_id = u.id) as prompt_tokens, \
         (select coalesce(sum(m.completion_tokens), 0) from messages m join conversations c on c.id = m.conversation_id where c.user_id = u.id) as completion_tokens, \
         (select count(*) from pipeline_executions e where e.user_id = u.id) as pipeline_executions, \
         (select coalesce(sum(r.prompt_tokens), 0) from pipeline_step_runs r join pipeline_executions e on e.id = r.execution_id where e.user_id = u.id) as pipeline_prompt_tokens, \
         (select coalesce(sum(r.completion_tokens), 0) from pipeline_step_runs r join pipeline_executions e on e.id = r.execution_id where e.user_id = u.id) as pipeline_completion_tokens \
         from users u where u.id > ?1 order by u.id limit ?2",
        &[Val::Text(after.unwrap_or("")), Val::Int(limit as i64)],
    )
    .await
}
