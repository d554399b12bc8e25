//! `/api/pipelines` and `/api/pipeline-executions` — pipelines (CRUD), starting executions
//! on the queue, and following them.
//!
//! Another user's pipeline or execution is a 404, exactly as a missing one.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use worker::Response;

use crate::auth::guard::authenticate;
use crate::conversations::input::{parse_id_cursor, parse_limit};
use crate::http::ctx::{parse_json, require_media_type, Ctx};
use crate::http::error::{ApiError, ApiResult};
use crate::http::response;
use crate::http::router::{handler, Method, Route};
use crate::pipelines::consumer::{Job, QUEUE_BINDING};
use crate::pipelines::definition::{self, check_input, steps_json, Choices, Definition};
use crate::pipelines::run::stored_output;
use crate::pipelines::store::{self, ExecutionRow, PipelineRow, StepRunRow};
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::d1;
use crate::platform::ids::{is_valid_id, new_id};

const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: usize = 100;

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::Post, "/api/pipelines", handler!(create)),
        Route::new(Method::Get, "/api/pipelines", handler!(list)),
        Route::new(Method::Get, "/api/pipelines/{id}", handler!(show)),
        Route::new(Method::Put, "/api/pipelines/{id}", handler!(update)),
        Route::new(Method::Delete, "/api/pipelines/{id}", handler!(delete)),
        Route::new(
            Method::Post,
            "/api/pipelines/{id}/execute",
            handler!(execute),
        ),
        Route::new(
            Method::Get,
            "/api/pipelines/{id}/executions",
            handler!(executions),
        ),
        Route::new(
            Method::Get,
            "/api/pipeline-executions/{id}",
            handler!(show_execution),
        ),
        Route::new(
            Method::Post,
            "/api/pipeline-executions/{id}/cancel",
            handler!(cancel),
        ),
        Route::new(
            Method::Get,
            "/api/pipeline-executions/{id}/events",
            handler!(events),
        ),
    ]
}

fn path_id(cx: &Ctx) -> ApiResult<String> {
    let id = cx.param("id")?;
    if is_valid_id(id) {
        Ok(id.to_string())
    } else {
        Err(ApiError::not_found())
    }
}

/// `?limit=` and the cursor `?before=` (the `next_cursor` of the previous page).
fn page_query(cx: &Ctx) -> ApiResult<(usize, Option<String>)> {
    let pairs = cx.query_pairs();
    let limit = parse_limit(&pairs, DEFAULT_PAGE, MAX_PAGE)?;
    Ok((limit, parse_id_cursor(&pairs, "before")?))
}

#[derive(Serialize)]
struct Page<T> {
    data: Vec<T>,
    has_more: bool,
    next_cursor: Option<String>,
}

fn page<R, T>(
    mut rows: Vec<R>,
    limit: usize,
    id: impl Fn(&R) -> String,
    view: impl Fn(R) -> T,
) -> Page<T> {
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if has_more { rows.last().map(&id) } else { None };
    Page {
        data: rows.into_iter().map(view).collect(),
        has_more,
        next_cursor,
    }
}

fn definition_of(row: &PipelineRow) -> ApiResult<Definition> {
    serde_json::from_str(&row.definition)
        .map_err(|e| ApiError::internal(format!("stored pipeline {}: {e}", row.id)))
}

fn pipeline_view(row: &PipelineRow) -> ApiResult<Value> {
    let definition = definition_of(row)?;
    Ok(json!({
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "version": row.version,
        "inputs": definition.inputs,
        "steps": steps_json(&definition),
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }))
}

/// The body of a create or update, validated: 413 over `PIPELINE_MAX_DEFINITION_BYTES`.
async fn pipeline_body(cx: &mut Ctx) -> ApiResult<definition::ValidPipeline> {
    require_media_type(cx.header("content-type").as_deref(), "application/json")?;
    let bytes = cx.body_bytes().await?;
    let limit = cx.config.pipelines.max_definition_bytes;
    if bytes.len() > limit {
        return Err(ApiError::payload_too_large(limit));
    }
    if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
        definition::refuse_unavailable_kinds(&value)?;
    }
    let body: definition::PipelineBody = parse_json(&bytes)?;
    definition::validate(
        body,
        &Choices {
            providers: &cx.config.providers,
            modes: &cx.config.chat.modes,
            settings: &cx.config.pipelines,
        },
    )
}

