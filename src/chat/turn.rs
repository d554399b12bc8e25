//! The chat turn: one message in, one reply out, whatever way it ends.
//!
//! 1. Read the conversation with its recent history — another user's is a 404 — or prepare
//!    the new one.
//! 2. Plan the reply ([`super::plan`]): an unusable model is a 422 before anything is stored.
//! 3. Read older history while the budget has room for it.
//! 4. Store the user's message (with the new conversation, or with the title its first
//!    message gives) **while** the model is asked ([`stored_while_asking`]): the write is not a
//!    round trip in front of the first token, yet nothing is answered before it is stored — a
//!    failed write abandons the model call (dropping it aborts the request) and is the
//!    answer, and a model failure waits for the write, so a provider outage never loses the
//!    message. A first message with `TITLE_MODEL` set also starts the background title job.
//! 5. The model, asked with the system prompt and the history that fits the budget
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
use super::generated::{reply_parts, GeneratedMedia};
use super::input::ChatInput;
use super::plan::{plan_reply, Overrides, ReplyPlan};
use super::reply::{reply_pair, Connect, Connected, Keepalive, ReplyRelay, ReplySetup, ReplySink};
use super::settings::ChatSettings;
use crate::conversations::cursor::{MessageCursor, Order};
use crate::conversations::input::{HistoryQuery, NewConversation, MAX_MESSAGE_PAGE};
use crate::conversations::model::{
    AssistantReply, Conversation, Message, MessageStatus, TitleSource,
};
use crate::conversations::parts::to_wire;
use crate::conversations::store::{Destination, UserMessage};
use crate::conversations::title::{clean_model_title, title_from_message, title_request};
use crate::http::error::{ApiError, ApiResult};
use crate::platform::clock::Clock;
use crate::platform::ids::new_id;
use crate::platform::logging::{LogLevel, LogLine};
use crate::providers::capability::check_model;
use crate::providers::client::disconnect::ClientDisconnect;
use crate::providers::settings::ProviderSettings;
use crate::providers::wire::{ChatMessage, ChatRequest, Completion, Media, Part, Role};

/// A conversation and one page of its messages.
pub type HistoryPage = (Conversation, Vec<Message>);

/// The conversation as it is after the user's message was stored, and that message.
pub type StoredUserMessage = (Conversation, Message);

/// The conversations and messages a turn reads and writes, for one user at a time.
pub trait ConversationRepository {
    /// The conversation and up to `page.limit + 1` of its messages from `page.after`;
    /// `None` when it is not the user's.
    fn history_page<'a>(
        &'a self,
        user_id: &'a str,
        id: &'a str,
        page: HistoryQuery,
    ) -> LocalBoxFuture<'a, ApiResult<Option<HistoryPage>>>;

    /// Stores the user's message as `to` says, in one transaction, and reads the
    /// conversation back; `None` when it is not the user's.
    fn add_user_message<'a>(
        &'a self,
        user_id: &'a str,
        to: Destination<'a>,
        message: &'a UserMessage,
    ) -> LocalBoxFuture<'a, ApiResult<Option<StoredUserMessage>>>;

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
    /// Where pictures the model generates are kept.
    pub generated_media: Rc<dyn GeneratedMedia>,
    pub user_id: &'a str,
    pub input: ChatInput,
    pub chat: &'a ChatSettings,
    pub providers: &'a ProviderSettings,
    pub request_id: &'a str,
    pub log_level: LogLevel,
    pub clock: Rc<dyn Clock>,
    /// The idle comments of a streamed reply (`None`: `STREAM_KEEPALIVE_MS=0`).
    pub keepalive: Option<Keepalive>,
    /// The id a new conversation gets (`None`: a fresh one). The conversation's Durable
    /// Object is named by it before the turn creates the conversation.
    pub new_conversation_id: Option<String>,
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
    Complete(Box<Sent>),
}

/// Stores replies in the user's conversations through the repository, their pictures
/// through the [`GeneratedMedia`] seam.
pub struct RepositorySink<R> {
    repository: Rc<R>,
    generated_media: Rc<dyn GeneratedMedia>,
    user_id: String,
}

impl<R: ConversationRepository> ReplySink for RepositorySink<R> {
    fn store(
        &self,
        reply: AssistantReply,
        media: Vec<Media>,
    ) -> LocalBoxFuture<'_, ApiResult<Message>> {
        Box::pin(store_reply(
            self.repository.as_ref(),
            self.generated_media.as_ref(),
            &self.user_id,
            reply,
            media,
        ))
    }
}

/// Keeps the reply's pictures, then stores it with them as parts.
async fn store_reply(
    repository: &impl ConversationRepository,
    generated_media: &dyn GeneratedMedia,
    user_id: &str,
    mut reply: AssistantReply,
    media: Vec<Media>,
) -> ApiResult<Message> {
    if !media.is_empty() {
        let kept = generated_media.keep(user_id, media).await;
        reply.parts = reply_parts(&reply.content, kept);
    }
    repository.add_reply(user_id, reply).await
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
    let conversation = new.conversation(id, now);
    (new, conversation)
}

