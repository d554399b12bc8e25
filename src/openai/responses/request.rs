//! `POST /v1/responses`, the request side: OpenAI's Responses body validated into what one
//! turn needs, pure (no Workers API), so every rule is tested natively on plain JSON.
//!
//! Threadline answers a Responses request through the same provider chat APIs as
//! `/v1/chat/completions`: `instructions` becomes the system prompt, `input` the turn's
//! messages, and a stored `previous_response_id` supplies the turns before it.
//!
//! - Unknown parameters are ignored, as on the rest of `/v1` (`user`, `include`,
//!   `reasoning`, `service_tier`, `truncation`, `stream_options`…).
//! - What would change the answer and cannot be honoured is a 400 naming the parameter:
//!   `tools` and `tool_choice` (function calling comes later), tool-call input items, image,
//!   file and audio parts (attachments come later), a `text.format` other than `text`,
//!   `background`, `conversation` and `prompt`.

use serde::Deserialize;
use serde_json::Value;

use crate::http::error::{ApiError, ApiResult};
use crate::providers::wire::{ChatMessage, ChatRequest, Role};

/// The fields of a Responses request that Threadline reads; serde ignores the rest.
#[derive(Debug, Deserialize)]
pub(crate) struct ResponsesBody {
    model: String,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    store: Option<bool>,
    #[serde(default)]
    previous_response_id: Option<String>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    max_output_tokens: Option<u32>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    tools: Option<Value>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    text: Option<Value>,
    #[serde(default)]
    background: Option<bool>,
    #[serde(default)]
    conversation: Option<Value>,
    #[serde(default)]
    prompt: Option<Value>,
}

/// A valid Responses request: this turn, and what the response object echoes back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResponsesTurn {
    pub(crate) model: String,
    /// The system prompt of this turn only: instructions never carry over to a later turn.
    pub(crate) instructions: Option<String>,
    /// This turn's input, in order; stored with the reply when `store` is on. An
    /// `item_reference` holds an empty assistant message until [`resolve_references`] fills it.
    pub(crate) input: Vec<ChatMessage>,
    /// The `item_reference` items of `input`: earlier answers named by their message id.
    pub(crate) references: Vec<ItemReference>,
    pub(crate) stream: bool,
    /// OpenAI's default is to store, and so is Threadline's.
    pub(crate) store: bool,
    pub(crate) previous_response_id: Option<String>,
    pub(crate) temperature: Option<f64>,
    pub(crate) top_p: Option<f64>,
    pub(crate) max_output_tokens: Option<u32>,
    /// Echoed back (`{}` when absent).
    pub(crate) metadata: Value,
    pub(crate) parallel_tool_calls: bool,
}

/// An input item that names an earlier answer by its id (`{"type":"item_reference",
/// "id":"msg_…"}`), as the Vercel AI SDK sends a previous assistant turn when storing is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ItemReference {
    /// Where in `input` it stands.
    pub(crate) position: usize,
    pub(crate) id: String,
}

/// Fills each reference with the stored answer `found` holds for its id (message id →
/// text); an id with none is a 400 naming the item.
pub(crate) fn resolve_references(
    turn: &mut ResponsesTurn,
    found: &std::collections::BTreeMap<String, String>,
) -> ApiResult<()> {
    for reference in &turn.references {
        let text = found.get(&reference.id).ok_or_else(|| {
            let shown: String = reference.id.chars().take(100).collect();
            ApiError::bad_request(
                "item_not_found",
                format!("Item with id '{shown}' not found: only the answers of stored responses of yours, kept 30 days, can be referenced."),
            )
            .with_field(format!("input[{}].id", reference.position))
        })?;
        if let Some(message) = turn.input.get_mut(reference.position) {
            *message = ChatMessage::new(Role::Assistant, text.clone());
        }
    }
    Ok(())
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_request", message).with_field(param)
}

