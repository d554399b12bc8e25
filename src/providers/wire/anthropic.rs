//! Anthropic Messages API (wire-formats §b).

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::model::{
    error_from_status, header, saturating_u32, ChatMessage, ChatRequest, Completion, FinishReason,
    MediaKind, MediaSource, OutboundRequest, Part, ProviderEndpoint, ProviderError,
    ProviderErrorKind, ProviderEvent, Role, StreamDecoder, Usage,
};
use super::sse::SseEvent;

/// Anthropic's base URL, *without* the version path, by the same convention as
/// Anthropic's SDKs: the adapter appends `/v1/messages` and `/v1/models`. A proxy that
/// mirrors the API under a prefix is configured as that prefix (`https://proxy/anthropic`).
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// The API version this adapter's request and event shapes follow.
pub const API_VERSION: &str = "2023-06-01";

/// Anthropic requires `max_tokens`; OpenAI-style clients usually omit it. 4096 is the
/// largest limit every catalogued Claude model accepts, so it never causes a 400 while
/// still allowing long answers.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Builds `POST {base}/v1/messages`.
///
/// Anthropic has no system role, so system messages are joined (blank line between) into
/// the top-level `system` field. Consecutive turns of the same role are merged the same
/// way: the API would combine them anyway, and merging here keeps the request valid for
/// proxies and older API versions that insist on alternation.
pub fn build_request(req: &ChatRequest, endpoint: &ProviderEndpoint) -> OutboundRequest {
    let system: Vec<String> = req
        .messages
        .iter()
        .filter(|message| message.role == Role::System)
        .map(ChatMessage::text)
        .filter(|text| !text.is_empty())
        .collect();
    let mut turns: Vec<ChatMessage> = Vec::new();
    for message in req.messages.iter().filter(|m| m.role != Role::System) {
        match turns.last_mut() {
            Some(turn) if turn.role == message.role => turn.append(message),
            _ => turns.push(message.clone()),
        }
    }
    let messages: Vec<Value> = turns
        .iter()
        .map(|turn| json!({ "role": turn.role, "content": content(turn) }))
        .collect();

    let mut body = Map::new();
    body.insert("model".into(), req.model.clone().into());
    body.insert(
        "max_tokens".into(),
        req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS).into(),
    );
    body.insert("messages".into(), messages.into());
    if !system.is_empty() {
        body.insert("system".into(), system.join("\n\n").into());
    }
    if let Some(temperature) = req.temperature {
        body.insert("temperature".into(), temperature.into());
    }
    if let Some(top_p) = req.top_p {
        body.insert("top_p".into(), top_p.into());
    }
    if !req.stop.is_empty() {
        body.insert("stop_sequences".into(), req.stop.clone().into());
    }
    body.insert("stream".into(), req.stream.into());

    OutboundRequest::post_json(
        endpoint.url("v1/messages"),
        req.stream,
        auth_headers(endpoint),
        Value::Object(body),
    )
}

/// A turn's `content`: a string when it is text only, else blocks — `image` and `document`
/// with a `base64` source (bare base64, no `data:` prefix, and the media type beside it) or a
/// `url` source; a document's name becomes its `title`.
fn content(turn: &ChatMessage) -> Value {
    if turn.is_text_only() {
        return turn.text().into();
    }
    let blocks: Vec<Value> = turn
        .parts
        .iter()
        .map(|part| match part {
            Part::Text(text) => json!({ "type": "text", "text": text }),
            Part::Media(media) => {
                let source = match &media.source {
                    MediaSource::Base64(data) => json!({
                        "type": "base64",
                        "media_type": media.media_type,
                        "data": data,
                    }),
                    MediaSource::Url(url) => json!({ "type": "url", "url": url }),
                };
                let mut block = json!({ "source": source });
                match media.kind {
                    MediaKind::Image => block["type"] = "image".into(),
                    MediaKind::Document => {
                        block["type"] = "document".into();
                        if let Some(name) = &media.name {
                            block["title"] = name.as_str().into();
                        }
                    }
                }
                block
            }
        })
        .collect();
    blocks.into()
}

/// Builds `GET {base}/v1/models?limit=1000`: the largest page Anthropic allows, so one
/// request returns every model and `has_more` can be ignored.
pub fn models_request(endpoint: &ProviderEndpoint) -> OutboundRequest {
    OutboundRequest::get_json(endpoint.url("v1/models?limit=1000"), auth_headers(endpoint))
}

