//! Sending a message: the handlers behind every send route.
//!
//! 1. Authenticate and apply the per-user chat limit (`RATE_LIMIT_CHAT`, 429 + Retry-After).
//! 2. Validate the body ([`super::input`]).
//! 3. Read the conversation with its recent history — another user's is a 404 — or prepare
//!    the new one.
//! 4. Plan the reply ([`super::plan`]): an unusable model is a 422 before anything is stored.
//! 5. Store the user's message (with the new conversation, or the title its first message
//!    gives) — always before the provider is called, so a provider outage never loses it.
//! 6. Ask the provider with the system prompt and the history that fits the budget
//!    ([`super::budget`]). Streamed: the response is the [`ReplyRelay`], and the
//!    [`Recorder`](super::reply::Recorder) stores the reply from `ctx.wait_until` however it
//!    ends. Not streamed: wait for the whole reply, store it, answer with both messages; a
//!    provider failure is the provider's error envelope (the user's message stays).

use std::rc::Rc;

use serde::Serialize;
use worker::Response;

use super::budget::{estimate_tokens, fit_to_budget, MESSAGE_OVERHEAD_TOKENS};
use super::events::ChatStreamEvent;
use super::input::{ChatBody, ChatInput};
use super::plan::{plan_reply, Overrides, ReplyPlan};
use super::reply::{
    reply_pair, AssistantReply, Connect, Connected, Keepalive, ReplySetup, ReplySink,
};
use super::store::{ChatStore, Destination, UserMessage};
use super::titles::{clean_model_title, title_request};
use crate::auth::guard::authenticate;
use crate::config::LogLevel;
use crate::context::Ctx;
use crate::conversations::cursor::{MessageCursor, Order};
use crate::conversations::input::{HistoryQuery, NewConversation, MAX_MESSAGE_PAGE};
use crate::conversations::model::{Conversation, Message, MessageStatus, TitleSource};
use crate::conversations::routes::path_id;
use crate::conversations::store::ConversationStore;
use crate::conversations::title::title_from_message;
use crate::error::{ApiError, ApiResult};
use crate::http;
use crate::ids::new_id;
use crate::logging::LogLine;
use crate::platform::{Clock, SystemClock};
use crate::provider_client::{event_stream_response, LogTarget, ProviderClient};
use crate::providers::{ChatMessage, ChatRequest};
use crate::rate_limit;

/// POST /api/conversations/{id}/messages — sends a message in a conversation (also
/// `POST /api/chats/{id}/messages`, LLM_MODES).
pub async fn send_in_conversation(cx: Ctx) -> ApiResult<Response> {
    let id = path_id(&cx)?;
    send(cx, Some(id), false).await
}

/// POST /api/chat — sends a message, in a new conversation unless `conversation_id` names
/// one (also `POST /chat`, ThreadFlow, and `POST /api/chat/send`, ChronoChat).
pub async fn chat(cx: Ctx) -> ApiResult<Response> {
    send(cx, None, false).await
}

/// POST /api/chat/stream — as `POST /api/chat`, always streamed.
pub async fn chat_stream(cx: Ctx) -> ApiResult<Response> {
    send(cx, None, true).await
}

/// The answer to a send that is not streamed.
#[derive(Serialize)]
struct Sent {
    conversation: Conversation,
    user_message: Message,
    assistant_message: Message,
}

/// The estimated tokens of stored messages, as the budget counts them.
fn history_tokens(messages: &[Message]) -> u32 {
    messages.iter().fold(0u32, |sum, m| {
        sum.saturating_add(estimate_tokens(&m.content))
            .saturating_add(MESSAGE_OVERHEAD_TOKENS)
    })
}

/// Reads older pages of history (newest first) until they hold more than `budget` tokens or
/// the conversation's start. `history` holds the first page and `more` says whether it was
/// full.
async fn read_older(
    conversations: &ConversationStore,
    user_id: &str,
    id: &str,
    history: &mut Vec<Message>,
    mut more: bool,
    budget: u32,
) -> ApiResult<()> {
    while more && history_tokens(history) <= budget {
        let Some(oldest) = history.last().map(|m| m.seq) else {
            break;
        };
        let page = HistoryQuery {
            after: MessageCursor {
                order: Order::Desc,
                seq: oldest,
            },
            limit: MAX_MESSAGE_PAGE,
        };
        let Some((_, mut rows)) = conversations.get_with_messages(user_id, id, page).await? else {
            return Err(ApiError::not_found());
        };
        more = rows.len() > MAX_MESSAGE_PAGE;
        rows.truncate(MAX_MESSAGE_PAGE);
        history.extend(rows);
    }
    Ok(())
}

/// The conversation as it is before the message, its history (oldest first) and, for a new
/// one, what will be created.
struct Before {
    conversation: Conversation,
    history: Vec<Message>,
    new: Option<NewConversation>,
}

