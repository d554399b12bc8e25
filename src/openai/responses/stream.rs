//! A streamed `POST /v1/responses`: a [`ModelStream`] turned into the Responses event
//! stream, one write per event (never buffered).
//!
//! With `store`, the turn is saved before `response.completed` is written, so a client that
//! continues with `previous_response_id` as soon as the stream ends always finds it; if it
//! cannot be saved, the stream ends with `error` and `response.failed` instead. A stream the
//! client leaves early is not stored (there is no answer to continue).

use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures::future::LocalBoxFuture;
use futures::{FutureExt, Stream, StreamExt};

use crate::http::error::{ApiError, ApiResult};
use crate::openai::responses::object::{EventWriter, Outcome};
use crate::openai::responses::store::{ResponseStore, StoredResponse};
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::logging::{LogLevel, LogLine};
use crate::providers::client::failure::provider_error;
use crate::providers::client::stream::ModelStream;
use crate::providers::wire::{ChatMessage, FinishReason, ProviderEvent, Role, Usage};

/// What storing the finished turn needs.
pub(crate) struct PendingRecord {
    pub(crate) store: Rc<dyn ResponseStore>,
    pub(crate) user_id: String,
    pub(crate) previous_response_id: Option<String>,
    /// This turn's input messages.
    pub(crate) input: Vec<ChatMessage>,
    pub(crate) created_at_ms: u64,
    pub(crate) log_level: LogLevel,
}

impl PendingRecord {
    /// The row for this turn with `reply` as its answer.
    pub(crate) fn record(
        &self,
        id: &str,
        message_id: &str,
        reply: &str,
        body: serde_json::Value,
    ) -> StoredResponse {
        let mut turn = self.input.clone();
        turn.push(ChatMessage::new(Role::Assistant, reply));
        StoredResponse {
            id: id.to_string(),
            message_id: message_id.to_string(),
            user_id: self.user_id.clone(),
            previous_response_id: self.previous_response_id.clone(),
            turn,
            body,
            created_at_ms: self.created_at_ms,
        }
    }
}

/// The events of one streamed response.
pub(crate) struct ResponseEventStream {
    inner: ModelStream,
    writer: EventWriter,
    text: String,
    usage: Option<Usage>,
    queue: VecDeque<Vec<u8>>,
    record: Option<PendingRecord>,
    /// The save under way, and the finish it holds back.
    saving: Option<(LocalBoxFuture<'static, ApiResult<()>>, FinishReason)>,
    done: bool,
}

impl ResponseEventStream {
    /// Starts with the opening events; `record` is `None` when `store` is off.
    pub(crate) fn new(
        inner: ModelStream,
        mut writer: EventWriter,
        record: Option<PendingRecord>,
    ) -> ResponseEventStream {
        let queue = VecDeque::from([writer.opening()]);
        ResponseEventStream {
            inner,
            writer,
            text: String::new(),
            usage: None,
            queue,
            record,
            saving: None,
            done: false,
        }
    }

    fn on_event(&mut self, event: ProviderEvent) {
        match event {
            ProviderEvent::TextDelta(text) => {
                self.queue.push_back(self.writer.delta(&text));
                self.text.push_str(&text);
            }
            ProviderEvent::Usage(usage) => self.usage = Some(usage),
            // The Responses API carries generated images as `image_generation_call` items of
            // OpenAI's own image tool, which Threadline does not offer: they are left out.
            ProviderEvent::Media(_) => {}
            ProviderEvent::Finish(reason) => match self.record.take() {
                Some(pending) => {
                    let outcome = Outcome::Finished(reason.clone());
                    let meta = self.writer.meta();
                    let body = meta.object(&outcome, Some(&self.text), self.usage.as_ref());
                    let record = pending.record(&meta.id, &meta.message_id, &self.text, body);
                    let store = pending.store.clone();
                    let level = pending.log_level;
                    let id = meta.id.clone();
                    let save = store.save(record).map(move |result| {
                        if let Err(err) = &result {
                            LogLine::new(
                                LogLevel::Error,
                                SystemClock.now_ms(),
                                "response not stored",
                            )
                            .field("response_id", id.as_str())
                            .field("error_detail", err.internal.as_deref().unwrap_or(""))
                            .emit(level);
                        }
                        result
                    });
                    self.saving = Some((Box::pin(save), reason));
                }
                None => self.finish(reason),
            },
            ProviderEvent::Error(error) => {
                let api = provider_error(&self.inner.model().provider, &error);
                self.queue.push_back(self.writer.fail(&api, &self.text));
                self.done = true;
            }
        }
    }

