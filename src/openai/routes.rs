//! The OpenAI-compatible API: `POST /v1/chat/completions` and `GET /v1/models`, so the
//! official OpenAI SDKs work against Threadline by changing only their base URL
//! (`https://<host>/v1`) and key (a Threadline API key or access token), with any provider's
//! model behind them.
//!
//! Compatibility choices:
//! - Unknown request fields (`user`, `seed`, `logprobs`, `tools`… as SDKs and frameworks
//!   send them) are ignored rather than refused; fields whose meaning we cannot honour and
//!   that would change the answer (`n > 1`, tool/function messages, images) are a 400.
//! - `developer` is OpenAI's new name for `system`; `max_completion_tokens` wins over the
//!   deprecated `max_tokens`; `stop` may be a string or an array.
//! - Errors use the API's one envelope, whose `type`/`param`/`code`/`message` are what the
//!   SDKs read; statuses follow OpenAI's (401 bad key, 429 with `retry-after`, 5xx on
//!   provider trouble, `x-should-retry: false` where retrying cannot help).
//! - Streams are `chat.completion.chunk` events ending with `data: [DONE]`; with
//!   `stream_options.include_usage` every chunk carries `"usage":null` and a last chunk with
//!   empty `choices` carries the usage. A provider failure after output has begun is sent as
//!   `data: {"error":{…}}` and the stream ends without `[DONE]`, which the SDKs raise as an
//!   `APIError`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use worker::Response;

use crate::auth::guard::authenticate;
use crate::http::ctx::Ctx;
use crate::http::error::{ApiError, ApiResult};
use crate::http::response;
use crate::http::router::handler;
use crate::http::router::{Method, Route};
use crate::platform::clock::{Clock, SystemClock};
use crate::providers::client::failure::provider_error;
use crate::providers::client::stream::ModelStream;
use crate::providers::client::{event_stream_response, ProviderClient};
use crate::providers::wire::{ChatMessage, ChatRequest, Completion, ProviderEvent, Role, Usage};
use crate::rate_limit::kv as rate_limit;

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::Post,
            "/v1/chat/completions",
            handler!(chat_completions),
        ),
        Route::new(Method::Get, "/v1/models", handler!(list_models)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------------------------

/// The fields of an OpenAI chat completion request that Threadline reads; serde ignores the
/// rest.
#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    pub messages: Vec<InMessage>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub n: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
pub struct InMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
pub struct Part {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

/// What the handler needs besides the unified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_request", message).with_field(param)
}

/// Validates the request and translates it into the unified one.
pub fn to_unified(body: CompletionRequest) -> ApiResult<(Options, ChatRequest)> {
    if body.model.trim().is_empty() {
        return Err(invalid(
            "model",
            "`model` must name a model, e.g. \"openai/gpt-4o\".",
        ));
    }
    if body.messages.is_empty() {
        return Err(invalid(
            "messages",
            "`messages` must hold at least one message.",
        ));
    }
    let mut messages = Vec::with_capacity(body.messages.len());
    for (i, message) in body.messages.into_iter().enumerate() {
        let role = match message.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" | "function" => {
                return Err(invalid(
                    format!("messages[{i}].role"),
                    "Tool and function messages are not supported.",
                ))
            }
            _ => {
                return Err(invalid(
                    format!("messages[{i}].role"),
                    "`role` must be system, developer, user or assistant.",
                ))
            }
        };
        let content = match message.content {
            None => String::new(),
            Some(Content::Text(text)) => text,
            Some(Content::Parts(parts)) => {
                let mut texts = Vec::with_capacity(parts.len());
                for part in parts {
                    match (part.kind.as_str(), part.text) {
                        ("text", Some(text)) => texts.push(text),
                        _ => {
                            return Err(invalid(
                                format!("messages[{i}].content"),
                                "Only text content parts are supported.",
                            ))
                        }
                    }
                }
                texts.join("\n")
            }
        };
        messages.push(ChatMessage::new(role, content));
    }
    if let Some(t) = body.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(invalid(
                "temperature",
                "`temperature` must be between 0 and 2.",
            ));
        }
    }
    if let Some(p) = body.top_p {
        if !(0.0..=1.0).contains(&p) {
            return Err(invalid("top_p", "`top_p` must be between 0 and 1."));
        }
    }
    let max_tokens = body.max_completion_tokens.or(body.max_tokens);
    if max_tokens == Some(0) {
        let param = if body.max_completion_tokens.is_some() {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        return Err(invalid(param, format!("`{param}` must be at least 1.")));
    }
    if body.n.is_some_and(|n| n != 1) {
        return Err(invalid("n", "Only `n: 1` is supported."));
    }
    let stop: Vec<String> = match body.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(list)) => list,
    }
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect();
    if stop.len() > 4 {
        return Err(invalid("stop", "At most 4 stop sequences are supported."));
    }
    let stream = body.stream.unwrap_or(false);
    let include_usage = stream
        && body
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
    let request = ChatRequest {
        model: String::new(),
        messages,
        temperature: body.temperature,
        top_p: body.top_p,
        max_tokens,
        stop,
        stream,
        // Always asked for upstream: usage is worth having even when the client did not ask.
        include_usage: true,
    };
    Ok((
        Options {
            model: body.model.trim().to_string(),
            stream,
            include_usage,
        },
        request,
    ))
}

