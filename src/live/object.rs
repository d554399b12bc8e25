//! The conversation's Durable Object: one per conversation (named by its id), owning the
//! generation in progress.
//!
//! It runs the chat turn ([`crate::chat::turn`]) exactly as a request does — the user's
//! message stored while the provider is asked, the reply recorded by the turn's recorder as
//! `complete`, `partial` or `error` in D1 — but it, not the request, consumes the reply: each
//! event goes into the generation's [`GenerationLog`] and out to every listener (the SSE
//! response of the send, resumed SSE streams, the conversation's WebSockets). So a listener
//! can leave and come back (`Last-Event-ID`, or a socket's `resume`) without a second
//! provider call, and a stop from anywhere ends the generation: it aborts the upstream
//! request through the turn's [`ClientDisconnect`], which the turn already treats as the
//! client going away (`partial`, with the text generated so far).
//!
//! **What it holds.** In memory only: the events of the generation in progress and of the
//! last one that ended (until the next starts or the object is evicted, seconds to a minute or
//! two after its last request or socket message), and the open sockets. Nothing in its
//! storage but, while a `background` generation runs, the alarm that keeps the object awake:
//! D1 stays the store of record, and a resume after the object forgot a generation answers the
//! stored reply from D1. Sockets use the hibernation API: an idle socket keeps no object in memory and
//! the runtime answers pings itself.
//!
//! The worker reaches it only through [`super::routes`], which has authenticated the caller
//! and names them in `x-tl-user`; the object checks that the conversation is theirs (404
//! otherwise, like a missing one).

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures::channel::{mpsc, oneshot};
use futures::future::LocalBoxFuture;
use futures::stream::Stream;
use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsCast;
use worker::{Env, Request, Response, State, WebSocket, WebSocketIncomingMessage, WebSocketPair};

use super::log::{parse_sse, ws_message, GenerationLog, LiveEvent};
use super::protocol::{self, ClientMessage, CONVERSATION_HEADER, NEW_HEADER, USER_HEADER};
use crate::chat::events::ChatStreamEvent;
use crate::chat::input::{ChatBody, ChatInput};
use crate::chat::turn::{
    self, Background, ConversationRepository, HistoryPage, StoredUserMessage, Turn, TurnReply,
};
use crate::config::Config;
use crate::conversations::cursor::{MessageCursor, Order};
use crate::conversations::input::HistoryQuery;
use crate::conversations::model::{AssistantReply, Conversation, Message, MessageStatus};
use crate::conversations::store::{ConversationStore, Destination, UserMessage};
use crate::http::ctx::{parse_json, Ctx};
use crate::http::error::{ApiError, ApiResult};
use crate::http::response;
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::ids::{new_id, new_request_id};
use crate::providers::client::disconnect::ClientDisconnect;
use crate::providers::client::{event_stream_response, ProviderClient};
use crate::providers::wire::Role;

/// How often a background generation's alarm wakes the object (see `keep_awake`).
const KEEPALIVE_ALARM_SECS: u64 = 30;

/// How long a stop waits for the partial reply to be stored before it answers.
const STOP_WAIT_MS: u64 = 10_000;

/// A socket's attachment, kept by the runtime across hibernation.
#[derive(Serialize, Deserialize, Clone)]
struct SocketTag {
    id: String,
    user_id: String,
    conversation_id: String,
}

struct SocketEntry {
    tag: SocketTag,
    ws: WebSocket,
    /// The next event of the current generation this socket gets; `None` until it joins
    /// (a socket that connects during a generation joins with `resume`).
    cursor: Option<usize>,
}

struct SseEntry {
    id: u64,
    tx: mpsc::UnboundedSender<Vec<u8>>,
}

/// Why a generation was stopped.
#[derive(Clone, Copy, PartialEq)]
enum StopReason {
    Asked,
    Abandoned,
}

struct Generation {
    log: GenerationLog,
    user_id: String,
    running: bool,
    background: bool,
    stopped: Option<StopReason>,
    disconnect: ClientDisconnect,
    /// The assistant message the turn's recorder stored.
    stored: Rc<RefCell<Option<Message>>>,
    /// Waiting for the end (a stop answers once the partial reply is stored).
    waiters: Vec<oneshot::Sender<()>>,
    request_id: String,
}

