//! What one reply is made of: the model that writes it, the system prompt, the generation
//! settings and how many tokens of history fit. Pure: decided from the conversation, the
//! request and the configuration, with no I/O.
//!
//! # Choices, first match wins
//!
//! - **Model**: the request's `model`, the conversation's, its mode's, `DEFAULT_MODEL`,
//!   `dev/echo` (development without providers), the first model of a configured provider.
//! - **Mode**: the request's `mode`, the conversation's, `general`.
//! - **System prompt**: the request's, the conversation's, the mode's.
//! - **Settings**: the conversation's `temperature`/`top_p`/`max_tokens` over the mode's.
//! - **History budget**: `min(CONTEXT_BUDGET_TOKENS, context window − max_tokens)`, so the
//!   prompt and the reply fit in the model together. Without `max_tokens` the reply is given
//!   a quarter of the window, at most [`DEFAULT_REPLY_RESERVE_TOKENS`].
//!
//! A model the deployment cannot serve is the client's problem to fix (another model, or an
//! operator setting), so it is a 422 naming `model` — `model_not_found` or
//! `provider_unavailable` — checked before anything is stored.

use super::settings::ChatSettings;
use crate::conversations::input::generation_settings;
use crate::conversations::model::Conversation;
use crate::http::error::{ApiError, ApiResult};
use crate::modes::catalogue::{GenerationSettings, DEFAULT_MODE};
use crate::providers::catalogue::DEFAULT_CONTEXT_WINDOW;
use crate::providers::resolve;
use crate::providers::settings::{ProviderSettings, DEV_ECHO_MODEL};

/// The most tokens kept free for the reply when the settings do not say (`max_tokens`).
pub const DEFAULT_REPLY_RESERVE_TOKENS: u32 = 4_096;

/// What the request may override for this reply.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides<'a> {
    pub model: Option<&'a str>,
    pub mode: Option<&'a str>,
    pub system_prompt: Option<&'a str>,
}

/// How to ask for one reply.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyPlan {
    /// The model name as chosen (an alias stays an alias; the provider client resolves it).
    pub model: String,
    pub system_prompt: Option<String>,
    pub settings: GenerationSettings,
    /// Tokens of system prompt and history that may be sent.
    pub budget_tokens: u32,
}

/// The tokens of system prompt and history that may be sent to a model.
pub fn history_budget(configured: u32, context_window: u32, max_tokens: Option<u32>) -> u32 {
    let reserve =
        max_tokens.unwrap_or_else(|| (context_window / 4).min(DEFAULT_REPLY_RESERVE_TOKENS));
    configured.min(context_window.saturating_sub(reserve))
}

/// The model for a reply when neither the request nor the conversation names one.
fn fallback_model(
    mode_model: Option<&str>,
    chat: &ChatSettings,
    providers: &ProviderSettings,
) -> Option<String> {
    if let Some(model) = mode_model.or(chat.default_model.as_deref()) {
        return Some(model.to_string());
    }
    if providers.dev_echo {
        return Some(DEV_ECHO_MODEL.to_string());
    }
    providers.offered_catalogue().first().map(|m| m.id.clone())
}

/// A model the deployment can call now, or the 422 that says why not.
pub fn usable_model(providers: &ProviderSettings, model: &str) -> ApiResult<()> {
    resolve::resolve(providers, model)
        .map(|_| ())
        .map_err(|err| {
            let mut err = ApiError::from(err);
            if err.status != 500 {
                err.status = 422;
            }
            err.with_field("model")
        })
}