// ---------------------------------------------------------------------------------------------
// Response shapes
// ---------------------------------------------------------------------------------------------

/// `chatcmpl-` and 24 random hex digits, like OpenAI's ids.
fn completion_id() -> String {
    let bytes = crate::platform::random::random_bytes::<12>().unwrap_or([0; 12]);
    format!("chatcmpl-{}", crate::platform::ids::hex(&bytes))
}

fn usage_json(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    })
}

/// The `chat.completion` body.
pub fn completion_body(id: &str, created: u64, model: &str, completion: &Completion) -> Value {
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
    if let Some(usage) = &completion.usage {
        body["usage"] = usage_json(usage);
    }
    body
}

/// Writes one stream's `chat.completion.chunk` events.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub include_usage: bool,
    pub request_id: String,
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
    pub fn role(&self) -> Vec<u8> {
        self.delta(json!({ "role": "assistant", "content": "" }), None)
    }

    pub fn text(&self, text: &str) -> Vec<u8> {
        self.delta(json!({ "content": text }), None)
    }

    /// The finish chunk, the usage chunk when asked for, and `[DONE]`.
    pub fn finish(&self, reason: &str, usage: Option<&Usage>) -> Vec<u8> {
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
    pub fn error(&self, error: &ApiError) -> Vec<u8> {
        let mut envelope = error.envelope(&self.request_id);
        envelope["error"]["status"] = json!(error.status);
        sse(&envelope)
    }
}

/// Turns a [`ModelStream`] into OpenAI's SSE, one write per event (never buffered).
pub struct ChunkStream {
    inner: ModelStream,
    writer: ChunkWriter,
    queue: VecDeque<Vec<u8>>,
    usage: Option<Usage>,
    done: bool,
}

impl ChunkStream {
    pub fn new(inner: ModelStream, writer: ChunkWriter) -> ChunkStream {
        let queue = VecDeque::from([writer.role()]);
        ChunkStream {
            inner,
            writer,
            queue,
            usage: None,
            done: false,
        }
    }