fn new_conversation(input: &ChatInput, id: &str, now: u64) -> (NewConversation, Conversation) {
    let new = NewConversation {
        title: title_from_message(&input.content),
        title_source: TitleSource::Generated,
        model: input.model.clone(),
        mode: input.mode.clone(),
        system_prompt: input.system_prompt.clone(),
        settings: Default::default(),
    };
    let conversation = Conversation {
        id: id.to_string(),
        title: new.title.clone(),
        title_source: new.title_source,
        model: new.model.clone(),
        mode: new.mode.clone(),
        system_prompt: new.system_prompt.clone(),
        settings: new.settings.clone(),
        pinned: false,
        archived: false,
        created_at: now,
        updated_at: now,
        last_message_at: None,
        message_count: 0,
    };
    (new, conversation)
}

async fn send(mut cx: Ctx, path: Option<String>, force_stream: bool) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    let user_id = principal.user_id;
    rate_limit::enforce(&cx, "chat", &user_id, cx.config.rate_limits.chat_per_user).await?;
    let body: ChatBody = cx.json().await?;
    let input = ChatInput::from_body(
        body,
        path.as_deref(),
        force_stream,
        cx.config.chat.max_message_chars,
        &cx.config.chat.modes,
    )?;
    let now = SystemClock.now_ms();
    let conversations = ConversationStore::new(&cx)?;

    // 3. The conversation and the first page of its history (newest first).
    let (before, more) = match &input.conversation_id {
        Some(id) => {
            let first_page = HistoryQuery {
                after: MessageCursor::start(Order::Desc),
                limit: MAX_MESSAGE_PAGE,
            };
            let (conversation, mut history) = conversations
                .get_with_messages(&user_id, id, first_page)
                .await?
                .ok_or_else(ApiError::not_found)?;
            let more = history.len() > MAX_MESSAGE_PAGE;
            history.truncate(MAX_MESSAGE_PAGE);
            let before = Before {
                conversation,
                history,
                new: None,
            };
            (before, more)
        }
        None => {
            let (new, conversation) = new_conversation(&input, &new_id(now)?, now);
            let before = Before {
                conversation,
                history: Vec::new(),
                new: Some(new),
            };
            (before, false)
        }
    };
    let Before {
        conversation,
        mut history,
        new,
    } = before;

    // 4. The reply's model, prompt and budget; then as much history as the budget may use.
    let overrides = Overrides {
        model: input.model.as_deref(),
        mode: input.mode.as_deref(),
        system_prompt: input.system_prompt.as_deref(),
    };
    let plan = plan_reply(
        &conversation,
        overrides,
        &cx.config.chat,
        &cx.config.providers,
    )?;
    read_older(
        &conversations,
        &user_id,
        &conversation.id,
        &mut history,
        more,
        plan.budget_tokens,
    )
    .await?;
    history.reverse();

    // 5. The user's message, before the provider is called.
    let client = Rc::new(ProviderClient::new(&cx));
    let store = ChatStore::new(&cx, &user_id)?;
    let user_message = UserMessage {
        id: new_id(now)?,
        content: input.content.clone(),
        created_at: now,
    };
    let first_line_title = title_from_message(&input.content);
    let destination = match &new {
        Some(new) => Destination::New {
            id: &conversation.id,
            new,
        },
        None => Destination::Existing {
            id: &conversation.id,
            title: &first_line_title,
        },
    };
    let (stored_conversation, stored_message) = store
        .add_user_message(destination, &user_message)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let titled_now = new.is_some() || conversation.title_source == TitleSource::Default;
    if titled_now {
        if let Some(title_model) = cx.config.chat.title_model.clone() {
            let job = title_job(
                client.clone(),
                ChatStore::new(&cx, &user_id)?,
                title_model,
                stored_conversation.id.clone(),
                stored_conversation.title.clone(),
                input.content.clone(),
                LogTarget {
                    request_id: cx.request_id.clone(),
                    level: cx.config.log_level,
                },
            );
            cx.worker_ctx.wait_until(job);
        }
    }

    // 6. The provider.
    let request = provider_request(&cx, &plan, &history, &input.content);
    if input.stream {
        let connect: Connect = {
            let client = client.clone();
            let model = plan.model.clone();
            Box::pin(async move {
                let stream = client.stream(&model, request).await?;
                Ok(Connected {
                    model: stream.model().id.clone(),
                    provider: stream.model().provider.clone(),
                    events: Box::pin(stream),
                })
            })
        };
        let (relay, recorder) = reply_pair(
            ReplySetup {
                opening: vec![ChatStreamEvent::UserMessage {
                    conversation: stored_conversation.clone(),
                    message: stored_message,
                }],
                connect,
                disconnect: client.disconnect().clone(),
                clock: Rc::new(SystemClock),
                message_id: new_id(now)?,
                conversation_id: stored_conversation.id.clone(),
                request_id: cx.request_id.clone(),
                log_level: cx.config.log_level,
                keepalive: (cx.config.chat.stream_keepalive_ms > 0).then(|| Keepalive {
                    interval_ms: cx.config.chat.stream_keepalive_ms,
                    sleep: Rc::new(|ms| {
                        Box::pin(worker::Delay::from(std::time::Duration::from_millis(ms)))
                    }),
                }),
            },
            store,
        );
        // Registered before the response is returned, so the reply is recorded even when the
        // client has gone and the body is dropped.
        cx.worker_ctx.wait_until(recorder.run());
        return event_stream_response(relay);
    }

    let started = SystemClock.now_ms();
    let answer = client.complete(&plan.model, request).await?;
    let ended = SystemClock.now_ms();
    let assistant_message = store
        .store(AssistantReply {
            id: new_id(ended)?,
            conversation_id: stored_conversation.id.clone(),
            content: answer.completion.text,
            model: Some(answer.model.id),
            status: MessageStatus::Complete,
            usage: answer.completion.usage,
            latency_ms: Some(ended.saturating_sub(started)),
            created_at: ended,
        })
        .await?;
    let conversation = store
        .conversation(&stored_conversation.id)
        .await?
        .unwrap_or(stored_conversation);
    http::json(
        200,
        &Sent {
            conversation,
            user_message: stored_message,
            assistant_message,
        },
    )
}

