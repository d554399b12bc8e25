//! Google Gemini `generateContent` (wire-formats §c).

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::model::{
    error_from_status, header, saturating_u32, ChatMessage, ChatRequest, Completion, FinishReason,
    Media, MediaSource, OutboundRequest, Part as MessagePart, ProviderEndpoint, ProviderError,
    ProviderErrorKind, ProviderEvent, Role, StreamDecoder, Usage,
};
use super::sse::SseEvent;

/// Gemini's base URL, *without* the API version: the adapter appends
/// `/v1beta/models/…`, because the version is part of the wire format this module
/// implements rather than a deployment choice.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// The API version whose request and response shapes this module follows.
pub const API_VERSION: &str = "v1beta";

/// Builds `POST {base}/v1beta/models/{model}:generateContent`, or
/// `:streamGenerateContent?alt=sse` when streaming (without `alt=sse` Gemini streams one
/// big JSON array instead of SSE).
///
/// System messages go to `systemInstruction`, one part each; `assistant` becomes `model`;
/// consecutive turns of one role become one content with several parts, since Gemini
/// expects turns to alternate. The key travels in `x-goog-api-key`, as Google's SDK sends
/// it, never in the URL, where it would end up in logs.
pub fn build_request(req: &ChatRequest, endpoint: &ProviderEndpoint) -> OutboundRequest {
    let mut system_parts = Vec::new();
    let mut contents: Vec<(&str, Vec<Value>)> = Vec::new();
    for message in &req.messages {
        let role = match message.role {
            Role::System => {
                system_parts.push(json!({ "text": message.text() }));
                continue;
            }
            Role::User => "user",
            Role::Assistant => "model",
        };
        let parts = message_parts(message);
        match contents.last_mut() {
            Some((last_role, all)) if *last_role == role => all.extend(parts),
            _ => contents.push((role, parts)),
        }
    }
    let contents: Vec<Value> = contents
        .into_iter()
        .map(|(role, parts)| json!({ "role": role, "parts": parts }))
        .collect();

    let mut body = Map::new();
    body.insert("contents".into(), contents.into());
    if !system_parts.is_empty() {
        body.insert("systemInstruction".into(), json!({ "parts": system_parts }));
    }
    let mut generation_config = Map::new();
    if let Some(temperature) = req.temperature {
        generation_config.insert("temperature".into(), temperature.into());
    }
    if let Some(top_p) = req.top_p {
        generation_config.insert("topP".into(), top_p.into());
    }
    if let Some(max_tokens) = req.max_tokens {
        generation_config.insert("maxOutputTokens".into(), max_tokens.into());
    }
    if !req.stop.is_empty() {
        generation_config.insert("stopSequences".into(), req.stop.clone().into());
    }
    if !generation_config.is_empty() {
        body.insert("generationConfig".into(), generation_config.into());
    }

    let method = if req.stream {
        ":streamGenerateContent?alt=sse"
    } else {
        ":generateContent"
    };
    OutboundRequest::post_json(
        endpoint.url(&format!(
            "{API_VERSION}/models/{}{method}",
            model_path_segment(&req.model)
        )),
        req.stream,
        auth_header(endpoint),
        Value::Object(body),
    )
}

/// A turn's parts: `text`, and media as `inlineData` (bare base64 with its `mimeType`) or
/// `fileData` (a `fileUri` Gemini fetches, with its `mimeType`). Gemini reads both the camel
/// case used here and snake case (`inline_data`); camel case matches the rest of the body.
fn message_parts(message: &ChatMessage) -> Vec<Value> {
    message
        .parts
        .iter()
        .map(|part| match part {
            MessagePart::Text(text) => json!({ "text": text }),
            MessagePart::Media(media) => match &media.source {
                MediaSource::Base64(data) => {
                    json!({ "inlineData": { "mimeType": media.media_type, "data": data } })
                }
                MediaSource::Url(url) => {
                    json!({ "fileData": { "mimeType": media.media_type, "fileUri": url } })
                }
            },
        })
        .collect()
}

/// Builds `GET {base}/v1beta/models?pageSize=1000`: the largest page Gemini serves, so one
/// request lists every model and `nextPageToken` can be ignored.
pub fn models_request(endpoint: &ProviderEndpoint) -> OutboundRequest {
    OutboundRequest::get_json(
        endpoint.url(&format!("{API_VERSION}/models?pageSize=1000")),
        auth_header(endpoint),
    )
}