    fn on_event(&mut self, event: ProviderEvent) {
        match event {
            ProviderEvent::TextDelta(text) => self.queue.push_back(self.writer.text(&text)),
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

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/// POST /v1/chat/completions — OpenAI-compatible chat completion, streamed or not.
async fn chat_completions(mut cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    rate_limit::enforce(
        &cx,
        "v1",
        &principal.user_id,
        cx.config.rate_limits.v1_per_user,
    )
    .await?;
    let body: CompletionRequest = cx.json().await?;
    let (options, request) = to_unified(body)?;
    let client = ProviderClient::new(&cx);
    let created = SystemClock.now_secs();
    if !options.stream {
        let answer = client.complete(&options.model, request).await?;
        let body = completion_body(
            &completion_id(),
            created,
            &answer.model.id,
            &answer.completion,
        );
        return response::json(200, &body);
    }
    let stream = client.stream(&options.model, request).await?;
    let writer = ChunkWriter {
        id: completion_id(),
        created,
        model: stream.model().id.clone(),
        include_usage: options.include_usage,
        request_id: cx.request_id.clone(),
    };
    event_stream_response(ChunkStream::new(stream, writer))
}

/// GET /v1/models — the models (and aliases) this deployment serves, in OpenAI's list shape.
async fn list_models(cx: Ctx) -> ApiResult<Response> {
    let principal = authenticate(&cx).await?;
    rate_limit::enforce(
        &cx,
        "v1",
        &principal.user_id,
        cx.config.rate_limits.v1_per_user,
    )
    .await?;
    let models = crate::providers::routes::available_models(&cx).await;
    response::json(200, &model_list(&models))
}

/// `{"object":"list","data":[{"id","object":"model","created","owned_by"}]}`, aliases
/// included as ids of their own (they are valid `model` values).
pub fn model_list(models: &[crate::providers::routes::OfferedModel]) -> Value {
    let mut data = Vec::new();
    for model in models {
        data.push(
            json!({ "id": model.id, "object": "model", "created": 0, "owned_by": model.provider }),
        );
    }
    for model in models {
        for alias in &model.aliases {
            data.push(
                json!({ "id": alias, "object": "model", "created": 0, "owned_by": model.provider }),
            );
        }
    }
    json!({ "object": "list", "data": data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::ctx::parse_json;
    use crate::providers::wire::FinishReason;

    fn parse(body: &str) -> ApiResult<(Options, ChatRequest)> {
        to_unified(parse_json::<CompletionRequest>(body.as_bytes())?)
    }

    fn error_param(body: &str) -> (u16, Option<String>) {
        let err = parse(body).expect_err("invalid");
        (err.status, err.field)
    }

    #[test]
    fn a_minimal_request_becomes_a_unified_non_stream_request() {
        let (options, request) =
            parse(r#"{"model":"openai/gpt-4o","messages":[{"role":"user","content":"Hi"}]}"#)
                .expect("valid");
        assert_eq!(options.model, "openai/gpt-4o");
        assert!(!options.stream);
        assert_eq!(request.messages, [ChatMessage::new(Role::User, "Hi")]);
        assert!(request.include_usage, "usage is always requested upstream");
    }

    #[test]
    fn unknown_fields_that_sdks_send_are_ignored() {
        let body = r#"{"model":"m/x","messages":[{"role":"user","content":"Hi","name":"bob"}],
            "user":"u-1","seed":7,"logprobs":false,"frequency_penalty":0,"presence_penalty":0,
            "response_format":{"type":"text"},"store":false,"metadata":{},"obfuscation":"x",
            "parallel_tool_calls":true,"service_tier":"auto"}"#;
        assert!(parse(body).is_ok());
    }

    #[test]
    fn developer_is_system_and_text_parts_are_joined() {
        let (_, request) = parse(
            r#"{"model":"m/x","messages":[{"role":"developer","content":"Be terse."},
                {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
                {"role":"assistant","content":null}]}"#,
        )
        .expect("valid");
        assert_eq!(
            request.messages,
            [
                ChatMessage::new(Role::System, "Be terse."),
                ChatMessage::new(Role::User, "a\nb"),
                ChatMessage::new(Role::Assistant, ""),
            ]
        );
    }

    #[test]
    fn max_completion_tokens_wins_over_max_tokens() {
        let (_, a) = parse(
            r#"{"model":"m/x","messages":[{"role":"user","content":"x"}],"max_tokens":10,"max_completion_tokens":20}"#,
        )
        .expect("valid");
        assert_eq!(a.max_tokens, Some(20));
        let (_, b) =
            parse(r#"{"model":"m/x","messages":[{"role":"user","content":"x"}],"max_tokens":10}"#)
                .expect("valid");
        assert_eq!(b.max_tokens, Some(10));
    }

    #[test]
    fn stop_may_be_a_string_or_an_array() {
        let (_, one) =
            parse(r#"{"model":"m/x","messages":[{"role":"user","content":"x"}],"stop":"END"}"#)
                .expect("valid");
        assert_eq!(one.stop, ["END"]);
        let (_, many) =
            parse(r#"{"model":"m/x","messages":[{"role":"user","content":"x"}],"stop":["a","b"]}"#)
                .expect("valid");
        assert_eq!(many.stop, ["a", "b"]);
    }

    #[test]
    fn include_usage_counts_only_for_streams() {
        let (s, _) = parse(
            r#"{"model":"m/x","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .expect("valid");
        assert!(s.stream && s.include_usage);
        let (n, _) = parse(
            r#"{"model":"m/x","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}"#,
        )
        .expect("valid");
        assert!(!n.include_usage);
    }

    #[test]
    fn unsupported_or_invalid_fields_are_400_naming_the_param() {
        let cases = [
            (r#"{"model":"m/x","messages":[]}"#, "messages"),
            (
                r#"{"model":" ","messages":[{"role":"user","content":"x"}]}"#,
                "model",
            ),
            (
                r#"{"model":"m/x","messages":[{"role":"tool","content":"x","tool_call_id":"1"}]}"#,
                "messages[0].role",
            ),
            (
                r#"{"model":"m/x","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}"#,
                "messages[0].content",
            ),
            (
                r#"{"model":"m/x","messages":[{"role":"user","content":"x"}],"temperature":3}"#,
                "temperature",
            ),
            (
                r#"{"model":"m/x","messages":[{"role":"user","content":"x"}],"top_p":1.5}"#,
                "top_p",
            ),
            (
                r#"{"model":"m/x","messages":[{"role":"user","content":"x"}],"n":2}"#,
                "n",
            ),
            (
                r#"{"model":"m/x","messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
                "max_tokens",
            ),
            (
                r#"{"model":"m/x","messages":[{"role":"user","content":"x"}],"stop":["1","2","3","4","5"]}"#,
                "stop",
            ),
        ];
        for (body, param) in cases {
            assert_eq!(error_param(body), (400, Some(param.to_string())), "{body}");
        }
    }

    #[test]
    fn a_wrongly_typed_field_is_a_4xx_not_a_500() {
        let err = parse(r#"{"model":"m/x","messages":"hi"}"#).expect_err("invalid");
        assert_eq!(err.status, 422);
    }

    #[test]
    fn a_completion_body_has_the_chat_completion_shape() {
        let completion = Completion {
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

    #[test]
    fn the_model_list_has_openais_shape_with_aliases_as_ids() {
        let models = vec![crate::providers::routes::OfferedModel {
            id: "openai/gpt-4o".into(),
            provider: "openai".into(),
            display_name: "GPT-4o".into(),
            context_window: 1,
            supports_streaming: true,
            supports_vision: true,
            source: "catalogue",
            aliases: vec!["smart".into()],
        }];
        let list = model_list(&models);
        assert_eq!(list["object"], "list");
        assert_eq!(list["data"][0]["id"], "openai/gpt-4o");
        assert_eq!(list["data"][0]["object"], "model");
        assert_eq!(list["data"][0]["owned_by"], "openai");
        assert_eq!(list["data"][1]["id"], "smart");
    }
}