#[derive(Default)]
struct Live {
    conversation_id: Option<String>,
    generation: Option<Generation>,
    sockets: Vec<SocketEntry>,
    sse: Vec<SseEntry>,
    next_sse: u64,
}

impl Live {
    fn running(&self) -> bool {
        self.generation.as_ref().is_some_and(|g| g.running)
    }

    fn listeners(&self) -> usize {
        self.sse.len() + self.sockets.len()
    }

    /// Logs an event of the current generation and sends it to every listener.
    fn publish(&mut self, event: LiveEvent) {
        let Some(generation) = self.generation.as_mut() else {
            return;
        };
        let index = generation.log.push(event);
        if let Some(frame) = generation.log.sse(index) {
            let frame = frame.into_bytes();
            self.sse
                .retain(|listener| listener.tx.unbounded_send(frame.clone()).is_ok());
        }
        let Some(message) = generation.log.ws(index) else {
            return;
        };
        for socket in &mut self.sockets {
            if socket.cursor == Some(index) {
                let _ = socket.ws.send_with_str(&message);
                socket.cursor = Some(index + 1);
            }
        }
    }

    /// Stops the generation in progress: the upstream request is aborted and the turn's
    /// recorder stores what was generated as `partial`.
    fn stop(&mut self, reason: StopReason) -> bool {
        match self.generation.as_mut() {
            Some(generation) if generation.running => {
                generation.stopped.get_or_insert(reason);
                generation.disconnect.mark_gone();
                true
            }
            _ => false,
        }
    }

    /// A listener left: without `background`, the last one leaving stops the generation.
    fn listener_left(&mut self) {
        let abandoned = self.listeners() == 0
            && self
                .generation
                .as_ref()
                .is_some_and(|g| g.running && !g.background);
        if abandoned {
            self.stop(StopReason::Abandoned);
        }
    }

    /// The generation's relay has ended: make sure its log ends with `done` or `error`, and
    /// let the waiters and SSE listeners go.
    fn finish(&mut self) {
        let Some(generation) = self.generation.as_mut() else {
            return;
        };
        if !generation.log.ended() {
            let err = match generation.stopped {
                Some(StopReason::Abandoned) => ApiError::new(
                    409,
                    "generation_stopped",
                    "Every listener left, so the generation was stopped (send `background: true` to keep it running).",
                ),
                _ => ApiError::new(409, "generation_stopped", "The generation was stopped."),
            };
            let stored = generation.stored.borrow().clone();
            let event = ChatStreamEvent::error(&err, &generation.request_id, stored);
            let data = serde_json::to_string(&event).unwrap_or_else(|_| "{}".into());
            self.publish(LiveEvent {
                name: "error".into(),
                data,
            });
        }
        let Some(generation) = self.generation.as_mut() else {
            return;
        };
        generation.running = false;
        for waiter in generation.waiters.drain(..) {
            let _ = waiter.send(());
        }
        self.sse.clear();
    }
}

/// The conversation's object (the `ConversationLive` class, declared with the worker's other
/// entry points in `lib.rs`, which hands it the isolate's configuration).
pub struct LiveObject {
    state: Rc<State>,
    env: Env,
    config: Rc<Config>,
    live: Rc<RefCell<Live>>,
}

impl LiveObject {
    pub fn new(state: State, env: Env, config: Rc<Config>) -> Self {
        if let Ok(pair) =
            worker::worker_sys::WebSocketRequestResponsePair::new(protocol::PING, protocol::PONG)
        {
            state.set_websocket_auto_response(&pair);
        }
        // After hibernation: the sockets the runtime kept, known again by their attachments.
        let mut live = Live::default();
        for ws in state.get_websockets() {
            if let Ok(Some(tag)) = ws.deserialize_attachment::<SocketTag>() {
                live.conversation_id = Some(tag.conversation_id.clone());
                live.sockets.push(SocketEntry {
                    tag,
                    ws,
                    cursor: None,
                });
            }
        }
        LiveObject {
            state: Rc::new(state),
            env,
            config,
            live: Rc::new(RefCell::new(live)),
        }
    }

