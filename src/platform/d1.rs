//! Small helpers over D1: binding values, reading rows, counting changes, and turning
//! constraint violations into 409s (after realworld-axum-sqlx's `on_constraint`).
//!
//! SQL stays beside the code that owns it; these helpers only remove the boilerplate of
//! binding parameters and mapping errors. Every value is a bound parameter, never spliced.

use serde::de::DeserializeOwned;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement};

use crate::http::ctx::Ctx;
use crate::http::error::{ApiError, ApiResult};

/// A bound SQL value.
pub enum Val<'a> {
    Text(&'a str),
    Int(i64),
    Null,
}

impl<'a> From<&'a str> for Val<'a> {
    fn from(v: &'a str) -> Self {
        Val::Text(v)
    }
}

impl<'a> From<&'a String> for Val<'a> {
    fn from(v: &'a String) -> Self {
        Val::Text(v)
    }
}

impl From<i64> for Val<'_> {
    fn from(v: i64) -> Self {
        Val::Int(v)
    }
}

impl From<u64> for Val<'_> {
    fn from(v: u64) -> Self {
        Val::Int(v as i64)
    }
}

impl From<bool> for Val<'_> {
    fn from(v: bool) -> Self {
        Val::Int(v as i64)
    }
}

impl<'a, T: Into<Val<'a>>> From<Option<T>> for Val<'a> {
    fn from(v: Option<T>) -> Self {
        v.map(Into::into).unwrap_or(Val::Null)
    }
}

impl Val<'_> {
    fn to_js(&self) -> JsValue {
        match self {
            Val::Text(s) => JsValue::from_str(s),
            // D1 numbers are JS doubles: exact for the millisecond times and counts stored here.
            Val::Int(n) => JsValue::from_f64(*n as f64),
            Val::Null => JsValue::NULL,
        }
    }
}

/// The `DB` binding.
pub fn database(cx: &Ctx) -> ApiResult<D1Database> {
    cx.env
        .d1("DB")
        .map_err(|e| ApiError::internal(format!("D1 binding DB: {e}")))
}

/// Prepares `sql` with `params` bound in order (`?1`, `?2`, …).
pub fn stmt(db: &D1Database, sql: &str, params: &[Val<'_>]) -> ApiResult<D1PreparedStatement> {
    let values: Vec<JsValue> = params.iter().map(Val::to_js).collect();
    db.prepare(sql).bind(&values).map_err(|e| d1_error(sql, e))
}

pub fn d1_error(sql: &str, err: worker::Error) -> ApiError {
    ApiError::internal(format!("D1 `{}`: {err}", first_words(sql)))
}

fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(6).collect::<Vec<_>>().join(" ")
}

/// Runs a statement; returns how many rows it changed.
pub async fn execute(db: &D1Database, sql: &str, params: &[Val<'_>]) -> ApiResult<usize> {
    let result = stmt(db, sql, params)?
        .run()
        .await
        .map_err(|e| d1_error(sql, e))?;
    Ok(result
        .meta()
        .ok()
        .flatten()
        .and_then(|m| m.changes)
        .unwrap_or(0))
}

/// All rows, deserialized.
pub async fn all<T: DeserializeOwned>(
    db: &D1Database,
    sql: &str,
    params: &[Val<'_>],
) -> ApiResult<Vec<T>> {
    let result = stmt(db, sql, params)?
        .all()
        .await
        .map_err(|e| d1_error(sql, e))?;
    result.results::<T>().map_err(|e| d1_error(sql, e))
}

/// The first row, if any.
pub async fn first<T: DeserializeOwned>(
    db: &D1Database,
    sql: &str,
    params: &[Val<'_>],
) -> ApiResult<Option<T>> {
    stmt(db, sql, params)?
        .first::<T>(None)
        .await
        .map_err(|e| d1_error(sql, e))
}

/// Runs statements as one transaction (D1's `batch`): all or nothing.
pub async fn batch(db: &D1Database, statements: Vec<D1PreparedStatement>) -> ApiResult<()> {
    db.batch(statements)
        .await
        .map_err(|e| ApiError::internal(format!("D1 batch: {e}")))?;
    Ok(())
}

/// Whether an internal error came from a UNIQUE constraint (for mapping to 409).
pub fn is_unique_violation(err: &ApiError) -> bool {
    err.internal
        .as_deref()
        .is_some_and(|d| d.contains("UNIQUE constraint failed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_violations_are_recognised_from_the_d1_message() {
        let err = ApiError::internal("D1 `insert into users`: D1_ERROR: UNIQUE constraint failed: users.email: SQLITE_CONSTRAINT");
        assert!(is_unique_violation(&err));
        assert!(!is_unique_violation(&ApiError::internal(
            "D1: no such table"
        )));
    }

    #[test]
    fn log_detail_names_only_the_start_of_the_statement() {
        assert_eq!(
            first_words("select a,\n b from users where email = ?1 and x"),
            "select a, b from users where"
        );
    }
}