/// The provider request: system prompt and the history that fits, then the new message.
fn provider_request(cx: &Ctx, plan: &ReplyPlan, history: &[Message], content: &str) -> ChatRequest {
    let mut turns: Vec<ChatMessage> = history
        .iter()
        .map(|m| ChatMessage::new(m.role, m.content.clone()))
        .collect();
    turns.push(ChatMessage::new(crate::providers::Role::User, content));
    let context = fit_to_budget(plan.system_prompt.as_deref(), &turns, plan.budget_tokens);
    LogLine::new(LogLevel::Debug, SystemClock.now_ms(), "chat context")
        .field("request_id", cx.request_id.as_str())
        .field("model", plan.model.as_str())
        .field("budget_tokens", plan.budget_tokens)
        .field("estimated_tokens", context.estimated_tokens)
        .field("messages", context.messages.len())
        .field("dropped", context.dropped)
        .emit(cx.config.log_level);
    ChatRequest {
        messages: context.messages,
        temperature: plan.settings.temperature,
        top_p: plan.settings.top_p,
        max_tokens: plan.settings.max_tokens,
        include_usage: true,
        ..ChatRequest::default()
    }
}

/// Asks `TITLE_MODEL` for a title and puts it in place of the first-line one. Best effort:
/// failures are logged, never reported to the client.
async fn title_job(
    client: Rc<ProviderClient>,
    store: ChatStore,
    model: String,
    conversation_id: String,
    first_line_title: String,
    first_message: String,
    log: LogTarget,
) {
    let outcome = match client.complete(&model, title_request(&first_message)).await {
        Ok(answer) => match clean_model_title(&answer.completion.text) {
            Some(title) => store
                .replace_generated_title(&conversation_id, &first_line_title, &title)
                .await
                .map(|replaced| if replaced { "replaced" } else { "kept" }),
            None => Ok("unusable"),
        },
        Err(err) => Err(err),
    };
    let line = match &outcome {
        Ok(result) => LogLine::new(LogLevel::Debug, SystemClock.now_ms(), "model title")
            .field("result", *result),
        Err(err) => LogLine::new(LogLevel::Warn, SystemClock.now_ms(), "model title failed")
            .field("error_code", err.code)
            .field("error_detail", err.internal.clone().unwrap_or_default()),
    };
    line.field("request_id", log.request_id.as_str())
        .field("model", model.as_str())
        .emit(log.level);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Role;

    fn input(content: &str) -> ChatInput {
        ChatInput {
            content: content.into(),
            conversation_id: None,
            model: Some("openai/gpt-4o".into()),
            mode: Some("similar_questions".into()),
            system_prompt: Some("Be terse.".into()),
            stream: false,
        }
    }

    #[test]
    fn a_new_conversation_is_titled_from_the_first_line_and_keeps_the_body_s_choices() {
        let (new, conversation) = new_conversation(&input("\n  Plan a trip\nto Lisbon"), "c1", 7);
        assert_eq!(new.title, "Plan a trip");
        assert_eq!(new.title_source, TitleSource::Generated);
        assert_eq!(new.model.as_deref(), Some("openai/gpt-4o"));
        assert_eq!(new.mode.as_deref(), Some("similar_questions"));
        assert_eq!(new.system_prompt.as_deref(), Some("Be terse."));
        assert_eq!(
            (
                conversation.id.as_str(),
                conversation.created_at,
                conversation.message_count
            ),
            ("c1", 7, 0)
        );
        assert_eq!(conversation.title, new.title);
    }

    #[test]
    fn history_tokens_count_like_the_budget() {
        let message = |content: &str| Message {
            id: String::new(),
            conversation_id: String::new(),
            role: Role::User,
            content: content.into(),
            model: None,
            status: MessageStatus::Complete,
            usage: None,
            latency_ms: None,
            created_at: 0,
            seq: 0,
        };
        assert_eq!(history_tokens(&[]), 0);
        assert_eq!(
            history_tokens(&[message("abcd"), message("日本")]),
            1 + 2 + 2 * MESSAGE_OVERHEAD_TOKENS
        );
    }
}
