//! The request side of the `/v1` facade: the OpenAI chat completion body as SDKs send it,
//! validated and translated into the unified [`ChatRequest`] every provider understands.
//!
//! Kept apart from the handlers and from response shaping because it is pure (no Workers
//! API, no I/O), so each compatibility rule below is tested natively on plain JSON:
//!
//! - Unknown request fields (`user`, `seed`, `metadata`, `parallel_tool_calls`… as SDKs and
//!   frameworks send them) are ignored rather than refused; fields whose meaning we cannot
//!   honour and that would change the answer are a 400 naming the offending `param`: `n > 1`,
//!   tool/function messages, images, and — until function calling and structured output
//!   arrive — non-empty `tools`/`functions`, a `tool_choice`/`function_call` other than
//!   `auto`/`none`, a `response_format` other than `text`, `logprobs: true` and audio output.
//! - `developer` is OpenAI's new name for `system`; `max_completion_tokens` wins over the
//!   deprecated `max_tokens`; `stop` may be a string or an array.

use serde::Deserialize;
use serde_json::Value;

use crate::files::media;
use crate::http::error::{ApiError, ApiResult};
use crate::providers::wire::{
    ChatMessage, ChatRequest, Media, MediaKind, MediaSource, Part as WirePart, Role,
};

/// The fields of an OpenAI chat completion request that Threadline reads; serde ignores the
/// rest.
#[derive(Debug, Deserialize)]
pub(super) struct CompletionRequest {
    model: String,
    messages: Vec<InMessage>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    stop: Option<Stop>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    tools: Option<Value>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    functions: Option<Value>,
    #[serde(default)]
    function_call: Option<Value>,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    logprobs: Option<bool>,
    #[serde(default)]
    modalities: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct InMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    /// `{"url", "detail"}`; some clients send the URL as a bare string.
    #[serde(default)]
    image_url: Option<Value>,
    #[serde(default)]
    file: Option<FilePart>,
}

#[derive(Debug, Deserialize)]
struct FilePart {
    #[serde(default)]
    file_data: Option<String>,
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    file_id: Option<String>,
}

/// What the handler needs besides the unified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Options {
    pub(super) model: String,
    pub(super) stream: bool,
    pub(super) include_usage: bool,
    /// `file` parts naming one of the caller's stored files by `file_id`: the handler reads
    /// each into its place (held meanwhile by an empty media part).
    pub(super) file_refs: Vec<FileRef>,
}

/// A `{"type": "file", "file": {"file_id"}}` part: one of the caller's files
/// (`POST /api/files/upload`), read by the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileRef {
    pub(super) message: usize,
    pub(super) part: usize,
    pub(super) file_id: String,
    /// The field, for a 400 naming it.
    pub(super) param: String,
}

/// What holds a [`FileRef`]'s place until the handler reads the file: not text, so the
/// message's parts are not joined into one text around it.
fn file_placeholder_for(file_id: String) -> Media {
    Media {
        kind: MediaKind::Document,
        media_type: String::new(),
        source: MediaSource::Url(String::new()),
        name: Some(file_id),
    }
}

/// The file id a part placed by [`file_placeholder_for`] holds.
fn placeholder_file_id(part: &WirePart) -> Option<&str> {
    match part {
        WirePart::Media(Media {
            media_type,
            source: MediaSource::Url(url),
            name: Some(file_id),
            ..
        }) if media_type.is_empty() && url.is_empty() => Some(file_id),
        _ => None,
    }
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_request", message).with_field(param)
}

fn not_supported_yet(param: &str, what: &str) -> ApiError {
    ApiError::bad_request(
        "unsupported_parameter",
        format!("{what} not supported yet; remove `{param}`."),
    )
    .with_field(param)
}

/// Absent, `null`, or an empty list.
fn none_or_empty(value: &Option<Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Array(items)) => items.is_empty(),
        Some(_) => false,
    }
}

/// Absent, `null`, `"auto"` or `"none"`: with no tools, each means a plain text answer.
fn no_forced_choice(value: &Option<Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(choice)) => choice == "auto" || choice == "none",
        Some(_) => false,
    }
}

/// The parameters that ask for what Threadline cannot give yet (see the module docs).
fn refuse_unsupported(body: &CompletionRequest) -> ApiResult<()> {
    if !none_or_empty(&body.tools) {
        return Err(not_supported_yet("tools", "Tools (function calling) are"));
    }
    if !none_or_empty(&body.functions) {
        return Err(not_supported_yet(
            "functions",
            "Functions (function calling) are",
        ));
    }
    if !no_forced_choice(&body.tool_choice) {
        return Err(not_supported_yet("tool_choice", "Choosing tools is"));
    }
    if !no_forced_choice(&body.function_call) {
        return Err(not_supported_yet("function_call", "Choosing functions is"));
    }
    if let Some(format) = &body.response_format {
        let text = format.is_null() || format.get("type").and_then(Value::as_str) == Some("text");
        if !text {
            return Err(not_supported_yet(
                "response_format",
                "Structured output (a `response_format` other than `text`) is",
            ));
        }
    }
    if body.logprobs == Some(true) {
        return Err(not_supported_yet("logprobs", "Log probabilities are"));
    }
    let audio = body
        .modalities
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|m| m.iter().any(|v| v == "audio"));
    if audio {
        return Err(not_supported_yet("modalities", "Audio output is"));
    }
    Ok(())
}