async fn load_before(
    repository: &impl ConversationRepository,
    user_id: &str,
    input: &ChatInput,
    new_conversation_id: Option<&str>,
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
            let id = match new_conversation_id {
                Some(id) => id.to_string(),
                None => new_id(now)?,
            };
            let (new, conversation) = new_conversation(input, &id, now);
            Ok(Before {
                conversation,
                history: Vec::new(),
                more: false,
                new: Some(new),
            })
        }
    }
}

/// The model call of a turn, started or finished.
enum ModelCall {
    Stream(Connect),
    Whole(LocalBoxFuture<'static, ApiResult<Completed>>),
}

impl ModelCall {
    fn finished(self, result: CallResult) -> ModelCall {
        match (self, result) {
            (ModelCall::Stream(_), CallResult::Stream(r)) => {
                ModelCall::Stream(Box::pin(async { r }))
            }
            (ModelCall::Whole(_), CallResult::Whole(r)) => ModelCall::Whole(Box::pin(async { r })),
            (call, _) => call,
        }
    }

    /// Polls the call once more; its result if it finished.
    fn poll(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<CallResult> {
        use futures::FutureExt;
        match self {
            ModelCall::Stream(f) => f.poll_unpin(cx).map(CallResult::Stream),
            ModelCall::Whole(f) => f.poll_unpin(cx).map(CallResult::Whole),
        }
    }
}

enum CallResult {
    Stream(ApiResult<Connected>),
    Whole(ApiResult<Completed>),
}

/// Writes the user's message while the model call runs, and answers only once the message is
/// stored: a failed write (or a conversation gone meanwhile: 404) is the answer and drops the
/// call, which aborts it; a call that ends first — even in failure — waits for the write, so
/// the message is never lost. Returns the stored message and the call, finished or not.
async fn stored_while_asking(
    write: LocalBoxFuture<'_, ApiResult<Option<StoredUserMessage>>>,
    mut call: ModelCall,
) -> ApiResult<(StoredUserMessage, ModelCall)> {
    use futures::FutureExt;
    let mut write = write;
    let mut call_result = None;
    let written = futures::future::poll_fn(|cx| {
        if call_result.is_none() {
            if let std::task::Poll::Ready(result) = call.poll(cx) {
                call_result = Some(result);
            }
        }
        write.poll_unpin(cx)
    })
    .await;
    let stored = written?.ok_or_else(ApiError::not_found)?;
    let call = match call_result {
        Some(result) => call.finished(result),
        None => call,
    };
    Ok((stored, call))
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
    } = load_before(
        repository.as_ref(),
        user_id,
        input,
        turn.new_conversation_id.as_deref(),
        now,
    )
    .await?;

    // 2–3. The reply's model, prompt and budget; then as much history as the budget may use.
    let overrides = Overrides {
        model: input.model.as_deref(),
        mode: input.mode.as_deref(),
        system_prompt: input.system_prompt.as_deref(),
    };
    let plan = plan_reply(&conversation, overrides, turn.chat, turn.providers)?;
    // An image or document for a model that cannot take it: 422 before anything is stored.
    let asking = ChatMessage::with_parts(Role::User, input.model_parts.clone());
    if !asking.is_text_only() {
        check_model(turn.providers, &plan.model, std::slice::from_ref(&asking))?;
    }
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
        parts: input.parts.clone(),
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
    // 5 starts here: the model is asked while the message is written.
    let request = model_request(&turn, &plan, &history, &input.model_parts);
    let started = turn.clock.now_ms();
    let call = if input.stream {
        ModelCall::Stream(model.clone().stream(plan.model.clone(), request))
    } else {
        ModelCall::Whole(model.clone().complete(plan.model.clone(), request))
    };
    let write = repository.add_user_message(user_id, destination, &user_message);
    let ((stored_conversation, stored_message), call) = stored_while_asking(write, call).await?;
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

    // 5. The model's answer.
    if let ModelCall::Stream(connect) = call {
        let (relay, recorder) = reply_pair(
            ReplySetup {
                opening: vec![ChatStreamEvent::UserMessage {
                    conversation: stored_conversation.clone(),
                    message: stored_message,
                }],
                connect,
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
                generated_media: turn.generated_media.clone(),
                user_id: user_id.to_string(),
            },
        );
        // Started before the relay is returned, so the reply is recorded even when the
        // client has gone and the body is dropped.
        background.spawn(Box::pin(recorder.run()));
        return Ok(TurnReply::Streamed(relay));
    }

    let ModelCall::Whole(answer) = call else {
        return Err(ApiError::internal("a streamed call left unanswered"));
    };
    let answer = answer.await?;
    let ended = turn.clock.now_ms();
    let assistant_message = store_reply(
        repository.as_ref(),
        turn.generated_media.as_ref(),
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
            parts: Vec::new(),
        },
        answer.completion.media,
    )
    .await?;
    let conversation = repository
        .conversation(user_id, &stored_conversation.id)
        .await?
        .unwrap_or(stored_conversation);
    Ok(TurnReply::Complete(Box::new(Sent {
        conversation,
        user_message: stored_message,
        assistant_message,
    })))
}

