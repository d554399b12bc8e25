//! The send routes.
//!
//! Handlers authenticate, apply the per-user chat limit (`RATE_LIMIT_CHAT`, 429 +
//! Retry-After), validate the body ([`super::input`]), build the worker's side of the turn's
//! seams — D1, the provider client, `ctx.wait_until` — and hand over to [`super::turn`].
//! Bodies accept every replaced service's field names; their paths are in [`crate::compat`].

use std::rc::Rc;

use futures::future::LocalBoxFuture;
use worker::Response;

use super::input::{ChatBody, ChatInput};
use super::reply::{Connect, Connected, Keepalive};
use super::turn::{
    self, Background, Completed, ConversationRepository, HistoryPage, ModelClient,
    StoredUserMessage, Turn, TurnReply,
};
use crate::auth::guard::authenticate;
use crate::conversations::input::HistoryQuery;
use crate::conversations::model::{AssistantReply, Conversation, Message};
use crate::conversations::routes::path_id;
use crate::conversations::store::{ConversationStore, Destination, UserMessage};
use crate::http::ctx::{parse_json, require_media_type, Ctx};
use crate::http::error::ApiResult;
use crate::http::response;
use crate::http::router::{handler, BodyLimit, Method, Route};
use crate::platform::clock::SystemClock;
use crate::providers::client::disconnect::ClientDisconnect;
use crate::providers::client::{event_stream_response, ProviderClient};
use crate::providers::wire::ChatRequest;
use crate::rate_limit::kv as rate_limit;

pub fn routes() -> Vec<Route> {
    use Method::*;
    vec![
        // Messages may carry inline images: bodies up to MAX_BODY_BYTES + a base64 file.
        Route::new(
            Post,
            "/api/conversations/{id}/messages",
            handler!(send_in_conversation),
        )
        .with_body(BodyLimit::Media),
        Route::new(Post, "/api/chat", handler!(chat)).with_body(BodyLimit::Media),
        Route::new(Post, "/api/chat/stream", handler!(chat_stream)).with_body(BodyLimit::Media),
    ]
}

/// POST /api/conversations/{id}/messages — sends a message in a conversation.
async fn send_in_conversation(cx: Ctx) -> ApiResult<Response> {
    let id = path_id(&cx)?;
    send(cx, Some(id), false).await
}

/// POST /api/chat — sends a message, in a new conversation unless `conversation_id` names
/// one.
async fn chat(cx: Ctx) -> ApiResult<Response> {
    send(cx, None, false).await
}

/// POST /api/chat/stream — as `POST /api/chat`, always streamed.
async fn chat_stream(cx: Ctx) -> ApiResult<Response> {
    send(cx, None, true).await
}

/// Sends a message: in the conversation of the path, else the body's `conversation_id`,
/// else a new one; streamed when the body asks or `force_stream`.
pub(crate) async fn send(
    mut cx: Ctx,
    path: Option<String>,
    force_stream: bool,
) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let user_id = principal.user_id;
    rate_limit::enforce(&cx, "chat", &user_id, cx.config.rate_limits.chat_per_user).await?;
    // Read once here and kept: a streamed send hands the body to the conversation's object.
    require_media_type(cx.header("content-type").as_deref(), "application/json")?;
    let bytes = cx.body_bytes().await?;
    let body: ChatBody = parse_json(&bytes)?;
    let input = ChatInput::from_body(
        body,
        path.as_deref(),
        force_stream,
        cx.config.chat.max_message_chars,
        cx.config.files.max_file_size,
        &cx.config.chat.modes,
    )?;
    if input.stream {
        return crate::live::routes::send_streamed(&cx, &user_id, &input, bytes).await;
    }
    let input = super::attachments::read_attachments(&cx, &user_id, input).await?;
    let repository = Rc::new(ConversationStore::new(&cx)?);
    let model = Rc::new(ProviderClient::new(&cx));
    let keepalive_ms = cx.config.chat.stream_keepalive_ms;
    let turn = Turn {
        user_id: &user_id,
        generated_media: Rc::new(crate::chat::generated::FilesMedia::new(&cx)?),
        input,
        chat: &cx.config.chat,
        providers: &cx.config.providers,
        request_id: &cx.request_id,
        log_level: cx.config.log_level,
        clock: Rc::new(SystemClock),
        keepalive: (keepalive_ms > 0).then(|| Keepalive {
            interval_ms: keepalive_ms,
            sleep: Rc::new(|ms| crate::platform::timer::sleep(ms)),
        }),
        new_conversation_id: None,
    };
    match turn::run(turn, repository, model, &WaitUntil(&cx)).await? {
        TurnReply::Streamed(relay) => event_stream_response(relay),
        TurnReply::Complete(sent) => response::json(200, &sent),
    }
}

/// `ctx.wait_until`: the job runs to the end even after the response has been sent.
struct WaitUntil<'a>(&'a Ctx);

impl Background for WaitUntil<'_> {
    fn spawn(&self, job: LocalBoxFuture<'static, ()>) {
        self.0.worker_ctx.wait_until(job);
    }
}

impl ConversationRepository for ConversationStore {
    fn history_page<'a>(
        &'a self,
        user_id: &'a str,
        id: &'a str,
        page: HistoryQuery,
    ) -> LocalBoxFuture<'a, ApiResult<Option<HistoryPage>>> {
        Box::pin(self.get_with_messages(user_id, id, page))
    }

    fn add_user_message<'a>(
        &'a self,
        user_id: &'a str,
        to: Destination<'a>,
        message: &'a UserMessage,
    ) -> LocalBoxFuture<'a, ApiResult<Option<StoredUserMessage>>> {
        Box::pin(ConversationStore::add_user_message(
            self, user_id, to, message,
        ))
    }

    fn add_reply<'a>(
        &'a self,
        user_id: &'a str,
        reply: AssistantReply,
    ) -> LocalBoxFuture<'a, ApiResult<Message>> {
        Box::pin(ConversationStore::add_reply(self, user_id, reply))
    }

    fn conversation<'a>(
        &'a self,
        user_id: &'a str,
        id: &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<Option<Conversation>>> {
        Box::pin(self.get(user_id, id))
    }

    fn replace_generated_title<'a>(
        &'a self,
        user_id: &'a str,
        id: &'a str,
        from: &'a str,
        to: &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<bool>> {
        Box::pin(ConversationStore::replace_generated_title(
            self, user_id, id, from, to,
        ))
    }
}

impl ModelClient for ProviderClient {
    fn stream(self: Rc<Self>, model: String, request: ChatRequest) -> Connect {
        Box::pin(async move {
            let stream = ProviderClient::stream(&self, &model, request).await?;
            Ok(Connected {
                model: stream.model().id.clone(),
                provider: stream.model().provider.clone(),
                events: Box::pin(stream),
            })
        })
    }

    fn complete(
        self: Rc<Self>,
        model: String,
        request: ChatRequest,
    ) -> LocalBoxFuture<'static, ApiResult<Completed>> {
        Box::pin(async move {
            let answer = ProviderClient::complete(&self, &model, request).await?;
            Ok(Completed {
                model: answer.model.id,
                completion: answer.completion,
            })
        })
    }

    fn disconnect(&self) -> ClientDisconnect {
        ProviderClient::disconnect(self).clone()
    }
}
