//! OpenAI Chat Completions, and the servers that imitate it: Ollama, vLLM, llama.cpp
//! (wire-formats §a and §d).
//!
//! The imitators differ in their errors more than in their happy path, so the error
//! reading here accepts every shape they use: OpenAI's nested `{"error":{…}}`, vLLM's old
//! flat `{"object":"error",…}` and its integer `code`, a bare string `error`, and
//! llama.cpp's non-standard SSE `error:` field.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::model::{
    error_from_status, header, saturating_u32, ChatMessage, ChatRequest, Completion, FinishReason,
    Media, MediaKind, MediaSource, OutboundRequest, Part, ProviderEndpoint, ProviderError,
    ProviderErrorKind, ProviderEvent, ProviderKind, StreamDecoder, Usage,
};
use super::sse::SseEvent;

/// OpenAI's base URL. By the same convention as the OpenAI SDKs' `base_url`, it includes
/// the version path (`/v1`), so an OpenAI-compatible server is configured exactly as its
/// docs say for those SDKs: `http://localhost:11434/v1` for Ollama, `http://host:8000/v1`
/// for vLLM. Paths such as `chat/completions` are appended to it.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// Builds `POST {base}/chat/completions`.
///
/// The token limit goes in `max_completion_tokens` for OpenAI itself, because `max_tokens`
/// is deprecated there and rejected by o-series models; compatible servers get
/// `max_tokens`, because Ollama silently ignores `max_completion_tokens`. No
/// `Authorization` header is sent without a key (Ollama needs none).
pub fn build_request(req: &ChatRequest, endpoint: &ProviderEndpoint) -> OutboundRequest {
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|message| json!({ "role": message.role, "content": content(message) }))
        .collect();
    let mut body = Map::new();
    body.insert("model".into(), req.model.clone().into());
    body.insert("messages".into(), messages.into());
    body.insert("stream".into(), req.stream.into());
    if req.stream && req.include_usage {
        body.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    if let Some(temperature) = req.temperature {
        body.insert("temperature".into(), temperature.into());
    }
    if let Some(top_p) = req.top_p {
        body.insert("top_p".into(), top_p.into());
    }
    if let Some(max_tokens) = req.max_tokens {
        let field = match endpoint.kind {
            ProviderKind::OpenAi => "max_completion_tokens",
            _ => "max_tokens",
        };
        body.insert(field.into(), max_tokens.into());
    }
    if !req.stop.is_empty() {
        body.insert("stop".into(), req.stop.clone().into());
    }
    OutboundRequest::post_json(
        endpoint.url("chat/completions"),
        req.stream,
        authorization(endpoint),
        Value::Object(body),
    )
}

/// A turn's `content`: a string when it is text only (what every compatible server takes),
/// else content parts — `image_url` with an https or `data:` URL, and `file` with
/// `file_data` as a `data:` URL and a `filename` for a document (OpenAI reads PDFs so; a
/// document by URL has no Chat Completions form, which the capability check refuses before
/// this, so it is only named as text here).
fn content(message: &ChatMessage) -> Value {
    if message.is_text_only() {
        return message.text().into();
    }
    let parts: Vec<Value> = message
        .parts
        .iter()
        .map(|part| match part {
            Part::Text(text) => json!({ "type": "text", "text": text }),
            Part::Media(media) => match (media.kind, &media.source) {
                (MediaKind::Image, _) => {
                    json!({ "type": "image_url", "image_url": { "url": media.url() } })
                }
                (MediaKind::Document, MediaSource::Base64(_)) => json!({
                    "type": "file",
                    "file": {
                        "file_data": media.url(),
                        "filename": media.name.as_deref().unwrap_or("document.pdf"),
                    }
                }),
                (MediaKind::Document, MediaSource::Url(url)) => {
                    json!({ "type": "text", "text": format!("Document: {url}") })
                }
            },
        })
        .collect();
    parts.into()
}

/// Builds `GET {base}/models`.
pub fn models_request(endpoint: &ProviderEndpoint) -> OutboundRequest {
    OutboundRequest::get_json(endpoint.url("models"), authorization(endpoint))
}

