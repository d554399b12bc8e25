//! A streamed reply: relaying the provider's events to the client as Server-Sent Events, and
//! recording the assistant message however the reply ends.
//!
//! Two halves share one [`ReplyLog`]:
//!
//! - [`ReplyRelay`] is the response body. It sends the opening `user_message` event, calls
//!   the provider, turns each provider event into a [`ChatStreamEvent`] the moment it
//!   arrives (one write per event, nothing buffered) and notes in the log what it sent.
//! - [`Recorder`] is a future the handler gives to `ctx.wait_until` *before* answering. It
//!   waits until the relay reports how the reply ended, the client disconnects, or the relay
//!   is dropped (workerd drops the body of a response whose client has gone), then stores the
//!   assistant message — once — and hands it back to the relay for the closing `done` or
//!   `error` event.
//!
//! Only the recorder writes. The relay can be dropped at any await, so a write started there
//! could be cut off half-way; `wait_until` keeps the recorder running after the response has
//! ended, so the write always completes.
//!
//! | how the reply ends | stored |
//! |---|---|
//! | the provider finishes | `complete`: the whole text, usage, model, latency |
//! | the provider fails after some output | `error`: the text streamed so far |
//! | the provider fails before any output | nothing (the `error` event's `message` is null) |
//! | the client disconnects | `partial`: the text the client took, if any |
//!
//! # Which text the client took
//!
//! The body is a `ReadableStream` with a high-water mark of zero (`Response::from_stream`),
//! so workerd asks the relay for the next event only after it has written the previous one.
//! A delta therefore counts as *delivered* once the relay is polled again after sending it;
//! the delta being written when the disconnect is noticed — the write that failed — is not.
//!
//! A worker learns that its client has gone only when a write fails, and TCP accepts the first
//! write after the peer has closed (the refusal comes back a moment later), so it is the
//! second write after the disconnect that fails. Left alone, the two deltas written after the
//! client left would count as delivered. So while the stream is idle the relay writes an SSE
//! comment (`:` and a blank line, ignored by every SSE client) every `keepalive` interval
//! (`STREAM_KEEPALIVE_MS`): a disconnect is then noticed within about two intervals, before
//! the next delta whenever deltas are further apart than that. Deltas closer together than
//! two intervals can still be counted though the client never read them (at most the two
//! written after it left). The comments also keep idle connections open while a slow model
//! thinks.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures::channel::oneshot;
use futures::future::{select, Either, LocalBoxFuture};
use futures::stream::{LocalBoxStream, Stream};
use futures::{FutureExt, StreamExt};

use super::events::ChatStreamEvent;
use super::generated::image_part;
use crate::conversations::model::{AssistantReply, Message, MessageStatus};
use crate::http::error::{ApiError, ApiResult};
use crate::platform::clock::Clock;
use crate::platform::logging::LogLevel;
use crate::platform::logging::LogLine;
use crate::providers::client::disconnect::ClientDisconnect;
use crate::providers::client::failure::provider_error;
use crate::providers::wire::{FinishReason, Media, ProviderError, ProviderEvent, Usage};

/// A provider stream that has begun: the model that answers (after any fallback), its
/// provider (for error messages) and its events.
pub struct Connected {
    pub model: String,
    pub provider: String,
    pub events: LocalBoxStream<'static, ProviderEvent>,
}

/// Calling the provider; completes once output has begun (or failed).
pub type Connect = LocalBoxFuture<'static, ApiResult<Connected>>;

/// A timer: completes after the given number of milliseconds.
pub type Sleep = Rc<dyn Fn(u64) -> LocalBoxFuture<'static, ()>>;

/// The SSE comment written while the stream is idle.
pub const KEEPALIVE_FRAME: &[u8] = b":\n\n";

/// Comments written while the stream is idle (see the module documentation).
#[derive(Clone)]
pub struct Keepalive {
    pub interval_ms: u64,
    pub sleep: Sleep,
}