/// Decides how to ask for the reply to the newest message of `conversation`.
pub fn plan_reply(
    conversation: &Conversation,
    overrides: Overrides<'_>,
    chat: &ChatSettings,
    providers: &ProviderSettings,
) -> ApiResult<ReplyPlan> {
    let mode_id = overrides
        .mode
        .or(conversation.mode.as_deref())
        .unwrap_or(DEFAULT_MODE);
    let mode = chat
        .modes
        .get(mode_id)
        .or_else(|| chat.modes.get(DEFAULT_MODE));
    let model = match overrides.model.or(conversation.model.as_deref()) {
        Some(model) => model.to_string(),
        None => fallback_model(mode.and_then(|m| m.model.as_deref()), chat, providers).ok_or_else(
            || {
                ApiError::new(
                    422,
                    "provider_unavailable",
                    "No AI provider is configured on this deployment, so there is no model to \
                     answer with; an operator sets a provider key (see GET /api/models).",
                )
                .with_field("model")
                .with_header("x-should-retry", "false")
            },
        )?,
    };
    usable_model(providers, &model)?;

    let system_prompt = chat
        .modes
        .system_prompt_for(
            overrides
                .system_prompt
                .or(conversation.system_prompt.as_deref()),
            Some(mode_id),
        )
        .map(str::to_string);
    let settings = mode
        .map(|m| m.settings)
        .unwrap_or_default()
        .overridden_by(generation_settings(&conversation.settings));
    let context_window = providers
        .catalogue
        .resolve(&model)
        .map_or(DEFAULT_CONTEXT_WINDOW, |m| m.context_window);
    Ok(ReplyPlan {
        budget_tokens: history_budget(
            chat.context_budget_tokens,
            context_window,
            settings.max_tokens,
        ),
        model,
        system_prompt,
        settings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversations::model::TitleSource;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn providers(pairs: &[(&str, &str)], development: bool) -> ProviderSettings {
        let src: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ProviderSettings::from_source(&src, development, &mut Vec::new())
    }

    fn openai() -> ProviderSettings {
        providers(&[("OPENAI_API_KEY", "sk-test")], false)
    }

    fn conversation() -> Conversation {
        Conversation {
            id: "c".repeat(32),
            title: "T".into(),
            model: None,
            mode: None,
            system_prompt: None,
            settings: Default::default(),
            pinned: false,
            archived: false,
            created_at: 1,
            updated_at: 1,
            last_message_at: None,
            message_count: 0,
            title_source: TitleSource::Default,
        }
    }

    #[test]
    fn the_budget_leaves_room_for_the_reply_inside_the_context_window() {
        assert_eq!(history_budget(16_000, 128_000, None), 16_000);
        assert_eq!(history_budget(16_000, 8_192, None), 8_192 - 2_048);
        assert_eq!(history_budget(16_000, 8_192, Some(7_000)), 1_192);
        assert_eq!(history_budget(16_000, 200_000, Some(190_000)), 10_000);
        assert_eq!(history_budget(16_000, 1_000, Some(5_000)), 0);
        assert_eq!(
            history_budget(1_000_000, 2_000_000, None),
            1_000_000,
            "the reserve is capped at {DEFAULT_REPLY_RESERVE_TOKENS}"
        );
    }

    #[test]
    fn the_request_model_wins_over_the_conversation_s() {
        let mut c = conversation();
        c.model = Some("openai/gpt-4o".into());
        let chat = ChatSettings::default();
        let plan = plan_reply(&c, Overrides::default(), &chat, &openai()).expect("ok");
        assert_eq!(plan.model, "openai/gpt-4o");
        let plan = plan_reply(
            &c,
            Overrides {
                model: Some("openai/gpt-4o-mini"),
                ..Overrides::default()
            },
            &chat,
            &openai(),
        )
        .expect("ok");
        assert_eq!(plan.model, "openai/gpt-4o-mini");
        assert_eq!(plan.budget_tokens, chat.context_budget_tokens);
    }

    #[test]
    fn without_a_named_model_the_default_then_dev_echo_then_a_configured_one_answers() {
        let c = conversation();
        let mut chat = ChatSettings::default();
        let dev = providers(&[], true);
        assert_eq!(
            plan_reply(&c, Overrides::default(), &chat, &dev)
                .expect("ok")
                .model,
            DEV_ECHO_MODEL
        );
        assert_eq!(
            plan_reply(&c, Overrides::default(), &chat, &openai())
                .expect("ok")
                .model,
            "openai/gpt-4o",
            "the first catalogue model of a configured provider"
        );
        chat.default_model = Some("openai/gpt-4o-mini".into());
        assert_eq!(
            plan_reply(&c, Overrides::default(), &chat, &openai())
                .expect("ok")
                .model,
            "openai/gpt-4o-mini"
        );
    }

    #[test]
    fn unknown_models_and_unconfigured_providers_are_422_naming_model() {
        let c = conversation();
        let chat = ChatSettings::default();
        for (model, code) in [
            ("nosuch/model", "model_not_found"),
            ("anthropic/claude-3-5-haiku-latest", "provider_unavailable"),
        ] {
            let err = plan_reply(
                &c,
                Overrides {
                    model: Some(model),
                    ..Overrides::default()
                },
                &chat,
                &openai(),
            )
            .expect_err(model);
            assert_eq!(
                (err.status, err.code, err.field.as_deref()),
                (422, code, Some("model"))
            );
        }
        let none = providers(&[], false);
        let err = plan_reply(&c, Overrides::default(), &chat, &none).expect_err("no provider");
        assert_eq!((err.status, err.code), (422, "provider_unavailable"));
    }

    #[test]
    fn system_prompt_comes_from_the_request_then_the_conversation_then_the_mode() {
        let chat = ChatSettings::default();
        let mut c = conversation();
        c.mode = Some("similar_questions".into());
        let from_mode = plan_reply(&c, Overrides::default(), &chat, &openai()).expect("ok");
        assert!(from_mode
            .system_prompt
            .as_deref()
            .expect("prompt")
            .contains("similar questions"));
        assert_eq!(from_mode.settings.temperature, Some(0.8));
        c.system_prompt = Some("Be terse.".into());
        let own = plan_reply(&c, Overrides::default(), &chat, &openai()).expect("ok");
        assert_eq!(own.system_prompt.as_deref(), Some("Be terse."));
        let request = plan_reply(
            &c,
            Overrides {
                system_prompt: Some("Be loud."),
                mode: Some("general"),
                ..Overrides::default()
            },
            &chat,
            &openai(),
        )
        .expect("ok");
        assert_eq!(request.system_prompt.as_deref(), Some("Be loud."));
        assert_eq!(request.settings.temperature, None, "general sets none");
    }

    #[test]
    fn conversation_settings_override_the_mode_s_and_shrink_the_budget() {
        let chat = ChatSettings::default();
        let mut c = conversation();
        c.mode = Some("similar_questions".into());
        c.model = Some("openai/gpt-4o".into());
        c.settings = json!({"temperature": 0.1, "max_tokens": 120_000})
            .as_object()
            .cloned()
            .expect("object");
        let plan = plan_reply(&c, Overrides::default(), &chat, &openai()).expect("ok");
        assert_eq!(plan.settings.temperature, Some(0.1));
        assert_eq!(plan.settings.max_tokens, Some(120_000));
        assert_eq!(plan.budget_tokens, 128_000 - 120_000);
    }
}
