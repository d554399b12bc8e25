//! What a conversation and a message are, as the API shows them, and how they are read from
//! their D1 rows.

use super::parts::MessagePart;
use serde::{Deserialize, Serialize};

use crate::providers::wire::{Role, Usage};

/// Where a conversation's title came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TitleSource {
    /// The placeholder given at creation; the first message replaces it.
    Default,
    /// Set by the client; never replaced.
    User,
    /// Made from the first message (or by a model).
    Generated,
}

impl TitleSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TitleSource::Default => "default",
            TitleSource::User => "user",
            TitleSource::Generated => "generated",
        }
    }

    fn parse(s: &str) -> TitleSource {
        match s {
            "default" => TitleSource::Default,
            "generated" => TitleSource::Generated,
            _ => TitleSource::User,
        }
    }
}

/// One conversation. Times are milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conversation {
    pub id: String,
    pub title: String,
    pub model: Option<String>,
    pub mode: Option<String>,
    pub system_prompt: Option<String>,
    /// A JSON object: `temperature`, `top_p` and `max_tokens` are used for replies; other keys
    /// are kept for the client.
    pub settings: serde_json::Map<String, serde_json::Value>,
    pub pinned: bool,
    pub archived: bool,
    pub created_at: u64,
    pub updated_at: u64,
    pub last_message_at: Option<u64>,
    pub message_count: u64,
    #[serde(skip)]
    pub title_source: TitleSource,
}

impl Conversation {
    /// When it last saw activity: the list's sort key.
    pub fn activity_at(&self) -> u64 {
        self.last_message_at.unwrap_or(self.created_at)
    }
}

/// A `conversations` row as D1 returns it (booleans as integers, settings as text).
#[derive(Debug, Deserialize)]
pub struct ConversationRow {
    pub id: String,
    pub title: String,
    pub title_source: String,
    pub model: Option<String>,
    pub mode: Option<String>,
    pub system_prompt: Option<String>,
    pub settings: Option<String>,
    pub pinned: i64,
    pub archived: i64,
    pub created_at: u64,
    pub updated_at: u64,
    pub last_message_at: Option<u64>,
    pub message_count: u64,
}

impl From<ConversationRow> for Conversation {
    fn from(row: ConversationRow) -> Self {
        Conversation {
            settings: row
                .settings
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default(),
            id: row.id,
            title: row.title,
            title_source: TitleSource::parse(&row.title_source),
            model: row.model,
            mode: row.mode,
            system_prompt: row.system_prompt,
            pinned: row.pinned != 0,
            archived: row.archived != 0,
            created_at: row.created_at,
            updated_at: row.updated_at,
            last_message_at: row.last_message_at,
            message_count: row.message_count,
        }
    }
}

/// How a stored message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// A user message, or a reply that finished.
    Complete,
    /// The client went away mid-stream; the text is what had been streamed.
    Partial,
    /// The provider failed mid-stream; the text is what had been streamed.
    Error,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Complete => "complete",
            MessageStatus::Partial => "partial",
            MessageStatus::Error => "error",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub id: String,
    pub conversation_id: String,
    pub role: Role,
    /// The message's text (its text parts joined by newlines).
    pub content: String,
    /// The message as typed parts (`[{"type":"text","text":…}]` for plain text); see
    /// [`super::parts`].
    pub parts: Vec<MessagePart>,
    /// The model that wrote an assistant message.
    pub model: Option<String>,
    pub status: MessageStatus,
    /// Token usage as the provider reported it (assistant messages).
    pub usage: Option<Usage>,
    /// Milliseconds from sending the request to the provider to the end of the reply.
    pub latency_ms: Option<u64>,
    pub created_at: u64,
    /// Position in the conversation (1, 2, …): internal, carried in cursors.
    #[serde(skip)]
    pub seq: u64,
}

/// A `messages` row as D1 returns it.
#[derive(Debug, Deserialize)]
pub struct MessageRow {
    pub id: String,
    pub conversation_id: String,
    pub role: Role,
    pub content: String,
    pub model: Option<String>,
    pub status: MessageStatus,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
    pub latency_ms: Option<u64>,
    pub created_at: u64,
    pub seq: Option<u64>,
    /// JSON parts; `None` for a message that is its `content` alone.
    #[serde(default)]
    pub parts: Option<String>,
}

