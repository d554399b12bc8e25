//! The chat turn: one message in, one reply out, whatever way it ends.
//!
//! 1. Read the conversation with its recent history — another user's is a 404 — or prepare
//!    the new one.
//! 2. Plan the reply ([`super::plan`]): an unusable model is a 422 before anything is stored.
//! 3. Read older history while the budget has room for it.
//! 4. Store the user's message (with the new conversation, or with the title its first
//!    message gives) — always before the model is called, so a provider outage never loses it.
//!    A first message with `TITLE_MODEL` set also starts the background title job.
//! 5. Ask the model with the system prompt and the history that fits the budget
//!    ([`super::budget`]). Streamed: the answer is the [`ReplyRelay`], and the
//!    [`Recorder`](super::reply::Recorder), started in the background before the relay is
//!    returned, stores the reply however it ends. Not streamed: wait for the whole reply,
//!    store it, answer with both messages; a model failure is the model's error (the user's
//!    message stays).
//!
//! The turn is written over three small seams so every path runs natively under
//! `cargo test` with in-memory fakes: a [`ConversationRepository`] (D1 in the worker), a
//! [`ModelClient`] (the provider client in the worker) and a [`Background`] runner
//! (`ctx.wait_until` in the worker). The handlers in [`super::routes`] build the real ones.

use std::rc::Rc;

use futures::future::LocalBoxFuture;
use serde::Serialize;

use super::budget::{estimate_tokens, fit_to_budget, MESSAGE_OVERHEAD_TOKENS};
use super::events::ChatStreamEvent;
use super::input::ChatInput;
use super::plan::{plan_reply, Overrides, ReplyPlan};
use super::reply::{reply_pair, Connect, Keepalive, ReplyRelay, ReplySetup, ReplySink};
use super::settings::ChatSettings;
use crate::conversations::cursor::{MessageCursor, Order};
use crate::conversations::input::{HistoryQuery, NewConversation, MAX_MESSAGE_PAGE};
use crate::conversations::model::{
    AssistantReply, Conversation, Message, MessageStatus, TitleSource,
};
use crate::conversations::store::{Destination, UserMessage};
use crate::conversations::title::{clean_model_title, title_from_message, title_request};
use crate::http::error::{ApiError, ApiResult};
use crate::platform::clock::Clock;
use crate::platform::ids::new_id;
use crate::platform::logging::{LogLevel, LogLine};
use crate::providers::client::disconnect::ClientDisconnect;
use crate::providers::settings::ProviderSettings;
use crate::providers::wire::{ChatMessage, ChatRequest, Completion, Role};

/// The conversations and messages a turn reads and writes, for one user at a time.
pub trait ConversationRepository {
    /// The conversation and up to `page.limit + 1` of its messages from `page.after`;
    /// `None` when it is not the user's.
    fn history_page<'a>(
        &'a self,
        user_id: &'a str,
        id: &'a str,
        page: HistoryQuery,
    ) -> LocalBoxFuture<'a, ApiResult<Option<(Conversation, Vec<Message>)>>>;

    /// Stores the user's message as `to` says, in one transaction, and reads the
    /// conversation back; `None` when it is not the user's.
    fn add_user_message<'a>(
        &'a self,
        user_id: &'a str,
        to: Destination<'a>,
        message: &'a UserMessage,
    ) -> LocalBoxFuture<'a, ApiResult<Option<(Conversation, Message)>>>;

    /// Stores a reply; 404 when the conversation is gone.
    fn add_reply<'a>(
        &'a self,
        user_id: &'a str,
        reply: AssistantReply,
    ) -> LocalBoxFuture<'a, ApiResult<Message>>;

    /// The user's conversation `id`, if it is theirs.
    fn conversation<'a>(
        &'a self,
        user_id: &'a str,
        id: &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<Option<Conversation>>>;

    /// Replaces the first-line title `from` with a model's `to`, unless it changed meanwhile.
    fn replace_generated_title<'a>(
        &'a self,
        user_id: &'a str,
        id: &'a str,
        from: &'a str,
        to: &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<bool>>;
}

/// A whole reply and the model that gave it (after any fallback).
#[derive(Debug, Clone, PartialEq)]
pub struct Completed {
    pub model: String,
    pub completion: Completion,
}

/// The model a turn calls.
pub trait ModelClient {
    /// Starts a streamed reply; the future completes once output has begun (or failed).
    fn stream(self: Rc<Self>, model: String, request: ChatRequest) -> Connect;

    /// Waits for a whole reply.
    fn complete(
        self: Rc<Self>,
        model: String,
        request: ChatRequest,
    ) -> LocalBoxFuture<'static, ApiResult<Completed>>;

    /// Whether the client of this request has gone (shared with the reply's recorder).
    fn disconnect(&self) -> ClientDisconnect;
}

