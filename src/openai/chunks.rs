//! The response side of the `/v1` facade: the non-stream `chat.completion` body and the
//! streamed `chat.completion.chunk` events, in the shapes the OpenAI SDKs parse.
//!
//! Kept apart from the handlers so the wire format is tested natively without a request:
//! `ChunkWriter` is pure bytes-out, and `ChunkStream` only adapts a [`ModelStream`] to
//! the body stream a Workers response takes (its item type is the one place this file
//! names the Workers API).
//!
//! - Streams are `chat.completion.chunk` events ending with `data: [DONE]`; with
//!   `stream_options.include_usage` every chunk carries `"usage":null` and a last chunk with
//!   empty `choices` carries the usage.
//! - Images a model generated come as OpenAI-compatible servers that return them send them
//!   (OpenRouter's shape): `message.images` (or `delta.images` in a stream), each
//!   `{"type": "image_url", "image_url": {"url": "data:image/png;base64,…"}, "index": n}`.
//!   A client that does not know the field ignores it.
//! - A provider failure after output has begun is sent as `data: {"error":{…}}` and the
//!   stream ends without `[DONE]`, which the SDKs raise as an `APIError`.

use crate::platform::random::{random_bytes, RandomUnavailable};
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use serde_json::{json, Value};

use crate::http::error::ApiError;
use crate::providers::client::failure::provider_error;
use crate::providers::client::stream::ModelStream;
use crate::providers::wire::{Completion, Media, ProviderEvent, Usage};

/// `chatcmpl-` and 24 random hex digits, like OpenAI's ids.
pub(super) fn completion_id() -> Result<String, RandomUnavailable> {
    let bytes = random_bytes::<12>()?;
    Ok(format!("chatcmpl-{}", crate::platform::ids::hex(&bytes)))
}

/// One generated image as an `images` entry.
fn image_json(index: usize, media: &Media) -> Value {
    json!({ "type": "image_url", "image_url": { "url": media.url() }, "index": index })
}

fn usage_json(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    })
}

/// The `chat.completion` body.
pub(super) fn completion_body(
    id: &str,
    created: u64,
    model: &str,
    completion: &Completion,
) -> Value {
    let mut body = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": completion.text, "refusal": null },
            "logprobs": null,
            "finish_reason": completion.finish_reason.as_openai_str(),
        }],
        "system_fingerprint": null,
    });
    if !completion.media.is_empty() {
        let images: Vec<Value> = completion
            .media
            .iter()
            .enumerate()
            .map(|(i, media)| image_json(i, media))
            .collect();
        body["choices"][0]["message"]["images"] = Value::Array(images);
    }
    if let Some(usage) = &completion.usage {
        body["usage"] = usage_json(usage);
    }
    body
}

/// Writes one stream's `chat.completion.chunk` events.
#[derive(Debug, Clone)]
pub(super) struct ChunkWriter {
    pub(super) id: String,
    pub(super) created: u64,
    pub(super) model: String,
    pub(super) include_usage: bool,
    pub(super) request_id: String,
}

fn sse(data: &Value) -> Vec<u8> {
    format!("data: {data}\n\n").into_bytes()
}

impl ChunkWriter {
    fn chunk(&self, choices: Value) -> Value {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": choices,
        });
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    fn delta(&self, delta: Value, finish_reason: Option<&str>) -> Vec<u8> {
        sse(&self.chunk(json!([{
            "index": 0,
            "delta": delta,
            "logprobs": null,
            "finish_reason": finish_reason,
        }])))
    }

    /// The first event: the assistant role, before any text (as OpenAI sends it).
    fn role(&self) -> Vec<u8> {
        self.delta(json!({ "role": "assistant", "content": "" }), None)
    }

    fn text(&self, text: &str) -> Vec<u8> {
        self.delta(json!({ "content": text }), None)
    }

    /// A generated image, the stream's `index`-th.
    fn image(&self, index: usize, media: &Media) -> Vec<u8> {
        self.delta(json!({ "images": [image_json(index, media)] }), None)
    }

    /// The finish chunk, the usage chunk when asked for, and `[DONE]`.
    fn finish(&self, reason: &str, usage: Option<&Usage>) -> Vec<u8> {
        let mut out = self.delta(json!({}), Some(reason));
        if self.include_usage {
            let mut chunk = self.chunk(json!([]));
            chunk["usage"] = usage.map_or(Value::Null, usage_json);
            out.extend(sse(&chunk));
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        out
    }

    /// An error after output began, in the shape the SDKs raise as `APIError`.
    fn error(&self, error: &ApiError) -> Vec<u8> {
        let mut envelope = error.envelope(&self.request_id);
        envelope["error"]["status"] = json!(error.status);
        sse(&envelope)
    }
}

/// Turns a [`ModelStream`] into OpenAI's SSE, one write per event (never buffered).
pub(super) struct ChunkStream {
    inner: ModelStream,
    writer: ChunkWriter,
    queue: VecDeque<Vec<u8>>,
    usage: Option<Usage>,
    /// Images sent so far (the next one's `index`).
    images: usize,
    done: bool,
}

impl ChunkStream {
    pub(super) fn new(inner: ModelStream, writer: ChunkWriter) -> ChunkStream {
        let queue = VecDeque::from([writer.role()]);
        ChunkStream {
            inner,
            writer,
            queue,
            usage: None,
            images: 0,
            done: false,
        }
    }