/// One content part: `text`; `image_url` with an https or `data:` URL; `file` with
/// `file_data` (base64, with or without a `data:` prefix) and an optional `filename`. Media
/// are only a user's to send (OpenAI refuses them elsewhere too), and are checked here —
/// type, size, bytes — so a bad one is the client's 4xx, never a provider's puzzling error.
fn content_part(param: &str, part: Part, role: Role, max_file_size: usize) -> ApiResult<WirePart> {
    if part.kind == "text" {
        return match part.text {
            Some(text) => Ok(WirePart::Text(text)),
            None => Err(invalid(
                format!("{param}.text"),
                "A text part needs `text`.",
            )),
        };
    }
    if !matches!(part.kind.as_str(), "image_url" | "file") {
        return Err(invalid(
            format!("{param}.type"),
            format!(
                "Content parts of type {:?} are not supported; use text, image_url or file.",
                part.kind
            ),
        ));
    }
    if role != Role::User {
        return Err(invalid(
            param,
            "Only user messages may carry images and files.",
        ));
    }
    let media = match (part.image_url, part.file) {
        (Some(image_url), _) if part.kind == "image_url" => {
            let url = match &image_url {
                Value::String(url) => Some(url.as_str()),
                other => other.get("url").and_then(Value::as_str),
            };
            let param = format!("{param}.image_url.url");
            let url = url.ok_or_else(|| invalid(&param, "`image_url.url` is required."))?;
            media::image_from_url(&param, url, max_file_size)?
        }
        (_, Some(file)) if part.kind == "file" => match (file.file_data, file.file_id) {
            (Some(data), _) => media::document(
                &format!("{param}.file.file_data"),
                &data,
                file.filename,
                max_file_size,
            )?,
            (None, Some(file_id)) if !file_id.trim().is_empty() => {
                return Ok(WirePart::Media(file_placeholder_for(file_id)))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    format!("{param}.file.file_id"),
                    "`file_id` must name one of your files.",
                ))
            }
            (None, None) => {
                return Err(invalid(
                    format!("{param}.file"),
                    "A file part needs `file_data`.",
                ))
            }
        },
        _ => {
            return Err(invalid(
                format!("{param}.{}", part.kind),
                format!("A {} part needs its `{}` object.", part.kind, part.kind),
            ))
        }
    };
    Ok(WirePart::Media(media))
}

