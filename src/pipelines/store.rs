//! Every SQL statement of pipelines, their executions and the executions' step checkpoints.
//!
//! A checkpoint is one `insert` (`pipeline_step_runs`), written when its step ends; the
//! statements that end an execution write its last checkpoint and its final status in one
//! D1 batch, so a failure half-way never leaves one without the other.

use serde::{Deserialize, Serialize};
use worker::{D1Database, D1PreparedStatement};

use crate::http::error::ApiResult;
use crate::platform::d1::{self, Val};

#[derive(Debug, Clone, Deserialize)]
pub struct PipelineRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub description: Option<String>,
    pub version: u64,
    pub definition: String,
    pub created_at: u64,
    pub updated_at: u64,
}

const PIPELINE_COLUMNS: &str =
    "id, user_id, name, description, version, definition, created_at, updated_at";

pub async fn insert_pipeline(db: &D1Database, p: &PipelineRow) -> ApiResult<()> {
    d1::execute(
        db,
        "insert into pipelines (id, user_id, name, description, version, definition, created_at, updated_at) values (?1, ?2, ?3, ?4, 1, ?5, ?6, ?6)",
        &[
            Val::Text(&p.id),
            Val::Text(&p.user_id),
            Val::Text(&p.name),
            p.description.as_deref().map_or(Val::Null, Val::Text),
            Val::Text(&p.definition),
            Val::Int(p.created_at as i64),
        ],
    )
    .await?;
    Ok(())
}

pub async fn find_pipeline(
    db: &D1Database,
    user_id: &str,
    id: &str,
) -> ApiResult<Option<PipelineRow>> {
    d1::first(
        db,
        &format!("select {PIPELINE_COLUMNS} from pipelines where id = ?1 and user_id = ?2"),
        &[Val::Text(id), Val::Text(user_id)],
    )
    .await
}

/// A page of the user's pipelines, newest first, before the id `before`.
pub async fn list_pipelines(
    db: &D1Database,
    user_id: &str,
    before: Option<&str>,
    limit: u32,
) -> ApiResult<Vec<PipelineRow>> {
    d1::all(
        db,
        &format!("select {PIPELINE_COLUMNS} from pipelines where user_id = ?1 and id < ?2 order by id desc limit ?3"),
        &[Val::Text(user_id), Val::Text(before.unwrap_or("g")), Val::Int(limit as i64)],
    )
    .await
}

/// Replaces the definition, bumping the version; `false` when there is no such pipeline.
pub async fn update_pipeline(db: &D1Database, p: &PipelineRow) -> ApiResult<bool> {
    let n = d1::execute(
        db,
        "update pipelines set name = ?3, description = ?4, definition = ?5, version = version + 1, updated_at = ?6 where id = ?1 and user_id = ?2",
        &[
            Val::Text(&p.id),
            Val::Text(&p.user_id),
            Val::Text(&p.name),
            p.description.as_deref().map_or(Val::Null, Val::Text),
            Val::Text(&p.definition),
            Val::Int(p.updated_at as i64),
        ],
    )
    .await?;
    Ok(n > 0)
}

