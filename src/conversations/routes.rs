//! The conversation routes. Handlers authenticate, validate with [`super::input`], call the
//! [`ConversationStore`] and shape the answer; nothing else happens here.
//!
//! The paths the replaced services' clients know for these are in [`crate::compat`].

use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::{Headers, Response};

use super::cursor::{ConversationCursor, MessageCursor, Order};
use super::export::{file_name, render_markdown, JsonExport, JSON_EXPORT_FORMAT};
use super::input::{
    recent_messages_limit, Choices, ConversationPatch, CreateConversationBody, ExportFormat,
    HistoryQuery, ListQuery, NewConversation, PatchConversationBody, TitleBody,
};
use super::model::{Conversation, Message, Page};
use super::store::ConversationStore;
use crate::auth::guard::authenticate;
use crate::http::ctx::{parse_json, require_media_type, Ctx};
use crate::http::error::{ApiError, ApiResult};
use crate::http::response;
use crate::http::router::handler;
use crate::http::router::{Method, Route};
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::ids::{is_valid_id, new_id};

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::Get, "/api/conversations", handler!(list)),
        Route::new(Method::Post, "/api/conversations", handler!(create)),
        Route::new(Method::Get, "/api/conversations/{id}", handler!(show)),
        Route::new(Method::Patch, "/api/conversations/{id}", handler!(update)),
        Route::new(Method::Delete, "/api/conversations/{id}", handler!(delete)),
        Route::new(
            Method::Put,
            "/api/conversations/{id}/title",
            handler!(rename),
        ),
        Route::new(
            Method::Get,
            "/api/conversations/{id}/messages",
            handler!(history),
        ),
        Route::new(
            Method::Get,
            "/api/conversations/{id}/export",
            handler!(export),
        ),
        Route::new(Method::Get, "/api/chat/stats", handler!(stats)),
    ]
}

/// The `{id}` of the path. An id this service could not have issued names nothing: 404, the
/// same answer as for a missing conversation or someone else's.
pub fn path_id(cx: &Ctx) -> ApiResult<String> {
    let id = cx.param("id")?;
    if is_valid_id(id) {
        Ok(id.to_string())
    } else {
        Err(ApiError::not_found())
    }
}

fn choices(cx: &Ctx) -> Choices<'_> {
    Choices {
        modes: &cx.config.chat.modes,
        providers: &cx.config.providers,
    }
}

/// A JSON body, with unknown fields named in `param`.
async fn json_body<T: DeserializeOwned>(cx: &mut Ctx) -> ApiResult<T> {
    cx.json::<T>().await
}

/// A JSON body that may be left out entirely (an empty `POST` creates with defaults).
async fn optional_json_body<T: DeserializeOwned + Default>(cx: &mut Ctx) -> ApiResult<T> {
    let bytes = cx.body_bytes().await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    require_media_type(cx.header("content-type").as_deref(), "application/json")?;
    parse_json(&bytes)
}

/// One conversation with a page of its latest messages (oldest of them first).
#[derive(Serialize)]
struct ConversationDetail {
    #[serde(flatten)]
    conversation: Conversation,
    messages: Vec<Message>,
    /// Whether older messages exist; `messages_cursor` reads them
    /// (`GET …/messages?cursor=`, newest first).
    has_more_messages: bool,
    messages_cursor: Option<String>,
}

fn message_cursor(order: Order) -> impl Fn(&Message) -> String {
    move |m| MessageCursor { order, seq: m.seq }.encode()
}

/// GET /api/conversations — the caller's conversations, newest activity first, filtered by
/// `pinned`, `archived` and the full-text search `q`, a page at a time.
async fn list(cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let query = ListQuery::parse(&cx.query_pairs())?;
    let rows = ConversationStore::new(&cx)?
        .list(&principal.user_id, &query)
        .await?;
    let page = Page::from_rows(rows, query.limit, |c| {
        ConversationCursor {
            activity_at: c.activity_at(),
            id: c.id.clone(),
        }
        .encode()
    });
    response::json(200, &page)
}

/// POST /api/conversations — creates a conversation (all fields optional).
async fn create(mut cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let body: CreateConversationBody = optional_json_body(&mut cx).await?;
    let new = NewConversation::from_body(body, choices(&cx))?;
    let now = SystemClock.now_ms();
    let id = new_id(now)?;
    let conversation = ConversationStore::new(&cx)?
        .create(&principal.user_id, &id, &new, now)
        .await?;
    let mut response = response::json(201, &conversation)?;
    response
        .headers_mut()
        .set("location", &format!("/api/conversations/{id}"))?;
    Ok(response)
}