/// What the relay has sent so far.
#[derive(Debug, Default)]
pub struct ReplyLog {
    /// The text of the deltas the client has taken.
    pub delivered: String,
    /// The text of the last delta sent, until the relay is polled again.
    pub in_flight: String,
    pub usage: Option<Usage>,
    /// The pictures sent (each went out whole in one `part` event).
    pub media: Vec<Media>,
    /// The model that answered.
    pub model: Option<String>,
    /// When the provider was called, and when the reply ended (ms since the epoch).
    pub started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    /// The recorder has decided the outcome: the relay sends nothing more.
    pub closed: bool,
}

impl ReplyLog {
    /// Everything sent, delivered or not.
    pub fn sent_text(&self) -> String {
        format!("{}{}", self.delivered, self.in_flight)
    }
}

/// How a reply ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyEnd {
    /// The provider finished.
    Finished(FinishReason),
    /// The provider failed (before or after output began).
    Failed(ApiError),
    /// The client went away.
    ClientGone,
}

/// The message to store for a reply that ended with `end`, if any: status and text (the
/// pictures sent go with it, see [`ReplySink::store`]).
pub fn outcome(log: &ReplyLog, end: &ReplyEnd) -> Option<(MessageStatus, String)> {
    let something = |(_, text): &(MessageStatus, String)| !text.is_empty() || !log.media.is_empty();
    match end {
        // A reply that finished is stored even if empty: the model did answer.
        ReplyEnd::Finished(_) => Some((MessageStatus::Complete, log.sent_text())),
        ReplyEnd::Failed(_) => Some((MessageStatus::Error, log.sent_text())).filter(something),
        ReplyEnd::ClientGone => {
            Some((MessageStatus::Partial, log.delivered.clone())).filter(something)
        }
    }
}

/// Where replies are stored (D1 in the worker, memory in tests).
pub trait ReplySink {
    /// Stores `reply` with the pictures the model generated (its parts are filled in here).
    fn store(
        &self,
        reply: AssistantReply,
        media: Vec<Media>,
    ) -> LocalBoxFuture<'_, ApiResult<Message>>;
}

/// What the recorder hands back to the relay.
#[derive(Debug)]
pub struct Recorded {
    pub end: ReplyEnd,
    /// The stored message; `None` when there was nothing to store.
    pub stored: ApiResult<Option<Message>>,
}

/// The response body of a streamed reply.
pub struct ReplyRelay {
    log: Rc<RefCell<ReplyLog>>,
    stage: Stage,
    /// Events waiting to be sent, with the text of the delta ones.
    queue: VecDeque<(Vec<u8>, Option<String>)>,
    provider: String,
    ended: Option<oneshot::Sender<ReplyEnd>>,
    recorded: Option<oneshot::Receiver<Recorded>>,
    disconnect: ClientDisconnect,
    clock: Rc<dyn Clock>,
    request_id: String,
    keepalive: Option<Keepalive>,
    /// Runs while nothing is being written; when it fires, a comment is written.
    idle_timer: Option<LocalBoxFuture<'static, ()>>,
}

