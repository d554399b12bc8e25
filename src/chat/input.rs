//! What a client sends to chat, validated. Pure, so every rule is tested natively.
//!
//! One body serves every send route, native and legacy:
//!
//! | field | also accepted as | meaning |
//! |---|---|---|
//! | `content` | `message` (ThreadFlow, ChronoChat) | the user's message; exactly one of the two |
//! | `conversation_id` | `thread_id` (ChronoChat), `chat_id` (LLM_MODES) | the conversation to continue (`POST /api/chat`); none starts a new one |
//! | `model` | | the model for this reply; stored on a new conversation |
//! | `mode` | | a chat mode; stored on a new conversation, used for this reply only otherwise |
//! | `system_prompt` | `system` | as `mode` |
//! | `stream` | | `true` answers with Server-Sent Events |
//!
//! Other fields are ignored rather than refused: the services Threadline replaces had clients
//! that send extra fields (`role`, `message_type`, …), and refusing them would break those
//! clients for no gain.

use serde::Deserialize;

use crate::conversations::input::{
    validate_message_content, validate_mode, validate_system_prompt,
};
use crate::conversations::parts::{self, Content, MessagePart};
use crate::http::error::{ApiError, ApiResult};
use crate::modes::catalogue::ModeCatalogue;
use crate::platform::ids::is_valid_id;
use crate::providers::resolve::validate_model;
use crate::providers::wire::Part;

/// The body of every send route.
#[derive(Debug, Default, Deserialize)]
pub struct ChatBody {
    /// A string, or a list of typed parts ([`crate::conversations::parts`]).
    pub content: Option<Content>,
    pub message: Option<String>,
    pub conversation_id: Option<String>,
    pub thread_id: Option<String>,
    pub chat_id: Option<String>,
    pub model: Option<String>,
    pub mode: Option<String>,
    pub system_prompt: Option<String>,
    pub system: Option<String>,
    pub stream: Option<bool>,
}

/// A send request, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatInput {
    /// The message's text exactly as sent (validated within the limit; non-blank unless the
    /// message has images or files).
    pub content: String,
    /// The message's parts as stored; empty for a plain-text message.
    pub parts: Vec<MessagePart>,
    /// What the model gets for this message: its parts, with attached files read (the send
    /// handler replaces [`ChatInput::parts`]' file notes with the files' contents).
    pub model_parts: Vec<Part>,
    /// The conversation to continue; `None` starts a new one.
    pub conversation_id: Option<String>,
    pub model: Option<String>,
    pub mode: Option<String>,
    pub system_prompt: Option<String>,
    pub stream: bool,
}

/// Exactly one of two synonymous fields, named in the error when both are sent.
fn one_of<T>(
    (a, a_value): (&str, Option<T>),
    (b, b_value): (&str, Option<T>),
) -> ApiResult<Option<(String, T)>> {
    match (a_value, b_value) {
        (Some(_), Some(_)) => Err(ApiError::validation(
            b,
            format!("Send `{a}` or `{b}`, not both."),
        )),
        (Some(v), None) => Ok(Some((a.to_string(), v))),
        (None, Some(v)) => Ok(Some((b.to_string(), v))),
        (None, None) => Ok(None),
    }
}