    pub async fn fetch(&self, req: Request) -> worker::Result<Response> {
        let request_id = req
            .headers()
            .get("x-request-id")
            .ok()
            .flatten()
            .unwrap_or_default();
        let result = self.route(req, &request_id).await;
        Ok(result.unwrap_or_else(|err| response::error_response(&err, &request_id)))
    }

    pub async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> worker::Result<()> {
        let Ok(Some(tag)) = ws.deserialize_attachment::<SocketTag>() else {
            return Ok(());
        };
        self.remember_socket(&tag, &ws);
        let text = match message {
            WebSocketIncomingMessage::String(text) => text,
            WebSocketIncomingMessage::Binary(_) => {
                refuse(
                    &ws,
                    &ApiError::bad_request("invalid_json", "Send text messages holding JSON."),
                );
                return Ok(());
            }
        };
        match protocol::parse(&text) {
            Err(err) => refuse(&ws, &err),
            Ok(ClientMessage::Ping) => {
                let _ = ws.send_with_str(protocol::PONG);
            }
            Ok(ClientMessage::Stop) => {
                if !self.live.borrow_mut().stop(StopReason::Asked) {
                    refuse(&ws, &not_running());
                }
            }
            Ok(ClientMessage::Resume { last_event_id }) => {
                self.resume_socket(&tag, &ws, last_event_id.as_deref())
                    .await
            }
            Ok(ClientMessage::Send(body)) => {
                if let Err(err) = self.send_from_socket(&tag, body).await {
                    refuse(&ws, &err);
                }
            }
        }
        Ok(())
    }

    pub async fn alarm(&self) -> worker::Result<Response> {
        if self.live.borrow().running() {
            self.keep_awake().await;
        }
        Response::empty()
    }

    pub async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> worker::Result<()> {
        self.forget_socket(&ws);
        // Completes the closing handshake (the client waits for it). 1005 and 1006 say no
        // code was sent and cannot be sent back.
        let code = match code {
            1005 | 1006 => 1000,
            code => u16::try_from(code).unwrap_or(1000),
        };
        let _ = ws.close(Some(code), Some("closed"));
        Ok(())
    }

    pub async fn websocket_error(
        &self,
        ws: WebSocket,
        _error: worker::Error,
    ) -> worker::Result<()> {
        self.forget_socket(&ws);
        Ok(())
    }
}

/// Sends an `error` without an id: a client message was refused, no generation ended.
fn refuse(ws: &WebSocket, err: &ApiError) {
    let event = ChatStreamEvent::error(err, "", None);
    let data = serde_json::to_string(&event).unwrap_or_else(|_| "{}".into());
    let _ = ws.send_with_str(ws_message("error", None, &data));
}

fn not_running() -> ApiError {
    ApiError::conflict(
        "generation_not_running",
        "No generation is in progress in this conversation.",
    )
}