fn pipeline_row(
    user_id: &str,
    id: String,
    valid: &definition::ValidPipeline,
    now: u64,
) -> ApiResult<PipelineRow> {
    Ok(PipelineRow {
        id,
        user_id: user_id.to_string(),
        name: valid.name.clone(),
        description: valid.description.clone(),
        version: 1,
        definition: serde_json::to_string(&valid.definition)
            .map_err(|e| ApiError::internal(e.to_string()))?,
        created_at: now,
        updated_at: now,
    })
}

/// POST /api/pipelines — creates a pipeline after checking every step (422 naming the step
/// and field of the first problem).
async fn create(mut cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let valid = pipeline_body(&mut cx).await?;
    let now = SystemClock.now_ms();
    let row = pipeline_row(&principal.user_id, new_id(now)?, &valid, now)?;
    store::insert_pipeline(&d1::database(&cx)?, &row).await?;
    let mut res = response::json(201, &pipeline_view(&row)?)?;
    res.headers_mut()
        .set("location", &format!("/api/pipelines/{}", row.id))?;
    Ok(res)
}

/// GET /api/pipelines — the caller's pipelines, newest first.
async fn list(cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let (limit, before) = page_query(&cx)?;
    let rows = store::list_pipelines(
        &d1::database(&cx)?,
        &principal.user_id,
        before.as_deref(),
        limit as u32 + 1,
    )
    .await?;
    let views: Vec<Value> = rows.iter().map(pipeline_view).collect::<ApiResult<_>>()?;
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut p = page(views, limit, |_| String::new(), |v| v);
    p.next_cursor = if p.has_more {
        ids.get(limit - 1).cloned()
    } else {
        None
    };
    response::json(200, &p)
}

async fn owned(cx: &Ctx, user_id: &str) -> ApiResult<PipelineRow> {
    let id = path_id(cx)?;
    store::find_pipeline(&d1::database(cx)?, user_id, &id)
        .await?
        .ok_or_else(ApiError::not_found)
}

/// GET /api/pipelines/{id} — one pipeline with its steps.
async fn show(cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let row = owned(&cx, &principal.user_id).await?;
    response::json(200, &pipeline_view(&row)?)
}

/// PUT /api/pipelines/{id} — replaces the definition (checked as on create); the version goes
/// up by one. Executions already started keep the definition they started with.
async fn update(mut cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let existing = owned(&cx, &principal.user_id).await?;
    let valid = pipeline_body(&mut cx).await?;
    let now = SystemClock.now_ms();
    let mut row = pipeline_row(&principal.user_id, existing.id.clone(), &valid, now)?;
    let db = d1::database(&cx)?;
    if !store::update_pipeline(&db, &row).await? {
        return Err(ApiError::not_found());
    }
    row.created_at = existing.created_at;
    row.version = existing.version + 1;
    response::json(200, &pipeline_view(&row)?)
}

