//! Titles made by a model (`TITLE_MODEL`).
//!
//! A new conversation is titled at once from the first line of its first message (see
//! [`crate::conversations::title::title_from_message`]), so the title never waits for a model.
//! When `TITLE_MODEL` is set, the model is then asked for a better one in the background
//! (`ctx.wait_until`); its answer replaces the first-line title unless the user has renamed
//! the conversation meanwhile. It is best effort: a failure, a timeout or an unusable answer
//! leaves the first-line title and is only logged.

use crate::conversations::title::{title_from_message, GENERATED_TITLE_CHARS};
use crate::providers::{ChatMessage, ChatRequest, Role};

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
    fn the_request_carries_the_instruction_and_the_start_of_the_message() {
        let long = "é".repeat(TITLE_SOURCE_CHARS + 10);
        let request = title_request(&long);
        assert_eq!(request.messages[0].role, Role::System);
        assert_eq!(request.messages[0].content, TITLE_INSTRUCTION);
        assert_eq!(
            request.messages[1].content.chars().count(),
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
