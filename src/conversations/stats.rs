//! `GET /api/chat/stats`: what a user has stored, and the tokens their replies used by model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The user's conversation counts, as one D1 row.
#[derive(Debug, Default, Deserialize)]
pub struct ConversationCounts {
    pub conversations: u64,
    pub pinned: u64,
    pub archived: u64,
}

/// Message counts and token sums for one (role, model) pair, as one D1 row.
#[derive(Debug, Deserialize)]
pub struct MessageGroup {
    pub role: String,
    pub model: Option<String>,
    pub messages: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[derive(Debug, PartialEq, Serialize)]
pub struct Stats {
    pub conversations: ConversationStats,
    pub messages: MessageStats,
    pub tokens: TokenTotals,
    /// Replies and their tokens per model, most tokens first.
    pub by_model: Vec<ModelStats>,
}

#[derive(Debug, PartialEq, Serialize)]
pub struct ConversationStats {
    pub total: u64,
    pub pinned: u64,
    pub archived: u64,
}

#[derive(Debug, Default, PartialEq, Serialize)]
pub struct MessageStats {
    pub total: u64,
    pub user: u64,
    pub assistant: u64,
}

#[derive(Debug, Default, PartialEq, Serialize)]
pub struct TokenTotals {
    pub prompt: u64,
    pub completion: u64,
    pub total: u64,
}

#[derive(Debug, PartialEq, Serialize)]
pub struct ModelStats {
    /// `null` for replies stored without a model name.
    pub model: Option<String>,
    pub messages: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Stats {
    pub fn from_rows(counts: ConversationCounts, groups: Vec<MessageGroup>) -> Stats {
        let mut messages = MessageStats::default();
        let mut tokens = TokenTotals::default();
        let mut by_model: BTreeMap<Option<String>, ModelStats> = BTreeMap::new();
        for g in groups {
            messages.total += g.messages;
            match g.role.as_str() {
                "user" => messages.user += g.messages,
                "assistant" => messages.assistant += g.messages,
                _ => {}
            }
            tokens.prompt += g.prompt_tokens;
            tokens.completion += g.completion_tokens;
            if g.role == "assistant" {
                let entry = by_model.entry(g.model.clone()).or_insert(ModelStats {
                    model: g.model,
                    messages: 0,
                    prompt_tokens: 0,
                    completion_tokens: 0,
                    total_tokens: 0,
                });
                entry.messages += g.messages;
                entry.prompt_tokens += g.prompt_tokens;
                entry.completion_tokens += g.completion_tokens;
                entry.total_tokens += g.prompt_tokens + g.completion_tokens;
            }
        }
        tokens.total = tokens.prompt + tokens.completion;
        let mut by_model: Vec<ModelStats> = by_model.into_values().collect();
        by_model.sort_by(|a, b| {
            b.total_tokens
                .cmp(&a.total_tokens)
                .then(a.model.cmp(&b.model))
        });
        Stats {
            conversations: ConversationStats {
                total: counts.conversations,
                pinned: counts.pinned,
                archived: counts.archived,
            },
            messages,
            tokens,
            by_model,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(role: &str, model: Option<&str>, messages: u64, p: u64, c: u64) -> MessageGroup {
        MessageGroup {
            role: role.into(),
            model: model.map(Into::into),
            messages,
            prompt_tokens: p,
            completion_tokens: c,
        }
    }

    #[test]
    fn stats_count_messages_by_role_and_tokens_by_model() {
        let stats = Stats::from_rows(
            ConversationCounts {
                conversations: 3,
                pinned: 1,
                archived: 0,
            },
            vec![
                group("user", None, 5, 0, 0),
                group("assistant", Some("openai/gpt-4o"), 2, 100, 50),
                group(
                    "assistant",
                    Some("anthropic/claude-3-5-haiku-latest"),
                    3,
                    300,
                    90,
                ),
            ],
        );
        assert_eq!(stats.conversations.total, 3);
        assert_eq!(
            stats.messages,
            MessageStats {
                total: 10,
                user: 5,
                assistant: 5
            }
        );
        assert_eq!(
            stats.tokens,
            TokenTotals {
                prompt: 400,
                completion: 140,
                total: 540
            }
        );
        assert_eq!(stats.by_model.len(), 2);
        assert_eq!(
            stats.by_model[0].model.as_deref(),
            Some("anthropic/claude-3-5-haiku-latest")
        );
        assert_eq!(stats.by_model[0].total_tokens, 390);
        assert_eq!(stats.by_model[1].messages, 2);
    }

    #[test]
    fn a_new_user_has_all_zeroes() {
        let stats = Stats::from_rows(ConversationCounts::default(), vec![]);
        assert_eq!(stats.messages.total, 0);
        assert!(stats.by_model.is_empty());
        let body = serde_json::to_value(&stats).expect("json");
        assert_eq!(body["tokens"]["total"], 0);
    }
}