fn authorization(endpoint: &ProviderEndpoint) -> Option<(String, String)> {
    endpoint
        .key()
        .map(|key| header("authorization", format!("Bearer {key}")))
}

/// Model ids from `{"object":"list","data":[{"id":…}]}`.
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

#[derive(Deserialize)]
struct UsageBody {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    total_tokens: Option<u64>,
}

impl UsageBody {
    fn to_usage(&self) -> Usage {
        let prompt_tokens = saturating_u32(self.prompt_tokens);
        let completion_tokens = saturating_u32(self.completion_tokens);
        match self.total_tokens {
            Some(total) => Usage {
                prompt_tokens,
                completion_tokens,
                total_tokens: saturating_u32(total),
            },
            None => Usage::from_counts(prompt_tokens, completion_tokens),
        }
    }
}

/// `stop`, `length`, `content_filter`, `tool_calls` are ours; anything else (including the
/// legacy `function_call`, itself an OpenAI value) passes through unchanged.
fn finish_reason_from_openai(raw: &str) -> FinishReason {
    match raw {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "content_filter" => FinishReason::ContentFilter,
        "tool_calls" => FinishReason::ToolCalls,
        other => FinishReason::Other(other.to_owned()),
    }
}

/// An image in an answer, as OpenAI-compatible servers that return them write it (OpenRouter
/// and the gateways that copy it): `{"type": "image_url", "image_url": {"url": "data:…"}}` in
/// the message's (or the delta's) `images`.
#[derive(Deserialize)]
struct ImagePart {
    image_url: Option<ImageUrl>,
}

#[derive(Deserialize)]
struct ImageUrl {
    url: String,
}

impl ImagePart {
    fn media(&self) -> Option<Media> {
        Media::generated_image(None, &self.image_url.as_ref()?.url)
    }
}

/// Reads a non-stream `chat.completion` body. A body carrying `"error"` is returned as
/// that error: llama.cpp and some proxies answer HTTP 200 with one.
pub fn parse_completion(body: &str) -> Result<Completion, ProviderError> {
    #[derive(Deserialize)]
    struct CompletionBody {
        choices: Option<Vec<Choice>>,
        usage: Option<UsageBody>,
        model: Option<String>,
    }
    #[derive(Deserialize)]
    struct Choice {
        #[serde(default)]
        index: u32,
        message: Option<Message>,
        finish_reason: Option<String>,
    }
    #[derive(Deserialize)]
    struct Message {
        content: Option<String>,
        refusal: Option<String>,
        #[serde(default)]
        images: Vec<ImagePart>,
    }

    let value: Value = serde_json::from_str(body)
        .map_err(|_| ProviderError::malformed("the provider's reply was not JSON"))?;
    if carries_error(&value) {
        return Err(error_from_json(&value, None));
    }
    let parsed: CompletionBody = serde_json::from_value(value)
        .map_err(|_| ProviderError::malformed("the provider's reply was not a chat completion"))?;
    let choices = parsed.choices.unwrap_or_default();
    let choice = choices
        .iter()
        .find(|choice| choice.index == 0)
        .or(choices.first())
        .ok_or_else(|| ProviderError::malformed("the provider's reply had no choices"))?;
    // A refusal arrives instead of content; showing it beats showing an empty answer.
    let text = choice
        .message
        .as_ref()
        .and_then(|message| message.content.clone().or_else(|| message.refusal.clone()))
        .unwrap_or_default();
    let media = choice
        .message
        .as_ref()
        .map(|message| message.images.iter().filter_map(ImagePart::media).collect())
        .unwrap_or_default();
    Ok(Completion {
        text,
        media,
        finish_reason: choice
            .finish_reason
            .as_deref()
            .map_or(FinishReason::Stop, finish_reason_from_openai),
        usage: parsed.usage.as_ref().map(UsageBody::to_usage),
        provider_model: parsed.model,
    })
}