fn in_progress() -> ApiError {
    ApiError::conflict(
        "generation_in_progress",
        "A reply is already being generated in this conversation; stop it or wait for its `done`.",
    )
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// The turn's background jobs (the recorder, the title job) run on the object's event loop,
/// which lives as long as the object does. Each job's end is noted: the recorder is the last
/// job a streamed turn starts (just before it returns the relay), and a stopped generation's
/// closing event waits for it, since the relay itself ends as soon as the recorder has
/// decided, before it has stored.
#[derive(Default)]
struct Spawn {
    ends: RefCell<Vec<oneshot::Receiver<()>>>,
}

impl Background for Spawn {
    fn spawn(&self, job: LocalBoxFuture<'static, ()>) {
        let (tx, rx) = oneshot::channel();
        self.ends.borrow_mut().push(rx);
        worker::wasm_bindgen_futures::spawn_local(async move {
            job.await;
            let _ = tx.send(());
        });
    }
}

/// The D1 store, noting the reply the turn's recorder stores (the closing event of a stopped
/// generation carries it).
struct Observed {
    store: ConversationStore,
    stored: Rc<RefCell<Option<Message>>>,
}

impl ConversationRepository for Observed {
    fn history_page<'a>(
        &'a self,
        user_id: &'a str,
        id: &'a str,
        page: HistoryQuery,
    ) -> LocalBoxFuture<'a, ApiResult<Option<HistoryPage>>> {
        self.store.history_page(user_id, id, page)
    }

    fn add_user_message<'a>(
        &'a self,
        user_id: &'a str,
        to: Destination<'a>,
        message: &'a UserMessage,
    ) -> LocalBoxFuture<'a, ApiResult<Option<StoredUserMessage>>> {
        ConversationRepository::add_user_message(&self.store, user_id, to, message)
    }

    fn add_reply<'a>(
        &'a self,
        user_id: &'a str,
        reply: AssistantReply,
    ) -> LocalBoxFuture<'a, ApiResult<Message>> {
        Box::pin(async move {
            let message = ConversationRepository::add_reply(&self.store, user_id, reply).await?;
            *self.stored.borrow_mut() = Some(message.clone());
            Ok(message)
        })
    }

    fn conversation<'a>(
        &'a self,
        user_id: &'a str,
        id: &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<Option<Conversation>>> {
        self.store.conversation(user_id, id)
    }

    fn replace_generated_title<'a>(
        &'a self,
        user_id: &'a str,
        id: &'a str,
        from: &'a str,
        to: &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<bool>> {
        ConversationRepository::replace_generated_title(&self.store, user_id, id, from, to)
    }
}

/// The `background` flag of a send body (`false` when absent; 422 when not a boolean).
fn background_flag(body: &[u8]) -> ApiResult<bool> {
    #[derive(Deserialize)]
    struct Flags {
        background: Option<serde_json::Value>,
    }
    let flags: Flags = parse_json(body)?;
    match flags.background {
        None | Some(serde_json::Value::Null) => Ok(false),
        Some(serde_json::Value::Bool(b)) => Ok(b),
        Some(_) => Err(ApiError::validation(
            "background",
            "`background` must be a boolean.",
        )),
    }
}

/// What a send asks of the object.
struct SendRequest {
    user_id: String,
    conversation_id: String,
    /// The conversation does not exist yet: the turn creates it under this id.
    new: bool,
    body: Vec<u8>,
    request_id: String,
}

impl LiveObject {
    /// A handler context over a request to the object, for the code the turn shares with
    /// the worker (D1, KV, configuration).
    fn ctx(&self, req: Request, request_id: String) -> Ctx {
        let raw: wasm_bindgen::JsValue = self.state.as_raw().into();
        let config = self.config.clone();
        Ctx {
            req,
            env: self.env.clone(),
            // The object's state has the `waitUntil` an execution context has.
            worker_ctx: Rc::new(worker::Context::new(raw.unchecked_into())),
            // The worker checked the send's body against its route's limit before handing it
            // on; the object takes the same sends, media included.
            body_limit: config.body_limit(crate::http::router::BodyLimit::Media),
            config,
            request_id,
            params: Default::default(),
            route: "conversation object",
            read_body: None,
        }
    }