/// Runs work that must finish even after the response has been sent.
pub trait Background {
    fn spawn(&self, job: LocalBoxFuture<'static, ()>);
}

/// What a turn needs besides its seams.
pub struct Turn<'a> {
    pub user_id: &'a str,
    pub input: ChatInput,
    pub chat: &'a ChatSettings,
    pub providers: &'a ProviderSettings,
    pub request_id: &'a str,
    pub log_level: LogLevel,
    pub clock: Rc<dyn Clock>,
    /// The idle comments of a streamed reply (`None`: `STREAM_KEEPALIVE_MS=0`).
    pub keepalive: Option<Keepalive>,
}

/// The answer to a send that is not streamed.
#[derive(Debug, Serialize)]
pub struct Sent {
    pub conversation: Conversation,
    pub user_message: Message,
    pub assistant_message: Message,
}

/// How a turn answers.
pub enum TurnReply {
    /// The Server-Sent Events body; the recorder already runs in the background.
    Streamed(ReplyRelay),
    Complete(Sent),
}

/// Stores replies in the user's conversations through the repository.
pub struct RepositorySink<R> {
    repository: Rc<R>,
    user_id: String,
}

impl<R: ConversationRepository> ReplySink for RepositorySink<R> {
    fn store(&self, reply: AssistantReply) -> LocalBoxFuture<'_, ApiResult<Message>> {
        self.repository.add_reply(&self.user_id, reply)
    }
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
    repository: &impl ConversationRepository,
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
        let Some((_, mut rows)) = repository.history_page(user_id, id, page).await? else {
            return Err(ApiError::not_found());
        };
        more = rows.len() > MAX_MESSAGE_PAGE;
        rows.truncate(MAX_MESSAGE_PAGE);
        history.extend(rows);
    }
    Ok(())
}

