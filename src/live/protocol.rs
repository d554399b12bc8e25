//! The WebSocket protocol of a conversation, client side: the JSON messages a client sends.
//!
//! | message | meaning |
//! |---|---|
//! | `{"type": "send", "content": "…", …}` | start a generation; the other fields are a chat send body's (`model`, `mode`, `system_prompt`, `background`) |
//! | `{"type": "stop"}` | stop the generation in progress (stores `partial`) |
//! | `{"type": "resume", "last_event_id": "…"}` | the events after that one (all of the current generation without it), then the live ones |
//! | `{"type": "ping"}` | answered `{"event": "pong", "data": {}}` (by the runtime, without waking a hibernating object) |
//!
//! The server's messages mirror the SSE events: `{"event": name, "id": "<generation>:<n>",
//! "data": {…}}` for the events of a generation (`user_message`, `delta`, `usage`, `done`,
//! `error`), and, without an `id`, `ready` (on connecting), `pong`, and `error` for a message
//! that was refused (bad JSON, a second `send` while one runs): an `error` without an `id`
//! ends no generation. Pure, so the parsing is tested natively.

use serde::Deserialize;

use crate::http::error::{ApiError, ApiResult};

/// The message the runtime answers by itself, and its answer.
/// Headers the worker sets on its requests to the object.
pub const USER_HEADER: &str = "x-tl-user";
pub const CONVERSATION_HEADER: &str = "x-tl-conversation";
/// `1` when the send starts the conversation (its id was chosen by the worker).
pub const NEW_HEADER: &str = "x-tl-new";

/// The WebSocket subprotocol a client names (with `bearer.<token>` beside it to
/// authenticate); the server answers with it.
pub const SUBPROTOCOL: &str = "threadline";

pub const PING: &str = r#"{"type":"ping"}"#;
pub const PONG: &str = r#"{"event":"pong","data":{}}"#;

/// A client message, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// The message as it came: a chat send body (`type` is one more field it ignores).
    Send(Vec<u8>),
    Stop,
    Resume {
        last_event_id: Option<String>,
    },
    Ping,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: Option<String>,
    last_event_id: Option<serde_json::Value>,
}

/// Parses a text message: 400 `invalid_json` for something that is not a JSON object, 422
/// naming `type` for a missing or unknown type.
pub fn parse(text: &str) -> ApiResult<ClientMessage> {
    let bad_json = || {
        ApiError::bad_request(
            "invalid_json",
            "A WebSocket message must be a JSON object with a `type`.",
        )
    };
    if !text.trim_start().starts_with('{') {
        return Err(bad_json());
    }
    let envelope: Envelope = serde_json::from_str(text).map_err(|_| bad_json())?;
    match envelope.kind.as_deref() {
        Some("send") => Ok(ClientMessage::Send(text.as_bytes().to_vec())),
        Some("stop") => Ok(ClientMessage::Stop),
        Some("ping") => Ok(ClientMessage::Ping),
        Some("resume") => match envelope.last_event_id {
            None | Some(serde_json::Value::Null) => Ok(ClientMessage::Resume {
                last_event_id: None,
            }),
            Some(serde_json::Value::String(id)) => Ok(ClientMessage::Resume {
                last_event_id: Some(id),
            }),
            Some(_) => Err(ApiError::validation(
                "last_event_id",
                "`last_event_id` must be a string (the `id` of the last event received).",
            )),
        },
        _ => Err(ApiError::validation(
            "type",
            "`type` must be one of `send`, `stop`, `resume`, `ping`.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_message_type_parses() {
        let send = r#"{"type":"send","content":"hi","model":"dev/echo"}"#;
        assert_eq!(
            parse(send).unwrap(),
            ClientMessage::Send(send.as_bytes().to_vec())
        );
        assert_eq!(parse(r#"{"type":"stop"}"#).unwrap(), ClientMessage::Stop);
        assert_eq!(parse(PING).unwrap(), ClientMessage::Ping);
        assert_eq!(
            parse(r#"{"type":"resume","last_event_id":"g:3"}"#).unwrap(),
            ClientMessage::Resume {
                last_event_id: Some("g:3".into())
            }
        );
        assert_eq!(
            parse(r#"{"type":"resume"}"#).unwrap(),
            ClientMessage::Resume {
                last_event_id: None
            }
        );
    }

    #[test]
    fn bad_messages_are_refused_with_a_reason() {
        assert_eq!(parse("hello").unwrap_err().code, "invalid_json");
        assert_eq!(parse("[1]").unwrap_err().code, "invalid_json");
        assert_eq!(parse("{\"type\":").unwrap_err().code, "invalid_json");
        let unknown = parse(r#"{"type":"dance"}"#).unwrap_err();
        assert_eq!((unknown.status, unknown.code), (422, "validation_failed"));
        assert_eq!(unknown.field.as_deref(), Some("type"));
        assert_eq!(parse("{}").unwrap_err().field.as_deref(), Some("type"));
        let id = parse(r#"{"type":"resume","last_event_id":3}"#).unwrap_err();
        assert_eq!(id.field.as_deref(), Some("last_event_id"));
    }
}