/// The model request: system prompt and the history that fits, then the new message.
fn model_request(
    turn: &Turn<'_>,
    plan: &ReplyPlan,
    history: &[Message],
    new_message: &[Part],
) -> ChatRequest {
    let mut turns: Vec<ChatMessage> = history
        .iter()
        .map(|m| {
            if m.parts.is_empty() {
                ChatMessage::new(m.role, m.content.clone())
            } else {
                ChatMessage::with_parts(m.role, to_wire(&m.parts))
            }
        })
        .collect();
    turns.push(ChatMessage::with_parts(Role::User, new_message.to_vec()));
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
            parts: Vec::new(),
            model_parts: vec![Part::Text(content.into())],
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
            parts: Vec::new(),
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

    // ---- the chat turn against in-memory fakes --------------------------------------------

    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use futures::Stream;

    use super::super::reply::Connected;
    use crate::platform::clock::FixedClock;
    use crate::providers::wire::{
        FinishReason, ProviderError, ProviderErrorKind, ProviderEvent, Usage,
    };

    const USER: &str = "u1";

    /// Conversations and messages in memory, with D1's ownership rules.
    #[derive(Default)]
    struct MemoryRepository {
        conversations: RefCell<Vec<(String, Conversation)>>,
        messages: RefCell<Vec<Message>>,
        /// Fails every write after the user's message (a D1 outage half-way).
        fail_replies: bool,
        /// Fails the user's message itself (D1 down from the start).
        fail_user_messages: bool,
    }

    impl MemoryRepository {
        fn owned(&self, user_id: &str, id: &str) -> Option<Conversation> {
            self.conversations
                .borrow()
                .iter()
                .find(|(owner, c)| owner == user_id && c.id == id)
                .map(|(_, c)| c.clone())
        }

        fn push(&self, mut message: Message) -> Message {
            let mut messages = self.messages.borrow_mut();
            message.seq = messages.len() as u64 + 1;
            messages.push(message.clone());
            for (_, c) in self.conversations.borrow_mut().iter_mut() {
                if c.id == message.conversation_id {
                    c.message_count += 1;
                    c.last_message_at = Some(message.created_at);
                }
            }
            message
        }

        fn stored(&self) -> Vec<Message> {
            self.messages.borrow().clone()
        }
    }

    impl ConversationRepository for MemoryRepository {
        fn history_page<'a>(
            &'a self,
            user_id: &'a str,
            id: &'a str,
            page: HistoryQuery,
        ) -> LocalBoxFuture<'a, ApiResult<Option<HistoryPage>>> {
            Box::pin(async move {
                let Some(conversation) = self.owned(user_id, id) else {
                    return Ok(None);
                };
                let mut rows: Vec<Message> = self
                    .messages
                    .borrow()
                    .iter()
                    .filter(|m| m.conversation_id == id && m.seq < page.after.seq)
                    .cloned()
                    .collect();
                rows.sort_by_key(|m| std::cmp::Reverse(m.seq));
                rows.truncate(page.limit + 1);
                Ok(Some((conversation, rows)))
            })
        }

        fn add_user_message<'a>(
            &'a self,
            user_id: &'a str,
            to: Destination<'a>,
            message: &'a UserMessage,
        ) -> LocalBoxFuture<'a, ApiResult<Option<StoredUserMessage>>> {
            Box::pin(async move {
                if self.fail_user_messages {
                    return Err(ApiError::internal("D1 is down"));
                }
                let id = match to {
                    Destination::New { id, new } => {
                        let conversation = new.conversation(id, message.created_at);
                        self.conversations
                            .borrow_mut()
                            .push((user_id.to_string(), conversation));
                        id
                    }
                    Destination::Existing { id, title } => {
                        let mut conversations = self.conversations.borrow_mut();
                        let Some((_, c)) = conversations
                            .iter_mut()
                            .find(|(owner, c)| owner == user_id && c.id == id)
                        else {
                            return Ok(None);
                        };
                        if c.title_source == TitleSource::Default {
                            c.title = title.to_string();
                            c.title_source = TitleSource::Generated;
                        }
                        id
                    }
                };
                let stored = self.push(message.message(id));
                Ok(self.owned(user_id, id).map(|c| (c, stored)))
            })
        }

        fn add_reply<'a>(
            &'a self,
            user_id: &'a str,
            reply: AssistantReply,
        ) -> LocalBoxFuture<'a, ApiResult<Message>> {
            Box::pin(async move {
                if self.fail_replies {
                    return Err(ApiError::internal("D1 is down"));
                }
                if self.owned(user_id, &reply.conversation_id).is_none() {
                    return Err(ApiError::not_found());
                }
                Ok(self.push(reply.into_message()))
            })
        }

        fn conversation<'a>(
            &'a self,
            user_id: &'a str,
            id: &'a str,
        ) -> LocalBoxFuture<'a, ApiResult<Option<Conversation>>> {
            Box::pin(async move { Ok(self.owned(user_id, id)) })
        }

        fn replace_generated_title<'a>(
            &'a self,
            user_id: &'a str,
            id: &'a str,
            from: &'a str,
            to: &'a str,
        ) -> LocalBoxFuture<'a, ApiResult<bool>> {
            Box::pin(async move {
                let mut conversations = self.conversations.borrow_mut();
                match conversations
                    .iter_mut()
                    .find(|(owner, c)| owner == user_id && c.id == id)
                {
                    Some((_, c)) if c.title_source == TitleSource::Generated && c.title == from => {
                        c.title = to.to_string();
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            })
        }
    }

    /// How the scripted model answers.
    enum Answer {
        /// Streams these events, as `model` (another one than asked after a fallback).
        Events {
            model: &'static str,
            events: Vec<ProviderEvent>,
        },
        /// Fails before any output.
        Refuses(ApiError),
    }

    /// A model that answers from a script (one answer per model asked for) and records what
    /// it was asked.
    struct ScriptedModel {
        answers: RefCell<Vec<(&'static str, Answer)>>,
        asked: RefCell<Vec<(String, ChatRequest)>>,
        disconnect: ClientDisconnect,
    }

    impl ScriptedModel {
        fn new(answer: Answer) -> Rc<Self> {
            Self::answering(vec![("openai/gpt-4o", answer)])
        }

        fn answering(answers: Vec<(&'static str, Answer)>) -> Rc<Self> {
            Rc::new(ScriptedModel {
                answers: RefCell::new(answers),
                asked: RefCell::default(),
                disconnect: ClientDisconnect::default(),
            })
        }

        fn take(&self, model: String, request: ChatRequest) -> Answer {
            let mut answers = self.answers.borrow_mut();
            let answer = match answers.iter().position(|(m, _)| *m == model) {
                Some(i) => answers.remove(i).1,
                None => Answer::Refuses(ApiError::internal(format!("no answer for {model}"))),
            };
            self.asked.borrow_mut().push((model, request));
            answer
        }
    }

    impl ModelClient for ScriptedModel {
        fn stream(self: Rc<Self>, model: String, request: ChatRequest) -> Connect {
            let answer = self.take(model, request);
            Box::pin(async move {
                match answer {
                    Answer::Events { model, events } => Ok(Connected {
                        model: model.to_string(),
                        provider: model.split('/').next().unwrap_or_default().to_string(),
                        events: Box::pin(futures::stream::iter(events)),
                    }),
                    Answer::Refuses(err) => Err(err),
                }
            })
        }

        fn complete(
            self: Rc<Self>,
            model: String,
            request: ChatRequest,
        ) -> LocalBoxFuture<'static, ApiResult<Completed>> {
            let answer = self.take(model, request);
            Box::pin(async move {
                match answer {
                    Answer::Events { model, events } => {
                        let mut completion = Completion {
                            media: Vec::new(),
                            text: String::new(),
                            finish_reason: FinishReason::Stop,
                            usage: None,
                            provider_model: None,
                        };
                        for event in events {
                            match event {
                                ProviderEvent::TextDelta(t) => completion.text.push_str(&t),
                                ProviderEvent::Media(m) => completion.media.push(m),
                                ProviderEvent::Usage(u) => completion.usage = Some(u),
                                ProviderEvent::Finish(reason) => completion.finish_reason = reason,
                                ProviderEvent::Error(e) => {
                                    return Err(ApiError::new(502, "provider_error", e.message))
                                }
                            }
                        }
                        Ok(Completed {
                            model: model.to_string(),
                            completion,
                        })
                    }
                    Answer::Refuses(err) => Err(err),
                }
            })
        }

        fn disconnect(&self) -> ClientDisconnect {
            self.disconnect.clone()
        }
    }

    /// Background jobs, held until the test runs them.
    #[derive(Default)]
    struct Jobs(RefCell<Vec<LocalBoxFuture<'static, ()>>>);

    impl Background for Jobs {
        fn spawn(&self, job: LocalBoxFuture<'static, ()>) {
            self.0.borrow_mut().push(job);
        }
    }

    impl Jobs {
        /// Polls every job once; true when all have finished.
        fn poll_all(&self) -> bool {
            let mut cx = Context::from_waker(Waker::noop());
            let mut jobs = self.0.borrow_mut();
            jobs.retain_mut(|job| job.as_mut().poll(&mut cx).is_pending());
            jobs.is_empty()
        }
    }

    fn settings(title_model: Option<&str>) -> (ChatSettings, ProviderSettings) {
        let src: BTreeMap<String, String> = [("OPENAI_API_KEY", "k"), ("ANTHROPIC_API_KEY", "k")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let chat = ChatSettings {
            title_model: title_model.map(str::to_string),
            ..ChatSettings::default()
        };
        (
            chat,
            ProviderSettings::from_source(&src, false, &mut Vec::new()),
        )
    }

    fn send(content: &str, conversation_id: Option<&str>, stream: bool) -> ChatInput {
        ChatInput {
            content: content.into(),
            parts: Vec::new(),
            model_parts: vec![Part::Text(content.into())],
            conversation_id: conversation_id.map(str::to_string),
            model: Some("openai/gpt-4o".into()),
            mode: None,
            system_prompt: None,
            stream,
        }
    }

    /// Runs a turn to the point where it answers, polling nothing in the background.
    fn start(
        input: ChatInput,
        repository: &Rc<MemoryRepository>,
        model: &Rc<ScriptedModel>,
        jobs: &Jobs,
        title_model: Option<&str>,
    ) -> ApiResult<TurnReply> {
        let (chat, providers) = settings(title_model);
        let turn = Turn {
            generated_media: Rc::new(KeptInMemory::default()),
            user_id: USER,
            input,
            chat: &chat,
            providers: &providers,
            request_id: "req",
            log_level: LogLevel::Error,
            clock: Rc::new(FixedClock::at_secs(1_000)),
            keepalive: None,
            new_conversation_id: None,
        };
        block_on(run(turn, repository.clone(), model.clone(), jobs))
    }

    /// Runs a future whose every await is ready at once (the fakes never wait).
    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..1_000 {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
        }
        panic!("the future never completed");
    }

    /// Event names of the stream, taking every event until it ends; with `gone_after`, the
    /// client disconnects once it has taken that many events.
    fn drain(
        relay: ReplyRelay,
        jobs: &Jobs,
        gone_after: Option<(usize, &ClientDisconnect)>,
    ) -> Vec<String> {
        let mut relay = Box::pin(relay);
        let mut cx = Context::from_waker(Waker::noop());
        let mut names = Vec::new();
        for _ in 0..200 {
            jobs.poll_all();
            if let Some((n, disconnect)) = gone_after {
                if names.len() == n {
                    disconnect.mark_gone();
                    jobs.poll_all();
                    return names;
                }
            }
            match Pin::new(&mut relay).poll_next(&mut cx) {
                Poll::Ready(Some(Ok(bytes))) => {
                    let text = String::from_utf8(bytes).expect("utf-8");
                    if let Some(name) = text.lines().next().and_then(|l| l.strip_prefix("event: "))
                    {
                        names.push(name.to_string());
                    }
                }
                Poll::Ready(Some(Err(e))) => panic!("relay error {e}"),
                Poll::Ready(None) => {
                    assert!(jobs.poll_all(), "the recorder is still running");
                    return names;
                }
                Poll::Pending => {}
            }
        }
        panic!("the stream stalled after {names:?}");
    }

    fn streamed(reply: ApiResult<TurnReply>) -> ReplyRelay {
        match reply.expect("the turn answers") {
            TurnReply::Streamed(relay) => relay,
            TurnReply::Complete(_) => panic!("expected a stream"),
        }
    }

    /// Keeps pictures as numbered file parts, noting what it was given.
    #[derive(Default)]
    struct KeptInMemory(RefCell<Vec<Media>>);

    impl GeneratedMedia for KeptInMemory {
        fn keep<'a>(
            &'a self,
            _user_id: &'a str,
            media: Vec<Media>,
        ) -> LocalBoxFuture<'a, Vec<crate::conversations::parts::MessagePart>> {
            let parts = media
                .iter()
                .enumerate()
                .map(|(i, m)| crate::conversations::parts::MessagePart::File {
                    file_id: format!("kept-{i}"),
                    name: None,
                    media_type: Some(m.media_type.clone()),
                })
                .collect();
            self.0.borrow_mut().extend(media);
            Box::pin(async move { parts })
        }
    }

    fn picture() -> Media {
        Media {
            kind: crate::providers::wire::MediaKind::Image,
            media_type: "image/png".into(),
            source: crate::providers::wire::MediaSource::Base64("iVBORw0KGgo=".into()),
            name: None,
        }
    }

    /// Text, a generated picture, more text.
    fn drawing() -> Answer {
        Answer::Events {
            model: "openai/gpt-4o",
            events: vec![
                ProviderEvent::TextDelta("A cat:".into()),
                ProviderEvent::Media(picture()),
                ProviderEvent::TextDelta(" there.".into()),
                ProviderEvent::Finish(FinishReason::Stop),
            ],
        }
    }

    #[test]
    fn a_streamed_picture_is_a_part_event_and_stored_as_a_kept_file_after_the_text() {
        let repository = Rc::new(MemoryRepository::default());
        let model = ScriptedModel::new(drawing());
        let jobs = Jobs::default();
        let relay = streamed(start(
            send("Draw a cat", None, true),
            &repository,
            &model,
            &jobs,
            None,
        ));
        let names = drain(relay, &jobs, None);
        assert_eq!(names, ["user_message", "delta", "part", "delta", "done"]);
        let reply = &repository.stored()[1];
        assert_eq!(reply.content, "A cat: there.");
        assert_eq!(
            reply.parts,
            vec![
                crate::conversations::parts::MessagePart::text("A cat: there."),
                crate::conversations::parts::MessagePart::File {
                    file_id: "kept-0".into(),
                    name: None,
                    media_type: Some("image/png".into()),
                },
            ]
        );
    }

    #[test]
    fn a_whole_reply_keeps_its_pictures_too() {
        let repository = Rc::new(MemoryRepository::default());
        let model = ScriptedModel::new(drawing());
        let jobs = Jobs::default();
        let reply = start(send("Draw", None, false), &repository, &model, &jobs, None).expect("ok");
        let TurnReply::Complete(sent) = reply else {
            panic!("expected a complete answer")
        };
        assert_eq!(sent.assistant_message.parts.len(), 2);
        assert_eq!(repository.stored()[1].parts, sent.assistant_message.parts);
    }

    fn hello() -> Answer {
        Answer::Events {
            model: "openai/gpt-4o",
            events: vec![
                ProviderEvent::TextDelta("Hel".into()),
                ProviderEvent::TextDelta("lo".into()),
                ProviderEvent::Usage(Usage::from_counts(3, 2)),
                ProviderEvent::Finish(FinishReason::Stop),
            ],
        }
    }

    #[test]
    fn a_new_conversation_takes_the_id_chosen_for_it_when_there_is_one() {
        // A conversation's Durable Object is named by the id before the turn creates it.
        let repository = Rc::new(MemoryRepository::default());
        let model = ScriptedModel::new(hello());
        let jobs = Jobs::default();
        let (chat, providers) = settings(None);
        let chosen = "0123456789abcdef0123456789abcdef";
        let turn = Turn {
            generated_media: Rc::new(KeptInMemory::default()),
            user_id: USER,
            input: send("Hi there", None, true),
            chat: &chat,
            providers: &providers,
            request_id: "req",
            log_level: LogLevel::Error,
            clock: Rc::new(FixedClock::at_secs(1_000)),
            keepalive: None,
            new_conversation_id: Some(chosen.into()),
        };
        let relay = streamed(block_on(run(
            turn,
            repository.clone(),
            model.clone(),
            &jobs,
        )));
        drain(relay, &jobs, None);
        let stored = repository.stored();
        assert_eq!(stored.len(), 2);
        assert!(stored.iter().all(|m| m.conversation_id == chosen));
        assert!(repository.owned(USER, chosen).is_some());
    }

    #[test]
    fn a_streamed_turn_stores_the_user_message_then_the_complete_reply() {
        let repository = Rc::new(MemoryRepository::default());
        let model = ScriptedModel::new(hello());
        let jobs = Jobs::default();
        let relay = streamed(start(
            send("Hi there", None, true),
            &repository,
            &model,
            &jobs,
            None,
        ));
        // The user's message is stored before the model is asked anything.
        assert_eq!(repository.stored().len(), 1);
        let names = drain(relay, &jobs, None);
        assert_eq!(names, ["user_message", "delta", "delta", "usage", "done"]);
        let stored = repository.stored();
        assert_eq!(stored.len(), 2);
        assert_eq!(
            (stored[0].role, stored[0].content.as_str()),
            (Role::User, "Hi there")
        );
        assert_eq!(
            (stored[1].role, stored[1].content.as_str(), stored[1].status),
            (Role::Assistant, "Hello", MessageStatus::Complete)
        );
        assert_eq!(stored[1].usage, Some(Usage::from_counts(3, 2)));
        let conversation = repository
            .owned(USER, &stored[0].conversation_id)
            .expect("created");
        assert_eq!(conversation.title, "Hi there");
        assert_eq!(conversation.message_count, 2);
    }

    #[test]
    fn a_turn_that_is_not_streamed_answers_with_both_stored_messages() {
        let repository = Rc::new(MemoryRepository::default());
        let model = ScriptedModel::new(hello());
        let jobs = Jobs::default();
        let reply = start(send("Hi", None, false), &repository, &model, &jobs, None).expect("ok");
        let TurnReply::Complete(sent) = reply else {
            panic!("expected a complete answer")
        };
        assert_eq!(sent.user_message.content, "Hi");
        assert_eq!(sent.assistant_message.content, "Hello");
        assert_eq!(
            sent.assistant_message.model.as_deref(),
            Some("openai/gpt-4o")
        );
        assert_eq!(sent.conversation.message_count, 2);
        assert_eq!(repository.stored().len(), 2);
    }

    #[test]
    fn a_client_that_disconnects_mid_stream_leaves_the_text_it_took_as_partial() {
        let repository = Rc::new(MemoryRepository::default());
        let model = ScriptedModel::new(hello());
        let jobs = Jobs::default();
        let relay = streamed(start(
            send("Hi", None, true),
            &repository,
            &model,
            &jobs,
            None,
        ));
        let disconnect = model.disconnect.clone();
        // The client takes `user_message` and both deltas, then goes: the first delta counts
        // as delivered (the relay was polled again after it), the second is still in flight.
        let names = drain(relay, &jobs, Some((3, &disconnect)));
        assert_eq!(names, ["user_message", "delta", "delta"]);
        let stored = repository.stored();
        assert_eq!(stored.len(), 2);
        assert_eq!(
            (stored[1].status, stored[1].content.as_str()),
            (MessageStatus::Partial, "Hel")
        );
    }

    #[test]
    fn a_model_failure_mid_stream_stores_the_text_so_far_as_error() {
        let repository = Rc::new(MemoryRepository::default());
        let model = ScriptedModel::new(Answer::Events {
            model: "openai/gpt-4o",
            events: vec![
                ProviderEvent::TextDelta("Half an ".into()),
                ProviderEvent::TextDelta("answer".into()),
                ProviderEvent::Error(ProviderError::new(ProviderErrorKind::Overloaded, "busy")),
            ],
        });
        let jobs = Jobs::default();
        let relay = streamed(start(
            send("Hi", None, true),
            &repository,
            &model,
            &jobs,
            None,
        ));
        let names = drain(relay, &jobs, None);
        assert_eq!(names, ["user_message", "delta", "delta", "error"]);
        let stored = repository.stored();
        assert_eq!(stored.len(), 2);
        assert_eq!(
            (stored[1].status, stored[1].content.as_str()),
            (MessageStatus::Error, "Half an answer")
        );
    }

    #[test]
    fn a_failure_before_any_output_stores_only_the_user_message() {
        let repository = Rc::new(MemoryRepository::default());
        let model = ScriptedModel::new(Answer::Refuses(ApiError::new(
            502,
            "provider_error",
            "Provider openai failed",
        )));
        let jobs = Jobs::default();
        let relay = streamed(start(
            send("Hi", None, true),
            &repository,
            &model,
            &jobs,
            None,
        ));
        let names = drain(relay, &jobs, None);
        assert_eq!(names, ["user_message", "error"]);
        let stored = repository.stored();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].role, Role::User);
    }

    #[test]
    fn a_failure_of_a_turn_that_is_not_streamed_keeps_the_user_message() {
        let repository = Rc::new(MemoryRepository::default());
        let model = ScriptedModel::new(Answer::Refuses(ApiError::new(
            429,
            "provider_rate_limited",
            "slow down",
        )));
        let jobs = Jobs::default();
        let err = match start(send("Hi", None, false), &repository, &model, &jobs, None) {
            Err(err) => err,
            Ok(_) => panic!("expected the model's error"),
        };
        assert_eq!((err.status, err.code), (429, "provider_rate_limited"));
        assert_eq!(repository.stored().len(), 1);
    }

    #[test]
    fn a_reply_from_a_fallback_model_is_stored_under_the_model_that_answered() {
        let repository = Rc::new(MemoryRepository::default());
        let model = ScriptedModel::new(Answer::Events {
            model: "anthropic/claude-3-5-haiku-latest",
            events: vec![
                ProviderEvent::TextDelta("From the fallback".into()),
                ProviderEvent::Finish(FinishReason::Stop),
            ],
        });
        let jobs = Jobs::default();
        let relay = streamed(start(
            send("Hi", None, true),
            &repository,
            &model,
            &jobs,
            None,
        ));
        drain(relay, &jobs, None);
        assert_eq!(model.asked.borrow()[0].0, "openai/gpt-4o");
        let stored = repository.stored();
        assert_eq!(
            stored[1].model.as_deref(),
            Some("anthropic/claude-3-5-haiku-latest")
        );
    }

    #[test]
    fn another_users_conversation_is_a_404_and_nothing_is_stored_or_asked() {
        let repository = Rc::new(MemoryRepository::default());
        let (_, theirs) = new_conversation(&send("Theirs", None, false), &"c".repeat(32), 1);
        repository
            .conversations
            .borrow_mut()
            .push(("someone-else".into(), theirs));
        let model = ScriptedModel::new(hello());
        let jobs = Jobs::default();
        let input = send("Mine now?", Some(&"c".repeat(32)), false);
        let err = match start(input, &repository, &model, &jobs, None) {
            Err(err) => err,
            Ok(_) => panic!("expected 404"),
        };
        assert_eq!(err.status, 404);
        assert!(repository.stored().is_empty());
        assert!(model.asked.borrow().is_empty());
    }

    #[test]
    fn the_history_is_sent_oldest_first_before_the_new_message() {
        let repository = Rc::new(MemoryRepository::default());
        let first = ScriptedModel::new(hello());
        let jobs = Jobs::default();
        let reply = start(send("First", None, false), &repository, &first, &jobs, None);
        let TurnReply::Complete(sent) = reply.expect("ok") else {
            panic!("expected a complete answer")
        };
        let second = ScriptedModel::new(hello());
        let input = send("Second", Some(&sent.conversation.id), false);
        start(input, &repository, &second, &jobs, None).expect("ok");
        let asked = second.asked.borrow();
        let contents: Vec<&str> = asked[0]
            .1
            .messages
            .iter()
            .map(|m| m.plain_text().expect("text"))
            .collect();
        assert_eq!(contents.last(), Some(&"Second"));
        assert!(
            contents
                .windows(3)
                .any(|w| w == ["First", "Hello", "Second"]),
            "{contents:?}"
        );
    }

    #[test]
    fn a_store_failure_after_the_user_message_is_the_answer_and_loses_nothing_stored() {
        let repository = Rc::new(MemoryRepository {
            fail_replies: true,
            ..MemoryRepository::default()
        });
        let model = ScriptedModel::new(hello());
        let jobs = Jobs::default();
        let err = match start(send("Hi", None, false), &repository, &model, &jobs, None) {
            Err(err) => err,
            Ok(_) => panic!("expected the store's error"),
        };
        assert_eq!(err.status, 500);
        assert_eq!(repository.stored().len(), 1, "the user's message stays");
    }

    #[test]
    fn a_user_message_that_cannot_be_stored_is_the_answer_streamed_or_not() {
        for stream in [false, true] {
            let repository = Rc::new(MemoryRepository {
                fail_user_messages: true,
                ..MemoryRepository::default()
            });
            let model = ScriptedModel::new(hello());
            let jobs = Jobs::default();
            let err = match start(send("Hi", None, stream), &repository, &model, &jobs, None) {
                Err(err) => err,
                Ok(_) => panic!("expected the store's error (stream: {stream})"),
            };
            assert_eq!(err.status, 500);
            assert!(repository.stored().is_empty(), "nothing half-written");
            assert!(
                jobs.0.borrow().is_empty(),
                "no reply is recorded (stream: {stream})"
            );
        }
    }

    #[test]
    fn a_conversation_deleted_before_the_message_is_stored_is_a_404() {
        let repository = Rc::new(MemoryRepository::default());
        let model = ScriptedModel::new(hello());
        let jobs = Jobs::default();
        let first = start(send("First", None, false), &repository, &model, &jobs, None);
        let TurnReply::Complete(sent) = first.expect("ok") else {
            panic!("expected a complete answer")
        };
        // Read with its history, then gone by the time the message is written.
        let id = sent.conversation.id.clone();
        let doomed = Rc::new(DeletedOnWrite(repository.clone()));
        let (chat, providers) = settings(None);
        let turn = Turn {
            generated_media: Rc::new(KeptInMemory::default()),
            user_id: USER,
            input: send("Second", Some(&id), false),
            chat: &chat,
            providers: &providers,
            request_id: "req",
            log_level: LogLevel::Error,
            clock: Rc::new(FixedClock::at_secs(1_000)),
            keepalive: None,
            new_conversation_id: None,
        };
        let second = ScriptedModel::new(hello());
        let err = match block_on(run(turn, doomed, second, &jobs)) {
            Err(err) => err,
            Ok(_) => panic!("expected 404"),
        };
        assert_eq!(err.status, 404);
        assert_eq!(repository.stored().len(), 2, "only the first exchange");
    }

    /// A repository whose conversation disappears between the read and the write.
    struct DeletedOnWrite(Rc<MemoryRepository>);

    impl ConversationRepository for DeletedOnWrite {
        fn history_page<'a>(
            &'a self,
            user_id: &'a str,
            id: &'a str,
            page: HistoryQuery,
        ) -> LocalBoxFuture<'a, ApiResult<Option<HistoryPage>>> {
            self.0.history_page(user_id, id, page)
        }

        fn add_user_message<'a>(
            &'a self,
            _user_id: &'a str,
            _to: Destination<'a>,
            _message: &'a UserMessage,
        ) -> LocalBoxFuture<'a, ApiResult<Option<StoredUserMessage>>> {
            Box::pin(async { Ok(None) })
        }

        fn add_reply<'a>(
            &'a self,
            user_id: &'a str,
            reply: AssistantReply,
        ) -> LocalBoxFuture<'a, ApiResult<Message>> {
            self.0.add_reply(user_id, reply)
        }

        fn conversation<'a>(
            &'a self,
            user_id: &'a str,
            id: &'a str,
        ) -> LocalBoxFuture<'a, ApiResult<Option<Conversation>>> {
            self.0.conversation(user_id, id)
        }

        fn replace_generated_title<'a>(
            &'a self,
            user_id: &'a str,
            id: &'a str,
            from: &'a str,
            to: &'a str,
        ) -> LocalBoxFuture<'a, ApiResult<bool>> {
            self.0.replace_generated_title(user_id, id, from, to)
        }
    }

    #[test]
    fn with_a_title_model_a_new_conversation_gets_the_models_title_in_the_background() {
        let repository = Rc::new(MemoryRepository::default());
        let model = ScriptedModel::answering(vec![
            ("openai/gpt-4o", hello()),
            (
                "openai/gpt-4o-mini",
                Answer::Events {
                    model: "openai/gpt-4o-mini",
                    events: vec![ProviderEvent::TextDelta("\"Trip to Lisbon.\"".into())],
                },
            ),
        ]);
        let jobs = Jobs::default();
        start(
            send("Plan a trip to Lisbon", None, true),
            &repository,
            &model,
            &jobs,
            Some("openai/gpt-4o-mini"),
        )
        .expect("ok");
        let conversation_id = repository.stored()[0].conversation_id.clone();
        assert_eq!(
            repository.owned(USER, &conversation_id).expect("c").title,
            "Plan a trip to Lisbon"
        );
        // The title job was registered before the reply's recorder and runs on its own.
        let mut cx = Context::from_waker(Waker::noop());
        let title_job = jobs.0.borrow_mut().remove(0);
        let mut title_job = title_job;
        assert!(title_job.as_mut().poll(&mut cx).is_ready());
        assert_eq!(
            repository.owned(USER, &conversation_id).expect("c").title,
            "Trip to Lisbon"
        );
        let asked: Vec<String> = model
            .asked
            .borrow()
            .iter()
            .map(|(m, _)| m.clone())
            .collect();
        assert!(
            asked.contains(&"openai/gpt-4o-mini".to_string()),
            "{asked:?}"
        );
    }
}
