//! Which part of a conversation is sent to the provider with a new message.
//!
//! The context is the system prompt (the conversation's own, or its mode's) followed by the
//! most recent messages that fit in the budget (`CONTEXT_BUDGET_TOKENS`). Older messages are
//! left out first, and the history is cut at the first message that does not fit — never
//! skipped over, so the model always sees an unbroken run of the latest turns. The newest
//! message (the one being answered) is always sent, even when it alone is over the budget: a
//! request without it would be meaningless, and the message size limit already bounds it.
//!
//! # Token estimate
//!
//! Counting tokens exactly needs each provider's tokenizer, which is too big for a Worker, so
//! tokens are estimated: one per four ASCII characters (OpenAI's rule of thumb for English
//! text and code) plus one per non-ASCII character (CJK scripts take about one token per
//! character; accented Latin letters are overcounted a little), plus
//! [`MESSAGE_OVERHEAD_TOKENS`] for each message's framing. The estimate errs on the high
//! side, so trimming happens a little early rather than a request overflowing the model.
//!
//! Providers also want turns to alternate and to start with the user (Gemini refuses
//! anything else), so a history that would start with an assistant turn loses it, and
//! consecutive turns of one role — a user who sent twice after a failed reply — are joined.

use crate::providers::wire::{ChatMessage, Media, MediaKind, MediaSource, Part, Role};

/// Tokens counted for each message on top of its text (role markers and separators).
pub const MESSAGE_OVERHEAD_TOKENS: u32 = 4;

/// The estimated number of tokens in `text` (see the module documentation).
pub fn estimate_tokens(text: &str) -> u32 {
    let (ascii, other) = text.chars().fold((0u64, 0u64), |(a, o), c| {
        if c.is_ascii() {
            (a + 1, o)
        } else {
            (a, o + 1)
        }
    });
    u32::try_from(ascii.div_ceil(4) + other).unwrap_or(u32::MAX)
}

/// Tokens counted for an image: about what OpenAI charges for a 1024×1024 picture at high
/// detail (765) and Anthropic for one of ~1.1 megapixels (~1,500), rounded to the higher side.
pub const IMAGE_TOKENS: u32 = 1_600;

/// The estimated tokens of a media part: [`IMAGE_TOKENS`] for an image; for a document, one
/// token per three bytes of its (base64) data — a PDF page is a few kilobytes and costs a few
/// thousand tokens once read, so this errs high — or a flat 4,000 for one fetched by URL.
pub fn media_tokens(media: &Media) -> u32 {
    match (media.kind, &media.source) {
        (MediaKind::Image, _) => IMAGE_TOKENS,
        (MediaKind::Document, MediaSource::Base64(data)) => {
            u32::try_from(data.len() / 3).unwrap_or(u32::MAX)
        }
        (MediaKind::Document, MediaSource::Url(_)) => 4_000,
    }
}

/// The estimated tokens of a whole message: its texts, its media and its framing.
pub fn message_tokens(message: &ChatMessage) -> u32 {
    message
        .parts
        .iter()
        .map(|part| match part {
            Part::Text(text) => estimate_tokens(text),
            Part::Media(media) => media_tokens(media),
        })
        .fold(MESSAGE_OVERHEAD_TOKENS, u32::saturating_add)
}

/// A message with neither text nor media says nothing and is left out.
fn is_empty(message: &ChatMessage) -> bool {
    message
        .parts
        .iter()
        .all(|part| part.as_text().is_some_and(|text| text.trim().is_empty()))
}

/// The messages to send, with what was left out.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderContext {
    /// The system prompt (if any) first, then the kept history, oldest first.
    pub messages: Vec<ChatMessage>,
    /// The estimated tokens of `messages`.
    pub estimated_tokens: u32,
    /// How many history messages were left out.
    pub dropped: usize,
}

