//! The model catalogue: which `provider/model` ids Threadline offers, what they are, and
//! the operator's additions and aliases.
//!
//! Ids are always `provider/model`, split on the *first* slash, so the model part may
//! itself contain slashes (`ollama/library/llama3`, `openrouter/meta-llama/llama-3`). The
//! prefix names a configured upstream; which wire format it speaks is configuration, except
//! for the built-in prefixes listed in [`provider_kind_for_prefix`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::wire::model::ProviderKind;

/// One model Threadline can route to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// `provider/model`, as clients name it.
    pub id: String,
    /// The prefix of `id`: which configured upstream serves it. A name rather than a
    /// [`ProviderKind`] because operators may define several OpenAI-compatible upstreams.
    pub provider: String,
    /// The provider's own model name, sent upstream.
    pub upstream: String,
    pub display_name: String,
    pub context_window: u32,
    pub supports_streaming: bool,
    pub supports_vision: bool,
}

/// The context window assumed for an operator-added model that does not state one: small
/// enough to be true of any current chat model, so history trimming never overflows it.
pub const DEFAULT_CONTEXT_WINDOW: u32 = 8_192;

/// The wire format of each built-in prefix; `None` for operator-defined prefixes, whose
/// kind comes from configuration.
pub fn provider_kind_for_prefix(prefix: &str) -> Option<ProviderKind> {
    match prefix {
        "openai" => Some(ProviderKind::OpenAi),
        "anthropic" => Some(ProviderKind::Anthropic),
        "gemini" => Some(ProviderKind::Gemini),
        "ollama" => Some(ProviderKind::OpenAiCompatible),
        _ => None,
    }
}

/// Splits `provider/model` on the first `/`. Both halves must be non-empty and free of
/// whitespace.
pub fn parse_model_id(id: &str) -> Result<(&str, &str), String> {
    let invalid = || format!("model id {id:?} must look like \"provider/model\"");
    let (provider, model) = id.split_once('/').ok_or_else(invalid)?;
    if provider.is_empty() || model.is_empty() || id.chars().any(char::is_whitespace) {
        return Err(invalid());
    }
    Ok((provider, model))
}

fn builtin(id: &str, display_name: &str, context_window: u32, supports_vision: bool) -> ModelInfo {
    let (provider, upstream) = id.split_once('/').unwrap_or(("", id));
    ModelInfo {
        id: id.to_owned(),
        provider: provider.to_owned(),
        upstream: upstream.to_owned(),
        display_name: display_name.to_owned(),
        context_window,
        supports_streaming: true,
        supports_vision,
    }
}

/// The models ThreadFlow users expect to find. Context windows are the providers'
/// published input limits. Claude 3.5 Haiku is listed without vision, as launched.
pub fn builtin_models() -> Vec<ModelInfo> {
    vec![
        builtin("gemini/gemini-2.5-pro", "Gemini 2.5 Pro", 1_048_576, true),
        builtin(
            "gemini/gemini-2.0-flash",
            "Gemini 2.0 Flash",
            1_048_576,
            true,
        ),
        builtin(
            "gemini/gemini-2.0-flash-lite",
            "Gemini 2.0 Flash-Lite",
            1_048_576,
            true,
        ),
        builtin("gemini/gemini-1.5-pro", "Gemini 1.5 Pro", 2_097_152, true),
        builtin(
            "anthropic/claude-3-7-sonnet-latest",
            "Claude 3.7 Sonnet",
            200_000,
            true,
        ),
        builtin(
            "anthropic/claude-3-5-sonnet-latest",
            "Claude 3.5 Sonnet (v2)",
            200_000,
            true,
        ),
        builtin(
            "anthropic/claude-3-5-haiku-latest",
            "Claude 3.5 Haiku",
            200_000,
            false,
        ),
        builtin("openai/gpt-4o", "GPT-4o", 128_000, true),
        builtin("openai/gpt-4o-mini", "GPT-4o mini", 128_000, true),
    ]
}

/// One embedding model Threadline knows. Kept apart from the chat models ([`ModelInfo`]): an
/// embedding model cannot chat, so it is never offered for chat, never a default or a
/// fallback, and `GET /api/models` (a chat app's model picker) does not list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmbeddingModel {
    /// `provider/model`, as clients name it.
    pub id: String,
    pub provider: String,
    /// The provider's own model name, sent upstream.
    pub upstream: String,
    /// The length of its vectors; `dimensions` may ask for fewer, never more.
    pub dimensions: u32,
}

fn embedding(id: &str, dimensions: u32) -> EmbeddingModel {
    let (provider, upstream) = id.split_once('/').unwrap_or(("", id));
    EmbeddingModel {
        id: id.to_owned(),
        provider: provider.to_owned(),
        upstream: upstream.to_owned(),
        dimensions,
    }
}

