//! Conversation titles: the placeholder, titles clients set, titles made from the first
//! message, and titles asked of a model (`TITLE_MODEL`).
//!
//! A new conversation is titled at once from the first line of its first message, so the
//! title never waits for a model. When `TITLE_MODEL` is set, the model is then asked for a
//! better one in the background (`ctx.wait_until`); its answer replaces the first-line title
//! unless the user has renamed the conversation meanwhile. It is best effort: a failure, a
//! timeout or an unusable answer leaves the first-line title and is only logged.

use crate::http::error::{ApiError, ApiResult};
use crate::providers::wire::{ChatMessage, ChatRequest, Role};

/// The title of a conversation created without one, until its first message names it.
pub const DEFAULT_TITLE: &str = "New conversation";
/// The longest title a client may set, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// The longest title made from a message, in characters (ellipsis included).
pub const GENERATED_TITLE_CHARS: usize = 60;

/// Runs of whitespace (newlines included) become one space; the ends are trimmed.
fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A title a client sent: whitespace collapsed, not empty, at most [`MAX_TITLE_CHARS`].
pub fn normalize_title(title: &str) -> ApiResult<String> {
    let title = collapse_whitespace(title);
    if title.is_empty() {
        return Err(ApiError::validation("title", "`title` must not be empty."));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::validation(
            "title",
            format!("`title` is longer than {MAX_TITLE_CHARS} characters."),
        ));
    }
    Ok(title)
}

/// A title from a conversation's first message: its first non-blank line, whitespace
/// collapsed, cut to [`GENERATED_TITLE_CHARS`] on a character boundary — at a word boundary
/// when one is near — with an ellipsis when cut. [`DEFAULT_TITLE`] when there is no text.
pub fn title_from_message(content: &str) -> String {
    let line = content
        .lines()
        .map(collapse_whitespace)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    if line.is_empty() {
        return DEFAULT_TITLE.to_string();
    }
    if line.chars().count() <= GENERATED_TITLE_CHARS {
        return line;
    }
    // Room for the ellipsis; `char_indices` keeps the cut on a character boundary.
    let keep = GENERATED_TITLE_CHARS - 1;
    let cut = line.char_indices().nth(keep).map_or(line.len(), |(i, _)| i);
    let head = &line[..cut];
    // Prefer ending at a space if that loses no more than a third of the title.
    let head = match head.rfind(' ') {
        Some(space) if head[..space].chars().count() >= keep * 2 / 3 => &head[..space],
        _ => head,
    };
    let head = head.trim_end_matches(|c: char| c.is_whitespace() || ",;:-".contains(c));
    format!("{head}…")
}

/// The instruction sent with the first message.
pub const TITLE_INSTRUCTION: &str = "Write a title of at most six words for a conversation that \
    starts with the user's message below. Answer with the title only: no quotes, no final \
    punctuation, in the language of the message.";

/// How much of the first message is sent: a title needs only its beginning.
pub const TITLE_SOURCE_CHARS: usize = 2_000;

/// The request for a title for a conversation that starts with `first_message`.
pub fn title_request(first_message: &str) -> ChatRequest {
    let excerpt: String = first_message.chars().take(TITLE_SOURCE_CHARS).collect();
    ChatRequest {
        messages: vec![
            ChatMessage::new(Role::System, TITLE_INSTRUCTION),
            ChatMessage::new(Role::User, excerpt),
        ],
        temperature: Some(0.2),
        max_tokens: Some(32),
        ..ChatRequest::default()
    }
}