    async fn route(&self, mut req: Request, request_id: &str) -> ApiResult<Response> {
        let user_id = header(&req, USER_HEADER).ok_or_else(ApiError::not_found)?;
        let conversation_id = header(&req, CONVERSATION_HEADER).ok_or_else(ApiError::not_found)?;
        self.live
            .borrow_mut()
            .conversation_id
            .get_or_insert(conversation_id.clone());
        match req.path().as_str() {
            "/send" => {
                let body = req
                    .bytes()
                    .await
                    .map_err(|e| ApiError::internal(format!("object body: {e}")))?;
                let send = SendRequest {
                    new: header(&req, NEW_HEADER).as_deref() == Some("1"),
                    user_id,
                    conversation_id,
                    body,
                    request_id: request_id.to_string(),
                };
                self.start(req, send).await?;
                let listener = self.listen(None).flatten().ok_or_else(|| {
                    ApiError::internal("generation vanished before its first listener")
                })?;
                event_stream_response(listener)
            }
            "/events" => {
                self.check_owner(&req, &user_id, &conversation_id, request_id)
                    .await?;
                let last = header(&req, "last-event-id");
                match self.listen(Some(last.as_deref())) {
                    Some(Some(listener)) => event_stream_response(listener),
                    // The listener has every event of the ended generation already.
                    Some(None) => Ok(Response::empty()?.with_status(204)),
                    None => {
                        let cx = self.ctx(req, request_id.to_string());
                        self.stored_result_sse(&cx, &user_id, &conversation_id, last.as_deref())
                            .await
                    }
                }
            }
            "/stop" => {
                self.check_owner(&req, &user_id, &conversation_id, request_id)
                    .await?;
                self.stop_and_wait().await
            }
            "/ws" => {
                self.check_owner(&req, &user_id, &conversation_id, request_id)
                    .await?;
                self.accept_socket(&req, user_id, conversation_id)
            }
            _ => Err(ApiError::not_found()),
        }
    }

    /// 404 unless the conversation is the caller's: known from the generation in memory, else
    /// read from D1.
    async fn check_owner(
        &self,
        req: &Request,
        user_id: &str,
        conversation_id: &str,
        request_id: &str,
    ) -> ApiResult<()> {
        let known = self
            .live
            .borrow()
            .generation
            .as_ref()
            .map(|g| g.user_id == user_id);
        match known {
            Some(true) => Ok(()),
            Some(false) => Err(ApiError::not_found()),
            None => {
                let cx = self.ctx(req.clone().map_err(ApiError::from)?, request_id.into());
                ConversationStore::new(&cx)?
                    .get(user_id, conversation_id)
                    .await?
                    .map(|_| ())
                    .ok_or_else(ApiError::not_found)
            }
        }
    }

    /// Runs the turn and starts pumping its reply into the generation's log; errors before
    /// the reply (404, 422, the provider refusing before any output) are the answer.
    async fn start(&self, req: Request, send: SendRequest) -> ApiResult<()> {
        let background = background_flag(&send.body)?;
        {
            let mut live = self.live.borrow_mut();
            if live.running() {
                return Err(in_progress());
            }
            if let Some(generation) = &live.generation {
                if generation.user_id != send.user_id {
                    return Err(ApiError::not_found());
                }
            }
            // Claimed before the first await, so a second send cannot start alongside.
            let now = SystemClock.now_ms();
            live.generation = Some(Generation {
                log: GenerationLog::new(new_id(now)?),
                user_id: send.user_id.clone(),
                running: true,
                background,
                stopped: None,
                disconnect: ClientDisconnect::default(),
                stored: Rc::new(RefCell::new(None)),
                waiters: Vec::new(),
                request_id: send.request_id.clone(),
            });
            // Every socket follows a new generation from its first event.
            for socket in &mut live.sockets {
                socket.cursor = Some(0);
            }
        }
        let result = self.run_turn(req, &send).await;
        if result.is_err() {
            let mut live = self.live.borrow_mut();
            live.generation = None;
        }
        result
    }