/// The providers' current embedding models, with their published vector lengths. Other
/// names on a provider that can embed (`ollama/nomic-embed-text`) are passed through as they
/// are, so a model need not be listed here to be used.
pub fn builtin_embedding_models() -> Vec<EmbeddingModel> {
    vec![
        embedding("openai/text-embedding-3-small", 1536),
        embedding("openai/text-embedding-3-large", 3072),
        embedding("gemini/gemini-embedding-001", 3072),
        embedding("gemini/text-embedding-004", 768),
    ]
}

/// One entry of the operator's extra-models JSON. Unknown keys are rejected so that a typo
/// such as `context_windw` fails loudly at startup instead of silently taking the default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorModel {
    id: String,
    upstream: Option<String>,
    display_name: Option<String>,
    context_window: Option<u32>,
    supports_streaming: Option<bool>,
    supports_vision: Option<bool>,
}

/// Parses the operator's extra models, e.g.
/// `[{"id":"openai/gpt-4.1","context_window":1047576}]`. Only `id` is required;
/// `upstream` and `display_name` default to the model part of the id, `context_window` to
/// [`DEFAULT_CONTEXT_WINDOW`], streaming to on and vision to off.
pub fn parse_operator_models(json: &str) -> Result<Vec<ModelInfo>, String> {
    let entries: Vec<OperatorModel> = serde_json::from_str(json)
        .map_err(|error| format!("extra models must be a JSON array of models: {error}"))?;
    entries
        .into_iter()
        .map(|entry| {
            let (provider, model) = parse_model_id(&entry.id)?;
            Ok(ModelInfo {
                provider: provider.to_owned(),
                upstream: entry.upstream.unwrap_or_else(|| model.to_owned()),
                display_name: entry.display_name.unwrap_or_else(|| model.to_owned()),
                context_window: entry.context_window.unwrap_or(DEFAULT_CONTEXT_WINDOW),
                supports_streaming: entry.supports_streaming.unwrap_or(true),
                supports_vision: entry.supports_vision.unwrap_or(false),
                id: entry.id,
            })
        })
        .collect()
}

/// Parses aliases such as `{"fast":"gemini/gemini-2.0-flash"}`.
///
/// An alias may not contain `/` and a target must be a `provider/model` id. That makes
/// aliases unable to shadow real ids or point at other aliases, so resolution is always a
/// single, unambiguous step.
pub fn parse_aliases(json: &str) -> Result<BTreeMap<String, String>, String> {
    let aliases: BTreeMap<String, String> = serde_json::from_str(json).map_err(|error| {
        format!("model aliases must be a JSON object of alias to model id: {error}")
    })?;
    for (alias, target) in &aliases {
        if alias.is_empty() || alias.contains('/') || alias.chars().any(char::is_whitespace) {
            return Err(format!(
                "model alias {alias:?} must be non-empty, without spaces or \"/\""
            ));
        }
        parse_model_id(target).map_err(|error| format!("alias {alias:?}: {error}"))?;
    }
    Ok(aliases)
}

/// The models on offer and the names that refer to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    models: Vec<ModelInfo>,
    embedding_models: Vec<EmbeddingModel>,
    aliases: BTreeMap<String, String>,
}

impl Catalogue {
    /// The built-in models, no aliases.
    pub fn builtin() -> Self {
        Self {
            models: builtin_models(),
            embedding_models: builtin_embedding_models(),
            aliases: BTreeMap::new(),
        }
    }

    /// Adds the operator's models; one with a built-in id replaces the built-in entry, so
    /// an operator can correct a context window without a release.
    pub fn with_operator_models(mut self, extras: Vec<ModelInfo>) -> Self {
        for extra in extras {
            match self.models.iter_mut().find(|model| model.id == extra.id) {
                Some(existing) => *existing = extra,
                None => self.models.push(extra),
            }
        }
        self
    }

    pub fn with_aliases(mut self, aliases: BTreeMap<String, String>) -> Self {
        self.aliases = aliases;
        self
    }

    pub fn models(&self) -> &[ModelInfo] {
        &self.models
    }

    pub fn aliases(&self) -> &BTreeMap<String, String> {
        &self.aliases
    }

    pub fn embedding_models(&self) -> &[EmbeddingModel] {
        &self.embedding_models
    }

    /// The catalogued embedding model an alias or id names, if any.
    pub fn resolve_embedding(&self, alias_or_id: &str) -> Option<&EmbeddingModel> {
        let id = self.canonical_id(alias_or_id);
        self.embedding_models.iter().find(|model| model.id == id)
    }