    fn on_event(&mut self, event: ProviderEvent) {
        match event {
            ProviderEvent::TextDelta(text) => self.queue.push_back(self.writer.text(&text)),
            ProviderEvent::Media(media) => {
                self.queue.push_back(self.writer.image(self.images, &media));
                self.images += 1;
            }
            ProviderEvent::Usage(usage) => self.usage = Some(usage),
            ProviderEvent::Finish(reason) => {
                let frame = self
                    .writer
                    .finish(reason.as_openai_str(), self.usage.as_ref());
                self.queue.push_back(frame);
                self.done = true;
            }
            ProviderEvent::Error(error) => {
                let api = provider_error(&self.inner.model().provider, &error);
                self.queue.push_back(self.writer.error(&api));
                self.done = true;
            }
        }
    }
}

impl Stream for ChunkStream {
    type Item = Result<Vec<u8>, worker::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(frame) = this.queue.pop_front() {
                return Poll::Ready(Some(Ok(frame)));
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
    use super::*;
    use crate::providers::wire::FinishReason;

    #[test]
    fn a_completion_body_has_the_chat_completion_shape() {
        let completion = Completion {
            media: Vec::new(),
            text: "Hello".into(),
            finish_reason: FinishReason::Length,
            usage: Some(Usage::from_counts(3, 1)),
            provider_model: None,
        };
        let body = completion_body("chatcmpl-1", 42, "openai/gpt-4o", &completion);
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], "openai/gpt-4o");
        assert_eq!(body["choices"][0]["message"]["content"], "Hello");
        assert_eq!(body["choices"][0]["finish_reason"], "length");
        assert_eq!(body["usage"]["total_tokens"], 4);
    }

    fn writer(include_usage: bool) -> ChunkWriter {
        ChunkWriter {
            id: "chatcmpl-1".into(),
            created: 1,
            model: "openai/gpt-4o".into(),
            include_usage,
            request_id: "req-1".into(),
        }
    }

    fn events(bytes: &[u8]) -> Vec<String> {
        String::from_utf8(bytes.to_vec())
            .expect("utf8")
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| e.strip_prefix("data: ").expect("data line").to_string())
            .collect()
    }

    #[test]
    fn generated_images_are_the_messages_and_the_deltas_images() {
        let picture = Media {
            kind: crate::providers::wire::MediaKind::Image,
            media_type: "image/png".into(),
            source: crate::providers::wire::MediaSource::Base64("AAAA".into()),
            name: None,
        };
        let completion = Completion {
            media: vec![picture.clone()],
            text: "Drawn.".into(),
            finish_reason: FinishReason::Stop,
            usage: None,
            provider_model: None,
        };
        let body = completion_body("chatcmpl-1", 1, "gemini/x", &completion);
        assert_eq!(
            body["choices"][0]["message"]["images"],
            json!([{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}, "index": 0}])
        );
        let chunk: Value =
            serde_json::from_str(&events(&writer(false).image(1, &picture))[0]).expect("json");
        assert_eq!(chunk["choices"][0]["delta"]["images"][0]["index"], 1);
        assert_eq!(
            chunk["choices"][0]["delta"]["images"][0]["image_url"]["url"],
            "data:image/png;base64,AAAA"
        );
        let plain = Completion {
            media: Vec::new(),
            ..completion
        };
        assert!(
            completion_body("c", 1, "m", &plain)["choices"][0]["message"]
                .get("images")
                .is_none()
        );
    }

    #[test]
    fn chunks_follow_openais_stream_format() {
        let w = writer(false);
        let role: Value = serde_json::from_str(&events(&w.role())[0]).expect("json");
        assert_eq!(role["object"], "chat.completion.chunk");
        assert_eq!(role["choices"][0]["delta"]["role"], "assistant");
        assert!(role.get("usage").is_none());
        let text: Value = serde_json::from_str(&events(&w.text("Hi"))[0]).expect("json");
        assert_eq!(text["choices"][0]["delta"]["content"], "Hi");
        let end = events(&w.finish("stop", Some(&Usage::from_counts(1, 1))));
        assert_eq!(end.len(), 2, "no usage chunk unless asked: {end:?}");
        assert_eq!(end[1], "[DONE]");
    }

    #[test]
    fn include_usage_adds_null_usage_everywhere_and_a_final_usage_chunk() {
        let w = writer(true);
        let text: Value = serde_json::from_str(&events(&w.text("Hi"))[0]).expect("json");
        assert!(text["usage"].is_null() && text.get("usage").is_some());
        let end = events(&w.finish("stop", Some(&Usage::from_counts(2, 3))));
        assert_eq!(end.len(), 3);
        let usage: Value = serde_json::from_str(&end[1]).expect("json");
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["total_tokens"], 5);
        assert_eq!(end[2], "[DONE]");
    }

    #[test]
    fn a_mid_stream_error_is_an_openai_error_event() {
        let api = ApiError::new(503, "provider_overloaded", "Provider openai is overloaded");
        let event: Value =
            serde_json::from_str(&events(&writer(false).error(&api))[0]).expect("json");
        assert_eq!(event["error"]["code"], "provider_overloaded");
        assert_eq!(event["error"]["type"], "service_unavailable");
        assert_eq!(event["error"]["message"], "Provider openai is overloaded");
        assert_eq!(event["error"]["request_id"], "req-1");
    }
}