    async fn run_turn(&self, req: Request, send: &SendRequest) -> ApiResult<()> {
        let cx = self.ctx(req, send.request_id.clone());
        let body: ChatBody = parse_json(&send.body)?;
        let path = (!send.new).then_some(send.conversation_id.as_str());
        let input = ChatInput::from_body(
            body,
            path,
            true,
            cx.config.chat.max_message_chars,
            cx.config.files.max_file_size,
            &cx.config.chat.modes,
        )?;
        let mut input =
            crate::chat::attachments::read_attachments(&cx, &send.user_id, input).await?;
        if send.new && input.conversation_id.is_some() {
            return Err(ApiError::internal(
                "a new conversation named an existing one",
            ));
        }
        input.stream = true;
        let (disconnect, stored) = {
            let live = self.live.borrow();
            let generation = live
                .generation
                .as_ref()
                .ok_or_else(|| ApiError::internal("generation not claimed"))?;
            (generation.disconnect.clone(), generation.stored.clone())
        };
        let repository = Rc::new(Observed {
            store: ConversationStore::new(&cx)?,
            stored,
        });
        let model = Rc::new(ProviderClient::with_disconnect(&cx, disconnect));
        let turn = Turn {
            user_id: &send.user_id,
            generated_media: Rc::new(crate::chat::generated::FilesMedia::new(&cx)?),
            input,
            chat: &cx.config.chat,
            providers: &cx.config.providers,
            request_id: &cx.request_id,
            log_level: cx.config.log_level,
            clock: Rc::new(SystemClock),
            // The object reads the reply as fast as it comes; listeners get their own
            // keepalives.
            keepalive: None,
            new_conversation_id: send.new.then(|| send.conversation_id.clone()),
        };
        let jobs = Spawn::default();
        let TurnReply::Streamed(relay) = turn::run(turn, repository, model, &jobs).await? else {
            return Err(ApiError::internal("a streamed turn answered whole"));
        };
        let recorded = jobs.ends.borrow_mut().pop();
        let live = self.live.clone();
        worker::wasm_bindgen_futures::spawn_local(async move {
            let mut relay = relay;
            while let Some(chunk) = relay.next().await {
                let Ok(chunk) = chunk else { break };
                for event in parse_sse(&chunk) {
                    live.borrow_mut().publish(event);
                }
            }
            if let Some(recorded) = recorded {
                let _ = recorded.await;
            }
            live.borrow_mut().finish();
        });
        if self
            .live
            .borrow()
            .generation
            .as_ref()
            .is_some_and(|g| g.background)
        {
            self.keep_awake().await;
        }
        Ok(())
    }

    /// An object with no incoming event for a while may be evicted, and a background
    /// generation may have no listener left to keep one coming: an alarm every
    /// [`KEEPALIVE_ALARM_SECS`] is that event while it runs.
    async fn keep_awake(&self) {
        let next = std::time::Duration::from_secs(KEEPALIVE_ALARM_SECS);
        let _ = self.state.storage().set_alarm(next).await;
    }

    /// An SSE listener of the generation in memory from the event after `last_event_id`
    /// (`None`: from its start); `None` when there is no generation in memory, `Some(None)`
    /// when the listener has seen all of an ended one.
    fn listen(&self, last_event_id: Option<Option<&str>>) -> Option<Option<Listener>> {
        let mut live = self.live.borrow_mut();
        let generation = live.generation.as_ref()?;
        let from = generation.log.resume_from(last_event_id.flatten());
        let ended = !generation.running;
        if ended && from >= generation.log.events.len() && last_event_id.flatten().is_some() {
            return Some(None);
        }
        let (tx, rx) = mpsc::unbounded();
        for index in from..generation.log.events.len() {
            if let Some(frame) = generation.log.sse(index) {
                let _ = tx.unbounded_send(frame.into_bytes());
            }
        }
        let id = live.next_sse;
        live.next_sse += 1;
        if !ended {
            live.sse.push(SseEntry { id, tx });
        }
        let keepalive_ms = self.config.chat.stream_keepalive_ms;
        Some(Some(Listener {
            id,
            rx,
            live: Rc::downgrade(&self.live),
            keepalive_ms,
            idle: None,
        }))
    }

    /// A resume with no generation in memory: the conversation's stored reply as the
    /// closing event (`done`, or `error` for one stored `partial` or `error`), or 204 when
    /// there is none, or the client has it already (its `Last-Event-ID`).
    async fn stored_result_sse(
        &self,
        cx: &Ctx,
        user_id: &str,
        conversation_id: &str,
        last_event_id: Option<&str>,
    ) -> ApiResult<Response> {
        let Some((id, event)) = stored_result(cx, user_id, conversation_id).await? else {
            return Ok(Response::empty()?.with_status(204));
        };
        if last_event_id == Some(id.as_str()) {
            return Ok(Response::empty()?.with_status(204));
        }
        let frame = format!("id: {id}\nevent: {}\ndata: {}\n\n", event.name, event.data);
        event_stream_response(futures::stream::once(async move {
            Ok::<_, worker::Error>(frame.into_bytes())
        }))
    }