    /// A `provider/model` id for a bare embedding model name, as code written for one
    /// provider's SDK sends it (`text-embedding-3-small`, `gemini-embedding-001`): a
    /// catalogued upstream name wins, then the name's family. `None` for names with a `/`
    /// or of no known family.
    pub fn qualify_bare_embedding_name(&self, name: &str) -> Option<String> {
        if name.is_empty() || name.contains('/') {
            return None;
        }
        if let Some(model) = self.embedding_models.iter().find(|m| m.upstream == name) {
            return Some(model.id.clone());
        }
        let lower = name.to_ascii_lowercase();
        let provider = if lower.starts_with("text-embedding-") {
            "openai"
        } else if lower.starts_with("gemini-embedding-") {
            "gemini"
        } else {
            return None;
        };
        Some(format!("{provider}/{name}"))
    }

    /// The model id a client's name stands for: the alias target, or the name itself.
    /// Use this (then [`parse_model_id`]) for models outside the catalogue, such as
    /// whatever a local Ollama happens to serve.
    pub fn canonical_id<'a>(&'a self, alias_or_id: &'a str) -> &'a str {
        self.aliases
            .get(alias_or_id)
            .map_or(alias_or_id, String::as_str)
    }

    /// A `provider/model` id for a bare model name, so code written for one provider's SDK
    /// (`model="gpt-4o"`, `"claude-3-5-haiku-latest"`, `"gemini-2.0-flash"`) works against
    /// Threadline by changing only the base URL and key. A catalogued upstream name wins;
    /// otherwise the name's family prefix names the provider. `None` for names with a `/`
    /// or of no known family.
    pub fn qualify_bare_name(&self, name: &str) -> Option<String> {
        if name.is_empty() || name.contains('/') {
            return None;
        }
        if let Some(model) = self.models.iter().find(|m| m.upstream == name) {
            return Some(model.id.clone());
        }
        let lower = name.to_ascii_lowercase();
        let provider = if ["gpt-", "chatgpt-", "o1", "o3", "o4"]
            .iter()
            .any(|p| lower.starts_with(p))
        {
            "openai"
        } else if lower.starts_with("claude-") {
            "anthropic"
        } else if lower.starts_with("gemini-") {
            "gemini"
        } else {
            return None;
        };
        Some(format!("{provider}/{name}"))
    }