/// DELETE /api/pipelines/{id} — deletes the pipeline and its executions.
async fn delete(cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let id = path_id(&cx)?;
    if !store::delete_pipeline(&d1::database(&cx)?, &principal.user_id, &id).await? {
        return Err(ApiError::not_found());
    }
    response::no_content()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExecuteBody {
    #[serde(default)]
    input: Value,
}

/// POST /api/pipelines/{id}/execute — answers 202 with the queued execution at once; the
/// queue consumer runs it. Poll `GET /api/pipeline-executions/{id}` (its `Location`).
async fn execute(mut cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let pipeline = owned(&cx, &principal.user_id).await?;
    let bytes = cx.body_bytes().await?;
    let body: ExecuteBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        ExecuteBody::default()
    } else {
        require_media_type(cx.header("content-type").as_deref(), "application/json")?;
        parse_json(&bytes)?
    };
    let definition = definition_of(&pipeline)?;
    check_input(&definition, &body.input)?;
    let now = SystemClock.now_ms();
    let execution = ExecutionRow {
        id: new_id(now)?,
        pipeline_id: pipeline.id.clone(),
        user_id: principal.user_id.clone(),
        pipeline_version: pipeline.version,
        definition: pipeline.definition.clone(),
        input: body.input.to_string(),
        status: "queued".into(),
        cancel_requested: 0,
        attempts: 0,
        lease_until: None,
        error_step: None,
        error: None,
        output: None,
        created_at: now,
        started_at: None,
        finished_at: None,
    };
    let db = d1::database(&cx)?;
    store::insert_execution(&db, &execution).await?;
    let job = Job {
        execution_id: execution.id.clone(),
    };
    let sent = match cx.env.queue(QUEUE_BINDING) {
        Ok(queue) => queue.send(&job).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(problem) = sent {
        let message = "queue_unavailable: the execution could not be queued";
        store::finish(
            &db,
            &execution.id,
            None,
            "failed",
            None,
            Some(("", message)),
            now,
        )
        .await?;
        return Err(ApiError::new(
            503,
            "queue_unavailable",
            "The pipeline queue is unavailable; try again.",
        )
        .with_header("retry-after", "5")
        .with_internal(problem));
    }
    let mut res = response::json(202, &execution_view(&execution, &[]))?;
    res.headers_mut().set(
        "location",
        &format!("/api/pipeline-executions/{}", execution.id),
    )?;
    Ok(res)
}

fn usage(prompt: u64, completion: u64) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

fn step_view(run: &StepRunRow) -> Value {
    json!({
        "index": run.step_index,
        "id": run.step_id,
        "status": run.status,
        "output": run.output.as_deref().map(stored_output),
        "model": run.model,
        "usage": usage(run.prompt_tokens, run.completion_tokens),
        "latency_ms": run.latency_ms,
        "attempts": run.attempts,
        "error": run.error,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    })
}

fn execution_view(e: &ExecutionRow, runs: &[StepRunRow]) -> Value {
    let failed = e.status == "failed";
    let prompt: u64 = runs.iter().map(|r| r.prompt_tokens).sum();
    let completion: u64 = runs.iter().map(|r| r.completion_tokens).sum();
    json!({
        "id": e.id,
        "pipeline_id": e.pipeline_id,
        "pipeline_version": e.pipeline_version,
        "status": e.status,
        "cancel_requested": e.cancel_requested == 1,
        "input": serde_json::from_str::<Value>(&e.input).unwrap_or(Value::Null),
        "output": e.output.as_deref().map(stored_output),
        "error": if failed { json!({"step": e.error_step, "message": e.error}) } else { Value::Null },
        "retrying": if !failed && e.attempts > 0 { json!({"attempts": e.attempts, "last_error": e.error}) } else { Value::Null },
        "steps": runs.iter().map(step_view).collect::<Vec<_>>(),
        "usage": usage(prompt, completion),
        "duration_ms": e.started_at.zip(e.finished_at).map(|(s, f)| f.saturating_sub(s)),
        "created_at": e.created_at,
        "started_at": e.started_at,
        "finished_at": e.finished_at,
    })
}

/// GET /api/pipelines/{id}/executions — the pipeline's executions, newest first (without
/// their steps; `GET /api/pipeline-executions/{id}` has them).
async fn executions(cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let pipeline = owned(&cx, &principal.user_id).await?;
    let (limit, before) = page_query(&cx)?;
    let rows = store::list_executions(
        &d1::database(&cx)?,
        &principal.user_id,
        &pipeline.id,
        before.as_deref(),
        limit as u32 + 1,
    )
    .await?;
    let p = page(
        rows,
        limit,
        |e| e.id.clone(),
        |e| {
            let mut v = execution_view(&e, &[]);
            if let Some(o) = v.as_object_mut() {
                o.remove("steps");
                o.remove("usage");
            }
            v
        },
    );
    response::json(200, &p)
}

async fn owned_execution(cx: &Ctx, user_id: &str) -> ApiResult<(worker::D1Database, ExecutionRow)> {
    let id = path_id(cx)?;
    let db = d1::database(cx)?;
    let row = store::find_execution(&db, Some(user_id), &id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok((db, row))
}

/// GET /api/pipeline-executions/{id} — status, each finished step's output, usage, timing and
/// error, and the totals.
async fn show_execution(cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let (db, row) = owned_execution(&cx, &principal.user_id).await?;
    let runs = store::step_runs(&db, &row.id).await?;
    response::json(200, &execution_view(&row, &runs))
}

/// POST /api/pipeline-executions/{id}/cancel — a queued execution is cancelled at once; a
/// running one stops before its next step (202; its step in flight finishes and is kept).
/// A finished one is a 409.
async fn cancel(cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let (db, row) = owned_execution(&cx, &principal.user_id).await?;
    if !matches!(row.status.as_str(), "queued" | "running") {
        return Err(ApiError::conflict(
            "execution_finished",
            format!("The execution has already ended ({}).", row.status),
        ));
    }
    store::request_cancel(&db, &principal.user_id, &row.id, SystemClock.now_ms()).await?;
    let row = store::find_execution(&db, Some(&principal.user_id), &row.id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let runs = store::step_runs(&db, &row.id).await?;
    response::json(202, &execution_view(&row, &runs))
}

/// How often the event stream looks at the execution, and for how long at most.
const EVENTS_POLL_MS: u64 = 500;
const EVENTS_MAX_POLLS: u32 = 1200;

struct Follow {
    db: std::rc::Rc<worker::D1Database>,
    transport: std::rc::Rc<dyn crate::providers::client::transport::Transport>,
    user_id: String,
    id: String,
    steps_sent: usize,
    status: String,
    polls: u32,
    ended: bool,
}

fn sse(event: &str, data: &Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

/// One look at the execution: the events of what changed since the last one.
async fn follow_once(f: &mut Follow) -> String {
    if f.polls > 0 {
        f.transport.sleep(EVENTS_POLL_MS).await;
    }
    f.polls += 1;
    let found = store::find_execution(&f.db, Some(&f.user_id), &f.id).await;
    let runs = store::step_runs(&f.db, &f.id).await;
    let (Ok(Some(row)), Ok(runs)) = (found, runs) else {
        f.ended = true;
        return sse(
            "error",
            &json!({"message": "The execution could not be read."}),
        );
    };
    let mut out = String::new();
    for run in runs.iter().skip(f.steps_sent) {
        out.push_str(&sse("step", &step_view(run)));
    }
    f.steps_sent = runs.len();
    if row.status != f.status {
        f.status = row.status.clone();
        out.push_str(&sse("status", &json!({"status": row.status})));
    }
    if !matches!(row.status.as_str(), "queued" | "running") {
        out.push_str(&sse("done", &execution_view(&row, &runs)));
        f.ended = true;
    } else if f.polls >= EVENTS_MAX_POLLS {
        f.ended = true;
    } else if out.is_empty() {
        // A comment while nothing changes: it lets the worker notice a client that left.
        out.push_str(": waiting\n\n");
    }
    out
}

/// GET /api/pipeline-executions/{id}/events — the execution as Server-Sent Events: `status`
/// when it changes, `step` as each step's checkpoint is written, and `done` (the whole
/// execution, as `GET /api/pipeline-executions/{id}` answers it) when it ends. The stream
/// looks every half second, for at most ten minutes.
async fn events(cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let (db, row) = owned_execution(&cx, &principal.user_id).await?;
    let follow = Follow {
        db: std::rc::Rc::new(db),
        transport: crate::providers::client::ProviderClient::new(&cx).transport(),
        user_id: principal.user_id,
        id: row.id,
        steps_sent: 0,
        status: String::new(),
        polls: 0,
        ended: false,
    };
    let stream = futures::stream::unfold(follow, |mut f| async move {
        if f.ended {
            return None;
        }
        let chunk = follow_once(&mut f).await;
        Some((Ok::<Vec<u8>, worker::Error>(chunk.into_bytes()), f))
    });
    crate::providers::client::event_stream_response(stream)
}