/// The conversation as it is before the message, its history (newest first), whether older
/// history exists, and, for a new one, what will be created.
struct Before {
    conversation: Conversation,
    history: Vec<Message>,
    more: bool,
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

async fn load_before(
    repository: &impl ConversationRepository,
    user_id: &str,
    input: &ChatInput,
    now: u64,
) -> ApiResult<Before> {
    match &input.conversation_id {
        Some(id) => {
            let first_page = HistoryQuery {
                after: MessageCursor::start(Order::Desc),
                limit: MAX_MESSAGE_PAGE,
            };
            let (conversation, mut history) = repository
                .history_page(user_id, id, first_page)
                .await?
                .ok_or_else(ApiError::not_found)?;
            let more = history.len() > MAX_MESSAGE_PAGE;
            history.truncate(MAX_MESSAGE_PAGE);
            Ok(Before {
                conversation,
                history,
                more,
                new: None,
            })
        }
        None => {
            let (new, conversation) = new_conversation(input, &new_id(now)?, now);
            Ok(Before {
                conversation,
                history: Vec::new(),
                more: false,
                new: Some(new),
            })
        }
    }
}

/// Runs one chat turn (see the module documentation).
pub async fn run<R, M>(
    turn: Turn<'_>,
    repository: Rc<R>,
    model: Rc<M>,
    background: &dyn Background,
) -> ApiResult<TurnReply>
where
    R: ConversationRepository + 'static,
    M: ModelClient + 'static,
{
    let user_id = turn.user_id;
    let input = &turn.input;
    let now = turn.clock.now_ms();

    // 1. The conversation and the first page of its history (newest first).
    let Before {
        conversation,
        mut history,
        more,
        new,
    } = load_before(repository.as_ref(), user_id, input, now).await?;

    // 2–3. The reply's model, prompt and budget; then as much history as the budget may use.
    let overrides = Overrides {
        model: input.model.as_deref(),
        mode: input.mode.as_deref(),
        system_prompt: input.system_prompt.as_deref(),
    };
    let plan = plan_reply(&conversation, overrides, turn.chat, turn.providers)?;
    read_older(
        repository.as_ref(),
        user_id,
        &conversation.id,
        &mut history,
        more,
        plan.budget_tokens,
    )
    .await?;
    history.reverse();

    // 4. The user's message, before the model is called.
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
    let (stored_conversation, stored_message) = repository
        .add_user_message(user_id, destination, &user_message)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let titled_now = new.is_some() || conversation.title_source == TitleSource::Default;
    if titled_now {
        if let Some(title_model) = turn.chat.title_model.clone() {
            background.spawn(Box::pin(title_job(
                model.clone(),
                repository.clone(),
                TitleJob {
                    user_id: user_id.to_string(),
                    model: title_model,
                    conversation_id: stored_conversation.id.clone(),
                    first_line_title: stored_conversation.title.clone(),
                    first_message: input.content.clone(),
                    request_id: turn.request_id.to_string(),
                    log_level: turn.log_level,
                    clock: turn.clock.clone(),
                },
            )));
        }
    }

    // 5. The model.
    let request = model_request(&turn, &plan, &history, &input.content);
    if input.stream {
        let (relay, recorder) = reply_pair(
            ReplySetup {
                opening: vec![ChatStreamEvent::UserMessage {
                    conversation: stored_conversation.clone(),
                    message: stored_message,
                }],
                connect: model.clone().stream(plan.model.clone(), request),
                disconnect: model.disconnect(),
                clock: turn.clock.clone(),
                message_id: new_id(now)?,
                conversation_id: stored_conversation.id.clone(),
                request_id: turn.request_id.to_string(),
                log_level: turn.log_level,
                keepalive: turn.keepalive.clone(),
            },
            RepositorySink {
                repository: repository.clone(),
                user_id: user_id.to_string(),
            },
        );
        // Started before the relay is returned, so the reply is recorded even when the
        // client has gone and the body is dropped.
        background.spawn(Box::pin(recorder.run()));
        return Ok(TurnReply::Streamed(relay));
    }

    let started = turn.clock.now_ms();
    let answer = model.clone().complete(plan.model.clone(), request).await?;
    let ended = turn.clock.now_ms();
    let assistant_message = repository
        .add_reply(
            user_id,
            AssistantReply {
                id: new_id(ended)?,
                conversation_id: stored_conversation.id.clone(),
                content: answer.completion.text,
                model: Some(answer.model),
                status: MessageStatus::Complete,
                usage: answer.completion.usage,
                latency_ms: Some(ended.saturating_sub(started)),
                created_at: ended,
            },
        )
        .await?;
    let conversation = repository
        .conversation(user_id, &stored_conversation.id)
        .await?
        .unwrap_or(stored_conversation);
    Ok(TurnReply::Complete(Sent {
        conversation,
        user_message: stored_message,
        assistant_message,
    }))
}

/// The model request: system prompt and the history that fits, then the new message.
fn model_request(
    turn: &Turn<'_>,
    plan: &ReplyPlan,
    history: &[Message],
    content: &str,
) -> ChatRequest {
    let mut turns: Vec<ChatMessage> = history
        .iter()
        .map(|m| ChatMessage::new(m.role, m.content.clone()))
        .collect();
    turns.push(ChatMessage::new(Role::User, content));
    let context = fit_to_budget(plan.system_prompt.as_deref(), &turns, plan.budget_tokens);
    LogLine::new(LogLevel::Debug, turn.clock.now_ms(), "chat context")
        .field("request_id", turn.request_id)
        .field("model", plan.model.as_str())
        .field("budget_tokens", plan.budget_tokens)
        .field("estimated_tokens", context.estimated_tokens)
        .field("messages", context.messages.len())
        .field("dropped", context.dropped)
        .emit(turn.log_level);
    ChatRequest {
        messages: context.messages,
        temperature: plan.settings.temperature,
        top_p: plan.settings.top_p,
        max_tokens: plan.settings.max_tokens,
        include_usage: true,
        ..ChatRequest::default()
    }
}

/// What the background title job needs.
struct TitleJob {
    user_id: String,
    model: String,
    conversation_id: String,
    first_line_title: String,
    first_message: String,
    request_id: String,
    log_level: LogLevel,
    clock: Rc<dyn Clock>,
}

/// Asks `TITLE_MODEL` for a title and puts it in place of the first-line one. Best effort:
/// failures are logged, never reported to the client.
async fn title_job<R: ConversationRepository, M: ModelClient>(
    model: Rc<M>,
    repository: Rc<R>,
    job: TitleJob,
) {
    let outcome = match model
        .complete(job.model.clone(), title_request(&job.first_message))
        .await
    {
        Ok(answer) => match clean_model_title(&answer.completion.text) {
            Some(title) => repository
                .replace_generated_title(
                    &job.user_id,
                    &job.conversation_id,
                    &job.first_line_title,
                    &title,
                )
                .await
                .map(|replaced| if replaced { "replaced" } else { "kept" }),
            None => Ok("unusable"),
        },
        Err(err) => Err(err),
    };
    let line = match &outcome {
        Ok(result) => LogLine::new(LogLevel::Debug, job.clock.now_ms(), "model title")
            .field("result", *result),
        Err(err) => LogLine::new(LogLevel::Warn, job.clock.now_ms(), "model title failed")
            .field("error_code", err.code)
            .field("error_detail", err.internal.clone().unwrap_or_default()),
    };
    line.field("request_id", job.request_id.as_str())
        .field("model", job.model.as_str())
        .emit(job.log_level);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::wire::Role;

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