    async fn stop_and_wait(&self) -> ApiResult<Response> {
        let (waiter, stored) = {
            let mut live = self.live.borrow_mut();
            if !live.stop(StopReason::Asked) {
                return response::json(
                    200,
                    &serde_json::json!({"stopped": false, "message": null}),
                );
            }
            let generation = live
                .generation
                .as_mut()
                .ok_or_else(|| ApiError::internal("stopped generation vanished"))?;
            let (tx, rx) = oneshot::channel();
            generation.waiters.push(tx);
            (rx, generation.stored.clone())
        };
        let timeout = crate::platform::timer::sleep(STOP_WAIT_MS);
        let _ = futures::future::select(waiter, timeout).await;
        let message = stored.borrow().clone();
        response::json(
            200,
            &serde_json::json!({"stopped": true, "message": message}),
        )
    }

    fn accept_socket(
        &self,
        req: &Request,
        user_id: String,
        conversation_id: String,
    ) -> ApiResult<Response> {
        let pair = WebSocketPair::new()?;
        let tag = SocketTag {
            id: new_request_id()?,
            user_id,
            conversation_id: conversation_id.clone(),
        };
        self.state.accept_web_socket(&pair.server);
        pair.server.serialize_attachment(&tag)?;
        let ready = {
            let mut live = self.live.borrow_mut();
            let generation = live.generation.as_ref().map(|g| {
                serde_json::json!({
                    "id": g.log.id,
                    "running": g.running,
                    "last_event_id": g.log.events.len().checked_sub(1).map(|i| g.log.event_id(i)),
                })
            });
            live.sockets.push(SocketEntry {
                tag,
                ws: pair.server.clone(),
                cursor: None,
            });
            serde_json::json!({"conversation": conversation_id, "generation": generation})
        };
        let _ = pair
            .server
            .send_with_str(ws_message("ready", None, &ready.to_string()));
        let response = Response::from_websocket(pair.client)?;
        let offered = header(req, "sec-websocket-protocol").unwrap_or_default();
        if offered
            .split(',')
            .any(|p| p.trim() == protocol::SUBPROTOCOL)
        {
            response
                .headers()
                .set("sec-websocket-protocol", protocol::SUBPROTOCOL)?;
        }
        Ok(response)
    }

    /// Re-learns a socket after hibernation (the constructor found it, but a message from it
    /// may come first).
    fn remember_socket(&self, tag: &SocketTag, ws: &WebSocket) {
        let mut live = self.live.borrow_mut();
        live.conversation_id
            .get_or_insert(tag.conversation_id.clone());
        if !live.sockets.iter().any(|s| s.tag.id == tag.id) {
            live.sockets.push(SocketEntry {
                tag: tag.clone(),
                ws: ws.clone(),
                cursor: None,
            });
        }
    }

    fn forget_socket(&self, ws: &WebSocket) {
        let Ok(Some(tag)) = ws.deserialize_attachment::<SocketTag>() else {
            return;
        };
        let mut live = self.live.borrow_mut();
        live.sockets.retain(|s| s.tag.id != tag.id);
        live.listener_left();
    }

    async fn resume_socket(&self, tag: &SocketTag, ws: &WebSocket, last_event_id: Option<&str>) {
        {
            let mut live = self.live.borrow_mut();
            let Live {
                generation,
                sockets,
                ..
            } = &mut *live;
            if let Some(generation) = generation.as_ref() {
                let from = generation.log.resume_from(last_event_id);
                for index in from..generation.log.events.len() {
                    if let Some(message) = generation.log.ws(index) {
                        let _ = ws.send_with_str(message);
                    }
                }
                if let Some(socket) = sockets.iter_mut().find(|s| s.tag.id == tag.id) {
                    socket.cursor = Some(generation.log.events.len());
                }
                return;
            }
        }
        let request = match Request::new("https://conversation.object/resume", worker::Method::Get)
        {
            Ok(request) => request,
            Err(_) => return,
        };
        let cx = self.ctx(request, String::new());
        match stored_result(&cx, &tag.user_id, &tag.conversation_id).await {
            Ok(Some((id, event))) if last_event_id != Some(id.as_str()) => {
                let _ = ws.send_with_str(ws_message(&event.name, Some(&id), &event.data));
            }
            Ok(_) => {}
            Err(err) => refuse(ws, &err),
        }
    }