/// Validates the request and translates it into the unified one; inline media are held to
/// `max_file_size` bytes each.
pub(super) fn to_unified(
    body: CompletionRequest,
    max_file_size: usize,
) -> ApiResult<(Options, ChatRequest)> {
    refuse_unsupported(&body)?;
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
    let mut file_refs = Vec::new();
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
        let parts = match message.content {
            None => vec![WirePart::Text(String::new())],
            Some(Content::Text(text)) => vec![WirePart::Text(text)],
            Some(Content::Parts(parts)) => {
                let mut out = Vec::with_capacity(parts.len());
                for (j, part) in parts.into_iter().enumerate() {
                    let param = format!("messages[{i}].content[{j}]");
                    let part = content_part(&param, part, role, max_file_size)?;
                    if let Some(file_id) = placeholder_file_id(&part) {
                        file_refs.push(FileRef {
                            message: i,
                            part: j,
                            file_id: file_id.to_string(),
                            param: format!("{param}.file.file_id"),
                        });
                    }
                    out.push(part);
                }
                // Text parts alone are one text, as OpenAI reads them.
                if out.iter().all(|p| matches!(p, WirePart::Text(_))) {
                    vec![WirePart::Text(ChatMessage::with_parts(role, out).text())]
                } else {
                    out
                }
            }
        };
        messages.push(ChatMessage::with_parts(role, parts));
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
            file_refs,
        },
        request,
    ))
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::ctx::parse_json;

    fn parse(body: &str) -> ApiResult<(Options, ChatRequest)> {
        to_unified(
            parse_json::<CompletionRequest>(body.as_bytes())?,
            1024 * 1024,
        )
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
                r#"{"model":"m/x","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"x","format":"wav"}}]}]}"#,
                "messages[0].content[0].type",
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
    fn image_url_and_file_parts_become_media_in_order() {
        let png = crate::files::media::encode_base64(crate::files::media::samples::PNG);
        let pdf = crate::files::media::encode_base64(b"%PDF-1.4\n%%EOF\n");
        let body = format!(
            r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":[
                {{"type":"text","text":"What is this?"}},
                {{"type":"image_url","image_url":{{"url":"data:image/png;base64,{png}","detail":"high"}}}},
                {{"type":"image_url","image_url":{{"url":"https://example.com/cat.jpg"}}}},
                {{"type":"file","file":{{"file_data":"{pdf}","filename":"a.pdf"}}}}]}}]}}"#
        );
        let (_, request) = parse(&body).expect("valid");
        let turn = &request.messages[0];
        assert_eq!(turn.parts[0], WirePart::Text("What is this?".into()));
        let media: Vec<(&str, Option<&str>)> = turn
            .media()
            .map(|m| (m.media_type.as_str(), m.name.as_deref()))
            .collect();
        assert_eq!(
            media,
            [
                ("image/png", None),
                ("image/jpeg", None),
                ("application/pdf", Some("a.pdf"))
            ]
        );
    }

    #[test]
    fn a_file_id_part_is_left_for_the_handler_to_read_in_its_place() {
        let (options, request) = parse(
            r#"{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":[
                {"type":"text","text":"Summarise"},{"type":"file","file":{"file_id":"0190abc"}}]}]}"#,
        )
        .expect("valid");
        assert_eq!(
            options.file_refs,
            vec![FileRef {
                message: 1,
                part: 1,
                file_id: "0190abc".into(),
                param: "messages[1].content[1].file.file_id".into(),
            }]
        );
        // The text is not joined around the placeholder: indices stay those of the request.
        assert_eq!(request.messages[1].parts.len(), 2);
        assert_eq!(
            placeholder_file_id(&request.messages[1].parts[1]),
            Some("0190abc")
        );
    }

    #[test]
    fn bad_media_parts_are_refused_naming_the_part() {
        let png = crate::files::media::encode_base64(crate::files::media::samples::PNG);
        let cases = [
            (
                format!(
                    r#"[{{"type":"image_url","image_url":{{"url":"data:image/svg+xml;base64,{png}"}}}}]"#
                ),
                415,
                "messages[0].content[0].image_url.url",
            ),
            (
                r#"[{"type":"image_url","image_url":{"url":"http://example.com/a.png"}}]"#
                    .to_string(),
                422,
                "messages[0].content[0].image_url.url",
            ),
            (
                r#"[{"type":"text","text":"a"},{"type":"file","file":{"file_id":" "}}]"#
                    .to_string(),
                400,
                "messages[0].content[1].file.file_id",
            ),
            (
                r#"[{"type":"image_url"}]"#.to_string(),
                400,
                "messages[0].content[0].image_url",
            ),
        ];
        for (content, status, param) in cases {
            let body =
                format!(r#"{{"model":"m/x","messages":[{{"role":"user","content":{content}}}]}}"#);
            assert_eq!(
                error_param(&body),
                (status, Some(param.to_string())),
                "{content}"
            );
        }
        let assistant = format!(
            r#"{{"model":"m/x","messages":[{{"role":"assistant","content":[{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{png}"}}}}]}}]}}"#
        );
        assert_eq!(
            error_param(&assistant),
            (400, Some("messages[0].content[0]".into()))
        );
    }

    #[test]
    fn tools_structured_output_logprobs_and_audio_are_400_not_supported_yet() {
        let cases = [
            (
                r#""tools":[{"type":"function","function":{"name":"f"}}]"#,
                "tools",
            ),
            (r#""functions":[{"name":"f"}]"#, "functions"),
            (r#""tool_choice":"required""#, "tool_choice"),
            (
                r#""tool_choice":{"type":"function","function":{"name":"f"}}"#,
                "tool_choice",
            ),
            (r#""function_call":{"name":"f"}"#, "function_call"),
            (
                r#""response_format":{"type":"json_object"}"#,
                "response_format",
            ),
            (
                r#""response_format":{"type":"json_schema","json_schema":{"name":"x"}}"#,
                "response_format",
            ),
            (r#""logprobs":true"#, "logprobs"),
            (r#""modalities":["text","audio"]"#, "modalities"),
        ];
        for (extra, param) in cases {
            let body = format!(
                r#"{{"model":"m/x","messages":[{{"role":"user","content":"x"}}],{extra}}}"#
            );
            let err = parse(&body).expect_err(&body);
            assert_eq!(
                (err.status, err.code, err.field.as_deref()),
                (400, "unsupported_parameter", Some(param)),
                "{body}"
            );
            assert!(err.message.contains("not supported yet"), "{}", err.message);
        }
    }

    #[test]
    fn empty_tools_and_choices_that_ask_for_text_are_accepted() {
        for extra in [
            r#""tools":[]"#,
            r#""tools":null"#,
            r#""functions":[]"#,
            r#""tool_choice":"none""#,
            r#""tool_choice":"auto""#,
            r#""function_call":"none""#,
            r#""response_format":null"#,
            r#""modalities":["text"]"#,
        ] {
            let body = format!(
                r#"{{"model":"m/x","messages":[{{"role":"user","content":"x"}}],{extra}}}"#
            );
            assert!(parse(&body).is_ok(), "{body}");
        }
    }

    #[test]
    fn a_wrongly_typed_field_is_a_4xx_not_a_500() {
        let err = parse(r#"{"model":"m/x","messages":"hi"}"#).expect_err("invalid");
        assert_eq!(err.status, 422);
    }
}
