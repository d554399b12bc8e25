//! Stored responses in D1 (`migrations/0004_responses.sql`): what `store: true` keeps, for
//! [`RETENTION_DAYS`], so `previous_response_id` can continue a conversation and
//! `GET /v1/responses/{id}` can fetch an answer again.
//!
//! Each row is one turn: its input messages (never its `instructions`, which OpenAI does not
//! carry over either) and the reply, plus the response object as it was answered. A
//! continuation walks the `previous_response_id` links back in one recursive query, at most
//! [`MAX_HISTORY_TURNS`] turns deep: only the newest turns of a longer chain are sent. Rows
//! are only ever read for their owner; expired rows are never read, and each write deletes
//! a bounded number of them.

use std::collections::BTreeMap;

use futures::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::Env;

use crate::http::ctx::Ctx;
use crate::http::error::{ApiError, ApiResult};
use crate::platform::d1::{self, Val};
use crate::providers::wire::{ChatMessage, Role};

/// How long a stored response can be continued or fetched (OpenAI keeps them 30 days too).
pub const RETENTION_DAYS: u64 = 30;
const RETENTION_MS: u64 = RETENTION_DAYS * 24 * 60 * 60 * 1000;
/// The most earlier turns a continuation sends (the newest ones).
pub const MAX_HISTORY_TURNS: u32 = 200;
/// Expired rows deleted by each write: enough to keep up, bounded so no write is slow.
const EXPIRED_PER_WRITE: u32 = 100;

/// One turn to store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub id: String,
    /// The id of its answer (`msg_…`), which an `item_reference` may name.
    pub message_id: String,
    pub user_id: String,
    pub previous_response_id: Option<String>,
    /// The turn's input and the reply, oldest first.
    pub turn: Vec<ChatMessage>,
    /// The response object as answered.
    pub body: Value,
    pub created_at_ms: u64,
}

impl StoredResponse {
    pub fn expires_at_ms(&self) -> u64 {
        self.created_at_ms.saturating_add(RETENTION_MS)
    }
}

/// Where finished responses go; a trait so the stream that saves one before its last event
/// runs natively against a fake.
pub trait ResponseStore {
    fn save(&self, record: StoredResponse) -> LocalBoxFuture<'static, ApiResult<()>>;
}

/// The `turn` column: a JSON array of `{"role","content"}`. Pinned by a test: rows written
/// by one release are read by the next. `/v1/responses` takes text only, so a turn is its
/// text.
#[derive(Serialize, Deserialize)]
struct StoredTurn {
    role: Role,
    content: String,
}

pub fn turn_json(turn: &[ChatMessage]) -> ApiResult<String> {
    let stored: Vec<StoredTurn> = turn
        .iter()
        .map(|m| StoredTurn {
            role: m.role,
            content: m.text(),
        })
        .collect();
    serde_json::to_string(&stored).map_err(|e| ApiError::internal(format!("turn json: {e}")))
}

/// The history from `turn` columns, oldest turn first; a row that cannot be read is an
/// internal error rather than a silently shorter history.
pub fn history_from(turns: &[String]) -> ApiResult<Vec<ChatMessage>> {
    let mut history = Vec::new();
    for turn in turns {
        let messages: Vec<StoredTurn> = serde_json::from_str(turn)
            .map_err(|e| ApiError::internal(format!("stored turn: {e}")))?;
        history.extend(
            messages
                .into_iter()
                .map(|m| ChatMessage::new(m.role, m.content)),
        );
    }
    Ok(history)
}

/// Stored responses in the `DB` binding.
#[derive(Clone)]
pub struct D1Responses {
    env: Env,
}

#[derive(Deserialize)]
struct TurnRow {
    turn: String,
}

#[derive(Deserialize)]
struct AnswerRow {
    message_id: String,
    turn: String,
}

#[derive(Deserialize)]
struct BodyRow {
    body: String,
}

impl D1Responses {
    pub fn new(cx: &Ctx) -> D1Responses {
        D1Responses {
            env: cx.env.clone(),
        }
    }

    fn db(&self) -> ApiResult<worker::D1Database> {
        self.env
            .d1("DB")
            .map_err(|e| ApiError::internal(format!("D1 binding DB: {e}")))
    }