fn not_supported_yet(param: impl Into<String>, what: &str) -> ApiError {
    ApiError::bad_request(
        "unsupported_parameter",
        format!("{what} not supported yet; remove it and send text only."),
    )
    .with_field(param)
}

/// Validates the body.
pub(crate) fn validate(body: ResponsesBody) -> ApiResult<ResponsesTurn> {
    let model = body.model.trim().to_string();
    if model.is_empty() {
        return Err(invalid(
            "model",
            "`model` must name a model, e.g. \"openai/gpt-4o\".",
        ));
    }
    refuse_unsupported(&body)?;
    let (input, references) = match body.input {
        None | Some(Value::Null) => {
            return Err(invalid(
                "input",
                "`input` is required: a string or a list of items.",
            ))
        }
        Some(value) => read_input(value)?,
    };
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
    if body.max_output_tokens == Some(0) {
        return Err(invalid(
            "max_output_tokens",
            "`max_output_tokens` must be at least 1.",
        ));
    }
    let metadata = match body.metadata {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(Value::Object(map)) if map.values().all(Value::is_string) => Value::Object(map),
        Some(_) => {
            return Err(invalid(
                "metadata",
                "`metadata` must be an object of string values.",
            ))
        }
    };
    let previous_response_id = match body.previous_response_id {
        Some(id) if id.trim().is_empty() => None,
        other => other,
    };
    Ok(ResponsesTurn {
        model,
        instructions: body.instructions.filter(|s| !s.trim().is_empty()),
        input,
        references,
        stream: body.stream.unwrap_or(false),
        store: body.store.unwrap_or(true),
        previous_response_id,
        temperature: body.temperature,
        top_p: body.top_p,
        max_output_tokens: body.max_output_tokens,
        metadata,
        parallel_tool_calls: body.parallel_tool_calls.unwrap_or(true),
    })
}

/// The unified chat request for `turn`: its instructions as the system prompt, then the
/// stored turns before it (`history`, oldest first), then its own input.
pub(crate) fn chat_request(turn: &ResponsesTurn, history: Vec<ChatMessage>) -> ChatRequest {
    let mut messages = Vec::with_capacity(history.len() + turn.input.len() + 1);
    if let Some(instructions) = &turn.instructions {
        messages.push(ChatMessage::new(Role::System, instructions.clone()));
    }
    messages.extend(history);
    messages.extend(turn.input.iter().cloned());
    ChatRequest {
        model: String::new(),
        messages,
        temperature: turn.temperature,
        top_p: turn.top_p,
        max_tokens: turn.max_output_tokens,
        stop: Vec::new(),
        stream: turn.stream,
        // Usage is part of every response object, streamed or not.
        include_usage: true,
    }
}

fn refuse_unsupported(body: &ResponsesBody) -> ApiResult<()> {
    match &body.tools {
        None | Some(Value::Null) => {}
        Some(Value::Array(tools)) if tools.is_empty() => {}
        Some(_) => return Err(not_supported_yet("tools", "Tools (function calling) are")),
    }
    match &body.tool_choice {
        None | Some(Value::Null) => {}
        Some(Value::String(choice)) if choice == "auto" || choice == "none" => {}
        Some(_) => {
            return Err(not_supported_yet(
                "tool_choice",
                "Choosing tools (function calling) is",
            ))
        }
    }
    if let Some(text) = &body.text {
        let format = text.get("format").unwrap_or(&Value::Null);
        let kind = format.get("type").and_then(Value::as_str);
        let plain = format.is_null() || kind == Some("text");
        if !(text.is_null() || text.is_object() && plain) {
            return Err(not_supported_yet(
                "text.format",
                "Structured output (a `text.format` other than `text`) is",
            ));
        }
    }
    if body.background == Some(true) {
        return Err(not_supported_yet("background", "Background responses are"));
    }
    if body.conversation.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(not_supported_yet(
            "conversation",
            "The Conversations API is not offered: `conversation` is",
        ));
    }
    if body.prompt.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(not_supported_yet("prompt", "Prompt templates are"));
    }
    Ok(())
}