fn auth_headers(endpoint: &ProviderEndpoint) -> Vec<(String, String)> {
    let mut headers = vec![header("anthropic-version", API_VERSION)];
    if let Some(key) = endpoint.key() {
        headers.push(header("x-api-key", key));
    }
    headers
}

/// Model ids from `{"data":[{"id","display_name","type":"model"}],"has_more"}`.
pub fn parse_model_list(body: &str) -> Result<Vec<String>, ProviderError> {
    #[derive(Deserialize)]
    struct ModelList {
        data: Vec<ModelEntry>,
    }
    #[derive(Deserialize)]
    struct ModelEntry {
        id: String,
    }
    let list: ModelList = serde_json::from_str(body)
        .map_err(|_| ProviderError::malformed("the provider's model list was not understood"))?;
    Ok(list.data.into_iter().map(|model| model.id).collect())
}

/// Token counts as Anthropic reports them. `input_tokens` excludes cached prompt tokens,
/// so the cache counts are added back: OpenAI's `prompt_tokens` counts the whole prompt.
#[derive(Debug, Default, Deserialize)]
struct UsageBody {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl UsageBody {
    fn prompt_tokens(&self) -> Option<u64> {
        let input = self.input_tokens?;
        Some(
            input
                + self.cache_creation_input_tokens.unwrap_or(0)
                + self.cache_read_input_tokens.unwrap_or(0),
        )
    }
}

fn finish_reason_from_anthropic(raw: &str) -> FinishReason {
    match raw {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        // `pause_turn` (a server tool paused the turn) has no OpenAI counterpart.
        other => FinishReason::Other(other.to_owned()),
    }
}

#[derive(Deserialize)]
struct TextBlock {
    #[serde(rename = "type", default)]
    block_type: String,
    text: Option<String>,
}

/// Reads a non-stream `message` body. Only `text` blocks form the answer; `thinking` and
/// `tool_use` blocks are not relayed.
pub fn parse_completion(body: &str) -> Result<Completion, ProviderError> {
    #[derive(Deserialize)]
    struct MessageBody {
        #[serde(rename = "type")]
        body_type: Option<String>,
        content: Option<Vec<TextBlock>>,
        stop_reason: Option<String>,
        usage: Option<UsageBody>,
        model: Option<String>,
    }
    let value: Value = serde_json::from_str(body)
        .map_err(|_| ProviderError::malformed("the provider's reply was not JSON"))?;
    if value.get("error").is_some_and(|error| !error.is_null()) {
        return Err(error_from_json(&value, None));
    }
    let message: MessageBody = serde_json::from_value(value)
        .map_err(|_| ProviderError::malformed("the provider's reply was not a message"))?;
    if message.body_type.as_deref().is_some_and(|t| t != "message") {
        return Err(ProviderError::malformed(
            "the provider's reply was not a message",
        ));
    }
    let text = message
        .content
        .unwrap_or_default()
        .into_iter()
        .filter(|block| block.block_type == "text")
        .filter_map(|block| block.text)
        .collect();
    let usage = message.usage.map(|usage| {
        Usage::from_counts(
            saturating_u32(usage.prompt_tokens().unwrap_or(0)),
            saturating_u32(usage.output_tokens.unwrap_or(0)),
        )
    });
    Ok(Completion {
        media: Vec::new(),
        text,
        finish_reason: message
            .stop_reason
            .as_deref()
            .map_or(FinishReason::Stop, finish_reason_from_anthropic),
        usage,
        provider_model: message.model,
    })
}

/// One stream event's `data`, dispatched on its `type` (which always matches the SSE
/// `event:` name, so the JSON alone is trusted).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamData {
    MessageStart {
        message: StartedMessage,
    },
    ContentBlockStart {
        content_block: TextBlock,
    },
    ContentBlockDelta {
        delta: BlockDelta,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        usage: Option<UsageBody>,
    },
    MessageStop,
    Error {
        error: Value,
    },
    /// `ping`, `content_block_stop`, and whatever Anthropic adds later.
    #[serde(other)]
    Ignored,
}

#[derive(Deserialize)]
struct StartedMessage {
    usage: Option<UsageBody>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    /// `thinking_delta`, `input_json_delta`, `signature_delta`, … — not answer text.
    #[serde(other)]
    Ignored,
}

#[derive(Default, Deserialize)]
struct MessageDeltaBody {
    stop_reason: Option<String>,
}