enum Stage {
    Connecting(Connect),
    Relaying(LocalBoxStream<'static, ProviderEvent>),
    Recording,
    Done,
}

/// Records a reply once it has ended; see the module documentation.
pub struct Recorder<S> {
    log: Rc<RefCell<ReplyLog>>,
    ended: oneshot::Receiver<ReplyEnd>,
    recorded: oneshot::Sender<Recorded>,
    disconnect: ClientDisconnect,
    sink: S,
    clock: Rc<dyn Clock>,
    /// The id and conversation of the message to store.
    message_id: String,
    conversation_id: String,
    request_id: String,
    log_level: LogLevel,
}

/// Everything a reply needs besides the sink.
pub struct ReplySetup {
    /// The events sent before the provider is called (`user_message`).
    pub opening: Vec<ChatStreamEvent>,
    pub connect: Connect,
    pub disconnect: ClientDisconnect,
    pub clock: Rc<dyn Clock>,
    pub message_id: String,
    pub conversation_id: String,
    pub request_id: String,
    pub log_level: LogLevel,
    /// `None`: no comments (then a disconnect is noticed only at a delta's write).
    pub keepalive: Option<Keepalive>,
}

/// The two halves of one streamed reply.
pub fn reply_pair<S: ReplySink>(setup: ReplySetup, sink: S) -> (ReplyRelay, Recorder<S>) {
    let log = Rc::new(RefCell::new(ReplyLog::default()));
    let (ended_tx, ended_rx) = oneshot::channel();
    let (recorded_tx, recorded_rx) = oneshot::channel();
    let relay = ReplyRelay {
        log: log.clone(),
        stage: Stage::Connecting(setup.connect),
        queue: setup
            .opening
            .iter()
            .map(|e| (e.to_sse().into_bytes(), None))
            .collect(),
        provider: String::new(),
        ended: Some(ended_tx),
        recorded: Some(recorded_rx),
        disconnect: setup.disconnect.clone(),
        clock: setup.clock.clone(),
        request_id: setup.request_id.clone(),
        keepalive: setup.keepalive,
        idle_timer: None,
    };
    let recorder = Recorder {
        log,
        ended: ended_rx,
        recorded: recorded_tx,
        disconnect: setup.disconnect,
        sink,
        clock: setup.clock,
        message_id: setup.message_id,
        conversation_id: setup.conversation_id,
        request_id: setup.request_id,
        log_level: setup.log_level,
    };
    (relay, recorder)
}

impl ReplyRelay {
    fn push(&mut self, event: ChatStreamEvent) {
        let text = match &event {
            ChatStreamEvent::Delta { text } => Some(text.clone()),
            _ => None,
        };
        self.queue.push_back((event.to_sse().into_bytes(), text));
    }

    /// Reports the end to the recorder and waits for what it stored.
    fn end(&mut self, end: ReplyEnd) {
        self.log.borrow_mut().ended_ms = Some(self.clock.now_ms());
        if let Some(tx) = self.ended.take() {
            let _ = tx.send(end);
        }
        self.stage = Stage::Recording;
    }

    /// A provider error, as the API reports it.
    fn provider_failure(&self, error: &ProviderError) -> ApiError {
        provider_error(&self.provider, error)
    }

    /// Whether the stream has been idle for the keepalive interval (arming the timer first).
    fn idle_elapsed(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(keepalive) = &self.keepalive else {
            return false;
        };
        let timer = self
            .idle_timer
            .get_or_insert_with(|| (keepalive.sleep)(keepalive.interval_ms));
        if timer.poll_unpin(cx).is_ready() {
            self.idle_timer = None;
            return true;
        }
        false
    }

    fn closing_event(&self, recorded: Recorded) -> Option<ChatStreamEvent> {
        match (recorded.end, recorded.stored) {
            (ReplyEnd::ClientGone, _) => None,
            (ReplyEnd::Finished(reason), Ok(Some(message))) => Some(ChatStreamEvent::Done {
                message,
                finish_reason: reason.as_openai_str().to_string(),
            }),
            (ReplyEnd::Finished(_), Ok(None)) => Some(ChatStreamEvent::error(
                &ApiError::internal("finished reply not stored"),
                &self.request_id,
                None,
            )),
            (ReplyEnd::Finished(_), Err(err)) => {
                Some(ChatStreamEvent::error(&err, &self.request_id, None))
            }
            (ReplyEnd::Failed(err), stored) => Some(ChatStreamEvent::error(
                &err,
                &self.request_id,
                stored.ok().flatten(),
            )),
        }
    }