fn auth_header(endpoint: &ProviderEndpoint) -> Option<(String, String)> {
    endpoint.key().map(|key| header("x-goog-api-key", key))
}

/// The model name as one URL path segment. A `models/` prefix (Gemini's resource-name
/// form, as `ListModels` returns it) is dropped, and anything outside the unreserved set
/// is percent-encoded so a client-supplied name cannot reshape the URL.
pub(crate) fn model_path_segment(model: &str) -> String {
    let model = model.strip_prefix("models/").unwrap_or(model);
    let mut segment = String::with_capacity(model.len());
    for byte in model.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            segment.push(char::from(byte));
        } else {
            segment.push_str(&format!("%{byte:02X}"));
        }
    }
    segment
}

/// Model names from `{"models":[{"name":"models/…","supportedGenerationMethods":[…]}]}`,
/// keeping only those that can chat (`generateContent`), without the `models/` prefix.
pub fn parse_model_list(body: &str) -> Result<Vec<String>, ProviderError> {
    #[derive(Deserialize)]
    struct ModelList {
        #[serde(default)]
        models: Vec<ModelEntry>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ModelEntry {
        name: String,
        #[serde(default)]
        supported_generation_methods: Vec<String>,
    }
    let list: ModelList = serde_json::from_str(body)
        .map_err(|_| ProviderError::malformed("the provider's model list was not understood"))?;
    Ok(list
        .models
        .into_iter()
        .filter(|model| {
            model
                .supported_generation_methods
                .iter()
                .any(|method| method == "generateContent")
        })
        .map(|model| {
            model
                .name
                .strip_prefix("models/")
                .map(str::to_owned)
                .unwrap_or(model.name)
        })
        .collect())
}

/// One `GenerateContentResponse`: a whole non-stream reply, or one stream chunk.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseBody {
    candidates: Option<Vec<Candidate>>,
    usage_metadata: Option<UsageMetadata>,
    model_version: Option<String>,
    prompt_feedback: Option<PromptFeedback>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<Content>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    parts: Option<Vec<Part>>,
}

#[derive(Deserialize)]
struct Part {
    text: Option<String>,
    /// Thinking models mark their reasoning parts `thought: true`; not answer text.
    #[serde(default)]
    thought: bool,
    /// Bytes the model generated (an image from an image-output model), base64 without a
    /// prefix. Gemini writes `inlineData`; its protobuf JSON also accepts `inline_data`.
    #[serde(alias = "inlineData")]
    inline_data: Option<Blob>,
}

#[derive(Deserialize)]
struct Blob {
    #[serde(alias = "mimeType")]
    mime_type: String,
    data: String,
}

impl Part {
    /// The part as an answer event: its text, or the image it carries.
    fn to_event(&self) -> Option<ProviderEvent> {
        if self.thought {
            return None;
        }
        if let Some(blob) = &self.inline_data {
            return Media::generated_image(Some(&blob.mime_type), &blob.data)
                .map(ProviderEvent::Media);
        }
        self.text
            .as_ref()
            .filter(|text| !text.is_empty())
            .map(|text| ProviderEvent::TextDelta(text.clone()))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    /// Thinking tokens are billed as output, and OpenAI counts its reasoning tokens inside
    /// `completion_tokens`, so they are added there.
    thoughts_token_count: Option<u64>,
    total_token_count: Option<u64>,
}

impl UsageMetadata {
    fn to_usage(&self) -> Usage {
        let prompt_tokens = saturating_u32(self.prompt_token_count.unwrap_or(0));
        let completion_tokens = saturating_u32(
            self.candidates_token_count.unwrap_or(0) + self.thoughts_token_count.unwrap_or(0),
        );
        match self.total_token_count {
            Some(total) => Usage {
                prompt_tokens,
                completion_tokens,
                total_tokens: saturating_u32(total),
            },
            None => Usage::from_counts(prompt_tokens, completion_tokens),
        }
    }
}

impl ResponseBody {
    /// The first candidate's answer, part by part: text deltas and generated images, in order
    /// (consecutive texts joined, so a chunk gives one delta as before).
    fn events(&self) -> Vec<ProviderEvent> {
        let mut events: Vec<ProviderEvent> = Vec::new();
        let parts = self
            .candidates
            .iter()
            .flatten()
            .take(1)
            .filter_map(|candidate| candidate.content.as_ref()?.parts.as_ref())
            .flatten();
        for event in parts.filter_map(Part::to_event) {
            match (events.last_mut(), event) {
                (Some(ProviderEvent::TextDelta(joined)), ProviderEvent::TextDelta(text)) => {
                    joined.push_str(&text)
                }
                (_, event) => events.push(event),
            }
        }
        events
    }