/// Decodes a Messages stream. Usage is assembled from two places — input tokens from
/// `message_start`, output tokens (cumulative) from `message_delta` — and emitted with the
/// finish reason at `message_stop`.
#[derive(Debug, Default)]
pub struct AnthropicStreamDecoder {
    prompt_tokens: Option<u64>,
    output_tokens: Option<u64>,
    finish_reason: Option<FinishReason>,
    ended: bool,
}

impl AnthropicStreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn fail(&mut self, error: ProviderError) -> Vec<ProviderEvent> {
        self.ended = true;
        vec![ProviderEvent::Error(error)]
    }

    fn record_usage(&mut self, usage: &UsageBody) {
        // message_delta may repeat input counts (newer API versions); either way the
        // latest figure is the cumulative one.
        if let Some(prompt_tokens) = usage.prompt_tokens() {
            self.prompt_tokens = Some(prompt_tokens);
        }
        if let Some(output_tokens) = usage.output_tokens {
            self.output_tokens = Some(output_tokens);
        }
    }

    fn end(&mut self) -> Vec<ProviderEvent> {
        self.ended = true;
        let mut events = Vec::new();
        if self.prompt_tokens.is_some() || self.output_tokens.is_some() {
            events.push(ProviderEvent::Usage(Usage::from_counts(
                saturating_u32(self.prompt_tokens.unwrap_or(0)),
                saturating_u32(self.output_tokens.unwrap_or(0)),
            )));
        }
        events.push(ProviderEvent::Finish(
            self.finish_reason.take().unwrap_or(FinishReason::Stop),
        ));
        events
    }
}

impl StreamDecoder for AnthropicStreamDecoder {
    fn on_event(&mut self, event: &SseEvent) -> Vec<ProviderEvent> {
        if self.ended {
            return Vec::new();
        }
        if event.oversized {
            return self.fail(ProviderError::malformed(
                "the provider sent a stream event too large to accept",
            ));
        }
        if event.data.trim().is_empty() {
            return Vec::new();
        }
        let data = match serde_json::from_str::<StreamData>(&event.data) {
            Ok(data) => data,
            Err(_) if event.event.as_deref() == Some("error") => {
                return self.fail(ProviderError::from_upstream(
                    ProviderErrorKind::Server,
                    "",
                    None,
                ));
            }
            Err(_) => {
                return self.fail(ProviderError::malformed(
                    "the provider sent a stream event that was not understood",
                ));
            }
        };
        match data {
            StreamData::MessageStart { message } => {
                if let Some(usage) = message.usage {
                    self.record_usage(&usage);
                }
                Vec::new()
            }
            StreamData::ContentBlockStart { content_block } => {
                match (content_block.block_type.as_str(), content_block.text) {
                    ("text", Some(text)) if !text.is_empty() => {
                        vec![ProviderEvent::TextDelta(text)]
                    }
                    _ => Vec::new(),
                }
            }
            StreamData::ContentBlockDelta {
                delta: BlockDelta::TextDelta { text },
            } if !text.is_empty() => vec![ProviderEvent::TextDelta(text)],
            StreamData::MessageDelta { delta, usage } => {
                if let Some(reason) = delta.stop_reason {
                    self.finish_reason = Some(finish_reason_from_anthropic(&reason));
                }
                if let Some(usage) = usage {
                    self.record_usage(&usage);
                }
                Vec::new()
            }
            StreamData::MessageStop => self.end(),
            StreamData::Error { error } => {
                let error = error_from_object(&error, None);
                self.fail(error)
            }
            StreamData::ContentBlockDelta { .. } | StreamData::Ignored => Vec::new(),
        }
    }

    fn finish(&mut self) -> Vec<ProviderEvent> {
        if self.ended {
            return Vec::new();
        }
        self.fail(ProviderError::stream_ended_early())
    }
}

/// Maps an error response to a [`ProviderError`]. The body's `error.type` decides the kind
/// whenever present; the status is only the fallback. `retry_after_secs` comes from
/// [`super::model::retry_after_secs`].
pub fn parse_error(status: u16, retry_after_secs: Option<u64>, body: &str) -> ProviderError {
    let error = match serde_json::from_str::<Value>(body) {
        Ok(value) => error_from_json(&value, Some(status)),
        Err(_) => error_from_status(status),
    };
    error.with_retry_after(retry_after_secs)
}