/// GET /api/conversations/{id} — the conversation and its latest `limit` messages.
async fn show(cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let id = path_id(&cx)?;
    let limit = recent_messages_limit(&cx.query_pairs())?;
    let page = HistoryQuery {
        after: MessageCursor::start(Order::Desc),
        limit,
    };
    let (conversation, messages) = ConversationStore::new(&cx)?
        .get_with_messages(&principal.user_id, &id, page)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let mut page = Page::from_rows(messages, limit, message_cursor(Order::Desc));
    page.data.reverse();
    response::json(
        200,
        &ConversationDetail {
            conversation,
            messages: page.data,
            has_more_messages: page.has_more,
            messages_cursor: page.next_cursor,
        },
    )
}

/// GET /api/conversations/{id}/messages — the history, a page at a time (`order=asc`, the
/// default, from the first message; `desc` from the latest).
async fn history(cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let id = path_id(&cx)?;
    let query = HistoryQuery::parse(&cx.query_pairs())?;
    let (_, messages) = ConversationStore::new(&cx)?
        .get_with_messages(&principal.user_id, &id, query)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let page = Page::from_rows(messages, query.limit, message_cursor(query.after.order));
    response::json(200, &page)
}

async fn apply_patch(
    cx: &Ctx,
    user_id: &str,
    id: &str,
    patch: ConversationPatch,
) -> ApiResult<Response> {
    let conversation = ConversationStore::new(cx)?
        .update(user_id, id, &patch, SystemClock.now_ms())
        .await?
        .ok_or_else(ApiError::not_found)?;
    response::json(200, &conversation)
}

/// PATCH /api/conversations/{id} — rename, pin, archive, or change model, mode, system prompt
/// or settings; `null` clears a nullable field.
async fn update(mut cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let id = path_id(&cx)?;
    let body: PatchConversationBody = json_body(&mut cx).await?;
    let patch = ConversationPatch::from_body(body, choices(&cx))?;
    apply_patch(&cx, &principal.user_id, &id, patch).await
}

/// PUT /api/conversations/{id}/title — rename (kept for ChronoChat clients).
async fn rename(mut cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let id = path_id(&cx)?;
    let body: TitleBody = json_body(&mut cx).await?;
    let patch = ConversationPatch::title_only(&body.title)?;
    apply_patch(&cx, &principal.user_id, &id, patch).await
}

/// DELETE /api/conversations/{id} — the conversation, its messages and its search entries.
async fn delete(cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let id = path_id(&cx)?;
    if !ConversationStore::new(&cx)?
        .delete(&principal.user_id, &id)
        .await?
    {
        return Err(ApiError::not_found());
    }
    response::no_content()
}

/// GET /api/conversations/{id}/export — the whole conversation as a JSON or Markdown file.
async fn export(cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let id = path_id(&cx)?;
    let format = ExportFormat::parse(&cx.query_pairs())?;
    let (conversation, messages) = ConversationStore::new(&cx)?
        .all_messages(&principal.user_id, &id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let (body, content_type, extension) = match format {
        ExportFormat::Json => (
            serde_json::to_string_pretty(&JsonExport {
                format: JSON_EXPORT_FORMAT,
                exported_at: SystemClock.now_ms(),
                conversation: &conversation,
                messages: &messages,
            })
            .map_err(|e| ApiError::internal(format!("serialize export: {e}")))?,
            "application/json; charset=utf-8",
            "json",
        ),
        ExportFormat::Markdown => (
            render_markdown(&conversation, &messages),
            "text/markdown; charset=utf-8",
            "md",
        ),
    };
    let headers = Headers::new();
    headers.set("content-type", content_type)?;
    headers.set(
        "content-disposition",
        &format!(
            "attachment; filename=\"{}\"",
            file_name(&conversation, extension)
        ),
    )?;
    Ok(Response::ok(body)?.with_headers(headers))
}

/// GET /api/chat/stats — the caller's conversation and message counts and tokens by model.
async fn stats(cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let stats = ConversationStore::new(&cx)?
        .stats(&principal.user_id)
        .await?;
    response::json(200, &stats)
}