impl From<MessageRow> for Message {
    fn from(row: MessageRow) -> Self {
        let usage = match (row.prompt_tokens, row.completion_tokens) {
            (None, None) => None,
            (p, c) => Some(Usage::from_counts(p.unwrap_or(0), c.unwrap_or(0))),
        };
        let parts = row
            .parts
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_else(|| vec![MessagePart::text(row.content.clone())]);
        Message {
            id: row.id,
            conversation_id: row.conversation_id,
            role: row.role,
            parts,
            content: row.content,
            model: row.model,
            status: row.status,
            usage,
            latency_ms: row.latency_ms,
            created_at: row.created_at,
            seq: row.seq.unwrap_or(0),
        }
    }
}

/// One page of a list: `data`, and the cursor for the next page when there is one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub has_more: bool,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` rows (the extra row only says that more exist);
    /// `cursor_after` makes the cursor that continues after a given item.
    pub fn from_rows(mut rows: Vec<T>, limit: usize, cursor_after: impl Fn(&T) -> String) -> Self {
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if has_more {
            rows.last().map(cursor_after)
        } else {
            None
        };
        Page {
            data: rows,
            has_more,
            next_cursor,
        }
    }
}

/// An assistant message about to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AssistantReply {
    pub id: String,
    pub conversation_id: String,
    pub content: String,
    pub model: Option<String>,
    pub status: MessageStatus,
    pub usage: Option<Usage>,
    pub latency_ms: Option<u64>,
    pub created_at: u64,
    /// The message's parts when it has more than its text (the text, then images the model
    /// generated); empty: `content` is its one part.
    pub parts: Vec<MessagePart>,
}

impl AssistantReply {
    /// The message as it reads once stored (`seq` is assigned by D1 and not needed by callers).
    pub fn into_message(self) -> Message {
        let parts = if self.parts.is_empty() {
            vec![MessagePart::text(self.content.clone())]
        } else {
            self.parts
        };
        Message {
            id: self.id,
            conversation_id: self.conversation_id,
            role: Role::Assistant,
            parts,
            content: self.content,
            model: self.model,
            status: self.status,
            usage: self.usage,
            latency_ms: self.latency_ms,
            created_at: self.created_at,
            seq: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row() -> ConversationRow {
        ConversationRow {
            id: "c".into(),
            title: "T".into(),
            title_source: "default".into(),
            model: None,
            mode: Some("general".into()),
            system_prompt: None,
            settings: Some(r#"{"temperature":0.5}"#.into()),
            pinned: 1,
            archived: 0,
            created_at: 10,
            updated_at: 11,
            last_message_at: None,
            message_count: 0,
        }
    }

    #[test]
    fn conversation_rows_become_booleans_and_a_settings_object() {
        let c = Conversation::from(row());
        assert!(c.pinned && !c.archived);
        assert_eq!(c.settings["temperature"], json!(0.5));
        assert_eq!(c.title_source, TitleSource::Default);
        assert_eq!(c.activity_at(), 10);
        let body = serde_json::to_value(&c).expect("json");
        assert!(body.get("title_source").is_none(), "internal field");
        assert_eq!(body["pinned"], json!(true));
    }

    #[test]
    fn unreadable_settings_read_as_an_empty_object() {
        let mut r = row();
        r.settings = Some("not json".into());
        assert!(Conversation::from(r).settings.is_empty());
    }

    #[test]
    fn message_usage_is_present_only_when_the_provider_reported_it() {
        let message = |p, c| {
            Message::from(MessageRow {
                id: "m".into(),
                conversation_id: "c".into(),
                role: Role::Assistant,
                content: "x".into(),
                model: None,
                parts: None,
                status: MessageStatus::Partial,
                prompt_tokens: p,
                completion_tokens: c,
                latency_ms: None,
                created_at: 1,
                seq: Some(3),
            })
        };
        assert_eq!(message(None, None).usage, None);
        assert_eq!(
            message(Some(3), Some(4)).usage.expect("usage").total_tokens,
            7
        );
        let body = serde_json::to_value(message(None, None)).expect("json");
        assert_eq!(body["status"], "partial");
        assert_eq!(body["role"], "assistant");
        assert!(body.get("seq").is_none());
    }

    #[test]
    fn a_page_keeps_limit_rows_and_a_cursor_only_when_more_exist() {
        let page = Page::from_rows(vec![1, 2, 3], 2, |n| format!("after-{n}"));
        assert_eq!(page.data, [1, 2]);
        assert!(page.has_more);
        assert_eq!(page.next_cursor.as_deref(), Some("after-2"));
        let last = Page::from_rows(vec![1, 2], 2, |n| format!("after-{n}"));
        assert!(!last.has_more);
        assert_eq!(last.next_cursor, None);
    }
}