pub async fn delete_pipeline(db: &D1Database, user_id: &str, id: &str) -> ApiResult<bool> {
    let n = d1::execute(
        db,
        "delete from pipelines where id = ?1 and user_id = ?2",
        &[Val::Text(id), Val::Text(user_id)],
    )
    .await?;
    Ok(n > 0)
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExecutionRow {
    pub id: String,
    pub pipeline_id: String,
    pub user_id: String,
    pub pipeline_version: u64,
    pub definition: String,
    pub input: String,
    pub status: String,
    pub cancel_requested: u8,
    pub attempts: u32,
    pub lease_until: Option<u64>,
    pub error_step: Option<String>,
    pub error: Option<String>,
    pub output: Option<String>,
    pub created_at: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
}

const EXECUTION_COLUMNS: &str = "id, pipeline_id, user_id, pipeline_version, definition, input, status, cancel_requested, attempts, lease_until, error_step, error, output, created_at, started_at, finished_at";

pub async fn insert_execution(db: &D1Database, e: &ExecutionRow) -> ApiResult<()> {
    d1::execute(
        db,
        "insert into pipeline_executions (id, pipeline_id, user_id, pipeline_version, definition, input, status, created_at, updated_at) values (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?7)",
        &[
            Val::Text(&e.id),
            Val::Text(&e.pipeline_id),
            Val::Text(&e.user_id),
            Val::Int(e.pipeline_version as i64),
            Val::Text(&e.definition),
            Val::Text(&e.input),
            Val::Int(e.created_at as i64),
        ],
    )
    .await?;
    Ok(())
}

/// An execution by id; `user_id` `None` for the queue consumer, which owns no user.
pub async fn find_execution(
    db: &D1Database,
    user_id: Option<&str>,
    id: &str,
) -> ApiResult<Option<ExecutionRow>> {
    d1::first(
        db,
        &format!("select {EXECUTION_COLUMNS} from pipeline_executions where id = ?1 and (?2 is null or user_id = ?2)"),
        &[Val::Text(id), user_id.map_or(Val::Null, Val::Text)],
    )
    .await
}

pub async fn list_executions(
    db: &D1Database,
    user_id: &str,
    pipeline_id: &str,
    before: Option<&str>,
    limit: u32,
) -> ApiResult<Vec<ExecutionRow>> {
    d1::all(
        db,
        &format!("select {EXECUTION_COLUMNS} from pipeline_executions where pipeline_id = ?1 and user_id = ?2 and id < ?3 order by id desc limit ?4"),
        &[Val::Text(pipeline_id), Val::Text(user_id), Val::Text(before.unwrap_or("g")), Val::Int(limit as i64)],
    )
    .await
}

/// One step's checkpoint.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct StepRunRow {
    pub step_index: u32,
    pub step_id: String,
    pub status: String,
    pub output: Option<String>,
    pub model: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency_ms: u64,
    pub attempts: u32,
    pub error: Option<String>,
    pub started_at: u64,
    pub finished_at: u64,
}

pub async fn step_runs(db: &D1Database, execution_id: &str) -> ApiResult<Vec<StepRunRow>> {
    d1::all(
        db,
        "select step_index, step_id, status, output, model, prompt_tokens, completion_tokens, latency_ms, attempts, error, started_at, finished_at from pipeline_step_runs where execution_id = ?1 order by step_index",
        &[Val::Text(execution_id)],
    )
    .await
}

/// The checkpoint statement. `on conflict do nothing`: a step written by an earlier delivery
/// of the same message stays as it was.
pub fn checkpoint(
    db: &D1Database,
    execution_id: &str,
    r: &StepRunRow,
) -> ApiResult<D1PreparedStatement> {
    d1::stmt(
        db,
        "insert into pipeline_step_runs (execution_id, step_index, step_id, status, output, model, prompt_tokens, completion_tokens, latency_ms, attempts, error, started_at, finished_at) values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) on conflict do nothing",
        &[
            Val::Text(execution_id),
            Val::Int(r.step_index as i64),
            Val::Text(&r.step_id),
            Val::Text(&r.status),
            r.output.as_deref().map_or(Val::Null, Val::Text),
            r.model.as_deref().map_or(Val::Null, Val::Text),
            Val::Int(r.prompt_tokens as i64),
            Val::Int(r.completion_tokens as i64),
            Val::Int(r.latency_ms as i64),
            Val::Int(r.attempts as i64),
            r.error.as_deref().map_or(Val::Null, Val::Text),
            Val::Int(r.started_at as i64),
            Val::Int(r.finished_at as i64),
        ],
    )
}

/// Takes the execution for one consumer until `lease_until`: `false` when it is finished or
/// another delivery holds an unexpired lease.
pub async fn claim(db: &D1Database, id: &str, now_ms: u64, lease_until: u64) -> ApiResult<bool> {
    let n = d1::execute(
        db,
        "update pipeline_executions set status = 'running', started_at = coalesce(started_at, ?2), lease_until = ?3, updated_at = ?2 where id = ?1 and status in ('queued', 'running') and (lease_until is null or lease_until < ?2)",
        &[Val::Text(id), Val::Int(now_ms as i64), Val::Int(lease_until as i64)],
    )
    .await?;
    Ok(n > 0)
}