/// Builds the context from `history` (oldest first, the message being answered last) within
/// `budget_tokens`. System-role and empty messages in the history are ignored.
pub fn fit_to_budget(
    system_prompt: Option<&str>,
    history: &[ChatMessage],
    budget_tokens: u32,
) -> ProviderContext {
    let system = system_prompt
        .filter(|p| !p.trim().is_empty())
        .map(|p| ChatMessage::new(Role::System, p));
    let mut used = system.as_ref().map_or(0, message_tokens);

    let candidates: Vec<&ChatMessage> = history
        .iter()
        .filter(|m| m.role != Role::System && !is_empty(m))
        .collect();
    let mut kept: Vec<&ChatMessage> = Vec::new();
    for message in candidates.iter().rev() {
        let cost = message_tokens(message);
        if !kept.is_empty() && used.saturating_add(cost) > budget_tokens {
            break;
        }
        used = used.saturating_add(cost);
        kept.push(message);
    }
    kept.reverse();
    while kept.first().is_some_and(|m| m.role != Role::User) {
        kept.remove(0);
    }
    let dropped = candidates.len() - kept.len();

    let mut messages: Vec<ChatMessage> = system.into_iter().collect();
    for message in kept {
        match messages.last_mut() {
            Some(last) if last.role == message.role => {
                last.append(message);
            }
            _ => messages.push(message.clone()),
        }
    }
    let estimated_tokens = messages
        .iter()
        .fold(0u32, |sum, m| sum.saturating_add(message_tokens(m)));
    ProviderContext {
        messages,
        estimated_tokens,
        dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> ChatMessage {
        ChatMessage::new(Role::User, text)
    }

    fn assistant(text: &str) -> ChatMessage {
        ChatMessage::new(Role::Assistant, text)
    }

    fn contents(ctx: &ProviderContext) -> Vec<&str> {
        ctx.messages
            .iter()
            .map(|m| m.plain_text().expect("text"))
            .collect()
    }

    /// A message whose estimate is exactly `tokens` including the overhead.
    fn sized(role: Role, tag: char, tokens: u32) -> ChatMessage {
        let chars = ((tokens - MESSAGE_OVERHEAD_TOKENS) * 4) as usize;
        ChatMessage::new(role, tag.to_string().repeat(chars))
    }

    #[test]
    fn tokens_are_a_quarter_of_ascii_characters_rounded_up_plus_one_per_other_character() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        assert_eq!(estimate_tokens("日本語"), 3);
        assert_eq!(estimate_tokens("café"), 2);
    }

    #[test]
    fn everything_is_sent_when_it_fits() {
        let history = [user("hi"), assistant("hello"), user("how are you?")];
        let ctx = fit_to_budget(Some("Be nice."), &history, 10_000);
        assert_eq!(contents(&ctx), ["Be nice.", "hi", "hello", "how are you?"]);
        assert_eq!(ctx.messages[0].role, Role::System);
        assert_eq!(ctx.dropped, 0);
        assert_eq!(
            ctx.estimated_tokens,
            2 + 1 + 2 + 3 + 4 * MESSAGE_OVERHEAD_TOKENS
        );
    }

    #[test]
    fn history_beyond_the_budget_is_dropped_oldest_first() {
        let history = [
            sized(Role::User, 'a', 10),
            sized(Role::Assistant, 'b', 10),
            sized(Role::User, 'c', 10),
            sized(Role::Assistant, 'd', 10),
            sized(Role::User, 'e', 10),
        ];
        let ctx = fit_to_budget(None, &history, 30);
        let firsts: Vec<char> = ctx
            .messages
            .iter()
            .map(|m| m.text().chars().next().expect("text"))
            .collect();
        assert_eq!(firsts, ['c', 'd', 'e']);
        assert_eq!(ctx.dropped, 2);
        assert!(ctx.estimated_tokens <= 30);
    }

    #[test]
    fn the_system_prompt_counts_against_the_budget() {
        let history = [
            sized(Role::User, 'a', 10),
            sized(Role::Assistant, 'b', 10),
            sized(Role::User, 'c', 10),
        ];
        let prompt = "p".repeat(((20 - MESSAGE_OVERHEAD_TOKENS) * 4) as usize);
        let ctx = fit_to_budget(Some(&prompt), &history, 30);
        assert_eq!(
            ctx.messages.len(),
            2,
            "system prompt and the newest message"
        );
        assert_eq!(ctx.messages[0].role, Role::System);
        assert_eq!(ctx.dropped, 2);
    }

    #[test]
    fn the_newest_message_is_sent_even_when_it_alone_is_over_budget() {
        let history = [user("old"), sized(Role::User, 'x', 500)];
        let ctx = fit_to_budget(None, &history, 100);
        assert_eq!(ctx.messages.len(), 1);
        assert!(ctx.messages[0].text().starts_with('x'));
        assert_eq!(ctx.dropped, 1);
    }

    #[test]
    fn history_is_cut_at_the_first_message_that_does_not_fit_not_skipped_over() {
        let history = [
            user("tiny"),
            sized(Role::Assistant, 'b', 80),
            sized(Role::User, 'c', 10),
        ];
        let ctx = fit_to_budget(None, &history, 30);
        assert_eq!(ctx.messages.len(), 1);
        assert_eq!(ctx.dropped, 2);
    }

    #[test]
    fn a_history_never_starts_with_an_assistant_turn() {
        let history = [
            sized(Role::User, 'a', 10),
            sized(Role::Assistant, 'b', 10),
            sized(Role::User, 'c', 10),
        ];
        let ctx = fit_to_budget(None, &history, 25);
        assert_eq!(ctx.messages.len(), 1);
        assert_eq!(ctx.messages[0].role, Role::User);
        assert!(ctx.messages[0].text().starts_with('c'));
        assert_eq!(ctx.dropped, 2);
    }

    #[test]
    fn consecutive_turns_of_one_role_are_joined_and_system_rows_ignored() {
        let history = [
            user("first try"),
            ChatMessage::new(Role::System, "stored system row"),
            user("second try"),
            assistant("   "),
        ];
        let ctx = fit_to_budget(None, &history, 1_000);
        assert_eq!(contents(&ctx), ["first try\n\nsecond try"]);
        assert_eq!(ctx.dropped, 0);
    }

    #[test]
    fn an_empty_system_prompt_is_not_sent() {
        let ctx = fit_to_budget(Some("  "), &[user("hi")], 1_000);
        assert_eq!(contents(&ctx), ["hi"]);
    }
}
