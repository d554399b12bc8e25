//! The operator's settings for chat (`MAX_MESSAGE_CHARS`, `CONTEXT_BUDGET_TOKENS`,
//! `CHAT_MODES`, `DEFAULT_MODEL`, `TITLE_MODEL`, `STREAM_KEEPALIVE_MS`).

use crate::config::source::{parse_number, ConfigSource};
use crate::modes::catalogue::ModeCatalogue;
use crate::providers::resolve::validate_model;

/// Default `MAX_MESSAGE_CHARS`: about 8,000 tokens of English, far beyond a typed message
/// and well inside the default request body limit.
pub const DEFAULT_MAX_MESSAGE_CHARS: usize = 32_000;
/// Default `CONTEXT_BUDGET_TOKENS`: enough for a long conversation while bounding the cost of
/// every request; operators with large-context models and budgets raise it.
pub const DEFAULT_CONTEXT_BUDGET_TOKENS: u32 = 16_000;

/// Default `STREAM_KEEPALIVE_MS`: a disconnect is noticed within about 0.2 s while a stream is
/// idle, for a few bytes and a timer wake ten times a second.
pub const DEFAULT_STREAM_KEEPALIVE_MS: u64 = 100;

/// Chat settings, parsed once per isolate as part of [`crate::config::Config`].
#[derive(Debug, Clone, PartialEq)]
pub struct ChatSettings {
    /// `MAX_MESSAGE_CHARS` — the longest message a user may send, in characters (Unicode
    /// scalar values). Longer ones get 422.
    pub max_message_chars: usize,
    /// `CONTEXT_BUDGET_TOKENS` — the most (estimated) tokens of system prompt and history
    /// sent to the provider with a new message; older messages beyond it are left out,
    /// oldest first. See [`super::budget`] for how tokens are estimated.
    pub context_budget_tokens: u32,
    /// The built-in chat modes plus `CHAT_MODES`.
    pub modes: ModeCatalogue,
    /// `DEFAULT_MODEL` — the model for conversations, modes and requests that name none.
    /// Unset: the first model of a configured provider (`dev/echo` in development without
    /// providers).
    pub default_model: Option<String>,
    /// `TITLE_MODEL` — when set, a new conversation's title is asked of this (cheap) model
    /// after the first message, in the background; the trimmed first line is the title until
    /// it answers, and stays if the call fails. Unset: the first line only.
    pub title_model: Option<String>,
    /// `STREAM_KEEPALIVE_MS` — while a streamed reply is idle, an SSE comment is written this
    /// often, so a client that disconnected is noticed within about two intervals (workers see
    /// a disconnect only when a write fails) and the upstream call is cut short; the partial
    /// reply then holds what the client received. `0` turns the comments off (each one costs
    /// a little CPU time: on the Workers Free plan, with its 10 ms CPU limit, raise it or
    /// turn it off).
    pub stream_keepalive_ms: u64,
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            max_message_chars: DEFAULT_MAX_MESSAGE_CHARS,
            context_budget_tokens: DEFAULT_CONTEXT_BUDGET_TOKENS,
            modes: ModeCatalogue::default(),
            default_model: None,
            title_model: None,
            stream_keepalive_ms: DEFAULT_STREAM_KEEPALIVE_MS,
        }
    }
}

/// A model setting: ignored with a warning unless it looks like a model name.
fn model_setting(src: &dyn ConfigSource, name: &str, warnings: &mut Vec<String>) -> Option<String> {
    let raw = src.get(name)?;
    match validate_model(&raw) {
        Ok(model) => Some(model),
        Err(_) => {
            warnings.push(format!(
                "{name}={raw:?} is not a model id such as \"openai/gpt-4o-mini\" or an alias; ignored"
            ));
            None
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
            default_model: model_setting(src, "DEFAULT_MODEL", warnings),
            title_model: model_setting(src, "TITLE_MODEL", warnings),
            stream_keepalive_ms: parse_number(
                src,
                "STREAM_KEEPALIVE_MS",
                DEFAULT_STREAM_KEEPALIVE_MS,
                0,
                600_000,
                warnings,
            ),
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

    #[test]
    fn model_settings_must_look_like_model_names() {
        let mut warnings = Vec::new();
        let src: BTreeMap<String, String> = [
            ("DEFAULT_MODEL".to_string(), " openai/gpt-4o ".to_string()),
            ("TITLE_MODEL".to_string(), "gpt 4o mini".to_string()),
        ]
        .into_iter()
        .collect();
        let s = ChatSettings::from_source(&src, &mut warnings);
        assert_eq!(s.default_model.as_deref(), Some("openai/gpt-4o"));
        assert_eq!(s.title_model, None);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("TITLE_MODEL"));
    }
}