    fn finish(&mut self, reason: FinishReason) {
        let (frames, _) = self.writer.finish(reason, &self.text, self.usage.as_ref());
        self.queue.push_back(frames);
        self.done = true;
    }
}

/// The error a stream ends with when its finished turn could not be stored.
pub(crate) fn not_stored() -> ApiError {
    ApiError::new(
        500,
        "response_not_stored",
        "The answer could not be stored; send the request again (or with `store: false`).",
    )
}

impl Stream for ResponseEventStream {
    type Item = Result<Vec<u8>, worker::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(frame) = this.queue.pop_front() {
                return Poll::Ready(Some(Ok(frame)));
            }
            if let Some((save, _)) = &mut this.saving {
                let Poll::Ready(result) = save.poll_unpin(cx) else {
                    return Poll::Pending;
                };
                let Some((_, reason)) = this.saving.take() else {
                    continue;
                };
                match result {
                    Ok(()) => this.finish(reason),
                    Err(_) => {
                        let frames = this.writer.fail(&not_stored(), &this.text);
                        this.queue.push_back(frames);
                        this.done = true;
                    }
                }
                continue;
            }
            if this.done {
                return Poll::Ready(None);
            }
            match this.inner.poll_next_unpin(cx) {
                Poll::Ready(Some(event)) => this.on_event(event),
                Poll::Ready(None) => this.done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::task::Waker;

    use serde_json::{json, Value};

    use super::*;
    use crate::config::Config;
    use crate::openai::responses::object::ResponseMeta;
    use crate::platform::random::{RandomSource, SystemRandom};
    use crate::providers::client::transport::{Reply, Transport};
    use crate::providers::client::ProviderClient;
    use crate::providers::wire::{ChatRequest, OutboundRequest};

    /// No network; timers fire at once (all `dev/echo` needs).
    struct Instant;

    impl Transport for Instant {
        fn send(&self, _: OutboundRequest) -> LocalBoxFuture<'static, Result<Reply, String>> {
            Box::pin(async { Err("no network in this test".to_string()) })
        }
        fn sleep(&self, _: u64) -> LocalBoxFuture<'static, ()> {
            Box::pin(async {})
        }
        fn clock(&self) -> &dyn Clock {
            &SystemClock
        }
        fn random(&self) -> &dyn RandomSource {
            &SystemRandom
        }
        fn client_gone(&self) -> bool {
            false
        }
    }

    /// Records what it is asked to save; fails when told to.
    #[derive(Default)]
    struct FakeStore {
        saved: RefCell<Vec<StoredResponse>>,
        fail: bool,
    }