/// `input`: a string (one user message) or a list of message items and item references.
fn read_input(input: Value) -> ApiResult<(Vec<ChatMessage>, Vec<ItemReference>)> {
    let items = match input {
        Value::String(text) => return Ok((vec![ChatMessage::new(Role::User, text)], Vec::new())),
        Value::Array(items) => items,
        _ => {
            return Err(invalid(
                "input",
                "`input` must be a string or a list of items.",
            ))
        }
    };
    if items.is_empty() {
        return Err(invalid("input", "`input` must hold at least one item."));
    }
    let mut messages = Vec::with_capacity(items.len());
    let mut references = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if item.get("type").and_then(Value::as_str) == Some("item_reference") {
            let Some(id) = item.get("id").and_then(Value::as_str) else {
                return Err(invalid(format!("input[{i}].id"), "`id` must be a string."));
            };
            references.push(ItemReference {
                position: i,
                id: id.to_string(),
            });
            messages.push(ChatMessage::new(Role::Assistant, ""));
            continue;
        }
        messages.push(read_item(i, item)?);
    }
    Ok((messages, references))
}

fn read_item(i: usize, item: &Value) -> ApiResult<ChatMessage> {
    let at = format!("input[{i}]");
    if !item.is_object() {
        return Err(invalid(at, "Each input item must be an object."));
    }
    match item.get("type").and_then(Value::as_str) {
        None | Some("message") => {}
        Some("function_call" | "function_call_output") => {
            return Err(not_supported_yet(
                at,
                "Function calls and their outputs are",
            ))
        }
        Some(other) => {
            return Err(invalid(
                format!("{at}.type"),
                format!("Input items of type `{other}` are not supported; send messages."),
            ))
        }
    }
    let role = match item.get("role").and_then(Value::as_str) {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("system" | "developer") => Role::System,
        _ => {
            return Err(invalid(
                format!("{at}.role"),
                "`role` must be user, assistant, system or developer.",
            ))
        }
    };
    let content = match item.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => read_parts(&at, parts)?,
        _ => {
            return Err(invalid(
                format!("{at}.content"),
                "`content` must be a string or a list of content parts.",
            ))
        }
    };
    Ok(ChatMessage::new(role, content))
}