impl ChatInput {
    /// Validates `body`. `path_conversation` is the conversation named by the path, if the
    /// route has one; a body naming another is a 422. `force_stream` is for
    /// `POST /api/chat/stream`, which streams whatever `stream` says.
    pub fn from_body(
        body: ChatBody,
        path_conversation: Option<&str>,
        force_stream: bool,
        max_chars: usize,
        max_file_size: usize,
        modes: &ModeCatalogue,
    ) -> ApiResult<ChatInput> {
        let message = body.message.map(Content::Text);
        let (field, content) = one_of(("content", body.content), ("message", message))?
            .ok_or_else(|| {
                ApiError::validation("content", "`content` (or `message`) is required.")
            })?;
        let (content, parts) = match content {
            Content::Text(text) => {
                validate_message_content(&field, &text, max_chars)?;
                (text, Vec::new())
            }
            Content::Parts(parts) => {
                let parts = parts::validate(&field, parts, max_file_size)?;
                let text = parts::text_of(&parts);
                if parts::text_only(&parts) {
                    validate_message_content(&field, &text, max_chars)?;
                    (text, Vec::new())
                } else {
                    if text.chars().count() > max_chars {
                        validate_message_content(&field, &text, max_chars)?;
                    }
                    (text, parts)
                }
            }
        };
        let model_parts = if parts.is_empty() {
            vec![Part::Text(content.clone())]
        } else {
            parts::to_wire(&parts)
        };

        let mut named: Option<(String, String)> = None;
        for (name, value) in [
            ("conversation_id", body.conversation_id),
            ("thread_id", body.thread_id),
            ("chat_id", body.chat_id),
        ] {
            let Some(value) = value else { continue };
            match &named {
                Some((other, previous)) if *previous != value => {
                    return Err(ApiError::validation(
                        name,
                        format!("`{name}` and `{other}` name different conversations."),
                    ))
                }
                Some(_) => {}
                None => named = Some((name.to_string(), value)),
            }
        }
        if let Some((name, id)) = &named {
            if !is_valid_id(id) {
                return Err(ApiError::validation(
                    name.clone(),
                    format!("`{name}` is not a conversation id."),
                ));
            }
            if path_conversation.is_some_and(|p| p != id) {
                return Err(ApiError::validation(
                    name.clone(),
                    format!("`{name}` differs from the conversation in the path."),
                ));
            }
        }
        let conversation_id = path_conversation
            .map(str::to_string)
            .or(named.map(|(_, id)| id));

        let system_prompt = match one_of(
            ("system_prompt", body.system_prompt),
            ("system", body.system),
        )? {
            Some((_, prompt)) => validate_system_prompt(Some(&prompt))?,
            None => None,
        };
        Ok(ChatInput {
            content,
            parts,
            model_parts,
            conversation_id,
            model: body.model.as_deref().map(validate_model).transpose()?,
            mode: body
                .mode
                .as_deref()
                .map(|m| validate_mode(m, modes))
                .transpose()?,
            system_prompt,
            stream: force_stream || body.stream.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::ctx::parse_json;

    const ID: &str = "0123456789abcdef0123456789abcdef";
    const OTHER: &str = "fedcba9876543210fedcba9876543210";

    fn parse(json: &str, path: Option<&str>) -> ApiResult<ChatInput> {
        let body: ChatBody = parse_json(json.as_bytes())?;
        ChatInput::from_body(body, path, false, 100, 1 << 20, &ModeCatalogue::default())
    }

    fn param(result: ApiResult<ChatInput>) -> (u16, Option<String>) {
        let err = result.expect_err("invalid");
        (err.status, err.field)
    }

    #[test]
    fn content_and_message_are_synonyms_but_not_both() {
        assert_eq!(
            parse(r#"{"content":"hi"}"#, None).expect("ok").content,
            "hi"
        );
        assert_eq!(
            parse(r#"{"message":"hi"}"#, None).expect("ok").content,
            "hi"
        );
        assert_eq!(
            param(parse(r#"{"content":"a","message":"b"}"#, None)),
            (422, Some("message".into()))
        );
        assert_eq!(
            param(parse(r#"{"model":"openai/gpt-4o"}"#, None)),
            (422, Some("content".into()))
        );
    }

    #[test]
    fn blank_and_oversized_messages_are_422_naming_the_field_used() {
        assert_eq!(
            param(parse(r#"{"message":"  \n "}"#, None)),
            (422, Some("message".into()))
        );
        let long = format!(r#"{{"content":"{}"}}"#, "x".repeat(101));
        assert_eq!(param(parse(&long, None)), (422, Some("content".into())));
    }

    #[test]
    fn the_conversation_may_be_named_in_each_legacy_way() {
        for field in ["conversation_id", "thread_id", "chat_id"] {
            let input =
                parse(&format!(r#"{{"message":"hi","{field}":"{ID}"}}"#), None).expect("ok");
            assert_eq!(input.conversation_id.as_deref(), Some(ID), "{field}");
        }
        let same = parse(
            &format!(r#"{{"message":"hi","thread_id":"{ID}","conversation_id":"{ID}"}}"#),
            None,
        )
        .expect("the same id twice is fine");
        assert_eq!(same.conversation_id.as_deref(), Some(ID));
        assert_eq!(
            param(parse(
                &format!(r#"{{"message":"hi","conversation_id":"{ID}","chat_id":"{OTHER}"}}"#),
                None
            )),
            (422, Some("chat_id".into()))
        );
    }

    #[test]
    fn a_malformed_conversation_id_in_the_body_is_422() {
        assert_eq!(
            param(parse(r#"{"message":"hi","conversation_id":"42"}"#, None)),
            (422, Some("conversation_id".into()))
        );
    }

    #[test]
    fn the_path_names_the_conversation_and_the_body_may_not_contradict_it() {
        let input = parse(r#"{"content":"hi"}"#, Some(ID)).expect("ok");
        assert_eq!(input.conversation_id.as_deref(), Some(ID));
        assert_eq!(
            param(parse(
                &format!(r#"{{"content":"hi","conversation_id":"{OTHER}"}}"#),
                Some(ID)
            )),
            (422, Some("conversation_id".into()))
        );
    }

    #[test]
    fn model_mode_and_system_prompt_are_validated() {
        let input = parse(
            r#"{"content":"hi","model":" openai/gpt-4o ","mode":"similar_questions","system":"Be terse.","stream":true}"#,
            None,
        )
        .expect("ok");
        assert_eq!(input.model.as_deref(), Some("openai/gpt-4o"));
        assert_eq!(input.mode.as_deref(), Some("similar_questions"));
        assert_eq!(input.system_prompt.as_deref(), Some("Be terse."));
        assert!(input.stream);
        assert_eq!(
            param(parse(r#"{"content":"hi","model":"gpt 4"}"#, None)),
            (422, Some("model".into()))
        );
        assert_eq!(
            param(parse(r#"{"content":"hi","mode":"pirate"}"#, None)),
            (422, Some("mode".into()))
        );
        assert_eq!(
            param(parse(
                r#"{"content":"hi","system":"a","system_prompt":"b"}"#,
                None
            )),
            (422, Some("system".into()))
        );
    }

    #[test]
    fn unknown_fields_from_legacy_clients_are_ignored_and_stream_defaults_off() {
        let input = parse(
            r#"{"message":"hi","role":"user","message_type":"text"}"#,
            None,
        )
        .expect("ok");
        assert!(!input.stream);
        let body: ChatBody = parse_json(br#"{"message":"hi","stream":false}"#).expect("json");
        let forced =
            ChatInput::from_body(body, None, true, 100, 1 << 20, &ModeCatalogue::default())
                .expect("ok");
        assert!(forced.stream, "POST /api/chat/stream always streams");
    }
}
