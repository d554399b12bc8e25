//! A whole conversation as a file: JSON (everything, for backups and migration) or Markdown
//! (for reading and sharing).
//!
//! The Markdown keeps every message's text exactly as stored, between headings that say who
//! wrote it; nothing in the text is escaped or rewrapped, so code blocks and lists survive.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serialize;

use super::model::{Conversation, Message, MessageStatus};
use super::parts::MessagePart;
use crate::providers::wire::Role;

/// Names the JSON export's layout, so future versions can change it and importers can tell.
pub const JSON_EXPORT_FORMAT: &str = "threadline.conversation.v1";

/// The JSON export.
#[derive(Debug, Serialize)]
pub struct JsonExport<'a> {
    pub format: &'static str,
    pub exported_at: u64,
    pub conversation: &'a Conversation,
    /// Every message, oldest first.
    pub messages: &'a [Message],
}

/// `2026-11-01 09:05:03 UTC`.
pub fn format_utc(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    match DateTime::<Utc>::from_timestamp(secs, 0) {
        Some(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        None => format!("{ms} ms"),
    }
}

fn author(message: &Message) -> String {
    let who = match message.role {
        Role::User => "User",
        Role::Assistant => "Assistant",
        Role::System => "System",
    };
    match (&message.role, &message.model) {
        (Role::Assistant, Some(model)) => format!("{who} ({model})"),
        _ => who.to_string(),
    }
}

/// The Markdown export.
pub fn render_markdown(conversation: &Conversation, messages: &[Message]) -> String {
    let mut out = String::new();
    out.push_str(&format!("# {}\n\n", conversation.title));
    out.push_str(&format!(
        "- Created: {}\n",
        format_utc(conversation.created_at)
    ));
    if let Some(model) = &conversation.model {
        out.push_str(&format!("- Model: {model}\n"));
    }
    if let Some(mode) = &conversation.mode {
        out.push_str(&format!("- Mode: {mode}\n"));
    }
    out.push_str(&format!("- Messages: {}\n", messages.len()));
    if let Some(prompt) = &conversation.system_prompt {
        out.push_str("\n## System prompt\n\n");
        out.push_str(prompt);
        out.push('\n');
    }
    for message in messages {
        out.push_str(&format!(
            "\n---\n\n## {} · {}\n\n",
            author(message),
            format_utc(message.created_at)
        ));
        out.push_str(&message.content);
        if !message.content.ends_with('\n') {
            out.push('\n');
        }
        let attachments: Vec<String> = message.parts.iter().filter_map(attachment_line).collect();
        if !attachments.is_empty() {
            out.push('\n');
            for line in attachments {
                out.push_str(&line);
            }
        }
        match message.status {
            MessageStatus::Complete => {}
            MessageStatus::Partial => {
                out.push_str("\n*(Reply interrupted: the client disconnected.)*\n")
            }
            MessageStatus::Error => out.push_str("\n*(Reply cut short by a provider error.)*\n"),
        }
    }
    out
}

/// A Markdown line naming a part that is not text: an attached file by name, type and id (its
/// bytes stay in the file store), an image by URL or as inline.
fn attachment_line(part: &MessagePart) -> Option<String> {
    match part {
        MessagePart::Text { .. } => None,
        MessagePart::File {
            file_id,
            name,
            media_type,
        } => Some(format!(
            "- Attached file: {} ({}), id `{file_id}`\n",
            name.as_deref().unwrap_or("file"),
            media_type.as_deref().unwrap_or("unknown type")
        )),
        MessagePart::Image { url: Some(url), .. } => Some(format!("- Image: <{url}>\n")),
        MessagePart::Image { media_type, .. } => Some(format!(
            "- Image: inline {} (in the JSON export)\n",
            media_type.as_deref().unwrap_or("image")
        )),
    }
}

/// A file name for the export: the title reduced to `a-z0-9-`, or `conversation`.
pub fn file_name(conversation: &Conversation, extension: &str) -> String {
    let mut slug = String::new();
    for c in conversation.title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 60 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug = if slug.is_empty() {
        "conversation"
    } else {
        slug
    };
    format!("{slug}.{extension}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversations::model::TitleSource;
    use crate::providers::wire::Usage;

    fn conversation() -> Conversation {
        Conversation {
            id: "c".repeat(32),
            title: "Rust & Workers: a plan!".into(),
            model: Some("openai/gpt-4o".into()),
            mode: Some("general".into()),
            system_prompt: Some("Be terse.".into()),
            settings: Default::default(),
            pinned: false,
            archived: false,
            created_at: 1_793_000_000_000,
            updated_at: 1_793_000_000_000,
            last_message_at: None,
            message_count: 2,
            title_source: TitleSource::User,
        }
    }

    fn message(role: Role, content: &str, status: MessageStatus) -> Message {
        Message {
            id: "m".repeat(32),
            conversation_id: "c".repeat(32),
            role,
            content: content.into(),
            parts: vec![crate::conversations::parts::MessagePart::text(content)],
            model: (role == Role::Assistant).then(|| "openai/gpt-4o".to_string()),
            status,
            usage: (role == Role::Assistant).then(|| Usage::from_counts(3, 4)),
            latency_ms: None,
            created_at: 1_793_000_001_000,
            seq: 1,
        }
    }

    #[test]
    fn markdown_names_attachments_under_their_message() {
        let mut m = message(Role::User, "See this", MessageStatus::Complete);
        m.parts.push(MessagePart::File {
            file_id: "f".repeat(32),
            name: Some("report.pdf".into()),
            media_type: Some("application/pdf".into()),
        });
        m.parts.push(MessagePart::Image {
            url: Some("https://x.test/a.png".into()),
            media_type: None,
            data: None,
        });
        let md = render_markdown(&conversation(), &[m]);
        assert!(md.contains(&format!("See this\n\n- Attached file: report.pdf (application/pdf), id `{}`\n- Image: <https://x.test/a.png>\n", "f".repeat(32))), "{md}");
    }

    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(1_793_000_001_999), "2026-10-26 07:33:21 UTC");
    }

    #[test]
    fn markdown_holds_every_message_verbatim_under_its_author() {
        let code = "Here:\n\n```rust\nfn main() {}\n```\n\n## not a heading of ours";
        let messages = [
            message(Role::User, "How do I start?", MessageStatus::Complete),
            message(Role::Assistant, code, MessageStatus::Complete),
        ];
        let md = render_markdown(&conversation(), &messages);
        assert!(md.starts_with("# Rust & Workers: a plan!\n"));
        assert!(md.contains("- Model: openai/gpt-4o\n"));
        assert!(md.contains("## System prompt\n\nBe terse.\n"));
        assert!(md.contains("## User · 2026-10-26 07:33:21 UTC\n\nHow do I start?\n"));
        assert!(md.contains(&format!(
            "## Assistant (openai/gpt-4o) · 2026-10-26 07:33:21 UTC\n\n{code}\n"
        )));
        assert!(
            md.find("How do I start?") < md.find("fn main"),
            "oldest first"
        );
    }

    #[test]
    fn markdown_says_when_a_reply_was_cut_short() {
        let md = render_markdown(
            &conversation(),
            &[
                message(Role::Assistant, "Half a", MessageStatus::Partial),
                message(Role::Assistant, "Broken", MessageStatus::Error),
            ],
        );
        assert!(md.contains("Half a\n\n*(Reply interrupted"));
        assert!(md.contains("Broken\n\n*(Reply cut short"));
    }

    #[test]
    fn json_export_names_its_format_and_lists_messages() {
        let messages = [message(Role::User, "hi", MessageStatus::Complete)];
        let conv = conversation();
        let body = serde_json::to_value(JsonExport {
            format: JSON_EXPORT_FORMAT,
            exported_at: 5,
            conversation: &conv,
            messages: &messages,
        })
        .expect("json");
        assert_eq!(body["format"], JSON_EXPORT_FORMAT);
        assert_eq!(body["conversation"]["title"], "Rust & Workers: a plan!");
        assert_eq!(body["messages"][0]["content"], "hi");
    }

    #[test]
    fn file_names_are_safe_slugs_of_the_title() {
        assert_eq!(file_name(&conversation(), "md"), "rust-workers-a-plan.md");
        let mut c = conversation();
        c.title = "日本語 \"quoted\"\r\n".into();
        assert_eq!(file_name(&c, "json"), "quoted.json");
        c.title = "日本語".into();
        assert_eq!(file_name(&c, "json"), "conversation.json");
    }
}