/// Decodes a Chat Completions stream.
///
/// `Usage` and `Finish` are held back until `data: [DONE]`, because OpenAI sends the
/// finish chunk *before* the usage chunk and the unified order is usage, then finish.
#[derive(Debug, Default)]
pub struct OpenAiStreamDecoder {
    finish_reason: Option<FinishReason>,
    usage: Option<Usage>,
    ended: bool,
}

impl OpenAiStreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn fail(&mut self, error: ProviderError) -> Vec<ProviderEvent> {
        self.ended = true;
        vec![ProviderEvent::Error(error)]
    }

    fn on_chunk(&mut self, data: &str) -> Vec<ProviderEvent> {
        #[derive(Deserialize)]
        struct Chunk {
            choices: Option<Vec<ChunkChoice>>,
            usage: Option<UsageBody>,
        }
        #[derive(Deserialize)]
        struct ChunkChoice {
            #[serde(default)]
            index: u32,
            delta: Option<Delta>,
            finish_reason: Option<String>,
        }
        /// `reasoning` (Ollama's thinking text) is deliberately not read: it is not part
        /// of the answer.
        #[derive(Deserialize)]
        struct Delta {
            content: Option<String>,
            refusal: Option<String>,
            #[serde(default)]
            images: Vec<ImagePart>,
        }

        let Ok(value) = serde_json::from_str::<Value>(data) else {
            return self.fail(ProviderError::malformed(
                "the provider sent a stream chunk that was not JSON",
            ));
        };
        if carries_error(&value) {
            let error = error_from_json(&value, None);
            return self.fail(error);
        }
        let Ok(chunk) = serde_json::from_value::<Chunk>(value) else {
            return self.fail(ProviderError::malformed(
                "the provider sent a stream chunk that was not understood",
            ));
        };
        let mut events = Vec::new();
        for choice in chunk.choices.unwrap_or_default() {
            // Only the first choice is relayed: Threadline never asks for `n > 1`.
            if choice.index != 0 {
                continue;
            }
            if let Some(delta) = choice.delta {
                for text in [delta.content, delta.refusal].into_iter().flatten() {
                    if !text.is_empty() {
                        events.push(ProviderEvent::TextDelta(text));
                    }
                }
                events.extend(
                    delta
                        .images
                        .iter()
                        .filter_map(ImagePart::media)
                        .map(ProviderEvent::Media),
                );
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(finish_reason_from_openai(&reason));
            }
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.to_usage());
        }
        events
    }
}

impl StreamDecoder for OpenAiStreamDecoder {
    fn on_event(&mut self, event: &SseEvent) -> Vec<ProviderEvent> {
        if self.ended {
            return Vec::new();
        }
        if event.oversized {
            return self.fail(ProviderError::malformed(
                "the provider sent a stream event too large to accept",
            ));
        }
        if let Some(error_text) = &event.error_field {
            let error = error_from_text(error_text);
            return self.fail(error);
        }
        if event.event.as_deref() == Some("error") {
            let error = error_from_text(&event.data);
            return self.fail(error);
        }
        let data = event.data.trim();
        if data.is_empty() {
            return Vec::new();
        }
        if data == "[DONE]" {
            self.ended = true;
            let mut events: Vec<ProviderEvent> = self
                .usage
                .take()
                .map(ProviderEvent::Usage)
                .into_iter()
                .collect();
            // `[DONE]` without a finish reason still means the answer is complete.
            events.push(ProviderEvent::Finish(
                self.finish_reason.take().unwrap_or(FinishReason::Stop),
            ));
            return events;
        }
        self.on_chunk(data)
    }

    fn finish(&mut self) -> Vec<ProviderEvent> {
        if self.ended {
            return Vec::new();
        }
        self.fail(ProviderError::stream_ended_early())
    }
}

/// Maps an error response to a [`ProviderError`]. `retry_after_secs` comes from
/// [`super::model::retry_after_secs`], applied to the response headers.
pub fn parse_error(status: u16, retry_after_secs: Option<u64>, body: &str) -> ProviderError {
    let error = match serde_json::from_str::<Value>(body) {
        Ok(value) => error_from_json(&value, Some(status)),
        Err(_) => error_from_status(status),
    };
    error.with_retry_after(retry_after_secs)
}

