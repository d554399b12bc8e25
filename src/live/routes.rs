//! The realtime routes: resuming a generation's stream, stopping it, and the conversation's
//! WebSocket — each authenticated here and handed to the conversation's Durable Object
//! ([`super::object`]), which checks that the conversation is the caller's. Streamed sends
//! reach the object through [`send_streamed`], called by the chat send handlers.

use worker::{Headers, Method as WorkerMethod, Request, RequestInit, Response};

use super::protocol::{CONVERSATION_HEADER, NEW_HEADER, USER_HEADER};
use crate::auth::guard::authenticate;
use crate::chat::input::ChatInput;
use crate::conversations::routes::path_id;
use crate::http::ctx::Ctx;
use crate::http::error::{ApiError, ApiResult};
use crate::http::router::{handler, Method, Route};
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::ids::new_id;

/// The Durable Object binding (wrangler.toml).
pub const BINDING: &str = "CONVERSATION_LIVE";

pub fn routes() -> Vec<Route> {
    use Method::*;
    vec![
        Route::new(Get, "/api/conversations/{id}/stream", handler!(resume)),
        Route::new(Post, "/api/conversations/{id}/stop", handler!(stop)),
        Route::new(Get, "/api/conversations/{id}/ws", handler!(socket)),
    ]
}

/// GET /api/conversations/{id}/stream — the conversation's generation as Server-Sent
/// Events: after `Last-Event-ID` (or `?last_event_id=`) the events missed, then the live ones;
/// once it has ended and been forgotten, the stored reply as one `done`/`error` event; 204 when
/// there is nothing to send (which also tells `EventSource` to stop reconnecting).
async fn resume(cx: Ctx) -> ApiResult<Response> {
    let user = authenticate(&cx).await?;
    let id = path_id(&cx)?;
    // An id we never sent (not visible ASCII, or too long to be ours) is no id: the current
    // generation from its start, as for another generation's id.
    let last = cx
        .header("last-event-id")
        .or_else(|| cx.query("last_event_id"))
        .filter(|id| id.len() <= 200 && id.bytes().all(|b| b.is_ascii_graphic()));
    let headers = Headers::new();
    if let Some(last) = last {
        headers.set("last-event-id", &last)?;
    }
    forward(
        &cx,
        &id,
        "/events",
        &user.user_id,
        headers,
        WorkerMethod::Get,
        None,
    )
    .await
}

/// POST /api/conversations/{id}/stop — stops the generation in progress, from any of the
/// user's sessions: the upstream request is aborted at once, and the answer (within 10 s)
/// holds the reply stored as `partial` (`null` if nothing was generated).
async fn stop(cx: Ctx) -> ApiResult<Response> {
    let user = authenticate(&cx).await?;
    let id = path_id(&cx)?;
    forward(
        &cx,
        &id,
        "/stop",
        &user.user_id,
        Headers::new(),
        WorkerMethod::Post,
        None,
    )
    .await
}

/// GET /api/conversations/{id}/ws — the conversation's WebSocket (protocol in
/// [`super::protocol`]). Credentials come in `Authorization` or, from browsers, which cannot
/// set headers on a WebSocket, as the subprotocol `bearer.<token>` beside `threadline` —
/// never in the URL, which reaches logs.
async fn socket(cx: Ctx) -> ApiResult<Response> {
    let upgrade = cx.header("upgrade").unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Err(ApiError::new(
            426,
            "upgrade_required",
            "This route is a WebSocket: send `Upgrade: websocket`.",
        )
        .with_header("upgrade", "websocket"));
    }
    let user = authenticate(&cx).await?;
    let id = path_id(&cx)?;
    let headers = Headers::new();
    headers.set("upgrade", "websocket")?;
    if let Some(offered) = cx.header("sec-websocket-protocol") {
        headers.set("sec-websocket-protocol", &offered)?;
    }
    forward(
        &cx,
        &id,
        "/ws",
        &user.user_id,
        headers,
        WorkerMethod::Get,
        None,
    )
    .await
}

/// A streamed send: the conversation's object runs the turn and answers the stream (the
/// send's own listener). A new conversation's id is chosen here, to name its object.
pub async fn send_streamed(
    cx: &Ctx,
    user_id: &str,
    input: &ChatInput,
    body: Vec<u8>,
) -> ApiResult<Response> {
    let (id, new) = match &input.conversation_id {
        Some(id) => (id.clone(), false),
        None => (new_id(SystemClock.now_ms())?, true),
    };
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    if new {
        headers.set(NEW_HEADER, "1")?;
    }
    forward(
        cx,
        &id,
        "/send",
        user_id,
        headers,
        WorkerMethod::Post,
        Some(body),
    )
    .await
}

/// A request to conversation `id`'s object, naming the caller.
async fn forward(
    cx: &Ctx,
    id: &str,
    op: &str,
    user_id: &str,
    headers: Headers,
    method: WorkerMethod,
    body: Option<Vec<u8>>,
) -> ApiResult<Response> {
    headers.set(USER_HEADER, user_id)?;
    headers.set(CONVERSATION_HEADER, id)?;
    headers.set("x-request-id", &cx.request_id)?;
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers);
    if let Some(body) = body {
        let array = worker::js_sys::Uint8Array::from(body.as_slice());
        init.with_body(Some(array.into()));
    }
    let request = Request::new_with_init(&format!("https://conversation.object{op}"), &init)?;
    let stub = cx
        .env
        .durable_object(BINDING)?
        .id_from_name(id)?
        .get_stub()?;
    let response = stub.fetch_with_request(request).await?;
    // The object's response comes with immutable headers; the pipeline adds its own
    // (request id, CORS), so the answer gets a copy. The body streams through untouched.
    let copy = Headers::new();
    for (name, value) in response.headers().entries() {
        copy.set(&name, &value)?;
    }
    let (builder, body) = response.into_parts();
    Ok(builder.with_headers(copy).body(body))
}