    /// The finish reason this response states, if any: the first candidate's, or
    /// `ContentFilter` when the prompt itself was blocked (then there are no candidates).
    fn finish_reason(&self) -> Option<FinishReason> {
        let candidate_reason = self
            .candidates
            .iter()
            .flatten()
            .next()
            .and_then(|candidate| candidate.finish_reason.as_deref())
            .and_then(finish_reason_from_gemini);
        candidate_reason.or_else(|| {
            self.prompt_feedback
                .as_ref()?
                .block_reason
                .as_ref()
                .map(|_| FinishReason::ContentFilter)
        })
    }
}

fn finish_reason_from_gemini(raw: &str) -> Option<FinishReason> {
    Some(match raw {
        "" | "FINISH_REASON_UNSPECIFIED" => return None,
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            FinishReason::ContentFilter
        }
        // MALFORMED_FUNCTION_CALL, LANGUAGE, OTHER, … have no OpenAI counterpart.
        other => FinishReason::Other(other.to_ascii_lowercase()),
    })
}

/// Reads a non-stream reply. The JSON-array form that `streamGenerateContent` returns
/// without `alt=sse` is accepted too, its elements read as consecutive chunks.
pub fn parse_completion(body: &str) -> Result<Completion, ProviderError> {
    let value: Value = serde_json::from_str(body)
        .map_err(|_| ProviderError::malformed("the provider's reply was not JSON"))?;
    if let Some(error) = error_object(&value) {
        return Err(error_from_object(error, None));
    }
    let responses = match value {
        Value::Array(items) => items,
        single => vec![single],
    };
    let mut completion = Completion {
        text: String::new(),
        media: Vec::new(),
        finish_reason: FinishReason::Stop,
        usage: None,
        provider_model: None,
    };
    let mut saw_answer = false;
    for response in responses {
        let response: ResponseBody = serde_json::from_value(response).map_err(|_| {
            ProviderError::malformed("the provider's reply was not a generateContent response")
        })?;
        for event in response.events() {
            match event {
                ProviderEvent::TextDelta(text) => completion.text.push_str(&text),
                ProviderEvent::Media(media) => completion.media.push(media),
                _ => {}
            }
        }
        if let Some(reason) = response.finish_reason() {
            completion.finish_reason = reason;
            saw_answer = true;
        }
        saw_answer |= response.candidates.as_ref().is_some_and(|c| !c.is_empty());
        if let Some(usage) = &response.usage_metadata {
            completion.usage = Some(usage.to_usage());
        }
        if response.model_version.is_some() {
            completion.provider_model = response.model_version;
        }
    }
    if !saw_answer {
        return Err(ProviderError::malformed(
            "the provider's reply had no candidates",
        ));
    }
    Ok(completion)
}

/// Decodes a `streamGenerateContent?alt=sse` stream.
///
/// Gemini sends no end marker: the stream is complete if some chunk carried a
/// `finishReason`. Older models put `"finishReason":"STOP"` on *every* chunk, so the reason
/// is only remembered (latest wins) and one `Finish` is emitted from [`Self::finish`],
/// together with the last `usageMetadata` seen (each chunk repeats the running totals).
#[derive(Debug, Default)]
pub struct GeminiStreamDecoder {
    finish_reason: Option<FinishReason>,
    usage: Option<Usage>,
    ended: bool,
}

impl GeminiStreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn fail(&mut self, error: ProviderError) -> Vec<ProviderEvent> {
        self.ended = true;
        vec![ProviderEvent::Error(error)]
    }

    /// A bare JSON error object written without `data:` (wire-formats §c): the SSE parser
    /// hands over such lines as `unknown_lines`.
    fn on_bare_lines(&mut self, lines: &[String]) -> Vec<ProviderEvent> {
        let text = lines.join("\n");
        match serde_json::from_str::<Value>(&text) {
            Ok(value) => match error_object(&value) {
                Some(error) => {
                    let error = error_from_object(error, None);
                    self.fail(error)
                }
                None => Vec::new(),
            },
            // Unknown SSE fields are to be ignored; only a JSON error is acted on.
            Err(_) => Vec::new(),
        }
    }
}

