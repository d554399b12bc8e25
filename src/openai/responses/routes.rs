//! The Responses routes: `POST /v1/responses` (streamed or not), and `GET` and `DELETE`
//! `/v1/responses/{id}` for stored ones. Thin handlers: the body is
//! [`super::request`], the answer [`super::object`] and [`super::stream`], storage
//! [`super::store`].

use std::rc::Rc;

use serde_json::json;
use worker::Response;

use crate::http::coalesce::Coalesce;
use crate::http::ctx::Ctx;
use crate::http::error::{ApiError, ApiResult};
use crate::http::response;
use crate::http::router::handler;
use crate::http::router::{Method, Route};
use crate::openai::caller::v1_caller;
use crate::openai::responses::object::{
    is_response_id, message_id, response_id, EventWriter, Outcome, ResponseMeta,
};
use crate::openai::responses::request::{
    chat_request, resolve_references, validate, ResponsesBody, ResponsesTurn,
};
use crate::openai::responses::store::{D1Responses, ResponseStore, RETENTION_DAYS};
use crate::openai::responses::stream::{not_stored, PendingRecord, ResponseEventStream};
use crate::platform::clock::{Clock, SystemClock};
use crate::providers::client::{event_stream_response, ProviderClient};

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::Post, "/v1/responses", handler!(create)),
        Route::new(Method::Get, "/v1/responses/{id}", handler!(retrieve)),
        Route::new(Method::Delete, "/v1/responses/{id}", handler!(delete)),
    ]
}

/// 400 naming `previous_response_id`, as OpenAI answers for one it cannot find.
fn previous_not_found(id: &str) -> ApiError {
    let shown: String = id.chars().take(100).collect();
    ApiError::bad_request(
        "previous_response_not_found",
        format!(
            "Previous response with id '{shown}' not found: it was not stored (`store: false`), belongs to another user, was deleted, or is older than {RETENTION_DAYS} days."
        ),
    )
    .with_field("previous_response_id")
}

fn response_not_found() -> ApiError {
    ApiError::new(
        404,
        "not_found",
        format!("No stored response with this id (responses are kept {RETENTION_DAYS} days)."),
    )
}

fn meta(
    turn: &ResponsesTurn,
    id: String,
    created_at_ms: u64,
    model: &str,
) -> ApiResult<ResponseMeta> {
    Ok(ResponseMeta {
        id,
        message_id: message_id()?,
        created_at: created_at_ms / 1000,
        model: model.to_string(),
        instructions: turn.instructions.clone(),
        max_output_tokens: turn.max_output_tokens,
        previous_response_id: turn.previous_response_id.clone(),
        store: turn.store,
        temperature: turn.temperature,
        top_p: turn.top_p,
        metadata: turn.metadata.clone(),
        parallel_tool_calls: turn.parallel_tool_calls,
    })
}

/// POST /v1/responses — OpenAI's Responses API over any provider's chat model, streamed or
/// not; `store` (the default) keeps the turn for `previous_response_id` and GET.
async fn create(mut cx: Ctx) -> ApiResult<Response> {
    let principal = v1_caller(&cx).await?;
    let body: ResponsesBody = cx.json().await?;
    let mut turn = validate(body)?;
    let client = ProviderClient::new(&cx);
    // An unknown model is a 404 before anything is read from storage.
    client.plan(&turn.model)?;
    let store = D1Responses::new(&cx);
    let now_ms = SystemClock.now_ms();
    let history = match &turn.previous_response_id {
        None => Vec::new(),
        Some(id) if !is_response_id(id) => return Err(previous_not_found(id)),
        Some(id) => store
            .history(&principal.user_id, id, now_ms)
            .await?
            .ok_or_else(|| previous_not_found(id))?,
    };
    if !turn.references.is_empty() {
        let ids: Vec<String> = turn.references.iter().map(|r| r.id.clone()).collect();
        let found = store.answers(&principal.user_id, &ids, now_ms).await?;
        resolve_references(&mut turn, &found)?;
    }
    let request = chat_request(&turn, history);
    let id = response_id()?;
    let pending = turn.store.then(|| PendingRecord {
        store: Rc::new(store.clone()) as Rc<dyn ResponseStore>,
        user_id: principal.user_id.clone(),
        previous_response_id: turn.previous_response_id.clone(),
        input: turn.input.clone(),
        created_at_ms: now_ms,
        log_level: cx.config.log_level,
    });
    if turn.stream {
        let stream = client.stream(&turn.model, request).await?;
        let meta = meta(&turn, id, now_ms, &stream.model().id)?;
        let writer = EventWriter::new(meta, cx.request_id.clone());
        // Events decoded from one upstream read go out in one write, as on chat completions.
        let events = ResponseEventStream::new(stream, writer, pending);
        return event_stream_response(Coalesce::new(events));
    }
    let answer = client.complete(&turn.model, request).await?;
    let meta = meta(&turn, id, now_ms, &answer.model.id)?;
    let completion = &answer.completion;
    let body = meta.object(
        &Outcome::Finished(completion.finish_reason.clone()),
        Some(&completion.text),
        completion.usage.as_ref(),
    );
    if let Some(pending) = pending {
        let record = pending.record(&meta.id, &meta.message_id, &completion.text, body.clone());
        // As for a stream: an answer that cannot be stored is not passed off as stored.
        pending.store.save(record).await.map_err(|e| {
            not_stored().with_internal(e.internal.unwrap_or_else(|| e.message.clone()))
        })?;
    }
    response::json(200, &body)
}

/// GET /v1/responses/{id} — a stored response of the caller, as it was answered.
async fn retrieve(cx: Ctx) -> ApiResult<Response> {
    let principal = v1_caller(&cx).await?;
    let id = cx.param("id")?;
    if !is_response_id(id) {
        return Err(response_not_found());
    }
    let body = D1Responses::new(&cx)
        .body(&principal.user_id, id, SystemClock.now_ms())
        .await?
        .ok_or_else(response_not_found)?;
    response::json(200, &body)
}

/// DELETE /v1/responses/{id} — forgets a stored response of the caller; continuing a later
/// response then starts after it.
async fn delete(cx: Ctx) -> ApiResult<Response> {
    let principal = v1_caller(&cx).await?;
    let id = cx.param("id")?;
    if !is_response_id(id) || !D1Responses::new(&cx).delete(&principal.user_id, id).await? {
        return Err(response_not_found());
    }
    response::json(
        200,
        &json!({ "id": id, "object": "response", "deleted": true }),
    )
}
