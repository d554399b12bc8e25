//! Conversation titles: the placeholder, titles clients set, and titles made from the first
//! message.

use crate::error::{ApiError, ApiResult};

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
}