impl StreamDecoder for GeminiStreamDecoder {
    fn on_event(&mut self, event: &SseEvent) -> Vec<ProviderEvent> {
        if self.ended {
            return Vec::new();
        }
        if event.oversized {
            return self.fail(ProviderError::malformed(
                "the provider sent a stream event too large to accept",
            ));
        }
        let data = event.data.trim();
        if data.is_empty() {
            return self.on_bare_lines(&event.unknown_lines);
        }
        let Ok(value) = serde_json::from_str::<Value>(data) else {
            return self.fail(ProviderError::malformed(
                "the provider sent a stream chunk that was not JSON",
            ));
        };
        if let Some(error) = error_object(&value) {
            let error = error_from_object(error, None);
            return self.fail(error);
        }
        let Ok(chunk) = serde_json::from_value::<ResponseBody>(value) else {
            return self.fail(ProviderError::malformed(
                "the provider sent a stream chunk that was not understood",
            ));
        };
        if let Some(reason) = chunk.finish_reason() {
            self.finish_reason = Some(reason);
        }
        if let Some(usage) = &chunk.usage_metadata {
            self.usage = Some(usage.to_usage());
        }
        chunk.events()
    }

    fn finish(&mut self) -> Vec<ProviderEvent> {
        if self.ended {
            return Vec::new();
        }
        let Some(reason) = self.finish_reason.take() else {
            return self.fail(ProviderError::stream_ended_early());
        };
        self.ended = true;
        let mut events: Vec<ProviderEvent> = self
            .usage
            .take()
            .map(ProviderEvent::Usage)
            .into_iter()
            .collect();
        events.push(ProviderEvent::Finish(reason));
        events
    }
}

/// Maps an error response to a [`ProviderError`]. Accepts `{"error":{…}}` and the
/// `[{"error":{…}}]` array form. `retry_after_secs` comes from
/// [`super::model::retry_after_secs`]; when no header gave one, the `RetryInfo.retryDelay`
/// Gemini puts in its 429 details is used.
pub fn parse_error(status: u16, retry_after_secs: Option<u64>, body: &str) -> ProviderError {
    let parsed = serde_json::from_str::<Value>(body).ok();
    let error = match parsed.as_ref().and_then(error_object) {
        Some(error) => error_from_object(error, Some(status)),
        None => error_from_status(status),
    };
    let retry_after_secs = retry_after_secs.or(error.retry_after_secs);
    error.with_retry_after(retry_after_secs)
}

/// The `error` object of a reply, in object or single-element-array form.
fn error_object(value: &Value) -> Option<&Value> {
    let reply = match value {
        Value::Array(items) => items.first()?,
        other => other,
    };
    reply.get("error").filter(|error| error.is_object())
}

/// `{"code","message","status","details":[…]}`. The gRPC `status` and the `details`
/// decide the kind before the HTTP status does: an invalid key comes back as 400
/// `INVALID_ARGUMENT`, and must be `Auth`, not `InvalidRequest`.
fn error_from_object(error: &Value, http_status: Option<u16>) -> ProviderError {
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let grpc_status = error
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let details: &[Value] = error
        .get("details")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let code = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (400..=599).contains(code));
    let status = http_status.filter(|status| *status >= 400).or(code);
    let kind = classify(grpc_status, details, status);
    ProviderError::from_upstream(kind, message, status).with_retry_after(retry_delay(details))
}

fn classify(grpc_status: &str, details: &[Value], status: Option<u16>) -> ProviderErrorKind {
    use ProviderErrorKind::*;
    let reasons: Vec<&str> = details
        .iter()
        .filter_map(|detail| detail.get("reason").and_then(Value::as_str))
        .collect();
    if reasons
        .iter()
        .any(|reason| matches!(*reason, "API_KEY_INVALID" | "API_KEY_EXPIRED"))
    {
        return Auth;
    }
    match grpc_status {
        "UNAUTHENTICATED" | "PERMISSION_DENIED" => Auth,
        "RESOURCE_EXHAUSTED" if is_daily_quota(details) => QuotaExceeded,
        "RESOURCE_EXHAUSTED" => RateLimited,
        "NOT_FOUND" => NotFound,
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => InvalidRequest,
        "UNAVAILABLE" => Overloaded,
        "DEADLINE_EXCEEDED" => Timeout,
        "INTERNAL" | "UNKNOWN" | "ABORTED" => Server,
        _ => status.map_or(Server, ProviderErrorKind::from_http_status),
    }
}

