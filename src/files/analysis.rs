//! What `POST /api/files/{id}/analyze` asks a model, and what it keeps. Pure.
//!
//! A text-like file (plain text, Markdown, CSV, JSON, source code) is read by Threadline and
//! put in the prompt, cut on a line break to what the model's budget leaves after the
//! instruction (the prompt then says it was truncated, and so does the answer's `truncated`).
//! An image or PDF goes to the model as it is, so the model must be able to take it (422
//! otherwise, before any call).

use serde::{Deserialize, Serialize};

use super::media::text_for_model;
use crate::providers::wire::{ChatMessage, Part, Role};

/// The instruction when the request gives none.
pub const DEFAULT_INSTRUCTION: &str = "Analyse this file: say what it is, summarise its content and structure, and list its key points.";

/// The system prompt of every analysis.
pub const SYSTEM_PROMPT: &str = "You analyse files a user has uploaded. Follow the user's instruction about the file; base everything you say on the file itself, and say so when part of it was left out.";

/// The longest instruction accepted, in characters.
pub const MAX_INSTRUCTION_CHARS: usize = 4_000;

/// Characters of text per budget token: the chat budget's estimate counts four ASCII
/// characters a token and one for other characters; three errs on the safe side for both.
const CHARS_PER_TOKEN: usize = 3;

/// What to put in the prompt for the file.
pub enum Content<'a> {
    /// A text-like file's bytes.
    Text(&'a [u8]),
    /// An image or PDF as the providers take it.
    Media(Part),
}

/// The request body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeBody {
    pub instruction: Option<String>,
    pub model: Option<String>,
    pub stream: Option<bool>,
}

/// A stored analysis, as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub file_id: String,
    pub model: String,
    pub instruction: String,
    pub analysis: String,
    /// Whether the file's text was cut to fit the model.
    pub truncated: bool,
    pub created_at: u64,
}

/// The turns to send, and whether the file had to be cut.
pub fn messages(
    name: &str,
    content: Content<'_>,
    instruction: &str,
    budget_tokens: u32,
) -> (Vec<ChatMessage>, bool) {
    let system = ChatMessage::new(Role::System, SYSTEM_PROMPT);
    let (file_part, truncated) = match content {
        Content::Text(bytes) => {
            let reserved = SYSTEM_PROMPT.len() + instruction.len() + 200;
            let max_chars = (budget_tokens as usize)
                .saturating_mul(CHARS_PER_TOKEN)
                .saturating_sub(reserved)
                .max(1_000);
            let text = text_for_model(name, bytes, max_chars);
            let truncated = text.starts_with(&format!("File {name} (truncated"));
            (Part::Text(text), truncated)
        }
        Content::Media(part) => (part, false),
    };
    let user = ChatMessage::with_parts(
        Role::User,
        vec![Part::Text(instruction.to_string()), file_part],
    );
    (vec![system, user], truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_file_that_fits_goes_whole_after_the_instruction() {
        let (turns, truncated) = messages("a.csv", Content::Text(b"a,b\n1,2\n"), "Sum it", 10_000);
        assert!(!truncated);
        assert_eq!(turns[1].text(), "Sum it\nFile a.csv:\na,b\n1,2\n");
    }

    #[test]
    fn a_long_text_file_is_cut_to_the_budget_and_says_so() {
        let long = "row\n".repeat(20_000);
        let (turns, truncated) = messages(
            "big.txt",
            Content::Text(long.as_bytes()),
            DEFAULT_INSTRUCTION,
            2_000,
        );
        assert!(truncated);
        let sent = turns[1].text();
        assert!(
            sent.contains("File big.txt (truncated: the first"),
            "{}",
            &sent[..200]
        );
        assert!(
            sent.chars().count() < 2_000 * CHARS_PER_TOKEN,
            "{}",
            sent.len()
        );
    }
}