/// Whether a JSON reply is an error rather than data: a non-null `error` member, or
/// vLLM's old flat `"object":"error"`.
fn carries_error(value: &Value) -> bool {
    value.get("error").is_some_and(|error| !error.is_null())
        || value.get("object").and_then(Value::as_str) == Some("error")
}

/// An error carried as text: JSON in any accepted shape, or plain words.
fn error_from_text(text: &str) -> ProviderError {
    match serde_json::from_str::<Value>(text) {
        Ok(value) => error_from_json(&value, None),
        Err(_) => ProviderError::from_upstream(ProviderErrorKind::Server, text, None),
    }
}

/// Reads any of the OpenAI-family error shapes. `http_status` is `None` for errors found
/// inside a stream, where the integer `code` (vLLM, llama.cpp) stands in for it.
fn error_from_json(value: &Value, http_status: Option<u16>) -> ProviderError {
    let error = match value.get("error") {
        Some(Value::Object(_)) => &value["error"],
        // `{"error": "model not found"}` — the message is the string itself.
        Some(Value::String(message)) => {
            let kind = classify(http_status, "", "", message);
            return ProviderError::from_upstream(kind, message, http_status);
        }
        // vLLM's flat form and llama.cpp's bare `error:` payload are the error object.
        _ => value,
    };
    let text_of = |field: &str| error.get(field).and_then(Value::as_str).unwrap_or_default();
    let message = match text_of("message") {
        "" => value
            .get("detail")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        message => message,
    };
    let numeric_code = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (400..=599).contains(code));
    let status = http_status.filter(|status| *status >= 400).or(numeric_code);
    let kind = classify(status, text_of("type"), text_of("code"), message);
    ProviderError::from_upstream(kind, message, status)
}