    /// One step of the state machine; `None` to keep going after queueing events.
    fn advance(&mut self, cx: &mut Context<'_>) -> Option<Poll<()>> {
        match &mut self.stage {
            Stage::Connecting(connect) => {
                if self.log.borrow().started_ms.is_none() {
                    self.log.borrow_mut().started_ms = Some(self.clock.now_ms());
                }
                match connect.poll_unpin(cx) {
                    Poll::Pending => Some(Poll::Pending),
                    Poll::Ready(Err(err)) => {
                        let end = if self.disconnect.is_gone() {
                            ReplyEnd::ClientGone
                        } else {
                            ReplyEnd::Failed(err)
                        };
                        self.end(end);
                        None
                    }
                    Poll::Ready(Ok(connected)) => {
                        self.log.borrow_mut().model = Some(connected.model);
                        self.provider = connected.provider;
                        self.stage = Stage::Relaying(connected.events);
                        None
                    }
                }
            }
            Stage::Relaying(events) => match events.poll_next_unpin(cx) {
                Poll::Pending => Some(Poll::Pending),
                Poll::Ready(Some(ProviderEvent::TextDelta(text))) => {
                    if !text.is_empty() {
                        self.push(ChatStreamEvent::Delta { text });
                    }
                    None
                }
                Poll::Ready(Some(ProviderEvent::Media(media))) => {
                    let part = image_part(&media);
                    self.log.borrow_mut().media.push(media);
                    self.push(ChatStreamEvent::Part { part });
                    None
                }
                Poll::Ready(Some(ProviderEvent::Usage(usage))) => {
                    self.log.borrow_mut().usage = Some(usage);
                    self.push(ChatStreamEvent::Usage(usage));
                    None
                }
                Poll::Ready(Some(ProviderEvent::Finish(reason))) => {
                    self.end(ReplyEnd::Finished(reason));
                    None
                }
                Poll::Ready(Some(ProviderEvent::Error(error))) => {
                    let err = self.provider_failure(&error);
                    self.end(ReplyEnd::Failed(err));
                    None
                }
                // The provider client ends a stream without a Finish only when our client
                // has gone (the upstream fetch was aborted).
                Poll::Ready(None) => {
                    let end = if self.disconnect.is_gone() {
                        ReplyEnd::ClientGone
                    } else {
                        ReplyEnd::Failed(
                            self.provider_failure(&ProviderError::stream_ended_early()),
                        )
                    };
                    self.end(end);
                    None
                }
            },
            Stage::Recording => {
                let Some(recorded) = self.recorded.as_mut() else {
                    self.stage = Stage::Done;
                    return None;
                };
                match recorded.poll_unpin(cx) {
                    Poll::Pending => Some(Poll::Pending),
                    Poll::Ready(result) => {
                        self.recorded = None;
                        self.stage = Stage::Done;
                        if let Some(event) = result.ok().and_then(|r| self.closing_event(r)) {
                            self.push(event);
                        }
                        None
                    }
                }
            }
            Stage::Done => Some(Poll::Ready(())),
        }
    }
}

impl Stream for ReplyRelay {
    type Item = Result<Vec<u8>, worker::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        {
            // Polled again: the consumer has taken the last event.
            let mut log = this.log.borrow_mut();
            let taken = std::mem::take(&mut log.in_flight);
            log.delivered.push_str(&taken);
        }
        loop {
            if let Some((bytes, text)) = this.queue.pop_front() {
                if let Some(text) = text {
                    this.log.borrow_mut().in_flight = text;
                }
                // Something is written: the idle period starts again.
                this.idle_timer = None;
                return Poll::Ready(Some(Ok(bytes)));
            }
            if this.log.borrow().closed && !matches!(this.stage, Stage::Recording) {
                this.stage = Stage::Done;
            }
            match this.advance(cx) {
                None => continue,
                Some(Poll::Pending) => {
                    if this.idle_elapsed(cx) {
                        return Poll::Ready(Some(Ok(KEEPALIVE_FRAME.to_vec())));
                    }
                    return Poll::Pending;
                }
                Some(Poll::Ready(())) => return Poll::Ready(None),
            }
        }
    }
}

