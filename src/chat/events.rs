//! The Server-Sent Events of a streamed chat reply.
//!
//! Every event has an `event:` name and one `data:` line holding a JSON object:
//!
//! | event | data | when |
//! |---|---|---|
//! | `user_message` | `{"conversation": Conversation, "message": Message}` | first: the user's message is stored (its id is final) |
//! | `delta` | `{"text": "…"}` | each piece of the reply, in order |
//! | `part` | `{"part": {"type": "image", "media_type", "data"} \| {"type": "image", "url"}}` | a picture the model generated, whole, in its place among the deltas |
//! | `usage` | `{"prompt_tokens", "completion_tokens", "total_tokens"}` | at most once, when the provider reports it |
//! | `done` | `{"message": Message, "finish_reason": "stop"}` | last, on success: the stored assistant message |
//! | `error` | `{"error": {code, message, type, param, request_id}, "message": Message \| null}` | last, on failure |
//!
//! A stream ends with exactly one `done` or `error`. The `error` event's `error` is the API's
//! error envelope; its `message` is the assistant message stored with status `error` holding
//! the text streamed before the failure, or `null` when nothing had been streamed (then
//! nothing is stored). Concatenating the `delta` texts gives the stored content exactly; each
//! `part` is, in the stored message's `parts`, a `file` part (the picture kept in the user's
//! files, see [`super::generated`]) after the text, in the same order.

use serde::Serialize;

use crate::conversations::model::{Conversation, Message};
use crate::conversations::parts::MessagePart;
use crate::http::error::ApiError;
use crate::providers::wire::Usage;

/// One event of a chat stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ChatStreamEvent {
    UserMessage {
        conversation: Conversation,
        message: Message,
    },
    Delta {
        text: String,
    },
    Part {
        part: MessagePart,
    },
    Usage(Usage),
    Done {
        message: Message,
        finish_reason: String,
    },
    Error {
        /// The inner object of the error envelope.
        error: serde_json::Value,
        message: Option<Message>,
    },
}

impl ChatStreamEvent {
    /// The terminal event for `err`, with the partial reply stored for it, if any.
    pub fn error(err: &ApiError, request_id: &str, stored: Option<Message>) -> Self {
        ChatStreamEvent::Error {
            error: err.envelope(request_id)["error"].clone(),
            message: stored,
        }
    }

    /// The `event:` name.
    pub fn name(&self) -> &'static str {
        match self {
            ChatStreamEvent::UserMessage { .. } => "user_message",
            ChatStreamEvent::Delta { .. } => "delta",
            ChatStreamEvent::Part { .. } => "part",
            ChatStreamEvent::Usage(_) => "usage",
            ChatStreamEvent::Done { .. } => "done",
            ChatStreamEvent::Error { .. } => "error",
        }
    }

    /// Whether the stream ends with this event.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            ChatStreamEvent::Done { .. } | ChatStreamEvent::Error { .. }
        )
    }

    /// The event as it goes on the wire. JSON escapes line breaks, so `data` is always one
    /// line, whatever the text holds.
    pub fn to_sse(&self) -> String {
        let data = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string());
        format!("event: {}\ndata: {data}\n\n", self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversations::model::{MessageStatus, TitleSource};
    use crate::providers::wire::Role;
    use serde_json::{json, Value};

    fn message(role: Role, content: &str) -> Message {
        Message {
            id: "a".repeat(32),
            conversation_id: "c".repeat(32),
            role,
            content: content.into(),
            parts: vec![crate::conversations::parts::MessagePart::text(content)],
            model: None,
            status: MessageStatus::Complete,
            usage: None,
            latency_ms: None,
            created_at: 1,
            seq: 1,
        }
    }

    fn parse(wire: &str) -> (String, Value) {
        let mut lines = wire
            .strip_suffix("\n\n")
            .expect("blank line ends the event")
            .lines();
        let event = lines
            .next()
            .and_then(|l| l.strip_prefix("event: "))
            .expect("event line");
        let data = lines
            .next()
            .and_then(|l| l.strip_prefix("data: "))
            .expect("data line");
        assert!(lines.next().is_none(), "exactly one data line: {wire:?}");
        (
            event.to_string(),
            serde_json::from_str(data).expect("data is JSON"),
        )
    }

    #[test]
    fn a_delta_is_one_data_line_even_with_line_breaks_in_the_text() {
        let (event, data) = parse(
            &ChatStreamEvent::Delta {
                text: "a\n\nb\r\nc".into(),
            }
            .to_sse(),
        );
        assert_eq!(event, "delta");
        assert_eq!(data, json!({"text": "a\n\nb\r\nc"}));
    }

    #[test]
    fn the_user_message_event_carries_the_stored_message_and_its_conversation() {
        let conversation = Conversation {
            id: "c".repeat(32),
            title: "T".into(),
            model: None,
            mode: None,
            system_prompt: None,
            settings: Default::default(),
            pinned: false,
            archived: false,
            created_at: 1,
            updated_at: 1,
            last_message_at: Some(1),
            message_count: 1,
            title_source: TitleSource::Generated,
        };
        let (event, data) = parse(
            &ChatStreamEvent::UserMessage {
                conversation,
                message: message(Role::User, "hi"),
            }
            .to_sse(),
        );
        assert_eq!(event, "user_message");
        assert_eq!(data["message"]["id"], "a".repeat(32));
        assert_eq!(data["message"]["role"], "user");
        assert_eq!(data["conversation"]["title"], "T");
    }

    #[test]
    fn usage_and_done_events_have_their_documented_shapes() {
        let (event, data) = parse(&ChatStreamEvent::Usage(Usage::from_counts(3, 4)).to_sse());
        assert_eq!(event, "usage");
        assert_eq!(
            data,
            json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7})
        );
        let done = ChatStreamEvent::Done {
            message: message(Role::Assistant, "hello"),
            finish_reason: "stop".into(),
        };
        assert!(done.is_terminal());
        let (event, data) = parse(&done.to_sse());
        assert_eq!(event, "done");
        assert_eq!(data["message"]["content"], "hello");
        assert_eq!(data["finish_reason"], "stop");
    }

    #[test]
    fn the_error_event_carries_the_error_envelope_and_any_stored_partial_reply() {
        let err = ApiError::new(502, "provider_error", "The provider failed.");
        let event = ChatStreamEvent::error(&err, "req-1", None);
        assert!(event.is_terminal());
        let (name, data) = parse(&event.to_sse());
        assert_eq!(name, "error");
        assert_eq!(data["error"]["code"], "provider_error");
        assert_eq!(data["error"]["request_id"], "req-1");
        assert_eq!(data["message"], Value::Null);
        let mut partial = message(Role::Assistant, "half");
        partial.status = MessageStatus::Error;
        let (_, data) = parse(&ChatStreamEvent::error(&err, "r", Some(partial)).to_sse());
        assert_eq!(data["message"]["status"], "error");
        assert_eq!(data["message"]["content"], "half");
    }
}