/// `{"type":"error","error":{"type","message"}}`.
fn error_from_json(value: &Value, http_status: Option<u16>) -> ProviderError {
    match value.get("error") {
        Some(error @ Value::Object(_)) => error_from_object(error, http_status),
        _ => ProviderError::from_upstream(
            http_status.map_or(
                ProviderErrorKind::Server,
                ProviderErrorKind::from_http_status,
            ),
            "",
            http_status,
        ),
    }
}

/// The inner `{"type","message"}`. Errors inside a 200 stream have no meaningful status,
/// so their type is the only reliable signal (anthropic-sdk-python#1258).
fn error_from_object(error: &Value, http_status: Option<u16>) -> ProviderError {
    let error_type = error
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = kind_from_error_type(error_type).unwrap_or_else(|| {
        http_status.map_or(
            ProviderErrorKind::Server,
            ProviderErrorKind::from_http_status,
        )
    });
    ProviderError::from_upstream(kind, message, http_status)
}

fn kind_from_error_type(error_type: &str) -> Option<ProviderErrorKind> {
    use ProviderErrorKind::*;
    Some(match error_type {
        "invalid_request_error" | "request_too_large" => InvalidRequest,
        "authentication_error" | "permission_error" => Auth,
        "billing_error" => QuotaExceeded,
        "not_found_error" => NotFound,
        "rate_limit_error" => RateLimited,
        "api_error" => Server,
        "timeout_error" => Timeout,
        "overloaded_error" => Overloaded,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::wire::model::ChatMessage;

    const RECORDED_STREAM: &str = include_str!("fixtures/anthropic_basic_response.txt");

    fn endpoint(key: Option<&str>) -> ProviderEndpoint {
        ProviderEndpoint {
            kind: crate::providers::wire::model::ProviderKind::Anthropic,
            base_url: DEFAULT_BASE_URL.into(),
            api_key: key.map(str::to_owned),
        }
    }

    #[test]
    fn media_become_image_and_document_blocks_with_bare_base64() {
        let request =
            crate::providers::wire::test_support::media_request("claude-3-5-sonnet-latest");
        let body = body_json(&build_request(&request, &endpoint(Some("k"))));
        assert_eq!(body["system"], "Be brief.");
        assert_eq!(body["messages"].as_array().map(Vec::len), Some(1), "{body}");
        assert_eq!(
            body["messages"][0]["content"],
            json!([
                {"type": "text", "text": "Earlier"},
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}, "title": "a.pdf"},
            ])
        );
    }

    fn body_json(request: &OutboundRequest) -> Value {
        serde_json::from_str(&request.body).unwrap_or(Value::Null)
    }

    fn conversation() -> ChatRequest {
        ChatRequest {
            model: "claude-3-5-haiku-latest".into(),
            messages: vec![
                ChatMessage::new(Role::System, "Be brief."),
                ChatMessage::new(Role::User, "Hi"),
                ChatMessage::new(Role::System, "Answer in French."),
                ChatMessage::new(Role::User, "Are you there?"),
                ChatMessage::new(Role::Assistant, "Oui."),
            ],
            stream: true,
            ..ChatRequest::default()
        }
    }

    fn decode(input: &str) -> Vec<ProviderEvent> {
        crate::providers::wire::test_support::decode_all(&mut AnthropicStreamDecoder::new(), input)
    }

    use crate::providers::wire::test_support::final_error;

    #[test]
    fn request_goes_to_v1_messages_with_key_and_version_headers() {
        let request = build_request(&conversation(), &endpoint(Some("sk-ant-test")));
        assert_eq!(request.url, "https://api.anthropic.com/v1/messages");
        assert_eq!(request.header("x-api-key"), Some("sk-ant-test"));
        assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("authorization"), None);
    }

    #[test]
    fn system_messages_are_joined_into_the_top_level_system_field() {
        let body = body_json(&build_request(&conversation(), &endpoint(None)));
        assert_eq!(body["system"], "Be brief.\n\nAnswer in French.");
        let roles: Vec<&str> = body["messages"]
            .as_array()
            .map(|messages| messages.iter().filter_map(|m| m["role"].as_str()).collect())
            .unwrap_or_default();
        assert!(!roles.contains(&"system"));
    }

    #[test]
    fn consecutive_same_role_turns_are_merged() {
        let body = body_json(&build_request(&conversation(), &endpoint(None)));
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": "Hi\n\nAre you there?"},
                {"role": "assistant", "content": "Oui."},
            ])
        );
    }

    #[test]
    fn max_tokens_defaults_when_the_client_sets_none() {
        let body = body_json(&build_request(&conversation(), &endpoint(None)));
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        let limited = ChatRequest {
            max_tokens: Some(50),
            ..conversation()
        };
        assert_eq!(
            body_json(&build_request(&limited, &endpoint(None)))["max_tokens"],
            50
        );
    }

    #[test]
    fn sampling_and_stop_fields_use_anthropic_names() {
        let request = ChatRequest {
            temperature: Some(0.2),
            top_p: Some(0.8),
            stop: vec!["###".into()],
            ..conversation()
        };
        let body = body_json(&build_request(&request, &endpoint(None)));
        assert_eq!(body["temperature"], 0.2);
        assert_eq!(body["top_p"], 0.8);
        assert_eq!(body["stop_sequences"], json!(["###"]));
        assert_eq!(body["stream"], true);
        assert!(body.get("stop").is_none());
    }

    #[test]
    fn request_without_system_messages_has_no_system_field() {
        let request = ChatRequest {
            messages: vec![ChatMessage::new(Role::User, "Hi")],
            ..conversation()
        };
        assert!(body_json(&build_request(&request, &endpoint(None)))
            .get("system")
            .is_none());
    }

    #[test]
    fn base_url_with_trailing_slash_gives_no_double_slash() {
        let mut proxied = endpoint(None);
        proxied.base_url = "https://gateway.example/anthropic/".into();
        assert_eq!(
            build_request(&conversation(), &proxied).url,
            "https://gateway.example/anthropic/v1/messages"
        );
    }

    #[test]
    fn models_request_asks_for_one_large_page() {
        let request = models_request(&endpoint(Some("sk-ant-test")));
        assert_eq!(request.method, "GET");
        assert_eq!(
            request.url,
            "https://api.anthropic.com/v1/models?limit=1000"
        );
        assert_eq!(request.header("x-api-key"), Some("sk-ant-test"));
        assert_eq!(request.header("anthropic-version"), Some(API_VERSION));
    }

    #[test]
    fn model_list_yields_ids() {
        let body = r#"{"data":[{"type":"model","id":"claude-3-7-sonnet-20250219","display_name":"Claude 3.7 Sonnet","created_at":"2025-02-24T00:00:00Z"}],"has_more":false,"first_id":"a","last_id":"b"}"#;
        assert_eq!(
            parse_model_list(body),
            Ok(vec!["claude-3-7-sonnet-20250219".to_owned()])
        );
    }

    #[test]
    fn completion_concatenates_text_blocks_and_counts_cached_prompt_tokens() {
        let body = r#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"thinking","thinking":"hmm"},{"type":"text","text":"Hello"},{"type":"text","text":" world"}],"model":"claude-3-5-haiku-20241022","stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":2}}"#;
        assert_eq!(
            parse_completion(body),
            Ok(Completion {
                media: Vec::new(),
                text: "Hello world".into(),
                finish_reason: FinishReason::Length,
                usage: Some(Usage::from_counts(15, 2)),
                provider_model: Some("claude-3-5-haiku-20241022".into()),
            })
        );
    }

    #[test]
    fn stop_reasons_map_to_unified_reasons() {
        for (raw, expected) in [
            ("end_turn", FinishReason::Stop),
            ("stop_sequence", FinishReason::Stop),
            ("max_tokens", FinishReason::Length),
            ("model_context_window_exceeded", FinishReason::Length),
            ("tool_use", FinishReason::ToolCalls),
            ("refusal", FinishReason::ContentFilter),
            ("pause_turn", FinishReason::Other("pause_turn".into())),
        ] {
            assert_eq!(finish_reason_from_anthropic(raw), expected, "{raw}");
        }
    }

    #[test]
    fn recorded_fixture_decodes_to_text_then_usage_then_finish() {
        assert_eq!(
            decode(RECORDED_STREAM),
            vec![
                ProviderEvent::TextDelta("Hello".into()),
                ProviderEvent::Usage(Usage::from_counts(11, 6)),
                ProviderEvent::Finish(FinishReason::Stop),
            ]
        );
    }

    #[test]
    fn anthropic_mid_stream_overloaded_error_maps_by_type_not_status() {
        let stream = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n",
            "event: error\n",
            "data: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n",
        );
        let events = decode(stream);
        assert_eq!(events[0], ProviderEvent::TextDelta("Hel".into()));
        let error = final_error(&events);
        assert_eq!(error.kind, ProviderErrorKind::Overloaded);
        assert_eq!(error.upstream_status, None);
        assert!(error.is_retryable());
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn stream_cut_before_message_stop_ends_with_stream_ended_early() {
        let cut = RECORDED_STREAM.replace(
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n",
            "",
        );
        let events = decode(&cut);
        assert_eq!(events[0], ProviderEvent::TextDelta("Hello".into()));
        assert_eq!(final_error(&events), ProviderError::stream_ended_early());
    }

    #[test]
    fn unknown_event_types_and_non_text_deltas_are_ignored() {
        let stream = concat!(
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n",
            "event: brand_new_event\n",
            "data: {\"type\":\"brand_new_event\",\"whatever\":1}\n\n",
            ": keep-alive\n\n",
            "event: message_stop\n",
            "data: {\"type\":\"message_stop\"}\n\n",
        );
        assert_eq!(
            decode(stream),
            vec![ProviderEvent::Finish(FinishReason::Stop)]
        );
    }

    #[test]
    fn message_delta_input_tokens_override_message_start() {
        let stream = concat!(
            "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"refusal\"},\"usage\":{\"input_tokens\":4,\"output_tokens\":9}}\n\n",
            "data: {\"type\":\"message_stop\"}\n\n",
        );
        assert_eq!(
            decode(stream),
            vec![
                ProviderEvent::Usage(Usage::from_counts(4, 9)),
                ProviderEvent::Finish(FinishReason::ContentFilter),
            ]
        );
    }

    #[test]
    fn unparseable_stream_data_is_malformed() {
        let events = decode("event: content_block_delta\ndata: {\"type\":\n\n");
        assert_eq!(final_error(&events).kind, ProviderErrorKind::Malformed);
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn error_types_map_to_kinds_regardless_of_status() {
        use ProviderErrorKind::*;
        for (status, error_type, expected) in [
            (400, "invalid_request_error", InvalidRequest),
            (401, "authentication_error", Auth),
            (402, "billing_error", QuotaExceeded),
            (403, "permission_error", Auth),
            (404, "not_found_error", NotFound),
            (413, "request_too_large", InvalidRequest),
            (429, "rate_limit_error", RateLimited),
            (500, "api_error", Server),
            (504, "timeout_error", Timeout),
            (529, "overloaded_error", Overloaded),
            (200, "overloaded_error", Overloaded),
        ] {
            let body = format!(
                r#"{{"type":"error","error":{{"type":"{error_type}","message":"details"}},"request_id":"req_1"}}"#
            );
            assert_eq!(
                parse_error(status, None, &body).kind,
                expected,
                "{error_type}"
            );
        }
    }

    #[test]
    fn a_503_with_a_generic_api_error_body_is_overloaded_like_every_provider_s_503() {
        let body =
            r#"{"type":"error","error":{"type":"api_error","message":"Service unavailable"}}"#;
        assert_eq!(
            parse_error(503, None, body).kind,
            ProviderErrorKind::Overloaded
        );
        assert_eq!(
            crate::providers::wire::openai::parse_error(503, None, body).kind,
            ProviderErrorKind::Overloaded
        );
        // A 500 with the same body stays a server error.
        assert_eq!(parse_error(500, None, body).kind, ProviderErrorKind::Server);
    }

    #[test]
    fn status_529_without_a_body_is_overloaded_and_keeps_retry_after() {
        let error = parse_error(529, Some(10), "");
        assert_eq!(error.kind, ProviderErrorKind::Overloaded);
        assert_eq!(error.retry_after_secs, Some(10));
        assert_eq!(error.upstream_status, Some(529));
    }

    #[test]
    fn authentication_error_never_echoes_the_key() {
        let body = r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key sk-ant-api03-SECRETSECRET"}}"#;
        let error = parse_error(401, None, body);
        assert_eq!(error.kind, ProviderErrorKind::Auth);
        assert!(!error.message.contains("SECRET"), "{}", error.message);
    }

    #[test]
    fn invalid_request_message_is_relayed() {
        let body = r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: 100000 > 8192, which is the maximum allowed"}}"#;
        assert_eq!(
            parse_error(400, None, body).message,
            "max_tokens: 100000 > 8192, which is the maximum allowed"
        );
    }

    #[test]
    fn completion_body_carrying_an_error_is_an_error() {
        let body = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            parse_completion(body).err().map(|e| e.kind),
            Some(ProviderErrorKind::Overloaded)
        );
    }
}