    impl ResponseStore for Rc<FakeStore> {
        fn save(&self, record: StoredResponse) -> LocalBoxFuture<'static, ApiResult<()>> {
            self.saved.borrow_mut().push(record);
            let fail = self.fail;
            Box::pin(async move {
                if fail {
                    Err(ApiError::internal("D1 is down"))
                } else {
                    Ok(())
                }
            })
        }
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..10_000 {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
        }
        panic!("the future never completed");
    }

    fn echo_stream() -> ModelStream {
        let src: BTreeMap<String, String> =
            [("ENVIRONMENT".to_string(), "development".to_string())].into();
        let config = Rc::new(Config::from_source(&src, || Ok(vec![7; 32])));
        let client = ProviderClient::with_transport(config, Rc::new(Instant));
        let request = ChatRequest {
            messages: vec![ChatMessage::new(Role::User, "hello there")],
            ..ChatRequest::default()
        };
        block_on(client.stream("dev/echo", request)).expect("dev/echo streams")
    }

    fn writer() -> EventWriter {
        let meta = ResponseMeta {
            id: "resp_1".into(),
            message_id: "msg_1".into(),
            created_at: 1,
            model: "dev/echo".into(),
            instructions: None,
            max_output_tokens: None,
            previous_response_id: Some("resp_0".into()),
            store: true,
            temperature: None,
            top_p: None,
            metadata: json!({}),
            parallel_tool_calls: true,
        };
        EventWriter::new(meta, "req-1".into())
    }

    fn pending(store: &Rc<FakeStore>) -> PendingRecord {
        PendingRecord {
            store: Rc::new(store.clone()),
            user_id: "user-1".into(),
            previous_response_id: Some("resp_0".into()),
            input: vec![ChatMessage::new(Role::User, "hello there")],
            created_at_ms: 5,
            log_level: LogLevel::Error,
        }
    }

    /// The `(type, data)` of every event the stream wrote.
    fn run(stream: ResponseEventStream) -> Vec<(String, Value)> {
        let frames = block_on(stream.collect::<Vec<_>>());
        let text: String = frames
            .into_iter()
            .map(|f| String::from_utf8(f.expect("frame")).expect("utf8"))
            .collect();
        text.split_terminator("\n\n")
            .map(|block| {
                let data = block.split('\n').nth(1).expect("data line");
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").expect("data")).expect("json");
                (data["type"].as_str().expect("type").to_string(), data)
            })
            .collect()
    }

    #[test]
    fn a_stored_stream_saves_the_turn_before_it_completes() {
        let store = Rc::new(FakeStore::default());
        let events = run(ResponseEventStream::new(
            echo_stream(),
            writer(),
            Some(pending(&store)),
        ));
        let (last, data) = events.last().expect("events");
        assert_eq!(last, "response.completed");
        let text: String = events
            .iter()
            .filter(|(t, _)| t == "response.output_text.delta")
            .map(|(_, d)| d["delta"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(text, "Echo: hello there");
        let saved = store.saved.borrow();
        assert_eq!(saved.len(), 1);
        assert_eq!(saved[0].id, "resp_1");
        assert_eq!(saved[0].user_id, "user-1");
        assert_eq!(saved[0].previous_response_id.as_deref(), Some("resp_0"));
        assert_eq!(
            saved[0].turn,
            [
                ChatMessage::new(Role::User, "hello there"),
                ChatMessage::new(Role::Assistant, "Echo: hello there"),
            ]
        );
        assert_eq!(
            saved[0].body, data["response"],
            "GET answers what completed said"
        );
    }

    #[test]
    fn without_store_nothing_is_saved() {
        let events = run(ResponseEventStream::new(echo_stream(), writer(), None));
        assert_eq!(
            events.last().map(|(t, _)| t.as_str()),
            Some("response.completed")
        );
        assert_eq!(events[0].0, "response.created");
    }

    #[test]
    fn a_turn_that_cannot_be_stored_ends_the_stream_failed() {
        let store = Rc::new(FakeStore {
            fail: true,
            ..FakeStore::default()
        });
        let events = run(ResponseEventStream::new(
            echo_stream(),
            writer(),
            Some(pending(&store)),
        ));
        let names: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
        assert!(!names.contains(&"response.completed"), "{names:?}");
        assert_eq!(&names[names.len() - 2..], ["error", "response.failed"]);
        assert_eq!(events[names.len() - 2].1["code"], "response_not_stored");
    }
}