    /// A socket's `send`: the chat limit applies as on HTTP, then the turn starts.
    async fn send_from_socket(&self, tag: &SocketTag, body: Vec<u8>) -> ApiResult<()> {
        if self.live.borrow().running() {
            return Err(in_progress());
        }
        let request_id = new_request_id()?;
        let mut init = worker::RequestInit::new();
        init.with_method(worker::Method::Post);
        let req = Request::new_with_init("https://conversation.object/send", &init)?;
        let cx = self.ctx(req.clone()?, request_id.clone());
        crate::rate_limit::kv::enforce(
            &cx,
            "chat",
            &tag.user_id,
            cx.config.rate_limits.chat_per_user,
        )
        .await?;
        self.start(
            req,
            SendRequest {
                user_id: tag.user_id.clone(),
                conversation_id: tag.conversation_id.clone(),
                new: false,
                body,
                request_id,
            },
        )
        .await
    }
}

/// The conversation's latest reply from D1, as the event that closed its generation, with an
/// id of its own (`stored:<message id>`).
async fn stored_result(
    cx: &Ctx,
    user_id: &str,
    conversation_id: &str,
) -> ApiResult<Option<(String, LiveEvent)>> {
    let page = HistoryQuery {
        after: MessageCursor::start(Order::Desc),
        limit: 1,
    };
    let Some((_, messages)) = ConversationStore::new(cx)?
        .get_with_messages(user_id, conversation_id, page)
        .await?
    else {
        return Err(ApiError::not_found());
    };
    let Some(message) = messages
        .into_iter()
        .next()
        .filter(|m| m.role == Role::Assistant)
    else {
        return Ok(None);
    };
    let id = format!("stored:{}", message.id);
    let event = match message.status {
        MessageStatus::Complete => ChatStreamEvent::Done {
            message,
            finish_reason: "stop".into(),
        },
        MessageStatus::Partial => ChatStreamEvent::error(
            &ApiError::new(409, "generation_stopped", "The generation was stopped."),
            &cx.request_id,
            Some(message),
        ),
        MessageStatus::Error => ChatStreamEvent::error(
            &ApiError::new(
                502,
                "generation_failed",
                "The provider failed during the reply.",
            ),
            &cx.request_id,
            Some(message),
        ),
    };
    let data = serde_json::to_string(&event).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Some((
        id,
        LiveEvent {
            name: event.name().into(),
            data,
        },
    )))
}

/// One SSE listener's body: the generation's frames, with a `:` comment while idle so a
/// listener that left is noticed (see [`crate::chat::reply`]); leaving may stop the
/// generation ([`Live::listener_left`]).
pub struct Listener {
    id: u64,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    live: std::rc::Weak<RefCell<Live>>,
    keepalive_ms: u64,
    idle: Option<LocalBoxFuture<'static, ()>>,
}

impl Stream for Listener {
    type Item = Result<Vec<u8>, worker::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.rx.poll_next_unpin(cx) {
            Poll::Ready(Some(frame)) => {
                this.idle = None;
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        if this.keepalive_ms == 0 {
            return Poll::Pending;
        }
        let ms = this.keepalive_ms;
        let idle = this
            .idle
            .get_or_insert_with(|| crate::platform::timer::sleep(ms));
        if idle.poll_unpin(cx).is_ready() {
            this.idle = None;
            return Poll::Ready(Some(Ok(crate::chat::reply::KEEPALIVE_FRAME.to_vec())));
        }
        Poll::Pending
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let Some(live) = self.live.upgrade() else {
            return;
        };
        // Dropped while the object is busy publishing (it never is across an await, but a
        // borrow is cheap to check): skip rather than panic.
        let Ok(mut live) = live.try_borrow_mut() else {
            return;
        };
        let before = live.sse.len();
        live.sse.retain(|l| l.id != self.id);
        if live.sse.len() != before {
            live.listener_left();
        }
    }
}