/// The checkpoint of a finished step, with the try count reset and the lease renewed.
pub async fn finish_step(
    db: &D1Database,
    id: &str,
    run: &StepRunRow,
    lease_until: u64,
) -> ApiResult<()> {
    let renew = d1::stmt(
        db,
        "update pipeline_executions set attempts = 0, lease_until = ?2, updated_at = ?3 where id = ?1",
        &[Val::Text(id), Val::Int(lease_until as i64), Val::Int(run.finished_at as i64)],
    )?;
    d1::batch(db, vec![checkpoint(db, id, run)?, renew]).await
}

/// A failed try of a step that will be retried at `retry_at`: counted, and the lease held
/// until then (so the sweeper leaves it alone while its retry is on its way).
pub async fn failed_try(
    db: &D1Database,
    id: &str,
    error: &str,
    now_ms: u64,
    retry_at: u64,
) -> ApiResult<()> {
    d1::execute(
        db,
        "update pipeline_executions set attempts = attempts + 1, lease_until = ?4, error = ?2, updated_at = ?3 where id = ?1",
        &[Val::Text(id), Val::Text(error), Val::Int(now_ms as i64), Val::Int(retry_at as i64)],
    )
    .await?;
    Ok(())
}

/// Unfinished executions whose message looks lost: no lease (or retry) for `grace_ms`, and
/// not sent again within it. Marks them sent again and returns their ids.
pub async fn take_stale(
    db: &D1Database,
    now_ms: u64,
    grace_ms: u64,
    limit: u32,
) -> ApiResult<Vec<String>> {
    #[derive(Deserialize)]
    struct Row {
        id: String,
    }
    let before = now_ms.saturating_sub(grace_ms) as i64;
    let rows: Vec<Row> = d1::all(
        db,
        "update pipeline_executions set requeued_at = ?1 where id in (select id from pipeline_executions where status in ('queued', 'running') and coalesce(lease_until, created_at) < ?2 and coalesce(requeued_at, 0) < ?2 limit ?3) returning id",
        &[Val::Int(now_ms as i64), Val::Int(before), Val::Int(limit as i64)],
    )
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Ends the execution: its last checkpoint (when there is one) and its final status, in one
/// batch.
pub async fn finish(
    db: &D1Database,
    id: &str,
    last: Option<&StepRunRow>,
    status: &str,
    output: Option<&str>,
    error: Option<(&str, &str)>,
    now_ms: u64,
) -> ApiResult<()> {
    let mut statements = Vec::new();
    if let Some(run) = last {
        statements.push(checkpoint(db, id, run)?);
    }
    statements.push(d1::stmt(
        db,
        "update pipeline_executions set status = ?2, output = ?3, error_step = ?4, error = ?5, finished_at = ?6, lease_until = null, updated_at = ?6 where id = ?1 and status in ('queued', 'running')",
        &[
            Val::Text(id),
            Val::Text(status),
            output.map_or(Val::Null, Val::Text),
            error.map_or(Val::Null, |(step, _)| Val::Text(step)),
            error.map_or(Val::Null, |(_, message)| Val::Text(message)),
            Val::Int(now_ms as i64),
        ],
    )?);
    d1::batch(db, statements).await
}

/// Whether cancelling was asked for (read between steps).
pub async fn cancel_requested(db: &D1Database, id: &str) -> ApiResult<bool> {
    #[derive(Deserialize)]
    struct Row {
        cancel_requested: u8,
    }
    let row: Option<Row> = d1::first(
        db,
        "select cancel_requested from pipeline_executions where id = ?1",
        &[Val::Text(id)],
    )
    .await?;
    Ok(row.is_some_and(|r| r.cancel_requested == 1))
}

/// Asks a running execution to stop between steps, or cancels a queued one at once.
pub async fn request_cancel(
    db: &D1Database,
    user_id: &str,
    id: &str,
    now_ms: u64,
) -> ApiResult<()> {
    let queued = d1::stmt(
        db,
        "update pipeline_executions set status = 'cancelled', cancel_requested = 1, finished_at = ?3, updated_at = ?3 where id = ?1 and user_id = ?2 and status = 'queued'",
        &[Val::Text(id), Val::Text(user_id), Val::Int(now_ms as i64)],
    )?;
    let running = d1::stmt(
        db,
        "update pipeline_executions set cancel_requested = 1, updated_at = ?3 where id = ?1 and user_id = ?2 and status = 'running'",
        &[Val::Text(id), Val::Text(user_id), Val::Int(now_ms as i64)],
    )?;
    d1::batch(db, vec![queued, running]).await
}