    /// The conversation up to and including response `id` of `user_id`, oldest first;
    /// `None` when there is no such live response of theirs.
    pub async fn history(
        &self,
        user_id: &str,
        id: &str,
        now_ms: u64,
    ) -> ApiResult<Option<Vec<ChatMessage>>> {
        let sql = "with recursive chain (id, previous_response_id, turn, depth) as (
                select id, previous_response_id, turn, 0 from responses
                 where id = ?1 and user_id = ?2 and expires_at > ?3
                union all
                select r.id, r.previous_response_id, r.turn, chain.depth + 1
                  from responses r join chain on r.id = chain.previous_response_id
                 where r.user_id = ?2 and r.expires_at > ?3 and chain.depth + 1 < ?4
            )
            select turn from chain order by depth desc";
        let rows: Vec<TurnRow> = d1::all(
            &self.db()?,
            sql,
            &[
                id.into(),
                user_id.into(),
                now_ms.into(),
                u64::from(MAX_HISTORY_TURNS).into(),
            ],
        )
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let turns: Vec<String> = rows.into_iter().map(|r| r.turn).collect();
        history_from(&turns).map(Some)
    }

    /// The answers of `user_id`'s live responses whose message ids are in `ids`, by
    /// message id (the last message of each turn is its answer).
    pub async fn answers(
        &self,
        user_id: &str,
        ids: &[String],
        now_ms: u64,
    ) -> ApiResult<BTreeMap<String, String>> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let wanted =
            serde_json::to_string(ids).map_err(|e| ApiError::internal(format!("ids json: {e}")))?;
        let sql = "select message_id, turn from responses
             where user_id = ?1 and expires_at > ?2
               and message_id in (select value from json_each(?3))";
        let rows: Vec<AnswerRow> = d1::all(
            &self.db()?,
            sql,
            &[user_id.into(), now_ms.into(), wanted.as_str().into()],
        )
        .await?;
        let mut answers = BTreeMap::new();
        for row in rows {
            if let Some(answer) = history_from(&[row.turn])?.pop() {
                answers.insert(row.message_id, answer.text());
            }
        }
        Ok(answers)
    }

    /// The response object of `user_id`'s live response `id`.
    pub async fn body(&self, user_id: &str, id: &str, now_ms: u64) -> ApiResult<Option<Value>> {
        let sql = "select body from responses where id = ?1 and user_id = ?2 and expires_at > ?3";
        let row: Option<BodyRow> = d1::first(
            &self.db()?,
            sql,
            &[id.into(), user_id.into(), now_ms.into()],
        )
        .await?;
        row.map(|r| {
            serde_json::from_str(&r.body)
                .map_err(|e| ApiError::internal(format!("stored body: {e}")))
        })
        .transpose()
    }

    /// Deletes `user_id`'s response `id`; whether there was one.
    pub async fn delete(&self, user_id: &str, id: &str) -> ApiResult<bool> {
        let sql = "delete from responses where id = ?1 and user_id = ?2";
        Ok(d1::execute(&self.db()?, sql, &[id.into(), user_id.into()]).await? > 0)
    }

    async fn insert(self, record: StoredResponse) -> ApiResult<()> {
        let db = self.db()?;
        let turn = turn_json(&record.turn)?;
        let body = record.body.to_string();
        let insert = d1::stmt(
            &db,
            "insert into responses (id, message_id, user_id, previous_response_id, turn, body, created_at, expires_at)
             values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            &[
                Val::from(&record.id),
                Val::from(&record.message_id),
                Val::from(&record.user_id),
                Val::from(record.previous_response_id.as_ref()),
                Val::from(&turn),
                Val::from(&body),
                Val::from(record.created_at_ms),
                Val::from(record.expires_at_ms()),
            ],
        )?;
        let sweep = d1::stmt(
            &db,
            "delete from responses where id in
                (select id from responses where expires_at <= ?1 limit ?2)",
            &[
                Val::from(record.created_at_ms),
                Val::from(u64::from(EXPIRED_PER_WRITE)),
            ],
        )?;
        d1::batch(&db, vec![insert, sweep]).await
    }
}

impl ResponseStore for D1Responses {
    fn save(&self, record: StoredResponse) -> LocalBoxFuture<'static, ApiResult<()>> {
        Box::pin(self.clone().insert(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::wire::Role;

    #[test]
    fn the_stored_turn_format_is_stable() {
        let turn = [
            ChatMessage::new(Role::System, "Be terse."),
            ChatMessage::new(Role::User, "Hi"),
            ChatMessage::new(Role::Assistant, "Hello"),
        ];
        let json = turn_json(&turn).expect("json");
        assert_eq!(
            json,
            r#"[{"role":"system","content":"Be terse."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"}]"#
        );
        assert_eq!(history_from(&[json]).expect("read"), turn);
    }

    #[test]
    fn history_joins_turns_oldest_first_and_refuses_a_broken_row() {
        let a = turn_json(&[ChatMessage::new(Role::User, "1")]).expect("json");
        let b = turn_json(&[ChatMessage::new(Role::Assistant, "2")]).expect("json");
        assert_eq!(
            history_from(&[a, b]).expect("read"),
            [
                ChatMessage::new(Role::User, "1"),
                ChatMessage::new(Role::Assistant, "2")
            ]
        );
        assert_eq!(history_from(&["{".into()]).expect_err("broken").status, 500);
    }

    #[test]
    fn a_response_is_kept_thirty_days() {
        let record = StoredResponse {
            id: "resp_1".into(),
            message_id: "msg_1".into(),
            user_id: "u".into(),
            previous_response_id: None,
            turn: Vec::new(),
            body: Value::Null,
            created_at_ms: 1_000,
        };
        assert_eq!(record.expires_at_ms(), 1_000 + 30 * 86_400_000);
    }
}