/// Specific `code`/`type` values win over the status, because OpenAI sends two very
/// different 429s (`rate_limit_exceeded` is retryable, `insufficient_quota` is not) and its
/// 401 carries `type: invalid_request_error`.
fn classify(status: Option<u16>, error_type: &str, code: &str, message: &str) -> ProviderErrorKind {
    use ProviderErrorKind::*;
    let is =
        |value: &str| code.eq_ignore_ascii_case(value) || error_type.eq_ignore_ascii_case(value);
    if is("insufficient_quota") {
        return QuotaExceeded;
    }
    if is("invalid_api_key") || is("authentication_error") || is("permission_error") {
        return Auth;
    }
    if is("model_not_found") || is("not_found_error") {
        return NotFound;
    }
    if is("rate_limit_exceeded") || is("rate_limit_error") {
        return RateLimited;
    }
    if message.to_ascii_lowercase().contains("overloaded") {
        return Overloaded;
    }
    if let Some(status) = status {
        return ProviderErrorKind::from_http_status(status);
    }
    match error_type.to_ascii_lowercase().as_str() {
        "invalid_request_error" | "badrequesterror" => InvalidRequest,
        "notfounderror" => NotFound,
        "timeout" | "timeout_error" => Timeout,
        // `server_error`, `api_error`, and anything unknown inside a stream: the
        // provider failed, and a retry may well succeed.
        _ => Server,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::wire::model::{ChatMessage, Role};

    const RECORDED_STREAM: &str = include_str!("fixtures/openai_stream.txt");

    #[test]
    fn media_become_image_url_and_file_parts_with_data_urls() {
        let request = crate::providers::wire::test_support::media_request("gpt-4o");
        let body = body_json(&build_request(
            &request,
            &endpoint(ProviderKind::OpenAi, Some("k")),
        ));
        assert_eq!(
            body["messages"][1],
            json!({"role": "user", "content": "Earlier"})
        );
        assert_eq!(
            body["messages"][2]["content"],
            json!([
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0x", "filename": "a.pdf"}},
            ])
        );
    }

    fn endpoint(kind: ProviderKind, key: Option<&str>) -> ProviderEndpoint {
        ProviderEndpoint {
            kind,
            base_url: DEFAULT_BASE_URL.into(),
            api_key: key.map(str::to_owned),
        }
    }

    fn sample_request() -> ChatRequest {
        ChatRequest {
            model: "gpt-4o".into(),
            messages: vec![
                ChatMessage::new(Role::System, "Be brief."),
                ChatMessage::new(Role::User, "Hi"),
                ChatMessage::new(Role::Assistant, "Hello!"),
                ChatMessage::new(Role::User, "Bye"),
            ],
            temperature: Some(0.5),
            top_p: Some(0.9),
            max_tokens: Some(100),
            stop: vec!["END".into()],
            stream: true,
            include_usage: true,
        }
    }

    fn body_json(request: &OutboundRequest) -> Value {
        serde_json::from_str(&request.body).unwrap_or(Value::Null)
    }

    fn decode(input: &str) -> Vec<ProviderEvent> {
        crate::providers::wire::test_support::decode_all(&mut OpenAiStreamDecoder::new(), input)
    }

    use crate::providers::wire::test_support::final_error as single_error;

    #[test]
    fn images_an_openai_compatible_server_returns_are_read_whole_and_streamed() {
        let body = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Drawn.",
            "images":[{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
                      {"type":"image_url","image_url":{"url":"https://cdn.example.com/a.webp"}},
                      {"type":"image_url","image_url":{"url":"data:text/html;base64,PGh0bWw+"}}]},
            "finish_reason":"stop"}]}"#;
        let completion = parse_completion(body).expect("parsed");
        assert_eq!(completion.text, "Drawn.");
        assert_eq!(completion.media.len(), 2, "not an image: left out");
        assert_eq!(
            completion.media[0].source,
            MediaSource::Base64("iVBORw0KGgo=".into())
        );
        assert_eq!(
            completion.media[1].source,
            MediaSource::Url("https://cdn.example.com/a.webp".into())
        );
        let events = decode(concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Drawn.\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"images\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,AAAA\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n"
        ));
        assert_eq!(events[0], ProviderEvent::TextDelta("Drawn.".into()));
        let ProviderEvent::Media(media) = &events[1] else {
            panic!("an image: {events:?}");
        };
        assert_eq!(
            (media.media_type.as_str(), &media.source),
            ("image/png", &MediaSource::Base64("AAAA".into()))
        );
        assert_eq!(events[2], ProviderEvent::Finish(FinishReason::Stop));
    }

    #[test]
    fn request_goes_to_chat_completions_with_bearer_key() {
        let request = build_request(
            &sample_request(),
            &endpoint(ProviderKind::OpenAi, Some("sk-test")),
        );
        assert_eq!(request.method, "POST");
        assert_eq!(request.url, "https://api.openai.com/v1/chat/completions");
        assert_eq!(request.header("authorization"), Some("Bearer sk-test"));
        assert_eq!(request.header("content-type"), Some("application/json"));
    }

    #[test]
    fn request_keeps_system_role_and_message_order() {
        let body = body_json(&build_request(
            &sample_request(),
            &endpoint(ProviderKind::OpenAi, None),
        ));
        assert_eq!(
            body["messages"],
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "Bye"},
            ])
        );
        assert_eq!(body["model"], "gpt-4o");
        assert_eq!(body["temperature"], 0.5);
        assert_eq!(body["top_p"], 0.9);
        assert_eq!(body["stop"], json!(["END"]));
    }

    #[test]
    fn streaming_with_usage_asks_for_stream_options_include_usage() {
        let body = body_json(&build_request(
            &sample_request(),
            &endpoint(ProviderKind::OpenAi, None),
        ));
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn non_streaming_request_has_no_stream_options_and_omits_unset_fields() {
        let request = ChatRequest {
            model: "gpt-4o".into(),
            messages: vec![ChatMessage::new(Role::User, "Hi")],
            include_usage: true,
            ..ChatRequest::default()
        };
        let body = body_json(&build_request(
            &request,
            &endpoint(ProviderKind::OpenAi, None),
        ));
        assert_eq!(body["stream"], false);
        for absent in [
            "stream_options",
            "temperature",
            "top_p",
            "stop",
            "max_tokens",
            "max_completion_tokens",
        ] {
            assert!(body.get(absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn openai_gets_max_completion_tokens_but_compatible_servers_get_max_tokens() {
        let openai = body_json(&build_request(
            &sample_request(),
            &endpoint(ProviderKind::OpenAi, None),
        ));
        assert_eq!(openai["max_completion_tokens"], 100);
        assert!(openai.get("max_tokens").is_none());
        let ollama = body_json(&build_request(
            &sample_request(),
            &endpoint(ProviderKind::OpenAiCompatible, None),
        ));
        assert_eq!(ollama["max_tokens"], 100);
        assert!(ollama.get("max_completion_tokens").is_none());
    }

    #[test]
    fn ollama_without_key_gets_no_authorization_header_and_a_clean_url() {
        let ollama = ProviderEndpoint {
            kind: ProviderKind::OpenAiCompatible,
            base_url: "http://localhost:11434/v1/".into(),
            api_key: Some(String::new()),
        };
        let request = build_request(&sample_request(), &ollama);
        assert_eq!(request.url, "http://localhost:11434/v1/chat/completions");
        assert_eq!(request.header("authorization"), None);
    }

    #[test]
    fn models_request_is_a_get_of_the_models_path() {
        let request = models_request(&endpoint(ProviderKind::OpenAi, Some("sk-test")));
        assert_eq!(request.method, "GET");
        assert_eq!(request.url, "https://api.openai.com/v1/models");
        assert_eq!(request.header("authorization"), Some("Bearer sk-test"));
        assert!(request.body.is_empty());
    }

    #[test]
    fn model_list_yields_ids() {
        let body = r#"{"object":"list","data":[{"id":"gpt-4o","object":"model","created":1,"owned_by":"system"},{"id":"llama3.2:latest","object":"model","created":2,"owned_by":"library"}]}"#;
        assert_eq!(
            parse_model_list(body),
            Ok(vec!["gpt-4o".to_owned(), "llama3.2:latest".to_owned()])
        );
    }

    #[test]
    fn recorded_completion_is_parsed() {
        let body = r#"{"id":"chatcmpl-…","object":"chat.completion","created":1727346142,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Hi there","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":14,"completion_tokens":37,"total_tokens":51,"completion_tokens_details":{"reasoning_tokens":0}},"system_fingerprint":"fp_b40fb1c6fb"}"#;
        assert_eq!(
            parse_completion(body),
            Ok(Completion {
                media: Vec::new(),
                text: "Hi there".into(),
                finish_reason: FinishReason::Stop,
                usage: Some(Usage {
                    prompt_tokens: 14,
                    completion_tokens: 37,
                    total_tokens: 51
                }),
                provider_model: Some("gpt-4o-2024-08-06".into()),
            })
        );
    }

    #[test]
    fn completion_with_only_a_refusal_returns_the_refusal_text() {
        let body = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}"#;
        let completion = parse_completion(body);
        assert_eq!(
            completion.map(|c| c.text),
            Ok("I can't help with that.".to_owned())
        );
    }

    #[test]
    fn completion_body_carrying_an_error_is_an_error() {
        let body =
            r#"{"error":{"code":500,"message":"context shift failed","type":"server_error"}}"#;
        let error = parse_completion(body).err();
        assert_eq!(
            error.map(|e| (e.kind, e.upstream_status)),
            Some((ProviderErrorKind::Server, Some(500)))
        );
    }

    #[test]
    fn completion_without_choices_is_malformed() {
        let error = parse_completion(r#"{"choices":[]}"#).err();
        assert_eq!(error.map(|e| e.kind), Some(ProviderErrorKind::Malformed));
    }

    #[test]
    fn recorded_stream_decodes_to_text_then_usage_then_finish() {
        assert_eq!(
            decode(RECORDED_STREAM),
            vec![
                ProviderEvent::TextDelta("Foo".into()),
                ProviderEvent::Usage(Usage {
                    prompt_tokens: 9,
                    completion_tokens: 2,
                    total_tokens: 11
                }),
                ProviderEvent::Finish(FinishReason::Stop),
            ]
        );
    }

    #[test]
    fn ollama_stream_with_null_role_content_null_usage_and_reasoning_emits_only_answer_text() {
        let stream = concat!(
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null},\"finish_reason\":null}],\"usage\":null}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"thinking…\"},\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"abc\"}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":null}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\n",
            "data: [DONE]\n\n",
        );
        assert_eq!(
            decode(stream),
            vec![
                ProviderEvent::TextDelta("Hi".into()),
                ProviderEvent::Usage(Usage::from_counts(3, 1)),
                ProviderEvent::Finish(FinishReason::Length),
            ]
        );
    }

    #[test]
    fn stream_without_usage_chunk_finishes_without_usage() {
        let stream = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
        assert_eq!(
            decode(stream),
            vec![
                ProviderEvent::TextDelta("a".into()),
                ProviderEvent::Finish(FinishReason::Stop)
            ]
        );
    }

    #[test]
    fn stream_cut_before_done_ends_with_stream_ended_early() {
        let cut = RECORDED_STREAM.replace("data: [DONE]\n\n", "");
        let events = decode(&cut);
        assert_eq!(events[0], ProviderEvent::TextDelta("Foo".into()));
        assert_eq!(single_error(&events), ProviderError::stream_ended_early());
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn stream_cut_mid_chunk_reports_one_malformed_error() {
        let cut = &RECORDED_STREAM[..RECORDED_STREAM.len() / 2];
        let events = decode(cut);
        let errors = events
            .iter()
            .filter(|e| matches!(e, ProviderEvent::Error(_)))
            .count();
        assert_eq!(errors, 1);
        assert_eq!(single_error(&events).kind, ProviderErrorKind::Malformed);
    }

    #[test]
    fn mid_stream_error_chunk_stops_the_stream() {
        let stream = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\n",
            "data: {\"error\":{\"message\":\"The server had an error while processing your request\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ignored\"},\"finish_reason\":null}]}\n\n",
            "data: [DONE]\n\n",
        );
        let events = decode(stream);
        assert_eq!(events.len(), 2);
        let error = single_error(&events);
        assert_eq!(error.kind, ProviderErrorKind::Server);
        assert_eq!(
            error.message,
            "The server had an error while processing your request"
        );
    }

    #[test]
    fn event_error_is_a_mid_stream_error() {
        let stream = "event: error\ndata: {\"error\":{\"message\":\"Rate limit reached\",\"type\":\"tokens\",\"code\":\"rate_limit_exceeded\"}}\n\n";
        assert_eq!(
            single_error(&decode(stream)).kind,
            ProviderErrorKind::RateLimited
        );
    }

    #[test]
    fn llama_cpp_error_field_becomes_an_error_using_its_integer_code() {
        let stream = "error: {\"code\":400,\"message\":\"the request exceeds the available context size\",\"type\":\"invalid_request_error\"}\n\n";
        let error = single_error(&decode(stream));
        assert_eq!(error.kind, ProviderErrorKind::InvalidRequest);
        assert_eq!(error.upstream_status, Some(400));
    }

    #[test]
    fn llama_cpp_data_error_on_http_200_uses_its_integer_code() {
        let stream = "data: {\"error\":{\"code\":503,\"message\":\"Loading model\",\"type\":\"unavailable_error\"}}\n\n";
        assert_eq!(
            single_error(&decode(stream)).kind,
            ProviderErrorKind::Overloaded
        );
    }

    #[test]
    fn oversized_stream_event_is_a_malformed_error() {
        let mut decoder = OpenAiStreamDecoder::new();
        let events = decoder.on_event(&SseEvent {
            oversized: true,
            ..SseEvent::default()
        });
        assert_eq!(single_error(&events).kind, ProviderErrorKind::Malformed);
        assert!(decoder.finish().is_empty());
    }

    #[test]
    fn invalid_api_key_401_is_auth_and_never_echoes_the_key() {
        let body = r#"{"error":{"message":"Incorrect API key provided: sk-abc123XYZsecret. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        let error = parse_error(401, None, body);
        assert_eq!(error.kind, ProviderErrorKind::Auth);
        assert!(!error.message.contains("sk-abc"), "{}", error.message);
        assert!(!error.to_string().contains("sk-abc"));
        assert!(!error.is_retryable());
    }

    #[test]
    fn rate_limit_429_is_retryable_and_keeps_retry_after() {
        let body = r#"{"error":{"message":"Rate limit reached for gpt-4o on tokens per min (TPM): Limit 30000, Used 30000, Requested 500.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;
        let error = parse_error(429, Some(7), body);
        assert_eq!(error.kind, ProviderErrorKind::RateLimited);
        assert_eq!(error.retry_after_secs, Some(7));
        assert_eq!(error.upstream_status, Some(429));
        assert!(error.is_retryable());
    }

    #[test]
    fn insufficient_quota_429_is_quota_exceeded_and_not_retryable() {
        let body = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        let error = parse_error(429, Some(1), body);
        assert_eq!(error.kind, ProviderErrorKind::QuotaExceeded);
        assert!(!error.is_retryable());
    }

    #[test]
    fn server_error_500_is_server() {
        let body = r#"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#;
        assert_eq!(parse_error(500, None, body).kind, ProviderErrorKind::Server);
    }

    #[test]
    fn overloaded_model_message_is_overloaded() {
        let body = r#"{"error":{"message":"That model is currently overloaded with other requests. You can retry your request.","type":"server_error","param":null,"code":null}}"#;
        assert_eq!(
            parse_error(500, None, body).kind,
            ProviderErrorKind::Overloaded
        );
    }

    #[test]
    fn ollama_error_types_map_to_kinds() {
        let not_found = r#"{"error":{"message":"model \"nope\" not found, try pulling it first","type":"not_found_error","param":null,"code":null}}"#;
        assert_eq!(
            parse_error(404, None, not_found).kind,
            ProviderErrorKind::NotFound
        );
        let bad = r#"{"error":{"message":"invalid message format","type":"invalid_request_error","param":null,"code":null}}"#;
        assert_eq!(
            parse_error(400, None, bad).kind,
            ProviderErrorKind::InvalidRequest
        );
        let api = r#"{"error":{"message":"llama runner process has terminated","type":"api_error","param":null,"code":null}}"#;
        assert_eq!(parse_error(500, None, api).kind, ProviderErrorKind::Server);
    }

    #[test]
    fn vllm_flat_error_body_is_read() {
        let body = r#"{"object":"error","message":"This model's maximum context length is 4096 tokens.","type":"BadRequestError","param":null,"code":400}"#;
        let error = parse_error(400, None, body);
        assert_eq!(error.kind, ProviderErrorKind::InvalidRequest);
        assert_eq!(
            error.message,
            "This model's maximum context length is 4096 tokens."
        );
    }

    #[test]
    fn vllm_nested_error_with_integer_code_is_read() {
        let body = r#"{"error":{"message":"EngineCore encountered an issue.","type":"InternalServerError","param":null,"code":500}}"#;
        let error = parse_error(500, None, body);
        assert_eq!(error.kind, ProviderErrorKind::Server);
        assert_eq!(error.message, "EngineCore encountered an issue.");
    }

    #[test]
    fn non_json_error_body_gets_a_generic_message_from_the_status() {
        let error = parse_error(502, None, "<html><body>502 Bad Gateway</body></html>");
        assert_eq!(error.kind, ProviderErrorKind::Server);
        assert!(!error.message.contains("<html>"));
        assert_eq!(
            parse_error(503, None, "upstream unavailable").kind,
            ProviderErrorKind::Overloaded
        );
    }

    #[test]
    fn string_error_member_is_its_own_message() {
        let error = parse_error(404, None, r#"{"error":"model 'x' not found"}"#);
        assert_eq!(error.kind, ProviderErrorKind::NotFound);
        assert_eq!(error.message, "model 'x' not found");
    }
}