impl<S: ReplySink> Recorder<S> {
    /// Waits for the end of the reply, stores what it produced and reports back.
    pub async fn run(self) {
        let Recorder {
            log,
            ended,
            recorded,
            disconnect,
            sink,
            clock,
            message_id,
            conversation_id,
            request_id,
            log_level,
        } = self;
        let gone = disconnect.gone();
        futures::pin_mut!(gone);
        let end = match select(ended, gone).await {
            Either::Left((Ok(end), _)) => end,
            // The relay was dropped before the end, or the client left: either way the client
            // has gone.
            Either::Left((Err(oneshot::Canceled), _)) | Either::Right(((), _)) => {
                ReplyEnd::ClientGone
            }
        };
        let (decision, reply_fields) = {
            let mut log = log.borrow_mut();
            log.closed = true;
            let now = clock.now_ms();
            let ended_ms = *log.ended_ms.get_or_insert(now);
            let latency = log.started_ms.map(|s| ended_ms.saturating_sub(s));
            (
                outcome(&log, &end),
                (
                    log.model.clone(),
                    log.usage,
                    latency,
                    now,
                    std::mem::take(&mut log.media),
                ),
            )
        };
        let (model, usage, latency_ms, now, media) = reply_fields;
        let stored = match decision {
            None => Ok(None),
            Some((status, content)) => {
                let chars = content.chars().count();
                let result = sink
                    .store(
                        AssistantReply {
                            id: message_id,
                            conversation_id,
                            content,
                            model,
                            status,
                            usage,
                            latency_ms,
                            created_at: now,
                            parts: Vec::new(),
                        },
                        media,
                    )
                    .await;
                // Replies that did not finish are worth seeing at the default level.
                let level = match status {
                    MessageStatus::Complete => LogLevel::Debug,
                    _ => LogLevel::Info,
                };
                let line = match &result {
                    Ok(_) => LogLine::new(level, clock.now_ms(), "reply recorded"),
                    Err(err) => LogLine::new(LogLevel::Error, clock.now_ms(), "reply not recorded")
                        .field("error_detail", err.internal.clone().unwrap_or_default()),
                };
                line.field("request_id", request_id.as_str())
                    .field("status", status.as_str())
                    .field("chars", chars)
                    .emit(log_level);
                result.map(Some)
            }
        };
        let _ = recorded.send(Recorded { end, stored });
    }
}

#[cfg(test)]
mod tests {
    use super::super::generated::reply_parts;
    use super::*;
    use crate::platform::clock::FixedClock;
    use crate::providers::wire::ProviderErrorKind;
    use std::future::Future;
    use std::task::Waker;

    /// Stores in memory; `fail` makes every store fail.
    #[derive(Default, Clone)]
    struct MemorySink {
        stored: Rc<RefCell<Vec<AssistantReply>>>,
        fail: bool,
    }

