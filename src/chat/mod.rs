//! Chat: sending a message in a conversation and relaying the provider's reply.
//!
//! - [`events`]: the Server-Sent Events a streamed reply is made of.
//! - [`budget`]: which part of the history fits in the context sent to the provider.
//! - [`ChatSettings`]: the operator's limits for chat.

pub mod budget;
pub mod events;

use crate::config::{parse_number, ConfigSource};
use crate::modes::ModeCatalogue;

/// Default `MAX_MESSAGE_CHARS`: about 8,000 tokens of English, far beyond a typed message
/// and well inside the default request body limit.
pub const DEFAULT_MAX_MESSAGE_CHARS: usize = 32_000;
/// Default `CONTEXT_BUDGET_TOKENS`: enough for a long conversation while bounding the cost of
/// every request; operators with large-context models and budgets raise it.
pub const DEFAULT_CONTEXT_BUDGET_TOKENS: u32 = 16_000;

/// Chat settings, parsed once per isolate as part of [`crate::config::Config`].
#[derive(Debug, Clone, PartialEq)]
pub struct ChatSettings {
    /// `MAX_MESSAGE_CHARS` — the longest message a user may send, in characters (Unicode
    /// scalar values). Longer ones get 422.
    pub max_message_chars: usize,
    /// `CONTEXT_BUDGET_TOKENS` — the most (estimated) tokens of system prompt and history
    /// sent to the provider with a new message; older messages beyond it are left out,
    /// oldest first. See [`budget`] for how tokens are estimated.
    pub context_budget_tokens: u32,
    /// The built-in chat modes plus `CHAT_MODES`.
    pub modes: ModeCatalogue,
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            max_message_chars: DEFAULT_MAX_MESSAGE_CHARS,
            context_budget_tokens: DEFAULT_CONTEXT_BUDGET_TOKENS,
            modes: ModeCatalogue::default(),
        }
    }
}

impl ChatSettings {
    pub fn from_source(src: &dyn ConfigSource, warnings: &mut Vec<String>) -> ChatSettings {
        ChatSettings {
            max_message_chars: parse_number(
                src,
                "MAX_MESSAGE_CHARS",
                DEFAULT_MAX_MESSAGE_CHARS,
                1,
                1_000_000,
                warnings,
            ),
            context_budget_tokens: parse_number(
                src,
                "CONTEXT_BUDGET_TOKENS",
                DEFAULT_CONTEXT_BUDGET_TOKENS,
                256,
                10_000_000,
                warnings,
            ),
            modes: ModeCatalogue::from_source(src, warnings),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn chat_settings_default_and_fall_back_on_nonsense() {
        let mut warnings = Vec::new();
        let src: BTreeMap<String, String> = [
            ("MAX_MESSAGE_CHARS".to_string(), "500".to_string()),
            ("CONTEXT_BUDGET_TOKENS".to_string(), "lots".to_string()),
        ]
        .into_iter()
        .collect();
        let s = ChatSettings::from_source(&src, &mut warnings);
        assert_eq!(s.max_message_chars, 500);
        assert_eq!(s.context_budget_tokens, DEFAULT_CONTEXT_BUDGET_TOKENS);
        assert_eq!(warnings.len(), 1);
        assert_eq!(
            ChatSettings::from_source(&BTreeMap::new(), &mut Vec::new()),
            ChatSettings::default()
        );
    }
}