/// A model's answer as a title: its first line, without surrounding quotes, `Title:` prefixes
/// or final punctuation, at most [`GENERATED_TITLE_CHARS`]. `None` when nothing usable is left.
pub fn clean_model_title(answer: &str) -> Option<String> {
    let line = answer.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = ["title:", "Title:", "TITLE:"]
        .iter()
        .find_map(|p| line.strip_prefix(p))
        .unwrap_or(line)
        .trim();
    let quotes: &[char] = &['"', '\'', '“', '”', '«', '»', '`', '*'];
    let line = line
        .trim_matches(quotes)
        .trim()
        .trim_end_matches(['.', '!', ':', ';', ','])
        .trim_matches(quotes)
        .trim();
    if line.is_empty() {
        return None;
    }
    // Reuses the first-line rules: whitespace collapsed, cut at a word with an ellipsis.
    let title = title_from_message(line);
    (title.chars().count() <= GENERATED_TITLE_CHARS).then_some(title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_first_line_is_the_title_as_is() {
        assert_eq!(
            title_from_message("  How do I deploy?  \nDetails…"),
            "How do I deploy?"
        );
    }

    #[test]
    fn blank_leading_lines_are_skipped_and_whitespace_collapsed() {
        assert_eq!(
            title_from_message("\n\n   \n  Plan   the\ttrip "),
            "Plan the trip"
        );
    }

    #[test]
    fn long_lines_are_cut_at_a_word_boundary_with_an_ellipsis() {
        let text = "Please explain the difference between eventual consistency and strong consistency in distributed databases";
        let title = title_from_message(text);
        assert!(title.ends_with('…'), "{title}");
        assert!(title.chars().count() <= GENERATED_TITLE_CHARS, "{title}");
        let without = title.trim_end_matches('…');
        assert!(text.starts_with(without));
        assert!(
            text[without.len()..].starts_with(' '),
            "cut at a word: {title}"
        );
    }

    #[test]
    fn cutting_never_splits_a_multibyte_character() {
        let text = "日本語".repeat(40);
        let title = title_from_message(&text);
        assert_eq!(title.chars().count(), GENERATED_TITLE_CHARS);
        assert!(title.ends_with('…'));
        let emoji = "👍🏽".repeat(50);
        assert!(title_from_message(&emoji).chars().count() <= GENERATED_TITLE_CHARS);
    }

    #[test]
    fn a_message_without_text_gets_the_default_title() {
        assert_eq!(title_from_message(" \n\t "), DEFAULT_TITLE);
    }

    #[test]
    fn client_titles_are_collapsed_and_bounded() {
        assert_eq!(normalize_title("  My\n chat ").expect("ok"), "My chat");
        assert_eq!(
            normalize_title(" \n ").unwrap_err().field.as_deref(),
            Some("title")
        );
        assert_eq!(
            normalize_title(&"é".repeat(MAX_TITLE_CHARS))
                .expect("ok")
                .chars()
                .count(),
            MAX_TITLE_CHARS
        );
        assert_eq!(
            normalize_title(&"é".repeat(MAX_TITLE_CHARS + 1))
                .unwrap_err()
                .status,
            422
        );
    }

    #[test]
    fn the_request_carries_the_instruction_and_the_start_of_the_message() {
        let long = "é".repeat(TITLE_SOURCE_CHARS + 10);
        let request = title_request(&long);
        assert_eq!(request.messages[0].role, Role::System);
        assert_eq!(request.messages[0].text(), TITLE_INSTRUCTION);
        assert_eq!(
            request.messages[1].text().chars().count(),
            TITLE_SOURCE_CHARS
        );
        assert_eq!(request.max_tokens, Some(32));
    }

    #[test]
    fn model_answers_lose_quotes_prefixes_and_final_punctuation() {
        assert_eq!(
            clean_model_title("\"Planning a trip to Lisbon.\"").as_deref(),
            Some("Planning a trip to Lisbon")
        );
        assert_eq!(
            clean_model_title("\n Title: Rust lifetimes explained\nmore").as_deref(),
            Some("Rust lifetimes explained")
        );
        assert_eq!(
            clean_model_title("**Budget spreadsheet help**").as_deref(),
            Some("Budget spreadsheet help")
        );
    }

    #[test]
    fn empty_answers_give_no_title_and_long_ones_are_cut() {
        assert_eq!(clean_model_title(" \n \"\" "), None);
        let long = clean_model_title(&"word ".repeat(40)).expect("title");
        assert!(long.chars().count() <= GENERATED_TITLE_CHARS);
        assert!(long.ends_with('…'));
    }
}