/// Text parts are joined by newlines, as on `/v1/chat/completions`.
fn read_parts(at: &str, parts: &[Value]) -> ApiResult<String> {
    let mut texts = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let here = format!("{at}.content[{j}]");
        let kind = part.get("type").and_then(Value::as_str);
        match kind {
            // `output_text` and `refusal` are what an earlier answer replayed as input holds.
            Some("input_text" | "output_text") => match part.get("text").and_then(Value::as_str) {
                Some(text) => texts.push(text.to_string()),
                None => return Err(invalid(format!("{here}.text"), "`text` must be a string.")),
            },
            Some("refusal") => match part.get("refusal").and_then(Value::as_str) {
                Some(text) => texts.push(text.to_string()),
                None => {
                    return Err(invalid(
                        format!("{here}.refusal"),
                        "`refusal` must be a string.",
                    ))
                }
            },
            Some("input_image") => return Err(not_supported_yet(here, "Image input is")),
            Some("input_file") => return Err(not_supported_yet(here, "File input is")),
            Some("input_audio") => return Err(not_supported_yet(here, "Audio input is")),
            _ => {
                return Err(invalid(
                    format!("{here}.type"),
                    "Content parts must be `input_text` (or `output_text` in an assistant turn).",
                ))
            }
        }
    }
    Ok(texts.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::ctx::parse_json;

    fn parse(body: &str) -> ApiResult<ResponsesTurn> {
        validate(parse_json::<ResponsesBody>(body.as_bytes())?)
    }

    fn refused(body: &str) -> (u16, &'static str, Option<String>) {
        let err = parse(body).expect_err(body);
        (err.status, err.code, err.field)
    }

    #[test]
    fn a_string_input_is_one_user_message_and_storing_is_the_default() {
        let turn = parse(r#"{"model":"openai/gpt-4o","input":"Hi"}"#).expect("valid");
        assert_eq!(turn.model, "openai/gpt-4o");
        assert_eq!(turn.input, [ChatMessage::new(Role::User, "Hi")]);
        assert!(turn.store && !turn.stream);
        assert_eq!(turn.metadata, serde_json::json!({}));
        assert_eq!(turn.instructions, None);
    }

    #[test]
    fn message_items_keep_their_roles_and_join_their_text_parts() {
        let turn = parse(
            r#"{"model":"m/x","instructions":"Be terse.","store":false,"stream":true,
                "input":[{"role":"developer","content":"Use French."},
                         {"type":"message","role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_text","text":"b"}]},
                         {"type":"message","id":"msg_1","status":"completed","role":"assistant",
                          "content":[{"type":"output_text","text":"c","annotations":[]}]},
                         {"role":"user","content":"d"}],
                "previous_response_id":"resp_1","metadata":{"k":"v"},"user":"u","reasoning":{}}"#,
        )
        .expect("valid");
        assert_eq!(turn.instructions.as_deref(), Some("Be terse."));
        assert_eq!(
            turn.input,
            [
                ChatMessage::new(Role::System, "Use French."),
                ChatMessage::new(Role::User, "a\nb"),
                ChatMessage::new(Role::Assistant, "c"),
                ChatMessage::new(Role::User, "d"),
            ]
        );
        assert!(turn.stream && !turn.store);
        assert_eq!(turn.previous_response_id.as_deref(), Some("resp_1"));
        assert_eq!(turn.metadata["k"], "v");
    }

    #[test]
    fn the_chat_request_puts_instructions_first_then_history_then_this_input() {
        let turn = parse(
            r#"{"model":"m/x","instructions":"Be terse.","input":"Now?","max_output_tokens":9,"temperature":0.5}"#,
        )
        .expect("valid");
        let history = vec![
            ChatMessage::new(Role::User, "Before?"),
            ChatMessage::new(Role::Assistant, "Yes."),
        ];
        let request = chat_request(&turn, history);
        assert_eq!(
            request.messages,
            [
                ChatMessage::new(Role::System, "Be terse."),
                ChatMessage::new(Role::User, "Before?"),
                ChatMessage::new(Role::Assistant, "Yes."),
                ChatMessage::new(Role::User, "Now?"),
            ]
        );
        assert_eq!(request.max_tokens, Some(9));
        assert_eq!(request.temperature, Some(0.5));
        assert!(request.include_usage);
    }

    #[test]
    fn item_references_are_filled_with_the_stored_answers_they_name() {
        let mut turn = parse(
            r#"{"model":"m/x","input":[{"role":"user","content":"a"},
                {"type":"item_reference","id":"msg_1"},{"role":"user","content":"b"}]}"#,
        )
        .expect("valid");
        assert_eq!(
            turn.references,
            [ItemReference {
                position: 1,
                id: "msg_1".into()
            }]
        );
        let found = [("msg_1".to_string(), "answer a".to_string())].into();
        resolve_references(&mut turn, &found).expect("found");
        assert_eq!(turn.input[1], ChatMessage::new(Role::Assistant, "answer a"));
        let mut missing = turn.clone();
        missing.references[0].id = "msg_2".into();
        let err = resolve_references(&mut missing, &found).expect_err("unknown");
        assert_eq!(
            (err.status, err.code, err.field.as_deref()),
            (400, "item_not_found", Some("input[1].id"))
        );
    }

    #[test]
    fn empty_tools_and_a_harmless_tool_choice_or_text_format_are_accepted() {
        for extra in [
            r#""tools":[]"#,
            r#""tools":null"#,
            r#""tool_choice":"auto""#,
            r#""tool_choice":"none""#,
            r#""text":{"format":{"type":"text"}}"#,
            r#""text":{"verbosity":"low"}"#,
            r#""background":false"#,
            r#""parallel_tool_calls":false"#,
        ] {
            let body = format!(r#"{{"model":"m/x","input":"x",{extra}}}"#);
            assert!(parse(&body).is_ok(), "{body}");
        }
    }

    #[test]
    fn tools_attachments_and_other_unsupported_features_are_400_naming_the_param() {
        let cases = [
            (
                r#""tools":[{"type":"function","name":"f","parameters":{}}]"#,
                "tools",
            ),
            (r#""tool_choice":"required""#, "tool_choice"),
            (
                r#""tool_choice":{"type":"function","name":"f"}"#,
                "tool_choice",
            ),
            (
                r#""text":{"format":{"type":"json_schema","name":"x","schema":{}}}"#,
                "text.format",
            ),
            (r#""background":true"#, "background"),
            (r#""conversation":"conv_1""#, "conversation"),
            (r#""prompt":{"id":"pmpt_1"}"#, "prompt"),
        ];
        for (extra, param) in cases {
            let body = format!(r#"{{"model":"m/x","input":"x",{extra}}}"#);
            assert_eq!(
                refused(&body),
                (400, "unsupported_parameter", Some(param.to_string())),
                "{body}"
            );
        }
        let image = r#"{"model":"m/x","input":[{"role":"user","content":[{"type":"input_text","text":"what?"},{"type":"input_image","image_url":"data:image/png;base64,AA"}]}]}"#;
        assert_eq!(
            refused(image),
            (
                400,
                "unsupported_parameter",
                Some("input[0].content[1]".into())
            )
        );
        let file = r#"{"model":"m/x","input":[{"role":"user","content":[{"type":"input_file","file_id":"file-1"}]}]}"#;
        assert_eq!(refused(file).2.as_deref(), Some("input[0].content[0]"));
        let call = r#"{"model":"m/x","input":[{"role":"user","content":"x"},{"type":"function_call_output","call_id":"c","output":"1"}]}"#;
        assert_eq!(
            refused(call),
            (400, "unsupported_parameter", Some("input[1]".into()))
        );
    }

    #[test]
    fn malformed_input_and_out_of_range_settings_are_400_naming_the_param() {
        let cases = [
            (r#"{"model":" ","input":"x"}"#, "model"),
            (r#"{"model":"m/x"}"#, "input"),
            (r#"{"model":"m/x","input":[]}"#, "input"),
            (r#"{"model":"m/x","input":42}"#, "input"),
            (r#"{"model":"m/x","input":["x"]}"#, "input[0]"),
            (
                r#"{"model":"m/x","input":[{"role":"tool","content":"x"}]}"#,
                "input[0].role",
            ),
            (
                r#"{"model":"m/x","input":[{"role":"user"}]}"#,
                "input[0].content",
            ),
            (
                r#"{"model":"m/x","input":[{"role":"user","content":[{"type":"input_text"}]}]}"#,
                "input[0].content[0].text",
            ),
            (
                r#"{"model":"m/x","input":[{"type":"reasoning","summary":[]}]}"#,
                "input[0].type",
            ),
            (
                r#"{"model":"m/x","input":"x","temperature":2.5}"#,
                "temperature",
            ),
            (r#"{"model":"m/x","input":"x","top_p":-1}"#, "top_p"),
            (
                r#"{"model":"m/x","input":"x","max_output_tokens":0}"#,
                "max_output_tokens",
            ),
            (
                r#"{"model":"m/x","input":"x","metadata":{"n":1}}"#,
                "metadata",
            ),
        ];
        for (body, param) in cases {
            let (status, _, field) = refused(body);
            assert_eq!((status, field.as_deref()), (400, Some(param)), "{body}");
        }
        let wrong_type = parse(r#"{"model":"m/x","input":"x","stream":"yes"}"#).expect_err("type");
        assert_eq!(
            (wrong_type.status, wrong_type.field.as_deref()),
            (422, Some("stream"))
        );
    }
}