/// A per-day quota violation (e.g. `GenerateRequestsPerDayPerProjectPerModel-FreeTier`)
/// will not clear by retrying in seconds, unlike the per-minute ones.
fn is_daily_quota(details: &[Value]) -> bool {
    details
        .iter()
        .filter_map(|detail| detail.get("violations").and_then(Value::as_array))
        .flatten()
        .filter_map(|violation| violation.get("quotaId").and_then(Value::as_str))
        .any(|quota_id| quota_id.contains("PerDay"))
}

/// `RetryInfo.retryDelay`, a protobuf Duration such as `"32s"` or `"1.5s"`.
fn retry_delay(details: &[Value]) -> Option<u64> {
    let delay = details
        .iter()
        .find_map(|detail| detail.get("retryDelay").and_then(Value::as_str))?;
    let seconds: f64 = delay.strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| seconds.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::wire::model::{ChatMessage, ProviderKind};

    /// Stored with LF; converted to the CRLF Gemini uses on the wire (see sse.rs tests).
    const RECORDED_STREAM_LF: &str = include_str!("fixtures/gemini_stream.txt");

    fn endpoint(key: Option<&str>) -> ProviderEndpoint {
        ProviderEndpoint {
            kind: ProviderKind::Gemini,
            base_url: DEFAULT_BASE_URL.into(),
            api_key: key.map(str::to_owned),
        }
    }

    #[test]
    fn media_become_inline_data_and_file_data_parts() {
        let request = crate::providers::wire::test_support::media_request("gemini-2.0-flash");
        let body = body_json(&build_request(&request, &endpoint(Some("k"))));
        assert_eq!(
            body["contents"],
            json!([{"role": "user", "parts": [
                {"text": "Earlier"},
                {"text": "What is this?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}},
                {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}},
                {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0x"}},
            ]}])
        );
    }

    fn body_json(request: &OutboundRequest) -> Value {
        serde_json::from_str(&request.body).unwrap_or(Value::Null)
    }

    fn conversation(stream: bool) -> ChatRequest {
        ChatRequest {
            model: "gemini-2.0-flash".into(),
            messages: vec![
                ChatMessage::new(Role::System, "Be brief."),
                ChatMessage::new(Role::User, "Hi"),
                ChatMessage::new(Role::Assistant, "Hello!"),
                ChatMessage::new(Role::User, "One"),
                ChatMessage::new(Role::User, "Two"),
            ],
            temperature: Some(0.3),
            top_p: Some(0.95),
            max_tokens: Some(256),
            stop: vec!["END".into()],
            stream,
            include_usage: false,
        }
    }

    fn decode(input: &str) -> Vec<ProviderEvent> {
        crate::providers::wire::test_support::decode_all(&mut GeminiStreamDecoder::new(), input)
    }

    use crate::providers::wire::test_support::final_error;

    fn png(data: &str) -> ProviderEvent {
        ProviderEvent::Media(Media {
            kind: crate::providers::wire::MediaKind::Image,
            media_type: "image/png".into(),
            source: MediaSource::Base64(data.into()),
            name: None,
        })
    }

    #[test]
    fn generated_images_come_out_in_their_place_among_the_text() {
        // An image model's answer: text, an inlineData part, text; thought parts are not answer.
        let body = r#"{"candidates":[{"content":{"role":"model","parts":[
            {"text":"Here is "},{"text":"a cat:"},
            {"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}},
            {"text":"Enjoy.","thought":false},
            {"inlineData":{"mimeType":"image/jpeg","data":"/9j/"},"thought":true},
            {"inlineData":{"mimeType":"audio/wav","data":"UklGRg=="}}]},
            "finishReason":"STOP"}]}"#;
        let completion = parse_completion(body).expect("parsed");
        assert_eq!(completion.text, "Here is a cat:Enjoy.");
        assert_eq!(completion.media.len(), 1, "audio and thoughts are not kept");
        assert_eq!(completion.media[0].media_type, "image/png");
        let events = decode(&format!("data: {}\n\n", body.replace('\n', "")));
        assert_eq!(
            events[..3],
            [
                ProviderEvent::TextDelta("Here is a cat:".into()),
                png("iVBORw0KGgo="),
                ProviderEvent::TextDelta("Enjoy.".into()),
            ]
        );
        assert!(matches!(
            events.last(),
            Some(ProviderEvent::Finish(FinishReason::Stop))
        ));
        // Protobuf JSON's snake_case spelling reads the same.
        let snake = r#"{"candidates":[{"content":{"parts":[{"inline_data":{"mime_type":"image/png","data":"AAAA"}}]},"finishReason":"STOP"}]}"#;
        assert_eq!(parse_completion(snake).expect("parsed").media.len(), 1);
    }

    const INVALID_KEY_BODY: &str = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}"#;

    #[test]
    fn non_stream_request_goes_to_generate_content_with_key_header() {
        let request = build_request(&conversation(false), &endpoint(Some("AIzaTEST")));
        assert_eq!(
            request.url,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent"
        );
        assert_eq!(request.header("x-goog-api-key"), Some("AIzaTEST"));
        assert!(!request.url.contains("key="));
    }

    #[test]
    fn stream_request_goes_to_stream_generate_content_with_alt_sse() {
        let request = build_request(&conversation(true), &endpoint(None));
        assert_eq!(
            request.url,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(request.header("x-goog-api-key"), None);
    }

    #[test]
    fn model_name_is_stripped_of_models_prefix_and_percent_encoded() {
        let mut request = conversation(false);
        request.model = "models/gemini-2.0-flash".into();
        assert!(build_request(&request, &endpoint(None))
            .url
            .ends_with("/models/gemini-2.0-flash:generateContent"));
        request.model = "x/../y?z".into();
        assert!(build_request(&request, &endpoint(None))
            .url
            .ends_with("/models/x%2F..%2Fy%3Fz:generateContent"));
    }

    #[test]
    fn system_goes_to_system_instruction_and_assistant_becomes_model() {
        let body = body_json(&build_request(&conversation(false), &endpoint(None)));
        assert_eq!(
            body["systemInstruction"],
            json!({"parts": [{"text": "Be brief."}]})
        );
        assert_eq!(
            body["contents"],
            json!([
                {"role": "user", "parts": [{"text": "Hi"}]},
                {"role": "model", "parts": [{"text": "Hello!"}]},
                {"role": "user", "parts": [{"text": "One"}, {"text": "Two"}]},
            ])
        );
    }

    #[test]
    fn sampling_settings_go_into_generation_config() {
        let body = body_json(&build_request(&conversation(false), &endpoint(None)));
        assert_eq!(
            body["generationConfig"],
            json!({"temperature": 0.3, "topP": 0.95, "maxOutputTokens": 256, "stopSequences": ["END"]})
        );
    }

    #[test]
    fn no_settings_means_no_generation_config_and_no_system_instruction() {
        let request = ChatRequest {
            model: "gemini-2.0-flash".into(),
            messages: vec![ChatMessage::new(Role::User, "Hi")],
            ..ChatRequest::default()
        };
        let body = body_json(&build_request(&request, &endpoint(None)));
        assert!(body.get("generationConfig").is_none());
        assert!(body.get("systemInstruction").is_none());
    }

    #[test]
    fn models_request_lists_one_large_page() {
        let request = models_request(&endpoint(Some("AIzaTEST")));
        assert_eq!(request.method, "GET");
        assert_eq!(
            request.url,
            "https://generativelanguage.googleapis.com/v1beta/models?pageSize=1000"
        );
        assert_eq!(request.header("x-goog-api-key"), Some("AIzaTEST"));
    }

    #[test]
    fn model_list_keeps_only_chat_models_without_prefix() {
        let body = r#"{"models":[
            {"name":"models/gemini-2.0-flash","displayName":"Gemini 2.0 Flash","inputTokenLimit":1048576,"supportedGenerationMethods":["generateContent","countTokens"]},
            {"name":"models/text-embedding-004","supportedGenerationMethods":["embedContent"]},
            {"name":"models/aqa"}
        ],"nextPageToken":"abc"}"#;
        assert_eq!(
            parse_model_list(body),
            Ok(vec!["gemini-2.0-flash".to_owned()])
        );
    }

    #[test]
    fn completion_concatenates_parts_and_skips_thoughts() {
        let body = r#"{"candidates":[{"content":{"parts":[{"text":"plan","thought":true},{"text":"Hello"},{"text":", world"}],"role":"model"},"finishReason":"MAX_TOKENS","index":0}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":3,"thoughtsTokenCount":2,"totalTokenCount":10},"modelVersion":"gemini-2.5-pro","responseId":"r1"}"#;
        assert_eq!(
            parse_completion(body),
            Ok(Completion {
                media: Vec::new(),
                text: "Hello, world".into(),
                finish_reason: FinishReason::Length,
                usage: Some(Usage {
                    prompt_tokens: 5,
                    completion_tokens: 5,
                    total_tokens: 10
                }),
                provider_model: Some("gemini-2.5-pro".into()),
            })
        );
    }

    #[test]
    fn completion_for_a_blocked_prompt_is_content_filtered() {
        let body = r#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":7,"totalTokenCount":7}}"#;
        let completion = parse_completion(body);
        assert_eq!(
            completion.map(|c| (c.text, c.finish_reason)),
            Ok((String::new(), FinishReason::ContentFilter))
        );
    }

    #[test]
    fn completion_accepts_the_json_array_stream_form() {
        let body = format!(
            "[{},{}]",
            r#"{"candidates":[{"content":{"parts":[{"text":"Hel"}],"role":"model"}}]}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":"lo"}],"role":"model"},"finishReason":"STOP"}]}"#
        );
        assert_eq!(
            parse_completion(&body).map(|c| c.text),
            Ok("Hello".to_owned())
        );
    }

    #[test]
    fn completion_body_carrying_an_error_is_an_error() {
        assert_eq!(
            parse_completion(INVALID_KEY_BODY).err().map(|e| e.kind),
            Some(ProviderErrorKind::Auth)
        );
    }

    #[test]
    fn recorded_crlf_stream_decodes_to_deltas_then_last_usage_then_finish() {
        assert_eq!(
            decode(&RECORDED_STREAM_LF.replace('\n', "\r\n")),
            vec![
                ProviderEvent::TextDelta("Certainly".into()),
                ProviderEvent::TextDelta("! I'll create".into()),
                ProviderEvent::Usage(Usage {
                    prompt_tokens: 399,
                    completion_tokens: 191,
                    total_tokens: 590
                }),
                ProviderEvent::Finish(FinishReason::Stop),
            ]
        );
    }

    #[test]
    fn finish_reason_on_every_chunk_yields_a_single_finish_at_the_end() {
        let chunk = |text: &str| {
            format!("data: {{\"candidates\":[{{\"content\":{{\"parts\":[{{\"text\":\"{text}\"}}],\"role\":\"model\"}},\"finishReason\":\"STOP\"}}]}}\r\n\r\n")
        };
        let stream = format!("{}{}{}", chunk("a"), chunk("b"), chunk("c"));
        assert_eq!(
            decode(&stream),
            vec![
                ProviderEvent::TextDelta("a".into()),
                ProviderEvent::TextDelta("b".into()),
                ProviderEvent::TextDelta("c".into()),
                ProviderEvent::Finish(FinishReason::Stop),
            ]
        );
    }

    #[test]
    fn multiple_parts_in_a_chunk_are_concatenated() {
        let stream = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"},{\"text\":\"b\"}]},\"finishReason\":\"STOP\"}]}\n\n";
        assert_eq!(
            decode(stream),
            vec![
                ProviderEvent::TextDelta("ab".into()),
                ProviderEvent::Finish(FinishReason::Stop)
            ]
        );
    }

    #[test]
    fn stream_without_any_finish_reason_ended_early() {
        let cut: String = RECORDED_STREAM_LF
            .lines()
            .take(3)
            .collect::<Vec<_>>()
            .join("\r\n");
        let events = decode(&cut);
        assert_eq!(events[0], ProviderEvent::TextDelta("Certainly".into()));
        assert_eq!(final_error(&events), ProviderError::stream_ended_early());
    }

    #[test]
    fn safety_finish_reason_is_content_filter() {
        let stream =
            "data: {\"candidates\":[{\"finishReason\":\"SAFETY\",\"safetyRatings\":[]}]}\r\n\r\n";
        assert_eq!(
            decode(stream),
            vec![ProviderEvent::Finish(FinishReason::ContentFilter)]
        );
    }

    #[test]
    fn unmapped_finish_reasons_pass_through_in_lowercase() {
        assert_eq!(
            finish_reason_from_gemini("MALFORMED_FUNCTION_CALL"),
            Some(FinishReason::Other("malformed_function_call".into()))
        );
        assert_eq!(finish_reason_from_gemini("FINISH_REASON_UNSPECIFIED"), None);
    }

    #[test]
    fn mid_stream_error_object_stops_the_stream() {
        let stream = concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}]}\r\n\r\n",
            "data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded. Please try again later.\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n",
        );
        let events = decode(stream);
        assert_eq!(events.len(), 2);
        let error = final_error(&events);
        assert_eq!(error.kind, ProviderErrorKind::Overloaded);
        assert_eq!(error.upstream_status, Some(503));
    }

    #[test]
    fn bare_pretty_printed_json_error_without_data_prefix_is_an_error() {
        let stream = concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}]}\r\n\r\n",
            "{\r\n  \"error\": {\r\n    \"code\": 429,\r\n    \"message\": \"Resource has been exhausted\",\r\n    \"status\": \"RESOURCE_EXHAUSTED\"\r\n  }\r\n}\r\n",
        );
        let error = final_error(&decode(stream));
        assert_eq!(error.kind, ProviderErrorKind::RateLimited);
    }

    #[test]
    fn unknown_non_json_fields_are_ignored() {
        let stream = "foo: bar\r\n\r\ndata: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]},\"finishReason\":\"STOP\"}]}\r\n\r\n";
        assert_eq!(
            decode(stream),
            vec![
                ProviderEvent::TextDelta("x".into()),
                ProviderEvent::Finish(FinishReason::Stop)
            ]
        );
    }

    #[test]
    fn invalid_key_400_is_auth_not_invalid_request() {
        let error = parse_error(400, None, INVALID_KEY_BODY);
        assert_eq!(error.kind, ProviderErrorKind::Auth);
        assert_eq!(error.upstream_status, Some(400));
    }

    #[test]
    fn array_wrapped_error_is_read() {
        let body = format!("[{INVALID_KEY_BODY}]");
        assert_eq!(parse_error(400, None, &body).kind, ProviderErrorKind::Auth);
    }

    #[test]
    fn resource_exhausted_429_is_rate_limited_with_retry_delay_from_details() {
        let body = r#"{"error":{"code":429,"message":"You exceeded your current quota.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"32s"}]}}"#;
        let error = parse_error(429, None, body);
        assert_eq!(error.kind, ProviderErrorKind::RateLimited);
        assert_eq!(error.retry_after_secs, Some(32));
        assert_eq!(parse_error(429, Some(5), body).retry_after_secs, Some(5));
    }

    #[test]
    fn daily_quota_exhaustion_is_quota_exceeded() {
        let body = r#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}}"#;
        assert_eq!(
            parse_error(429, None, body).kind,
            ProviderErrorKind::QuotaExceeded
        );
    }

    #[test]
    fn overloaded_503_is_overloaded() {
        let body = r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#;
        let error = parse_error(503, None, body);
        assert_eq!(error.kind, ProviderErrorKind::Overloaded);
        assert_eq!(
            error.message,
            "The model is overloaded. Please try again later."
        );
    }

    #[test]
    fn grpc_statuses_map_to_kinds() {
        use ProviderErrorKind::*;
        for (status, grpc, expected) in [
            (403, "PERMISSION_DENIED", Auth),
            (404, "NOT_FOUND", NotFound),
            (400, "FAILED_PRECONDITION", InvalidRequest),
            (500, "INTERNAL", Server),
            (504, "DEADLINE_EXCEEDED", Timeout),
            (418, "SOMETHING_NEW", InvalidRequest),
        ] {
            let body =
                format!(r#"{{"error":{{"code":{status},"message":"m","status":"{grpc}"}}}}"#);
            assert_eq!(parse_error(status, None, &body).kind, expected, "{grpc}");
        }
    }

    #[test]
    fn non_json_error_body_falls_back_to_status() {
        let error = parse_error(500, None, "Internal Server Error");
        assert_eq!(error.kind, ProviderErrorKind::Server);
    }

    #[test]
    fn error_echoing_a_key_in_a_url_is_redacted() {
        let body = r#"{"error":{"code":400,"message":"Invalid JSON payload for https://generativelanguage.googleapis.com/v1beta/models/x:generateContent?key=AIzaSyREALKEY","status":"INVALID_ARGUMENT"}}"#;
        let error = parse_error(400, None, body);
        assert_eq!(error.kind, ProviderErrorKind::InvalidRequest);
        assert!(
            !error.message.contains("AIzaSyREALKEY"),
            "{}",
            error.message
        );
    }
}