    impl ReplySink for MemorySink {
        fn store(
            &self,
            mut reply: AssistantReply,
            media: Vec<Media>,
        ) -> LocalBoxFuture<'_, ApiResult<Message>> {
            Box::pin(async move {
                if self.fail {
                    return Err(ApiError::internal("D1 down"));
                }
                let kept = media.iter().map(image_part).collect();
                reply.parts = reply_parts(&reply.content, kept);
                self.stored.borrow_mut().push(reply.clone());
                Ok(reply.into_message())
            })
        }
    }

    /// Provider events fed by the test, one at a time.
    #[derive(Clone, Default)]
    struct Script(Rc<RefCell<VecDeque<Option<ProviderEvent>>>>);

    impl Script {
        fn push(&self, event: ProviderEvent) {
            self.0.borrow_mut().push_back(Some(event));
        }

        fn end(&self) {
            self.0.borrow_mut().push_back(None);
        }

        fn stream(&self) -> LocalBoxStream<'static, ProviderEvent> {
            let queue = self.0.clone();
            let mut ended = false;
            Box::pin(futures::stream::poll_fn(move |_| {
                if ended {
                    return Poll::Ready(None);
                }
                match queue.borrow_mut().pop_front() {
                    None => Poll::Pending,
                    Some(None) => {
                        ended = true;
                        Poll::Ready(None)
                    }
                    Some(Some(event)) => Poll::Ready(Some(event)),
                }
            }))
        }
    }

    struct Harness {
        relay: ReplyRelay,
        recorder: Pin<Box<dyn Future<Output = ()>>>,
        recorder_done: bool,
        sink: MemorySink,
        disconnect: ClientDisconnect,
        clock: Rc<FixedClock>,
    }

    fn delta(text: &str) -> ProviderEvent {
        ProviderEvent::TextDelta(text.into())
    }

    fn harness(connect: Connect, sink: MemorySink) -> Harness {
        harness_with(connect, sink, None)
    }

    fn harness_with(connect: Connect, sink: MemorySink, keepalive: Option<Keepalive>) -> Harness {
        let disconnect = ClientDisconnect::default();
        let clock = Rc::new(FixedClock(std::cell::Cell::new(1_000)));
        let (relay, recorder) = reply_pair(
            ReplySetup {
                opening: vec![ChatStreamEvent::Delta {
                    text: String::new(),
                }],
                connect,
                disconnect: disconnect.clone(),
                clock: clock.clone(),
                message_id: "m".repeat(32),
                conversation_id: "c".repeat(32),
                request_id: "req".into(),
                log_level: LogLevel::Error,
                keepalive,
            },
            sink.clone(),
        );
        Harness {
            relay,
            recorder: Box::pin(recorder.run()),
            recorder_done: false,
            sink,
            disconnect,
            clock,
        }
    }

    fn connected(script: &Script) -> Connect {
        let events = script.stream();
        Box::pin(async move {
            Ok(Connected {
                model: "openai/gpt-4o".into(),
                provider: "openai".into(),
                events,
            })
        })
    }

    /// A wire event: (name, data); a keepalive comment is `(":", null)`.
    type Event = (String, serde_json::Value);

    fn parse(bytes: &[u8]) -> Event {
        if bytes == KEEPALIVE_FRAME {
            return (":".into(), serde_json::Value::Null);
        }
        let text = std::str::from_utf8(bytes).expect("utf-8");
        let mut lines = text.lines();
        let name = lines
            .next()
            .and_then(|l| l.strip_prefix("event: "))
            .expect("event");
        let data = lines
            .next()
            .and_then(|l| l.strip_prefix("data: "))
            .expect("data");
        (name.to_string(), serde_json::from_str(data).expect("json"))
    }

    impl Harness {
        fn poll_recorder(&mut self) {
            let mut cx = Context::from_waker(Waker::noop());
            if !self.recorder_done && self.recorder.as_mut().poll(&mut cx).is_ready() {
                self.recorder_done = true;
            }
        }

        /// Polls the relay (and the recorder) until it yields or has nothing to do.
        fn next(&mut self) -> Option<Option<Event>> {
            let mut cx = Context::from_waker(Waker::noop());
            for _ in 0..10 {
                self.poll_recorder();
                match Pin::new(&mut self.relay).poll_next(&mut cx) {
                    Poll::Ready(Some(Ok(bytes))) => return Some(Some(parse(&bytes))),
                    Poll::Ready(Some(Err(e))) => panic!("relay error {e}"),
                    Poll::Ready(None) => return Some(None),
                    Poll::Pending => {}
                }
            }
            None
        }

        /// Every event until the relay ends.
        fn drain(&mut self) -> Vec<Event> {
            let mut out = Vec::new();
            while let Some(item) = self.next() {
                match item {
                    Some(event) => out.push(event),
                    None => return out,
                }
            }
            panic!("the relay stalled after {out:?}");
        }

        fn stored(&self) -> Vec<AssistantReply> {
            self.sink.stored.borrow().clone()
        }
    }

    fn names(events: &[Event]) -> Vec<&str> {
        events.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn a_finished_reply_is_stored_complete_before_the_done_event_names_it() {
        let script = Script::default();
        for e in [
            delta("Hel"),
            delta("lo"),
            ProviderEvent::Usage(Usage::from_counts(3, 2)),
            ProviderEvent::Finish(FinishReason::Stop),
        ] {
            script.push(e);
        }
        let mut h = harness(connected(&script), MemorySink::default());
        let opening = h.next().expect("event").expect("opening");
        assert_eq!(opening.0, "delta");
        let first = h.next().expect("event").expect("first delta");
        assert_eq!(first.1["text"], "Hel");
        h.clock.0.set(1_250);
        let events = h.drain();
        assert_eq!(names(&events), ["delta", "usage", "done"]);
        let stored = h.stored();
        assert_eq!(stored.len(), 1);
        let reply = &stored[0];
        assert_eq!(
            (reply.content.as_str(), reply.status, reply.model.as_deref()),
            ("Hello", MessageStatus::Complete, Some("openai/gpt-4o"))
        );
        assert_eq!(reply.usage, Some(Usage::from_counts(3, 2)));
        assert_eq!(reply.latency_ms, Some(250));
        let done = &events[2].1;
        assert_eq!(done["message"]["id"], "m".repeat(32));
        assert_eq!(done["message"]["content"], "Hello");
        assert_eq!(done["finish_reason"], "stop");
    }

    #[test]
    fn a_provider_failure_after_output_stores_the_text_so_far_as_error() {
        let script = Script::default();
        script.push(delta("Half an "));
        script.push(delta("answer"));
        script.push(ProviderEvent::Error(ProviderError::new(
            ProviderErrorKind::Overloaded,
            "busy",
        )));
        let mut h = harness(connected(&script), MemorySink::default());
        let events = h.drain();
        assert_eq!(names(&events), ["delta", "delta", "delta", "error"]);
        let stored = h.stored();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].status, MessageStatus::Error);
        assert_eq!(stored[0].content, "Half an answer");
        let error = &events[3].1;
        assert_eq!(error["error"]["code"], "provider_overloaded");
        assert_eq!(error["message"]["status"], "error");
        assert_eq!(error["message"]["content"], "Half an answer");
    }

    #[test]
    fn a_failure_before_output_stores_nothing_and_says_so() {
        let connect: Connect = Box::pin(async {
            Err(ApiError::new(
                502,
                "provider_error",
                "Provider openai failed",
            ))
        });
        let mut h = harness(connect, MemorySink::default());
        let events = h.drain();
        assert_eq!(names(&events), ["delta", "error"]);
        assert_eq!(events[1].1["error"]["code"], "provider_error");
        assert_eq!(events[1].1["message"], serde_json::Value::Null);
        assert!(h.stored().is_empty());
    }

    #[test]
    fn a_disconnect_stores_exactly_the_deltas_the_client_took_as_partial() {
        let script = Script::default();
        script.push(delta("one "));
        script.push(delta("two "));
        let mut h = harness(connected(&script), MemorySink::default());
        assert_eq!(h.next().expect("e").expect("opening").0, "delta");
        assert_eq!(h.next().expect("e").expect("one").1["text"], "one ");
        assert_eq!(h.next().expect("e").expect("two").1["text"], "two ");
        // "three " is handed over, but the write fails: the client has gone.
        script.push(delta("three "));
        assert_eq!(h.next().expect("e").expect("three").1["text"], "three ");
        h.disconnect.mark_gone();
        h.poll_recorder();
        assert!(h.recorder_done);
        let stored = h.stored();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].status, MessageStatus::Partial);
        assert_eq!(stored[0].content, "one two ");
        // The relay, if polled again, sends nothing more.
        script.push(delta("four"));
        assert_eq!(h.next(), Some(None));
    }

    /// Timers that fire when the test says so.
    #[derive(Clone, Default)]
    struct Timers {
        armed: Rc<RefCell<Vec<u64>>>,
        fired: Rc<std::cell::Cell<bool>>,
    }

    impl Timers {
        fn sleep(&self) -> Sleep {
            let timers = self.clone();
            Rc::new(move |ms| {
                timers.armed.borrow_mut().push(ms);
                let fired = timers.fired.clone();
                Box::pin(futures::future::poll_fn(move |_| {
                    if fired.replace(false) {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                }))
            })
        }
    }

    #[test]
    fn an_idle_stream_writes_keepalive_comments_and_deltas_restart_the_wait() {
        let script = Script::default();
        let timers = Timers::default();
        let keepalive = Keepalive {
            interval_ms: 100,
            sleep: timers.sleep(),
        };
        let mut h = harness_with(connected(&script), MemorySink::default(), Some(keepalive));
        assert_eq!(h.next().expect("e").expect("opening").0, "delta");
        assert_eq!(h.next(), None, "idle, the timer not yet fired");
        assert_eq!(*timers.armed.borrow(), [100]);
        timers.fired.set(true);
        assert_eq!(h.next().expect("e").expect("comment").0, ":");
        script.push(delta("a"));
        assert_eq!(h.next().expect("e").expect("delta").1["text"], "a");
        assert_eq!(h.next(), None);
        assert_eq!(timers.armed.borrow().len(), 2, "re-armed once idle again");
        script.push(ProviderEvent::Finish(FinishReason::Stop));
        let events = h.drain();
        assert_eq!(names(&events), ["done"]);
        assert_eq!(h.stored()[0].content, "a", "comments are not text");
    }

    #[test]
    fn a_dropped_relay_counts_as_a_disconnect() {
        let script = Script::default();
        script.push(delta("seen "));
        let mut h = harness(connected(&script), MemorySink::default());
        h.next();
        h.next();
        assert_eq!(h.next(), None, "waiting for the provider");
        let Harness {
            relay,
            mut recorder,
            sink,
            ..
        } = h;
        drop(relay);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(recorder.as_mut().poll(&mut cx).is_ready());
        let stored = sink.stored.borrow();
        assert_eq!(stored.len(), 1);
        assert_eq!(
            (stored[0].status, stored[0].content.as_str()),
            (MessageStatus::Partial, "seen ")
        );
    }

    #[test]
    fn a_disconnect_before_any_delta_was_taken_stores_nothing() {
        let script = Script::default();
        let mut h = harness(connected(&script), MemorySink::default());
        h.next();
        script.push(delta("never seen"));
        h.next();
        h.disconnect.mark_gone();
        h.poll_recorder();
        assert!(h.recorder_done);
        assert!(h.stored().is_empty());
    }

    #[test]
    fn a_provider_stream_cut_off_without_a_disconnect_is_an_error() {
        let script = Script::default();
        script.push(delta("cut "));
        script.end();
        let mut h = harness(connected(&script), MemorySink::default());
        let events = h.drain();
        assert_eq!(names(&events), ["delta", "delta", "error"]);
        assert_eq!(h.stored()[0].status, MessageStatus::Error);
    }

    #[test]
    fn a_store_failure_is_reported_in_the_closing_event() {
        let script = Script::default();
        script.push(delta("ok"));
        script.push(ProviderEvent::Finish(FinishReason::Stop));
        let sink = MemorySink {
            fail: true,
            ..MemorySink::default()
        };
        let mut h = harness(connected(&script), sink);
        let events = h.drain();
        assert_eq!(names(&events), ["delta", "delta", "error"]);
        assert_eq!(events[2].1["error"]["code"], "internal_error");
        assert_eq!(events[2].1["message"], serde_json::Value::Null);
    }

    #[test]
    fn outcomes_follow_the_table_in_the_module_documentation() {
        let log = ReplyLog {
            delivered: "ab".into(),
            in_flight: "c".into(),
            ..ReplyLog::default()
        };
        let failed = ReplyEnd::Failed(ApiError::internal("x"));
        assert_eq!(
            outcome(&log, &ReplyEnd::Finished(FinishReason::Stop)),
            Some((MessageStatus::Complete, "abc".into()))
        );
        assert_eq!(
            outcome(&log, &failed),
            Some((MessageStatus::Error, "abc".into()))
        );
        assert_eq!(
            outcome(&log, &ReplyEnd::ClientGone),
            Some((MessageStatus::Partial, "ab".into()))
        );
        let empty = ReplyLog::default();
        assert_eq!(outcome(&empty, &failed), None);
        assert_eq!(outcome(&empty, &ReplyEnd::ClientGone), None);
        assert_eq!(
            outcome(&empty, &ReplyEnd::Finished(FinishReason::Stop)),
            Some((MessageStatus::Complete, String::new()))
        );
    }
}