    /// The catalogued model an alias or id names, if any.
    pub fn resolve(&self, alias_or_id: &str) -> Option<&ModelInfo> {
        let id = self.canonical_id(alias_or_id);
        self.models.iter().find(|model| model.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalogue_has_exactly_the_expected_ids() {
        let ids: Vec<String> = builtin_models().into_iter().map(|m| m.id).collect();
        assert_eq!(
            ids,
            [
                "gemini/gemini-2.5-pro",
                "gemini/gemini-2.0-flash",
                "gemini/gemini-2.0-flash-lite",
                "gemini/gemini-1.5-pro",
                "anthropic/claude-3-7-sonnet-latest",
                "anthropic/claude-3-5-sonnet-latest",
                "anthropic/claude-3-5-haiku-latest",
                "openai/gpt-4o",
                "openai/gpt-4o-mini",
            ]
        );
    }

    #[test]
    fn builtin_entries_split_their_id_into_provider_and_upstream() {
        for model in builtin_models() {
            assert_eq!(format!("{}/{}", model.provider, model.upstream), model.id);
            assert!(provider_kind_for_prefix(&model.provider).is_some());
        }
    }

    #[test]
    fn model_id_splits_on_the_first_slash_only() {
        assert_eq!(parse_model_id("openai/gpt-4o"), Ok(("openai", "gpt-4o")));
        assert_eq!(
            parse_model_id("ollama/library/llama3"),
            Ok(("ollama", "library/llama3"))
        );
    }

    #[test]
    fn model_id_without_provider_or_model_is_rejected() {
        for bad in ["gpt-4o", "/gpt-4o", "openai/", "open ai/gpt", ""] {
            assert!(parse_model_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn builtin_prefixes_have_known_kinds_and_others_do_not() {
        assert_eq!(
            provider_kind_for_prefix("ollama"),
            Some(ProviderKind::OpenAiCompatible)
        );
        assert_eq!(provider_kind_for_prefix("myvllm"), None);
    }

    #[test]
    fn operator_models_fill_in_defaults() {
        let models = parse_operator_models(r#"[{"id":"openai/gpt-4.1","context_window":1047576}]"#);
        assert_eq!(
            models,
            Ok(vec![ModelInfo {
                id: "openai/gpt-4.1".into(),
                provider: "openai".into(),
                upstream: "gpt-4.1".into(),
                display_name: "gpt-4.1".into(),
                context_window: 1_047_576,
                supports_streaming: true,
                supports_vision: false,
            }])
        );
    }

    #[test]
    fn operator_model_typos_and_bad_ids_are_rejected() {
        assert!(parse_operator_models(r#"[{"id":"openai/x","context_windw":5}]"#).is_err());
        assert!(parse_operator_models(r#"[{"id":"no-prefix"}]"#).is_err());
        assert!(parse_operator_models(r#"{"id":"openai/x"}"#).is_err());
    }

    #[test]
    fn operator_model_with_a_builtin_id_replaces_it() {
        let extras = parse_operator_models(
            r#"[{"id":"openai/gpt-4o","context_window":64000},{"id":"ollama/llama3.2"}]"#,
        )
        .unwrap_or_default();
        let catalogue = Catalogue::builtin().with_operator_models(extras);
        assert_eq!(
            catalogue.resolve("openai/gpt-4o").map(|m| m.context_window),
            Some(64_000)
        );
        assert_eq!(catalogue.models().len(), builtin_models().len() + 1);
    }

    #[test]
    fn aliases_resolve_to_catalogued_models() {
        let aliases = parse_aliases(r#"{"fast":"gemini/gemini-2.0-flash"}"#).unwrap_or_default();
        let catalogue = Catalogue::builtin().with_aliases(aliases);
        assert_eq!(
            catalogue.resolve("fast").map(|m| m.upstream.as_str()),
            Some("gemini-2.0-flash")
        );
        assert_eq!(
            catalogue
                .resolve("openai/gpt-4o")
                .map(|m| m.display_name.as_str()),
            Some("GPT-4o")
        );
        assert_eq!(catalogue.resolve("slow"), None);
    }

    #[test]
    fn bare_provider_model_names_are_qualified() {
        let c = Catalogue::builtin();
        assert_eq!(
            c.qualify_bare_name("gpt-4o").as_deref(),
            Some("openai/gpt-4o")
        );
        assert_eq!(
            c.qualify_bare_name("gpt-4.1-mini").as_deref(),
            Some("openai/gpt-4.1-mini")
        );
        assert_eq!(
            c.qualify_bare_name("o3-mini").as_deref(),
            Some("openai/o3-mini")
        );
        assert_eq!(
            c.qualify_bare_name("claude-3-5-haiku-latest").as_deref(),
            Some("anthropic/claude-3-5-haiku-latest")
        );
        assert_eq!(
            c.qualify_bare_name("gemini-2.0-flash").as_deref(),
            Some("gemini/gemini-2.0-flash")
        );
        assert_eq!(
            c.qualify_bare_name("llama3.2"),
            None,
            "no family: the caller must say which server"
        );
        assert_eq!(c.qualify_bare_name("openai/gpt-4o"), None);
        assert_eq!(c.qualify_bare_name(""), None);
    }

    #[test]
    fn embedding_models_are_catalogued_apart_from_chat_models() {
        let c = Catalogue::builtin();
        assert!(c.resolve("openai/text-embedding-3-small").is_none());
        assert_eq!(
            c.resolve_embedding("openai/text-embedding-3-small")
                .map(|m| m.dimensions),
            Some(1536)
        );
        for model in c.embedding_models() {
            assert_eq!(format!("{}/{}", model.provider, model.upstream), model.id);
            assert!(c.models().iter().all(|chat| chat.id != model.id));
        }
    }

    #[test]
    fn bare_embedding_model_names_are_qualified() {
        let c = Catalogue::builtin();
        for (bare, id) in [
            ("text-embedding-3-large", "openai/text-embedding-3-large"),
            ("text-embedding-ada-002", "openai/text-embedding-ada-002"),
            ("text-embedding-004", "gemini/text-embedding-004"),
            ("gemini-embedding-001", "gemini/gemini-embedding-001"),
        ] {
            assert_eq!(c.qualify_bare_embedding_name(bare).as_deref(), Some(id));
        }
        assert_eq!(c.qualify_bare_embedding_name("nomic-embed-text"), None);
        assert_eq!(c.qualify_bare_embedding_name("openai/x"), None);
    }

    #[test]
    fn canonical_id_passes_uncatalogued_ids_through() {
        let catalogue = Catalogue::builtin();
        assert_eq!(catalogue.canonical_id("ollama/qwen3"), "ollama/qwen3");
        assert_eq!(catalogue.resolve("ollama/qwen3"), None);
    }

    #[test]
    fn aliases_with_slashes_or_bad_targets_are_rejected() {
        assert!(parse_aliases(r#"{"openai/gpt-4o":"gemini/gemini-2.0-flash"}"#).is_err());
        assert!(parse_aliases(r#"{"fast":"fast2"}"#).is_err());
        assert!(parse_aliases(r#"{"":"openai/gpt-4o"}"#).is_err());
        assert!(parse_aliases(r#"["fast"]"#).is_err());
    }
}
